"""The outbox and the reminder: the two mechanisms that make "nothing lost" true (design.md).

Work that must survive a crash (a Discord post, a role change, a GitHub write, an email) is a row
written in the same transaction as the change that asked for it; a worker delivers it later, with
retries, and marks it done. A reminder is a row with a due time and a sent-once marker.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

DISCORD_MESSAGE = "discord.message"
"""A plain channel post: `{channel_id, content, embeds, mention_role_ids, mention_user_ids}`."""
EMAIL = "email"
"""An email: `{to, subject, body}`."""


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    """Refused for good (e.g. Discord said 400 or 403): kept, logged and counted, never retried."""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    payload: Mapping[str, Any]
    ordering_key: str | None
    attempts: int
    created_at: datetime
    available_at: datetime
    status: OutboxStatus = OutboxStatus.PENDING
    dedupe_key: str | None = None
    last_error: str | None = None
    result: Mapping[str, Any] | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class NewOutboxItem:
    kind: str
    payload: Mapping[str, Any]
    available_at: datetime
    ordering_key: str | None = None
    dedupe_key: str | None = None


class RetryLater(Exception):
    """A transient failure: try again, after `retry_after` seconds when the other side said so."""

    def __init__(
        self, reason: str, retry_after: float | None = None, *, whole_kind: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.whole_kind = whole_kind
        """Every item of this kind waits as long (a channel's pace, not this item's fault):
        the worker postpones the rest of its round in one statement, without asking."""


class PermanentFailure(Exception):
    """The other side refused for good; retrying would only repeat the refusal."""


@dataclass(frozen=True)
class Reminder:
    id: int
    kind: str
    subject: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    sent_at: datetime | None = None


class OutboxRepository(Protocol):
    async def add(self, item: NewOutboxItem, now: datetime) -> OutboxItem | None:
        """None when an item with the same dedupe_key already exists (idempotent enqueue)."""
        ...

    async def add_many(self, items: list[NewOutboxItem], now: datetime) -> None:
        """Several items without dedupe keys, in one statement."""
        ...

    async def due(
        self,
        now: datetime,
        limit: int,
        exclude_kinds: Collection[str] = (),
        exclude_ids: Collection[int] = (),
    ) -> list[OutboxItem]:
        """Pending items whose time has come, at most one per ordering key: its oldest;
        none of `exclude_kinds` nor `exclude_ids` (the worker's items in flight)."""
        ...

    async def get(self, item_id: int) -> OutboxItem | None: ...

    async def complete(
        self, item_id: int, now: datetime, result: Mapping[str, Any] | None
    ) -> None: ...

    async def reschedule(self, item_id: int, available_at: datetime, error: str) -> None: ...

    async def postpone(self, item_ids: list[int], available_at: datetime, reason: str) -> None:
        """Not due before `available_at`; not a failed attempt (pacing, not an error)."""
        ...

    async def pending_for_keys(self, kind: str, ordering_keys: list[str]) -> list[OutboxItem]:
        """Pending items of `kind` under these ordering keys."""
        ...

    async def complete_many(
        self, item_ids: list[int], now: datetime, result: Mapping[str, Any] | None
    ) -> None: ...

    async def fail(self, item_id: int, now: datetime, error: str) -> None: ...

    async def count(self, status: OutboxStatus) -> int: ...

    async def next_due(
        self, exclude_kinds: Collection[str] = (), exclude_ids: Collection[int] = ()
    ) -> datetime | None:
        """When the earliest item that `due` could return (not excluded, first of its
        ordering key) becomes due."""
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
