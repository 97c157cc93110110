"""Queries, one repository per aggregate; services see them through the Protocols in ports."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.audit import AuditRecord
from bot.domain.health import MinuteAggregate, NodeStatus, ProbeSample, RegisteredNode, State
from bot.domain.outbox import NewOutboxItem, OutboxItem, OutboxStatus, Reminder
from bot.storage.models import (
    AuditEntry,
    NodeEntry,
    OutboxEntry,
    ProbeMinuteEntry,
    ProbeSampleEntry,
    ReminderEntry,
)


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
        row = OutboxEntry(
            kind=item.kind,
            payload=dict(item.payload),
            ordering_key=item.ordering_key,
            dedupe_key=item.dedupe_key,
            status=OutboxStatus.PENDING.value,
            attempts=0,
            created_at=now,
            available_at=item.available_at,
        )
        self._session.add(row)
        await self._session.flush()
        return _to_item(row)

    async def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        pending = OutboxStatus.PENDING.value
        older = aliased(OutboxEntry)
        head_of_key = (
            select(func.min(older.id))
            .where(older.ordering_key == OutboxEntry.ordering_key, older.status == pending)
            .scalar_subquery()
        )
        query = (
            select(OutboxEntry)
            .where(
                OutboxEntry.status == pending,
                OutboxEntry.available_at <= now,
                or_(OutboxEntry.ordering_key.is_(None), OutboxEntry.id == head_of_key),
            )
            .order_by(OutboxEntry.id)
            .limit(limit)
        )
        return [_to_item(row) for row in (await self._session.scalars(query)).all()]

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


def _to_item(row: OutboxEntry) -> OutboxItem:
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

    async def update_request(
        self, node_id: int, endpoint: str, region: str | None, requested_by: int, now: datetime
    ) -> RegisteredNode:
        row = await self._session.get(NodeEntry, node_id)
        assert row is not None
        row.endpoint, row.region, row.status = endpoint, region, NodeStatus.PENDING.value
        row.requested_by, row.requested_at = requested_by, now
        row.decided_by, row.decided_at = None, None
        await self._session.flush()
        return _to_node(row)

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
    )
