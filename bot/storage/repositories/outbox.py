"""The outbox and reminder repositories: durable side effects and timed nudges, one queue table."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.outbox import NewOutboxItem, OutboxItem, OutboxStatus, Reminder
from bot.storage.models import (
    OutboxEntry,
    ReminderEntry,
)
from bot.storage.syncbridge import BridgedSession, SqliteInsert

_OUTBOX = cast(Table, OutboxEntry.__table__)


_OUTBOX_COLUMNS = (
    "kind", "payload", "ordering_key", "dedupe_key", "status", "attempts", "created_at",
    "available_at",
)  # fmt: skip
_INSERT_OUTBOX = SqliteInsert(_OUTBOX, _OUTBOX_COLUMNS)


class SqlOutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, item: NewOutboxItem, now: datetime) -> OutboxItem | None:
        if item.dedupe_key is not None:
            existing = await self._session.scalar(
                select(OutboxEntry.id).where(OutboxEntry.dedupe_key == item.dedupe_key)
            )
            if existing is not None:
                return None
        table = _OUTBOX
        new_id = await self._session.scalar(
            insert(table)
            .values(
                kind=item.kind,
                payload=dict(item.payload),
                ordering_key=item.ordering_key,
                dedupe_key=item.dedupe_key,
                status=OutboxStatus.PENDING.value,
                attempts=0,
                created_at=now,
                available_at=item.available_at,
            )
            .returning(table.c.id)
        )
        assert new_id is not None
        return OutboxItem(
            id=int(new_id),
            kind=item.kind,
            payload=dict(item.payload),
            ordering_key=item.ordering_key,
            dedupe_key=item.dedupe_key,
            attempts=0,
            status=OutboxStatus.PENDING,
            created_at=now,
            available_at=item.available_at,
        )

    async def add_many(self, items: list[NewOutboxItem], now: datetime) -> None:
        if not items:
            return
        values = [
            (
                item.kind,
                dict(item.payload),
                item.ordering_key,
                item.dedupe_key,
                OutboxStatus.PENDING.value,
                0,
                now,
                item.available_at,
            )
            for item in items
        ]
        if isinstance(self._session, BridgedSession):
            _INSERT_OUTBOX.run(self._session, values)  # the alert processor's, on a SQLite file
            return
        await self._session.execute(
            insert(_OUTBOX), [dict(zip(_OUTBOX_COLUMNS, row, strict=True)) for row in values]
        )

    async def due(
        self,
        now: datetime,
        limit: int,
        exclude_kinds: Collection[str] = (),
        exclude_ids: Collection[int] = (),
    ) -> list[OutboxItem]:
        result = await self._session.execute(
            _DUE,
            {
                "due_now": now,
                "due_limit": limit,
                "due_excluded": list(exclude_kinds),
                "due_skipped": list(exclude_ids),
            },
        )
        return [_to_item(row) for row in result.all()]

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self._session.get(OutboxEntry, item_id)
        return _to_item(row) if row else None

    async def complete(self, item_id: int, now: datetime, result: Mapping[str, Any] | None) -> None:
        await self._session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == item_id)
            .values(
                status=OutboxStatus.DONE.value,
                completed_at=now,
                attempts=OutboxEntry.attempts + 1,
                result=dict(result) if result is not None else None,
                last_error=None,
            )
        )

    async def reschedule(self, item_id: int, available_at: datetime, error: str) -> None:
        await self._session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == item_id)
            .values(available_at=available_at, attempts=OutboxEntry.attempts + 1, last_error=error)
        )

    async def postpone(self, item_ids: list[int], available_at: datetime, reason: str) -> None:
        await self._update_pending(item_ids, available_at=available_at, last_error=reason)

    async def _update_pending(self, item_ids: list[int], **values: Any) -> None:
        """Set `values` on those of `item_ids` still pending (one statement; none: nothing)."""
        if not item_ids:
            return
        await self._session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.id.in_(item_ids),
                OutboxEntry.status == OutboxStatus.PENDING.value,
            )
            .values(**values)
        )

    async def pending_for_keys(self, kind: str, ordering_keys: list[str]) -> list[OutboxItem]:
        if not ordering_keys:
            return []
        query = (
            select(*_OUTBOX.c)
            .where(
                OutboxEntry.kind == kind,
                OutboxEntry.status == OutboxStatus.PENDING.value,
                OutboxEntry.ordering_key.in_(ordering_keys),
            )
            .order_by(OutboxEntry.id)
        )
        return [_to_item(row) for row in (await self._session.execute(query)).all()]

    async def complete_many(
        self, item_ids: list[int], now: datetime, result: Mapping[str, Any] | None
    ) -> None:
        await self._update_pending(
            item_ids,
            status=OutboxStatus.DONE.value,
            completed_at=now,
            result=dict(result) if result is not None else None,
            last_error=None,
        )

    async def fail(self, item_id: int, now: datetime, error: str) -> None:
        await self._session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == item_id)
            .values(
                status=OutboxStatus.FAILED.value,
                completed_at=now,
                attempts=OutboxEntry.attempts + 1,
                last_error=error,
            )
        )

    async def count(self, status: OutboxStatus) -> int:
        query = select(func.count()).select_from(OutboxEntry).where(OutboxEntry.status == status)
        return int(await self._session.scalar(query) or 0)

    async def next_due(
        self, exclude_kinds: Collection[str] = (), exclude_ids: Collection[int] = ()
    ) -> datetime | None:
        value = await self._session.scalar(
            _NEXT_DUE, {"due_excluded": list(exclude_kinds), "due_skipped": list(exclude_ids)}
        )
        if value is None:
            return None
        if isinstance(value, str):  # SQLite's MIN() of a text column comes back untyped
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)


def _to_item(row: Any) -> OutboxItem:
    """From an `OutboxEntry` or a row of its table's columns."""
    return OutboxItem(
        id=row.id,
        kind=row.kind,
        payload=row.payload,
        ordering_key=row.ordering_key,
        dedupe_key=row.dedupe_key,
        attempts=row.attempts,
        status=OutboxStatus(row.status),
        created_at=row.created_at,
        available_at=row.available_at,
        completed_at=row.completed_at,
        last_error=row.last_error,
        result=row.result,
    )


