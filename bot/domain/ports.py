"""Ports: what services need from the outside world, as small Protocols.

Storage implements them with SQLAlchemy; tests may implement them with anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from bot.domain.audit import AuditRecord
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
