"""The #dev-log repository: GitHub webhook deliveries (once each) and the posts the bot edits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.devlog import Delivery, DevLogPost
from bot.storage.models import DevLogPostEntry, GitHubDelivery


def _post(row: DevLogPostEntry) -> DevLogPost:
    return DevLogPost(
        id=row.id,
        key=row.key,
        template=row.template,
        data=dict(row.data or {}),
        open=row.open,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        channel_id=row.channel_id,
        message_id=row.message_id,
    )


class SqlDevLogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_delivery(
        self, delivery_id: str, event: str, payload: Mapping[str, Any], now: datetime
    ) -> int | None:
        try:
            async with self._session.begin_nested():
                row = GitHubDelivery(
                    delivery_id=delivery_id,
                    event=event,
                    received_at=now,
                    payload=dict(payload),
                    processed_at=None,
                    outcome="pending",
                )
                self._session.add(row)
        except IntegrityError:
            return None
        return row.id

    async def delivery(self, row_id: int) -> Delivery | None:
        row = await self._session.get(GitHubDelivery, row_id)
        if row is None:
            return None
        return Delivery(
            id=row.id,
            delivery_id=row.delivery_id,
            event=row.event,
            payload=dict(row.payload or {}),
            received_at=row.received_at,
            processed_at=row.processed_at,
            outcome=row.outcome,
        )

    async def mark_delivery(self, row_id: int, outcome: str, now: datetime) -> None:
        await self._session.execute(
            update(GitHubDelivery)
            .where(GitHubDelivery.id == row_id)
            .values(outcome=outcome[:32], processed_at=now)
        )

    async def open_post(self, key: str) -> DevLogPost | None:
        row = await self._session.scalar(
            select(DevLogPostEntry)
            .where(DevLogPostEntry.key == key, DevLogPostEntry.open.is_(True))
            .order_by(DevLogPostEntry.id.desc())
            .limit(1)
        )
        return _post(row) if row else None

    async def add_post(
        self, key: str, template: str, data: Mapping[str, Any], now: datetime
    ) -> DevLogPost:
        row = DevLogPostEntry(
            key=key,
            template=template,
            data=dict(data),
            open=True,
            version=1,
            created_at=now,
            updated_at=now,
        )
        self._session.add(row)
        await self._session.flush()
        return _post(row)

    async def update_post(
        self, post_id: int, data: Mapping[str, Any], *, open: bool, now: datetime
    ) -> None:
        await self._session.execute(
            update(DevLogPostEntry)
            .where(DevLogPostEntry.id == post_id)
            .values(
                data=dict(data),
                open=open,
                updated_at=now,
                version=DevLogPostEntry.version + 1,
            )
        )

    async def post(self, post_id: int) -> DevLogPost | None:
        row = await self._session.get(DevLogPostEntry, post_id, populate_existing=True)
        return _post(row) if row else None

    async def posted(self, post_id: int, channel_id: int, message_id: int) -> None:
        await self._session.execute(
            update(DevLogPostEntry)
            .where(DevLogPostEntry.id == post_id)
            .values(channel_id=channel_id, message_id=message_id)
        )
