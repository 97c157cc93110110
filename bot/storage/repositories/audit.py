"""The audit log repository: the hash-chained audit rows and their chain head."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainHead,
    HeadMark,
    chain_hash,
    key_fingerprint,
)
from bot.storage.models import (
    AuditChainHead,
    AuditEntry,
)


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
