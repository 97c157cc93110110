"""The node-health repository: registered nodes, probe samples and their minute aggregates."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.health import (
    MinuteAggregate,
    NodeStatus,
    ProbeSample,
    RegisteredNode,
    State,
    StatusBoard,
)
from bot.storage.models import (
    NodeEntry,
    ProbeMinuteEntry,
    ProbeSampleEntry,
    StatusBoardEntry,
)


class SqlHealthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # -- the #miners status board (one row) ------------------------------------------------------

    async def board(self) -> StatusBoard | None:
        row = await self._session.get(StatusBoardEntry, 1)
        return _to_board(row) if row else None

    async def save_board(self, data: dict[str, Any], now: datetime) -> StatusBoard:
        row = await self._session.get(StatusBoardEntry, 1)
        if row is None:
            row = StatusBoardEntry(id=1, data=dict(data), version=1, changed_at=now)
            self._session.add(row)
        else:
            row.data = dict(data)
            row.version += 1
            row.changed_at = now
        await self._session.flush()
        return _to_board(row)

    async def board_posted(self, channel_id: int, message_id: int) -> None:
        await self._session.execute(
            update(StatusBoardEntry)
            .where(StatusBoardEntry.id == 1)
            .values(channel_id=channel_id, message_id=message_id)
        )

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


def _to_board(row: StatusBoardEntry) -> StatusBoard:
    return StatusBoard(
        data=dict(row.data or {}),
        changed_at=row.changed_at,
        version=row.version,
        channel_id=row.channel_id,
        message_id=row.message_id,
    )
