"""Queries, one repository per aggregate; services see them through the Protocols in ports."""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Container, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.access import (
    AccessReview,
    DriftFinding,
    Grant,
    GrantStatus,
    Lockout,
    ReviewDecision,
    ReviewItem,
)
from bot.domain.alerts import (
    AlertGroup,
    AlertMessage,
    AlertStatus,
    AlertView,
    NotificationRow,
    StoredNotification,
    WebhookAlert,
)
from bot.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainHead,
    HeadMark,
    chain_hash,
    key_fingerprint,
)
from bot.domain.health import MinuteAggregate, NodeStatus, ProbeSample, RegisteredNode, State
from bot.domain.incidents import (
    ChecklistItem,
    Incident,
    IncidentStatus,
    Severity,
    Tick,
    TimelineEntry,
    TimelineKind,
)
from bot.domain.outbox import NewOutboxItem, OutboxItem, OutboxStatus, Reminder
from bot.domain.releases import Release, RolloutSnapshot
from bot.domain.roles import OpsRole
from bot.storage.models import (
    AlertGroupRow,
    AlertMessageRow,
    AlertNotification,
    AlertSpoolCursor,
    AlertWatchdog,
    AuditChainHead,
    AuditEntry,
    DriftEntry,
    GrantEntry,
    IncidentEntry,
    IncidentSequenceEntry,
    IncidentTimelineEntry,
    LockoutEntry,
    NodeEntry,
    OutboxEntry,
    ProbeMinuteEntry,
    ProbeSampleEntry,
    ReleaseEntry,
    ReminderEntry,
    ReviewEntry,
    ReviewItemEntry,
    RolloutSnapshotEntry,
    StrikeEntry,
)
from bot.storage.syncbridge import BridgedSession, EncodedJson, SqliteInsert


class AuditChainError(RuntimeError):
    """The chain cannot be appended to as configured (a keyed chain without its key)."""


class SqlAuditRepository:
    def __init__(self, session: AsyncSession, key: bytes | None = None) -> None:
        self._session = session
        self._key = key
        self.appended: tuple[HeadMark, HeadMark] | None = None
        """(head before, head after) of this transaction's appends; the unit of work reports
        it once committed (bot.storage.audit_head)."""

    @property
    def key_check(self) -> str | None:
        """The configured key's fingerprint (None: no key), to compare with the stored one."""
        return key_fingerprint(self._key) if self._key is not None else None

    async def add(self, record: AuditRecord) -> None:
        """Append to the hash chain. Locking the head row serialises appends (PostgreSQL);
        SQLite transactions are already serial (BEGIN IMMEDIATE, see database.py)."""
        head = await self._session.get(AuditChainHead, 1, with_for_update=True)
        if head is None:
            head = AuditChainHead(id=1, last_hash=GENESIS_HASH, last_id=0, row_count=0)
            self._session.add(head)
        before = HeadMark(head.last_id, head.last_hash, head.row_count)
        if head.keyed_from is not None and self.key_check != head.key_check:
            raise AuditChainError(
                "the audit chain is keyed and [audit] hmac_key_file "
                + ("is not set" if self._key is None else "is another key")
            )
        prev = head.last_hash
        row_hash = chain_hash(prev, record, self._key)
        entry = AuditEntry(
            at=record.at,
            actor_id=record.actor_id,
            actor_name=record.actor_name,
            action=record.action,
            target=record.target,
            outcome=record.outcome,
            details=dict(record.details),
            prev_hash=prev,
            hash=row_hash,
        )
        self._session.add(entry)
        await self._session.flush()
        head.last_hash = row_hash
        head.last_id = entry.id
        head.row_count = head.row_count + 1
        if self._key is not None and head.keyed_from is None:
            head.keyed_from, head.key_check = entry.id, self.key_check
        await self._session.flush()
        first = self.appended[0] if self.appended else before
        self.appended = (first, HeadMark(entry.id, row_hash, head.row_count))

    async def head(self) -> ChainHead | None:
        """The stored head; None when its row is missing."""
        row = await self._session.get(AuditChainHead, 1, populate_existing=True)
        if row is None:
            return None
        return ChainHead(
            HeadMark(row.last_id, row.last_hash, row.row_count), row.keyed_from, row.key_check
        )

    async def mark_at(self, row_id: int) -> HeadMark | None:
        """Row `row_id`'s hash and the number of rows up to it; None when there is no such row."""
        found = await self._session.scalar(select(AuditEntry.hash).where(AuditEntry.id == row_id))
        if found is None:
            return None
        rows = await self._session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.id <= row_id)
        )
        return HeadMark(row_id, found, int(rows or 0))

    async def snapshot(self) -> None:
        """Make this transaction's reads one snapshot (PostgreSQL: REPEATABLE READ), so a check
        of the head against the rows is not fooled by appends meanwhile. SQLite transactions
        are serial already. Call before any other statement."""
        session = self._session
        if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})

    async def since(self, since: datetime | None, limit: int = 100_000) -> list[AuditRecord]:
        query = select(AuditEntry).order_by(AuditEntry.id).limit(limit)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        return [_to_record(row) for row in (await self._session.scalars(query)).all()]

    async def chain(
        self, after_id: int, limit: int
    ) -> list[tuple[AuditRecord, str | None, str | None]]:
        query = (
            select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id).limit(limit)
        )
        rows = (await self._session.scalars(query)).all()
        return [(_to_record(row), row.prev_hash, row.hash) for row in rows]

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


_OUTBOX = cast(Table, OutboxEntry.__table__)
PENDING = "pending"
"""The outcome of a stored webhook body whose group is not updated yet."""
_NOTIFICATIONS = cast(Table, AlertNotification.__table__)
_GROUPS = cast(Table, AlertGroupRow.__table__)
_SPOOL_CURSORS = cast(Table, AlertSpoolCursor.__table__)
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


