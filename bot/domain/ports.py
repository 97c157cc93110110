"""Ports: what services need from the outside world, as small Protocols.

Storage implements them with SQLAlchemy; tests may implement them with anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from bot.domain.alerts import AlertGroup, AlertMessage, NotificationRow, Silence
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

    @property
    def alerts(self) -> AlertRepository: ...

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

    async def add_many(self, items: list[NewOutboxItem], now: datetime) -> None:
        """Several items without dedupe keys, in one statement."""
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

    async def next_due(self) -> datetime | None:
        """When the earliest pending item becomes due."""
        ...


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


class AlertRepository(Protocol):
    async def add_notifications(self, rows: list[NotificationRow], now: datetime) -> dict[str, int]:
        """Store webhook bodies (unique dedupe keys); returns dedupe key -> id of the new ones.

        The first statement of an ingest transaction: it takes the write lock at once.
        """
        ...

    async def set_notification_outcomes(self, outcomes: Mapping[int, str]) -> None: ...

    async def groups_by_keys(self, key_hashes: list[str]) -> dict[str, AlertGroup]:
        """Locked for update (PostgreSQL) until the transaction ends."""
        ...

    async def group_by_key(self, key_hash: str) -> AlertGroup | None:
        """Locked for update (PostgreSQL) until the transaction ends."""
        ...

    async def create_groups(self, groups: list[tuple[str, AlertGroup]]) -> dict[str, int]:
        """Insert new groups (ids ignored); key hash -> id. One taken meanwhile is left out."""
        ...

    async def save_group(self, group: AlertGroup) -> None:
        """Write every mutable field of an existing group."""
        ...

    async def save_groups(self, groups: list[AlertGroup]) -> None: ...

    async def get_group(self, group_id: int, *, for_update: bool = False) -> AlertGroup | None: ...

    async def set_emailed(self, group_id: int, now: datetime) -> None: ...

    async def groups(self, group_ids: list[int]) -> list[AlertGroup]: ...

    async def pending_new(self, limit: int) -> list[AlertGroup]:
        """Groups without a message yet, oldest first."""
        ...

    async def count_pending_new(self) -> int: ...

    async def add_message(
        self, channel_id: int, message_id: int, digest: bool, group_ids: list[int], now: datetime
    ) -> AlertMessage: ...

    async def get_message(self, ref: int) -> AlertMessage | None: ...

    async def clear_message(self, ref: int) -> None:
        """Its groups have no message any more (it was deleted in Discord)."""
        ...

    async def mark_posted(
        self, versions: Mapping[int, int], message_ref: int, now: datetime
    ) -> None:
        """The groups are shown by `message_ref` at these versions (first post: posted_at)."""
        ...

    async def mark_rendered(self, versions: Mapping[int, int]) -> None:
        """Raise rendered_version to these versions (never lowers it)."""
        ...

    async def watchdog_seen(self, now: datetime) -> datetime | None:
        """Record a Watchdog arrival; returns the start of the outage it ends, if one was open."""
        ...

    async def watchdog_overdue(self, now: datetime, cutoff: datetime) -> datetime | None:
        """Open an outage when the Watchdog is overdue; returns when it was last seen, once."""
        ...


class SilenceGateway(Protocol):
    """Alertmanager's API v2 silences."""

    async def create_silence(
        self,
        matchers: Mapping[str, str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> Silence: ...

    async def expire_silence(self, silence_id: str) -> None: ...
