"""Ports: what services need from the outside world, as small Protocols.

Storage implements them with SQLAlchemy; tests may implement them with anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from bot.domain.audit import AuditRecord
from bot.domain.health import (
    MinuteAggregate,
    NodeStatus,
    ProbeResult,
    ProbeSample,
    RegisteredNode,
    Target,
)
from bot.domain.outbox import NewOutboxItem, OutboxItem, OutboxStatus, Reminder


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""
        ...


class AuditRepository(Protocol):
    async def add(self, record: AuditRecord) -> None: ...

    async def recent(
        self, limit: int = 20, *, actor_id: int | None = None, action: str | None = None
    ) -> list[AuditRecord]: ...


class UnitOfWork(Protocol):
    """One transaction: everything a use case changes, and its audit row, commit together."""

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def reminders(self) -> ReminderRepository: ...

    @property
    def health(self) -> HealthRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class OutboxRepository(Protocol):
    async def add(self, item: NewOutboxItem, now: datetime) -> OutboxItem | None:
        """None when an item with the same dedupe_key already exists (idempotent enqueue)."""
        ...

    async def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        """Pending items whose time has come, at most one per ordering key: its oldest."""
        ...

    async def get(self, item_id: int) -> OutboxItem | None: ...

    async def complete(
        self, item_id: int, now: datetime, result: Mapping[str, Any] | None
    ) -> None: ...

    async def reschedule(self, item_id: int, available_at: datetime, error: str) -> None: ...

    async def fail(self, item_id: int, now: datetime, error: str) -> None: ...

    async def count(self, status: OutboxStatus) -> int: ...


class ReminderRepository(Protocol):
    async def schedule(
        self, kind: str, subject: str, due_at: datetime, payload: Mapping[str, Any]
    ) -> None:
        """Create, or move an unsent reminder; a sent one stays sent."""
        ...

    async def cancel(self, kind: str, subject: str) -> None: ...

    async def due(self, now: datetime, limit: int) -> list[Reminder]: ...

    async def mark_sent(self, reminder_id: int, now: datetime) -> bool:
        """False when it was already sent (another worker, or a replay)."""
        ...


class HealthRepository(Protocol):
    """Node registrations and stored probe results (raw 48 h, per-minute aggregates 90 days)."""

    async def add_node(
        self, name: str, endpoint: str, region: str | None, requested_by: int, now: datetime
    ) -> RegisteredNode: ...

    async def update_request(
        self, node_id: int, endpoint: str, region: str | None, requested_by: int, now: datetime
    ) -> RegisteredNode: ...

    async def node(self, node_id: int) -> RegisteredNode | None: ...

    async def node_named(self, name: str) -> RegisteredNode | None: ...

    async def nodes(self, status: NodeStatus | None = None) -> list[RegisteredNode]: ...

    async def decide(
        self, node_id: int, status: NodeStatus, decided_by: int, now: datetime
    ) -> RegisteredNode: ...

    async def remove_node(self, node_id: int) -> None: ...

    async def add_samples(self, samples: list[ProbeSample]) -> None: ...

    async def recent_samples(self, target: str, since: datetime) -> list[ProbeSample]: ...

    async def rollup(self, before: datetime) -> int:
        """Aggregate complete minutes not aggregated yet (idempotent); returns minutes written."""
        ...

    async def prune(self, raw_before: datetime, aggregates_before: datetime) -> int: ...

    async def minutes(
        self, since: datetime, target: str | None = None
    ) -> list[MinuteAggregate]: ...


class Prober(Protocol):
    """Probes targets; never raises: every failure is a ProbeResult with a reason."""

    async def probe_all(self, targets: list[Target]) -> list[ProbeResult]: ...