def _grant(row: GrantEntry) -> Grant:
    return Grant(
        id=row.id,
        member_id=row.member_id,
        member_name=row.member_name,
        role=OpsRole(row.role),
        status=GrantStatus(row.status),
        reason=row.reason,
        granted_by_id=row.granted_by_id,
        granted_by_name=row.granted_by_name,
        requested_at=row.requested_at,
        days=row.days,
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        approved_by_id=row.approved_by_id,
        ended_at=row.ended_at,
        ended_by_name=row.ended_by_name,
        end_reason=row.end_reason,
    )


LIVE = (GrantStatus.PENDING.value, GrantStatus.ACTIVE.value)


class SqlGrantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        *,
        member_id: int,
        member_name: str,
        role: OpsRole,
        status: GrantStatus,
        reason: str,
        granted_by_id: int | None,
        granted_by_name: str,
        requested_at: datetime,
        days: int,
        granted_at: datetime | None,
        expires_at: datetime | None,
    ) -> Grant:
        row = GrantEntry(
            member_id=member_id,
            member_name=member_name[:100],
            role=role.value,
            status=status.value,
            reason=reason[:500],
            granted_by_id=granted_by_id,
            granted_by_name=granted_by_name[:100],
            requested_at=requested_at,
            days=days,
            granted_at=granted_at,
            expires_at=expires_at,
            approved_by_id=granted_by_id if status is GrantStatus.ACTIVE else None,
        )
        self._session.add(row)
        await self._session.flush()
        return _grant(row)

    async def get(self, grant_id: int, *, for_update: bool = False) -> Grant | None:
        query = select(GrantEntry).where(GrantEntry.id == grant_id)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return _grant(row) if row else None

    async def live_for(self, member_id: int, role: OpsRole) -> Grant | None:
        row = await self._session.scalar(
            select(GrantEntry)
            .where(
                GrantEntry.member_id == member_id,
                GrantEntry.role == role.value,
                GrantEntry.status.in_(LIVE),
            )
            .order_by(GrantEntry.id.desc())
            .limit(1)
        )
        return _grant(row) if row else None

    async def find(
        self,
        *,
        statuses: tuple[GrantStatus, ...] = (GrantStatus.PENDING, GrantStatus.ACTIVE),
        member_id: int | None = None,
        role: OpsRole | None = None,
        limit: int = 100,
    ) -> list[Grant]:
        query = (
            select(GrantEntry)
            .where(GrantEntry.status.in_([s.value for s in statuses]))
            .order_by(GrantEntry.expires_at.is_(None), GrantEntry.expires_at, GrantEntry.id)
            .limit(limit)
        )
        if member_id is not None:
            query = query.where(GrantEntry.member_id == member_id)
        if role is not None:
            query = query.where(GrantEntry.role == role.value)
        return [_grant(row) for row in (await self._session.scalars(query)).all()]

    async def activate(
        self, grant_id: int, *, granted_at: datetime, expires_at: datetime, approved_by_id: int
    ) -> bool:
        result = await self._session.execute(
            update(GrantEntry)
            .where(GrantEntry.id == grant_id, GrantEntry.status == GrantStatus.PENDING.value)
            .values(
                status=GrantStatus.ACTIVE.value,
                granted_at=granted_at,
                expires_at=expires_at,
                approved_by_id=approved_by_id,
            )
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def extend(self, grant_id: int, expires_at: datetime, days: int) -> None:
        await self._session.execute(
            update(GrantEntry)
            .where(GrantEntry.id == grant_id)
            .values(expires_at=expires_at, days=days)
        )

    async def end(
        self,
        grant_id: int,
        status: GrantStatus,
        *,
        at: datetime,
        by_name: str,
        reason: str,
        only: tuple[GrantStatus, ...] | None = None,
    ) -> bool:
        statuses = [s.value for s in only] if only is not None else LIVE
        result = await self._session.execute(
            update(GrantEntry)
            .where(GrantEntry.id == grant_id, GrantEntry.status.in_(statuses))
            .values(
                status=status.value,
                ended_at=at,
                ended_by_name=by_name[:100],
                end_reason=reason[:500],
            )
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def expired(self, now: datetime) -> list[Grant]:
        query = (
            select(GrantEntry)
            .where(GrantEntry.status == GrantStatus.ACTIVE.value, GrantEntry.expires_at <= now)
            .order_by(GrantEntry.expires_at)
        )
        return [_grant(row) for row in (await self._session.scalars(query)).all()]

    async def lapsed_requests(self, before: datetime) -> list[Grant]:
        query = select(GrantEntry).where(
            GrantEntry.status == GrantStatus.PENDING.value, GrantEntry.requested_at <= before
        )
        return [_grant(row) for row in (await self._session.scalars(query)).all()]

    async def active_holders(self, role: OpsRole) -> set[int]:
        query = select(GrantEntry.member_id).where(
            GrantEntry.status == GrantStatus.ACTIVE.value, GrantEntry.role == role.value
        )
        return set((await self._session.scalars(query)).all())


class SqlLockoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_strike(self, member_id: int, at: datetime, action: str) -> None:
        self._session.add(StrikeEntry(member_id=member_id, at=at, action=action[:64]))
        await self._session.flush()

    async def strikes_since(self, member_id: int, since: datetime) -> int:
        query = (
            select(func.count())
            .select_from(StrikeEntry)
            .where(StrikeEntry.member_id == member_id, StrikeEntry.at > since)
        )
        return int(await self._session.scalar(query) or 0)

    async def current(self, member_id: int, now: datetime) -> Lockout | None:
        row = await self._session.scalar(
            select(LockoutEntry)
            .where(
                LockoutEntry.member_id == member_id,
                LockoutEntry.until > now,
                LockoutEntry.lifted_at.is_(None),
            )
            .order_by(LockoutEntry.until.desc())
            .limit(1)
        )
        if row is None:
            return None
        return Lockout(member_id=row.member_id, locked_at=row.locked_at, until=row.until)

    async def lock(self, member_id: int, at: datetime, until: datetime) -> None:
        self._session.add(LockoutEntry(member_id=member_id, locked_at=at, until=until))
        await self._session.flush()

    async def lift(self, member_id: int, at: datetime, by_name: str) -> bool:
        result = await self._session.execute(
            update(LockoutEntry)
            .where(
                LockoutEntry.member_id == member_id,
                LockoutEntry.until > at,
                LockoutEntry.lifted_at.is_(None),
            )
            .values(lifted_at=at, lifted_by_name=by_name[:100])
        )
        # Strikes before the unlock no longer count towards the next lockout.
        await self._session.execute(
            delete(StrikeEntry).where(StrikeEntry.member_id == member_id, StrikeEntry.at <= at)
        )
        return bool(getattr(result, "rowcount", 0))


def _review(row: ReviewEntry) -> AccessReview:
    return AccessReview(
        id=row.id,
        started_at=row.started_at,
        deadline=row.deadline,
        started_by_name=row.started_by_name,
        closed_at=row.closed_at,
    )


def _item(row: ReviewItemEntry) -> ReviewItem:
    return ReviewItem(
        id=row.id,
        review_id=row.review_id,
        grant_id=row.grant_id,
        member_id=row.member_id,
        member_name=row.member_name,
        role=OpsRole(row.role),
        expires_at=row.expires_at,
        decision=ReviewDecision(row.decision) if row.decision else None,
        decided_by_name=row.decided_by_name,
        decided_at=row.decided_at,
    )


class SqlReviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(
        self, started_at: datetime, deadline: datetime, started_by_name: str, grants: list[Grant]
    ) -> tuple[AccessReview, list[ReviewItem]]:
        review = ReviewEntry(
            started_at=started_at, deadline=deadline, started_by_name=started_by_name[:100]
        )
        self._session.add(review)
        await self._session.flush()
        rows = [
            ReviewItemEntry(
                review_id=review.id,
                grant_id=g.id,
                member_id=g.member_id,
                member_name=g.member_name,
                role=g.role.value,
                expires_at=g.expires_at,
            )
            for g in grants
        ]
        self._session.add_all(rows)
        await self._session.flush()
        return _review(review), [_item(r) for r in rows]

    async def item(self, item_id: int, *, for_update: bool = False) -> ReviewItem | None:
        query = select(ReviewItemEntry).where(ReviewItemEntry.id == item_id)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return _item(row) if row else None

    async def review(self, review_id: int) -> AccessReview | None:
        row = await self._session.get(ReviewEntry, review_id)
        return _review(row) if row else None

    async def items(self, review_id: int) -> list[ReviewItem]:
        query = (
            select(ReviewItemEntry)
            .where(ReviewItemEntry.review_id == review_id)
            .order_by(ReviewItemEntry.id)
        )
        return [_item(r) for r in (await self._session.scalars(query)).all()]

    async def decide(
        self, item_id: int, decision: ReviewDecision, by_name: str, at: datetime
    ) -> bool:
        result = await self._session.execute(
            update(ReviewItemEntry)
            .where(ReviewItemEntry.id == item_id, ReviewItemEntry.decision.is_(None))
            .values(decision=decision.value, decided_by_name=by_name[:100], decided_at=at)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def overdue(self, now: datetime) -> list[AccessReview]:
        query = select(ReviewEntry).where(
            ReviewEntry.closed_at.is_(None), ReviewEntry.deadline <= now
        )
        return [_review(r) for r in (await self._session.scalars(query)).all()]

    async def open_reviews(self) -> list[AccessReview]:
        query = select(ReviewEntry).where(ReviewEntry.closed_at.is_(None)).order_by(ReviewEntry.id)
        return [_review(r) for r in (await self._session.scalars(query)).all()]

    async def close(self, review_id: int, at: datetime) -> None:
        await self._session.execute(
            update(ReviewEntry).where(ReviewEntry.id == review_id).values(closed_at=at)
        )


class SqlDriftRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, finding: DriftFinding, at: datetime) -> bool:
        open_row = await self._session.scalar(
            select(DriftEntry.id).where(
                DriftEntry.member_id == finding.member_id,
                DriftEntry.role == finding.role.value,
                DriftEntry.resolved_at.is_(None),
            )
        )
        if open_row is not None:
            return False
        self._session.add(
            DriftEntry(
                member_id=finding.member_id,
                member_name=finding.member_name[:100],
                role=finding.role.value,
                found_at=at,
            )
        )
        await self._session.flush()
        return True

    async def resolve(self, member_id: int, role: OpsRole, at: datetime) -> bool:
        result = await self._session.execute(
            update(DriftEntry)
            .where(
                DriftEntry.member_id == member_id,
                DriftEntry.role == role.value,
                DriftEntry.resolved_at.is_(None),
            )
            .values(resolved_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def open_findings(self) -> list[DriftFinding]:
        query = select(DriftEntry).where(DriftEntry.resolved_at.is_(None))
        return [
            DriftFinding(member_id=r.member_id, member_name=r.member_name, role=OpsRole(r.role))
            for r in (await self._session.scalars(query)).all()
        ]


class SqlHealthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # -- nodes --------------------------------------------------------------------------------

    async def add_node(
        self, name: str, endpoint: str, region: str | None, requested_by: int, now: datetime
    ) -> RegisteredNode:
        row = NodeEntry(
            name=name,
            endpoint=endpoint,
            region=region,
            status=NodeStatus.PENDING.value,
            requested_by=requested_by,
            requested_at=now,
        )
        self._session.add(row)
        await self._session.flush()
        return _to_node(row)

    async def set_approval_message(self, node_id: int, channel_id: int, message_id: int) -> None:
        await self._session.execute(
            update(NodeEntry)
            .where(NodeEntry.id == node_id)
            .values(approval_channel_id=channel_id, approval_message_id=message_id)
        )

    async def node(self, node_id: int) -> RegisteredNode | None:
        row = await self._session.get(NodeEntry, node_id)
        return _to_node(row) if row else None

    async def node_named(self, name: str) -> RegisteredNode | None:
        row = await self._session.scalar(select(NodeEntry).where(NodeEntry.name == name))
        return _to_node(row) if row else None

    async def nodes(self, status: NodeStatus | None = None) -> list[RegisteredNode]:
        query = select(NodeEntry).order_by(NodeEntry.name)
        if status is not None:
            query = query.where(NodeEntry.status == status.value)
        return [_to_node(row) for row in (await self._session.scalars(query)).all()]

    async def decide(
        self, node_id: int, status: NodeStatus, decided_by: int, now: datetime
    ) -> RegisteredNode:
        row = await self._session.get(NodeEntry, node_id)
        assert row is not None
        row.status, row.decided_by, row.decided_at = status.value, decided_by, now
        await self._session.flush()
        return _to_node(row)

    async def remove_node(self, node_id: int) -> None:
        await self._session.execute(delete(NodeEntry).where(NodeEntry.id == node_id))

    # -- probe samples and aggregates ---------------------------------------------------------

    async def add_samples(self, samples: list[ProbeSample]) -> None:
        self._session.add_all(
            ProbeSampleEntry(
                target=s.target,
                at=s.at,
                state=s.state.value,
                latency_ms=s.latency_ms,
                reason=(s.reason or "")[:200] or None,
            )
            for s in samples
        )
        await self._session.flush()

    async def recent_samples(self, target: str, since: datetime) -> list[ProbeSample]:
        query = (
            select(ProbeSampleEntry)
            .where(ProbeSampleEntry.target == target, ProbeSampleEntry.at >= since)
            .order_by(ProbeSampleEntry.at)
        )
        return [
            ProbeSample(r.target, r.at, State(r.state), r.latency_ms, r.reason)
            for r in (await self._session.scalars(query)).all()
        ]

    async def rollup(self, before: datetime) -> int:
        """Every complete minute after the last one aggregated and before `before`, once."""
        watermark = await self._session.scalar(select(func.max(ProbeMinuteEntry.minute)))
        query = select(
            ProbeSampleEntry.target,
            ProbeSampleEntry.at,
            ProbeSampleEntry.state,
            ProbeSampleEntry.latency_ms,
        ).where(ProbeSampleEntry.at < before)
        if watermark is not None:
            query = query.where(ProbeSampleEntry.at >= watermark + timedelta(minutes=1))
        groups: dict[tuple[str, datetime], list[tuple[str, float | None]]] = {}
        for target, at, state, latency in (await self._session.execute(query)).all():
            minute = at.replace(second=0, microsecond=0)
            groups.setdefault((target, minute), []).append((state, latency))
        for (target, minute), rows in groups.items():
            latencies = [lat for _state, lat in rows if lat is not None]
            self._session.add(
                ProbeMinuteEntry(
                    target=target,
                    minute=minute,
                    samples=len(rows),
                    up_samples=sum(1 for state, _lat in rows if state != State.DOWN.value),
                    latency_avg_ms=sum(latencies) / len(latencies) if latencies else None,
                    latency_max_ms=max(latencies) if latencies else None,
                )
            )
        await self._session.flush()
        return len(groups)

    async def prune(self, raw_before: datetime, aggregates_before: datetime) -> int:
        raw = await self._session.execute(
            delete(ProbeSampleEntry).where(ProbeSampleEntry.at < raw_before)
        )
        agg = await self._session.execute(
            delete(ProbeMinuteEntry).where(ProbeMinuteEntry.minute < aggregates_before)
        )
        return int(raw.rowcount or 0) + int(agg.rowcount or 0)  # type: ignore[attr-defined]

    async def minutes(self, since: datetime, target: str | None = None) -> list[MinuteAggregate]:
        query = (
            select(ProbeMinuteEntry)
            .where(ProbeMinuteEntry.minute >= since)
            .order_by(ProbeMinuteEntry.minute)
        )
        if target is not None:
            query = query.where(ProbeMinuteEntry.target == target)
        return [
            MinuteAggregate(
                r.target, r.minute, r.samples, r.up_samples, r.latency_avg_ms, r.latency_max_ms
            )
            for r in (await self._session.scalars(query)).all()
        ]


def _to_node(row: NodeEntry) -> RegisteredNode:
    return RegisteredNode(
        id=row.id,
        name=row.name,
        endpoint=row.endpoint,
        region=row.region,
        status=NodeStatus(row.status),
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        approval_channel_id=row.approval_channel_id,
        approval_message_id=row.approval_message_id,
    )


_INCIDENT_COLUMNS = frozenset(
    c.key for c in IncidentEntry.__table__.columns if c.key not in ("id", "ref")
)


def _incident(row: IncidentEntry) -> Incident:
    checklist = {
        ChecklistItem(key): Tick(
            by_id=value.get("by_id"),
            by_name=str(value.get("by_name", "")),
            at=datetime.fromisoformat(value["at"]),
        )
        for key, value in (row.checklist or {}).items()
        if key in ChecklistItem.__members__.values()
    }
    return Incident(
        id=row.id,
        ref=row.ref,
        severity=Severity(row.severity),
        status=IncidentStatus(row.status),
        title=row.title,
        summary=row.summary,
        nodes=row.nodes,
        reporter_id=row.reporter_id,
        reporter_name=row.reporter_name,
        opened_at=row.opened_at,
        last_update_at=row.last_update_at,
        commander_id=row.commander_id,
        commander_name=row.commander_name,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
        cause=row.cause,
        resolution=row.resolution,
        report_due_at=row.report_due_at,
        report_at=row.report_at,
        checklist=checklist,
        updates=row.updates,
        github_number=row.github_number,
        github_url=row.github_url,
        github_error=row.github_error,
        report_url=row.report_url,
        card_channel_id=row.card_channel_id,
        card_message_id=row.card_message_id,
        thread_id=row.thread_id,
        miners_enabled=row.miners_enabled,
        miners_text=row.miners_text,
    )


def _column_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return value


class SqlIncidentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def next_number(self, year: int) -> int:
        """The next number of `year`, under a row lock (PostgreSQL) or SQLite's write lock."""
        for _ in range(3):
            row = await self._session.get(IncidentSequenceEntry, year, with_for_update=True)
            if row is not None:
                row.last += 1
                await self._session.flush()
                return row.last
            try:
                async with self._session.begin_nested():
                    self._session.add(IncidentSequenceEntry(year=year, last=1))
                return 1
            except IntegrityError:
                continue  # another transaction created the year's row first: lock it
        raise RuntimeError("could not allocate an incident number")

    async def add(self, ref: str, **values: Any) -> Incident:
        row = IncidentEntry(ref=ref, **{k: _column_value(v) for k, v in values.items()})
        self._session.add(row)
        await self._session.flush()
        return _incident(row)

    async def get(self, incident_id: int, *, for_update: bool = False) -> Incident | None:
        query = select(IncidentEntry).where(IncidentEntry.id == incident_id)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return _incident(row) if row else None

    async def by_ref(self, ref: str, *, for_update: bool = False) -> Incident | None:
        query = select(IncidentEntry).where(IncidentEntry.ref == ref)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return _incident(row) if row else None

    async def by_thread(self, thread_id: int) -> Incident | None:
        row = await self._session.scalar(
            select(IncidentEntry).where(IncidentEntry.thread_id == thread_id)
        )
        return _incident(row) if row else None

    async def update(self, incident_id: int, **values: Any) -> None:
        unknown = set(values) - _INCIDENT_COLUMNS
        if unknown:
            raise ValueError(f"not incident columns: {sorted(unknown)}")
        await self._session.execute(
            update(IncidentEntry)
            .where(IncidentEntry.id == incident_id)
            .values({k: _column_value(v) for k, v in values.items()})
        )

    async def find(self, *, open_only: bool, limit: int = 25) -> list[Incident]:
        query = select(IncidentEntry).order_by(IncidentEntry.opened_at.desc()).limit(limit)
        if open_only:
            query = query.where(IncidentEntry.status != IncidentStatus.RESOLVED.value)
        return [_incident(row) for row in (await self._session.scalars(query)).all()]

    async def refs_starting(self, prefix: str, limit: int = 25) -> list[tuple[str, str]]:
        query = (
            select(IncidentEntry.ref, IncidentEntry.title)
            .where(IncidentEntry.ref.like(f"{prefix.upper()}%"))
            .order_by(IncidentEntry.id.desc())
            .limit(limit)
        )
        return [(ref, title) for ref, title in (await self._session.execute(query)).all()]

    async def all_for_stats(self, since: datetime | None = None) -> list[Incident]:
        query = select(IncidentEntry).order_by(IncidentEntry.id)
        if since is not None:
            query = query.where(IncidentEntry.opened_at >= since)
        return [_incident(row) for row in (await self._session.scalars(query)).all()]

    async def add_timeline(
        self, incident_id: int, entry: TimelineEntry, *, source_id: int | None = None
    ) -> bool:
        """False when `source_id` (a Discord message) is already on a timeline."""
        if source_id is not None:
            seen = await self._session.scalar(
                select(IncidentTimelineEntry.id).where(IncidentTimelineEntry.source_id == source_id)
            )
            if seen is not None:
                return False
        self._session.add(
            IncidentTimelineEntry(
                incident_id=incident_id,
                at=entry.at,
                kind=entry.kind.value,
                actor_id=entry.actor_id,
                actor_name=entry.actor_name[:100],
                text=entry.text[:2000],
                source_id=source_id,
            )
        )
        await self._session.flush()
        return True

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        query = (
            select(IncidentTimelineEntry)
            .where(IncidentTimelineEntry.incident_id == incident_id)
            .order_by(IncidentTimelineEntry.at, IncidentTimelineEntry.id)
        )
        return [
            TimelineEntry(
                id=row.id,
                at=row.at,
                kind=TimelineKind(row.kind),
                actor_name=row.actor_name,
                actor_id=row.actor_id,
                text=row.text,
            )
            for row in (await self._session.scalars(query)).all()
        ]


def _insert_ignoring_conflicts(session: AsyncSession, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike; executed with a list
    of rows it is one statement of many VALUES (SQLAlchemy's insertmanyvalues), compiled once."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


_NOTIFICATION_COLUMNS = (
    "dedupe_key", "group_key_hash", "status", "receiver", "received_at", "outcome", "payload",
    "processed_at",
)  # fmt: skip
_INSERT_NOTIFICATIONS = SqliteInsert(
    _NOTIFICATIONS, _NOTIFICATION_COLUMNS, ignore_conflicts=True, returning=("dedupe_key", "id")
)


def _notification_values(row: NotificationRow, now: datetime) -> tuple[Any, ...]:
    payload = row.payload
    return (
        row.dedupe_key,
        row.group_key_hash,
        row.status,
        row.receiver[:500],
        now,
        PENDING,
        EncodedJson(payload) if isinstance(payload, str) else dict(payload),
        None,
    )


def _decoded(payload: Mapping[str, Any] | str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(payload)) if isinstance(payload, str) else dict(payload)


class SqlAlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_notifications(self, rows: list[NotificationRow], now: datetime) -> dict[str, int]:
        if not rows:
            return {}
        values = [_notification_values(row, now) for row in rows]
        if isinstance(self._session, BridgedSession):
            # The webhook's write: through sqlite3, not a millisecond of the ORM per body.
            returned = _INSERT_NOTIFICATIONS.run(self._session, values)
        else:
            statement = _insert_ignoring_conflicts(self._session, _NOTIFICATIONS).returning(
                _NOTIFICATIONS.c.dedupe_key, _NOTIFICATIONS.c.id
            )
            params = [dict(zip(_NOTIFICATION_COLUMNS, v, strict=True)) for v in values]
            for param in params:  # a JSON column through the ORM: the decoded document
                param["payload"] = _decoded(param["payload"])
            returned = list((await self._session.execute(statement, params)).all())
        return {key: int(new_id) for key, new_id in returned}

    async def unprocessed(self, limit: int, known: Container[int] = ()) -> list[StoredNotification]:
        table = _NOTIFICATIONS
        rows = (
            await self._session.execute(
                select(table.c.id, table.c.dedupe_key, table.c.group_key_hash)
                .where(table.c.processed_at.is_(None))
                .order_by(table.c.id)
                .limit(limit)
            )
        ).all()
        wanted = [int(row.id) for row in rows if row.id not in known]
        payloads: dict[int, Mapping[str, Any]] = {}
        if wanted:
            found = await self._session.execute(
                select(table.c.id, table.c.payload).where(table.c.id.in_(wanted))
            )
            payloads = {int(i): payload for i, payload in found.all()}
        return [
            StoredNotification(int(i), key, key_hash, payloads.get(int(i), {}))
            for i, key, key_hash in rows
        ]

    async def mark_processed(self, outcomes: Mapping[int, str], now: datetime) -> None:
        if not outcomes:
            return
        table = _NOTIFICATIONS
        await self._session.execute(
            update(table)
            .where(table.c.id == bindparam("n_id"))
            .values(outcome=bindparam("n_outcome"), processed_at=now),
            [{"n_id": i, "n_outcome": outcome} for i, outcome in outcomes.items()],
        )

    async def count_unprocessed(self) -> int:
        table = _NOTIFICATIONS
        count = await self._session.scalar(
            select(func.count()).select_from(table).where(table.c.processed_at.is_(None))
        )
        return int(count or 0)

    async def notification_result(self, notification_id: int) -> tuple[str, int | None] | None:
        table, groups = _NOTIFICATIONS, _GROUPS
        row = (
            await self._session.execute(
                select(table.c.outcome, groups.c.id)
                .select_from(table.outerjoin(groups, groups.c.key_hash == table.c.group_key_hash))
                .where(table.c.id == notification_id)
            )
        ).first()
        if row is None:
            return None
        outcome, group_id = row
        return str(outcome), (int(group_id) if group_id is not None else None)

    async def groups_by_keys(self, key_hashes: list[str]) -> dict[str, AlertGroup]:
        if not key_hashes:
            return {}
        rows = (
            await self._session.scalars(
                select(AlertGroupRow)
                .where(AlertGroupRow.key_hash.in_(key_hashes))
                .order_by(AlertGroupRow.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()
        return {row.key_hash: _to_group(row) for row in rows}

    async def group_by_key(self, key_hash: str) -> AlertGroup | None:
        row = await self._session.scalar(
            select(AlertGroupRow)
            .where(AlertGroupRow.key_hash == key_hash)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return _to_group(row) if row else None

    async def create_groups(self, groups: list[tuple[str, AlertGroup]]) -> dict[str, int]:
        if not groups:
            return {}
        values = []
        for key_hash, group in groups:
            row = _group_values(group)
            row.update(key_hash=key_hash, group_key=group.group_key)
            values.append(row)
        if isinstance(self._session, BridgedSession):
            # The processor's write, a storm's worth of new groups: through sqlite3.
            returned = _INSERT_GROUPS.run(
                self._session, ([row[name] for name in _GROUP_COLUMNS] for row in values)
            )
        else:
            statement = _insert_ignoring_conflicts(self._session, _GROUPS).returning(
                _GROUPS.c.key_hash, _GROUPS.c.id
            )
            returned = list((await self._session.execute(statement, values)).all())
        return {key_hash: int(new_id) for key_hash, new_id in returned}

    async def save_group(self, group: AlertGroup) -> None:
        await self._session.execute(
            update(AlertGroupRow).where(AlertGroupRow.id == group.id).values(**_group_values(group))
        )

    async def save_groups(self, groups: list[AlertGroup]) -> None:
        if not groups:
            return
        table = _GROUPS
        columns = list(_group_values(groups[0]))
        statement = (
            update(table)
            .where(table.c.id == bindparam("group_id"))
            .values({name: bindparam(f"v_{name}") for name in columns})
        )
        params = [
            {"group_id": g.id, **{f"v_{k}": v for k, v in _group_values(g).items()}} for g in groups
        ]
        await self._session.execute(statement, params)

    async def get_group(self, group_id: int, *, for_update: bool = False) -> AlertGroup | None:
        row = await self._session.get(
            AlertGroupRow, group_id, populate_existing=True, with_for_update=for_update or None
        )
        return _to_group(row) if row else None

    async def set_emailed(self, group_id: int, now: datetime) -> None:
        await self._session.execute(
            update(AlertGroupRow).where(AlertGroupRow.id == group_id).values(emailed_at=now)
        )

    async def groups(self, group_ids: list[int]) -> list[AlertGroup]:
        if not group_ids:
            return []
        rows = (
            await self._session.execute(select(*_GROUPS.c).where(_GROUPS.c.id.in_(group_ids)))
        ).all()
        by_id = {row.id: _to_group(row) for row in rows}
        return [by_id[i] for i in group_ids if i in by_id]

    async def pending_new_versions(self, limit: int) -> list[tuple[int, int]]:
        rows = await self._session.execute(
            select(_GROUPS.c.id, _GROUPS.c.version)
            .where(_GROUPS.c.message_ref.is_(None))
            .order_by(_GROUPS.c.id)
            .limit(limit)
        )
        return [(int(i), int(v)) for i, v in rows.all()]

    async def count_pending_new(self) -> int:
        query = (
            select(func.count())
            .select_from(AlertGroupRow)
            .where(AlertGroupRow.message_ref.is_(None))
        )
        return int(await self._session.scalar(query) or 0)

    async def add_message(
        self, channel_id: int, message_id: int, digest: bool, group_ids: list[int], now: datetime
    ) -> AlertMessage:
        row = AlertMessageRow(
            channel_id=channel_id,
            message_id=message_id,
            digest=digest,
            group_ids=list(group_ids),
            created_at=now,
        )
        self._session.add(row)
        await self._session.flush()
        return _to_message(row)

    async def get_message(self, ref: int) -> AlertMessage | None:
        row = await self._session.get(AlertMessageRow, ref)
        return _to_message(row) if row else None

    async def clear_message(self, ref: int) -> None:
        await self._session.execute(
            update(AlertGroupRow)
            .where(AlertGroupRow.message_ref == ref)
            .values(message_ref=None, rendered_version=0)
        )

    async def mark_posted(
        self, versions: Mapping[int, int], message_ref: int, now: datetime
    ) -> None:
        if not versions:
            return
        table = _GROUPS
        await self._session.execute(
            update(table)
            .where(table.c.id.in_(list(versions)), table.c.posted_at.is_(None))
            .values(posted_at=now)
        )
        await self._session.execute(
            update(table).where(table.c.id.in_(list(versions))).values(message_ref=message_ref)
        )
        await self.mark_rendered(versions)

    async def mark_rendered(self, versions: Mapping[int, int]) -> None:
        if not versions:
            return
        table = _GROUPS
        await self._session.execute(
            update(table)
            .where(
                table.c.id == bindparam("group_id"),
                table.c.rendered_version < bindparam("b_version"),
            )
            .values(rendered_version=bindparam("b_version")),
            [{"group_id": g, "b_version": v} for g, v in versions.items()],
        )

    async def watchdog_seen(self, now: datetime) -> datetime | None:
        row = await self._session.get(AlertWatchdog, 1, populate_existing=True)
        if row is None:
            self._session.add(AlertWatchdog(id=1, last_seen_at=now, outage_since=None))
            await self._session.flush()
            return None
        outage, row.outage_since = row.outage_since, None
        row.last_seen_at = now
        await self._session.flush()
        return outage

    async def watchdog_overdue(self, now: datetime, cutoff: datetime) -> datetime | None:
        result = await self._session.execute(
            update(AlertWatchdog)
            .where(
                AlertWatchdog.id == 1,
                AlertWatchdog.outage_since.is_(None),
                AlertWatchdog.last_seen_at < cutoff,
            )
            .values(outage_since=now)
            .returning(AlertWatchdog.last_seen_at)
        )
        return result.scalar_one_or_none()

    async def spool_cursor(self, generation: str) -> int:
        found = await self._session.scalar(
            select(AlertSpoolCursor.last_id).where(AlertSpoolCursor.generation == generation)
        )
        return int(found or 0)

    async def set_spool_cursor(self, generation: str, last_id: int, now: datetime) -> None:
        statement = _insert_ignoring_conflicts(self._session, _SPOOL_CURSORS)
        await self._session.execute(
            update(AlertSpoolCursor)
            .where(AlertSpoolCursor.generation == generation, AlertSpoolCursor.last_id < last_id)
            .values(last_id=last_id, updated_at=now)
        )
        await self._session.execute(
            statement.values(generation=generation, last_id=last_id, updated_at=now)
        )


_GROUP_COLUMNS = (
    "key_hash", "group_key", "episode", "status", "severity", "version", "rendered_version",
    "receiver", "state", "first_seen_at", "last_notified_at", "resolved_at", "message_ref",
    "posted_at", "acked_by_id", "acked_by_name", "acked_at", "silence_id", "silence_ends_at",
    "silenced_by_name", "emailed_at", "incident_ref",
)  # fmt: skip
"""Every column of a new group: `_group_values()` and its two keys."""
_INSERT_GROUPS = SqliteInsert(
    _GROUPS, _GROUP_COLUMNS, ignore_conflicts=True, returning=("key_hash", "id")
)


def _group_values(group: AlertGroup) -> dict[str, Any]:
    return {
        "episode": group.episode,
        "status": group.status.value,
        "severity": group.severity[:32],
        "version": group.version,
        "rendered_version": group.rendered_version,
        "receiver": group.receiver[:500],
        "state": {
            "groupLabels": dict(group.group_labels),
            "commonLabels": dict(group.common_labels),
            "externalURL": group.external_url,
            "truncatedAlerts": group.truncated_alerts,
            "alerts": [_alert_json(a) for a in group.alerts],
        },
        "first_seen_at": group.first_seen_at,
        "last_notified_at": group.last_notified_at,
        "resolved_at": group.resolved_at,
        "message_ref": group.message_ref,
        "posted_at": group.posted_at,
        "acked_by_id": group.acked_by_id,
        "acked_by_name": group.acked_by_name[:100] if group.acked_by_name else None,
        "acked_at": group.acked_at,
        "silence_id": group.silence_id,
        "silence_ends_at": group.silence_ends_at,
        "silenced_by_name": group.silenced_by_name[:100] if group.silenced_by_name else None,
        "emailed_at": group.emailed_at,
        "incident_ref": group.incident_ref,
    }


def _alert_json(alert: AlertView) -> dict[str, Any]:
    return {
        "status": alert.status.value,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": alert.starts_at.isoformat(),
        "endsAt": alert.ends_at.isoformat() if alert.ends_at else "0001-01-01T00:00:00Z",
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def _alert_view(data: Mapping[str, Any]) -> AlertView:
    """From what `_alert_json` stored; straight, since a digest reads forty groups of ten."""
    try:
        labels = data["labels"]
        ends_raw = data.get("endsAt") or "0001-01-01T00:00:00+00:00"
        ends = datetime.fromisoformat(ends_raw)
        return AlertView(
            name=labels.get("alertname", "alert"),
            status=AlertStatus(data["status"]),
            severity=labels.get("severity", "").lower(),
            labels=dict(labels),
            annotations=dict(data.get("annotations") or {}),
            starts_at=datetime.fromisoformat(data["startsAt"]).astimezone(UTC),
            ends_at=ends.astimezone(UTC) if ends.year > 1 else None,
            generator_url=data.get("generatorURL", ""),
            fingerprint=data["fingerprint"],
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        # Not in the shape we write: let the webhook's own model read it (or say why not).
        return AlertView.from_payload(WebhookAlert.model_validate(data))


def _to_group(row: Any) -> AlertGroup:
    """From an `AlertGroupRow` or a row of its table's columns."""
    state = row.state or {}
    alerts = tuple(_alert_view(a) for a in state.get("alerts", []))
    return AlertGroup(
        id=row.id,
        group_key=row.group_key,
        episode=row.episode,
        status=AlertStatus(row.status),
        severity=row.severity,
        version=row.version,
        rendered_version=row.rendered_version,
        receiver=row.receiver,
        group_labels=state.get("groupLabels", {}),
        common_labels=state.get("commonLabels", {}),
        external_url=state.get("externalURL", ""),
        truncated_alerts=int(state.get("truncatedAlerts", 0)),
        alerts=alerts,
        first_seen_at=row.first_seen_at,
        last_notified_at=row.last_notified_at,
        resolved_at=row.resolved_at,
        message_ref=row.message_ref,
        posted_at=row.posted_at,
        acked_by_id=row.acked_by_id,
        acked_by_name=row.acked_by_name,
        acked_at=row.acked_at,
        silence_id=row.silence_id,
        silence_ends_at=row.silence_ends_at,
        silenced_by_name=row.silenced_by_name,
        emailed_at=row.emailed_at,
        incident_ref=row.incident_ref,
    )


def _to_message(row: AlertMessageRow) -> AlertMessage:
    return AlertMessage(
        id=row.id,
        channel_id=row.channel_id,
        message_id=row.message_id,
        digest=row.digest,
        group_ids=tuple(int(i) for i in row.group_ids),
    )


def _release(row: ReleaseEntry) -> Release:
    return Release(
        id=row.id,
        version=row.version,
        channel=row.channel,
        released_at=row.released_at,
        manifest=row.manifest,
        key_id=row.key_id,
        trusted_comment=row.trusted_comment,
        source=row.source,
        announced_by=row.announced_by,
        announced_by_name=row.announced_by_name,
        announced_at=row.announced_at,
        approved_by=row.approved_by,
        approved_by_name=row.approved_by_name,
        approved_at=row.approved_at,
        rolled_back_from=row.rolled_back_from,
    )


def _snapshot(row: RolloutSnapshotEntry) -> RolloutSnapshot:
    return RolloutSnapshot(
        release_id=row.release_id,
        at=row.at,
        total=row.total,
        upgraded=row.upgraded,
        pending=row.pending,
        unhealthy=row.unhealthy,
        unreachable=row.unreachable,
    )


class SqlReleaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, **values: Any) -> Release | None:
        """None when the version is already recorded (the unique constraint decides)."""
        try:
            async with self._session.begin_nested():
                row = ReleaseEntry(**values)
                self._session.add(row)
        except IntegrityError:
            return None
        return _release(row)

    async def get(self, release_id: int, *, for_update: bool = False) -> Release | None:
        query = select(ReleaseEntry).where(ReleaseEntry.id == release_id)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return _release(row) if row else None

    async def by_version(self, version: str) -> Release | None:
        row = await self._session.scalar(
            select(ReleaseEntry).where(ReleaseEntry.version == version)
        )
        return _release(row) if row else None

    async def by_source(self, source: str) -> Release | None:
        row = await self._session.scalar(
            select(ReleaseEntry).where(ReleaseEntry.source == source).limit(1)
        )
        return _release(row) if row else None

    async def versions(self) -> list[str]:
        """Every recorded version (a few per month: the newest is found by precedence)."""
        return list((await self._session.scalars(select(ReleaseEntry.version))).all())

    async def latest(self) -> Release | None:
        """The release announced last: after a rollback, the version rolled back to."""
        row = await self._session.scalar(
            select(ReleaseEntry).order_by(ReleaseEntry.announced_at.desc(), ReleaseEntry.id.desc())
        )
        return _release(row) if row else None

    async def recent(self, limit: int = 10) -> list[Release]:
        rows = await self._session.scalars(
            select(ReleaseEntry)
            .order_by(ReleaseEntry.released_at.desc(), ReleaseEntry.id.desc())
            .limit(limit)
        )
        return [_release(r) for r in rows.all()]

    async def approve(self, release_id: int, *, by: int | None, by_name: str, at: datetime) -> None:
        await self._session.execute(
            update(ReleaseEntry)
            .where(ReleaseEntry.id == release_id)
            .values(approved_by=by, approved_by_name=by_name[:100], approved_at=at)
        )

    async def add_snapshot(self, snapshot: RolloutSnapshot) -> None:
        self._session.add(
            RolloutSnapshotEntry(
                release_id=snapshot.release_id,
                at=snapshot.at,
                total=snapshot.total,
                upgraded=snapshot.upgraded,
                pending=snapshot.pending,
                unhealthy=snapshot.unhealthy,
                unreachable=snapshot.unreachable,
            )
        )
        await self._session.flush()

    async def snapshots(self, release_id: int, limit: int = 50) -> list[RolloutSnapshot]:
        """The newest `limit` snapshots of a release, oldest first."""
        rows = await self._session.scalars(
            select(RolloutSnapshotEntry)
            .where(RolloutSnapshotEntry.release_id == release_id)
            .order_by(RolloutSnapshotEntry.at.desc(), RolloutSnapshotEntry.id.desc())
            .limit(limit)
        )
        return [_snapshot(r) for r in reversed(rows.all())]