def _startable() -> list[Any]:
    """Pending, not excluded (held kinds, items in flight), and first of its ordering key."""
    pending = OutboxStatus.PENDING.value
    older = aliased(OutboxEntry)
    head_of_key = (
        select(func.min(older.id))
        .where(older.ordering_key == OutboxEntry.ordering_key, older.status == pending)
        .scalar_subquery()
    )
    return [
        OutboxEntry.status == pending,
        OutboxEntry.kind.not_in(bindparam("due_excluded", expanding=True)),
        OutboxEntry.id.not_in(bindparam("due_skipped", expanding=True)),
        or_(OutboxEntry.ordering_key.is_(None), OutboxEntry.id == head_of_key),
    ]


# Built once: the worker asks them every round, and in a storm a round is short.
_DUE = (
    select(*_OUTBOX.c)  # rows, not ORM objects
    .where(*_startable(), OutboxEntry.available_at <= bindparam("due_now"))
    .order_by(OutboxEntry.id)
    .limit(bindparam("due_limit"))
)
_NEXT_DUE = select(func.min(OutboxEntry.available_at)).where(*_startable())


class SqlReminderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def schedule(
        self, kind: str, subject: str, due_at: datetime, payload: Mapping[str, Any]
    ) -> None:
        row = await self._session.scalar(
            select(ReminderEntry).where(
                ReminderEntry.kind == kind, ReminderEntry.subject == subject
            )
        )
        if row is None:
            self._session.add(
                ReminderEntry(kind=kind, subject=subject, due_at=due_at, payload=dict(payload))
            )
            await self._session.flush()
        elif row.sent_at is None:
            row.due_at = due_at
            row.payload = dict(payload)

    async def cancel(self, kind: str, subject: str) -> None:
        await self._session.execute(
            delete(ReminderEntry).where(
                ReminderEntry.kind == kind,
                ReminderEntry.subject == subject,
                ReminderEntry.sent_at.is_(None),
            )
        )

    async def due(self, now: datetime, limit: int) -> list[Reminder]:
        query = (
            select(ReminderEntry)
            .where(ReminderEntry.sent_at.is_(None), ReminderEntry.due_at <= now)
            .order_by(ReminderEntry.due_at, ReminderEntry.id)
            .limit(limit)
        )
        return [
            Reminder(
                id=row.id,
                kind=row.kind,
                subject=row.subject,
                due_at=row.due_at,
                payload=row.payload,
                sent_at=row.sent_at,
            )
            for row in (await self._session.scalars(query)).all()
        ]

    async def mark_sent(self, reminder_id: int, now: datetime) -> bool:
        result = await self._session.execute(
            update(ReminderEntry)
            .where(ReminderEntry.id == reminder_id, ReminderEntry.sent_at.is_(None))
            .values(sent_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
