"""Queries, one repository per aggregate; services see them through the Protocols in ports."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.audit import AuditRecord
from bot.storage.models import AuditEntry


class SqlAuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, record: AuditRecord) -> None:
        self._session.add(
            AuditEntry(
                at=record.at,
                actor_id=record.actor_id,
                actor_name=record.actor_name,
                action=record.action,
                target=record.target,
                outcome=record.outcome,
                details=dict(record.details),
            )
        )

    async def recent(
        self, limit: int = 20, *, actor_id: int | None = None, action: str | None = None
    ) -> list[AuditRecord]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if actor_id is not None:
            query = query.where(AuditEntry.actor_id == actor_id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        rows = (await self._session.scalars(query)).all()
        return [_to_record(row) for row in rows]


def _to_record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        details=row.details,
    )
