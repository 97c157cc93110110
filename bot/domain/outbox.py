"""The outbox and the reminder: the two mechanisms that make "nothing lost" true (design.md).

Work that must survive a crash (a Discord post, a role change, a GitHub write, an email) is a row
written in the same transaction as the change that asked for it; a worker delivers it later, with
retries, and marks it done. A reminder is a row with a due time and a sent-once marker.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
