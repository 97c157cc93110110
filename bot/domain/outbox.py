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

# The catalogue: every kind of outbox work, reminder and notice template, in one place. The
# values are stored in the database (outbox and reminder rows, notice payloads): never change one.
# The composition root registers one handler per kind and the cogs one renderer per template;
# guard tests check that none is missing.


class OutboxKind(enum.StrEnum):
    """Work delivered by the outbox worker, with retries, after the transaction that asked."""

    DISCORD_MESSAGE = "discord.message"
    """A plain channel post: `{channel_id, content, embeds, mention_role_ids, mention_user_ids}`.
    Nothing enqueues it any more (services name a NoticeTemplate instead); still delivered, so
    rows an older version left pending go out after an upgrade."""
    NOTICE = "notice"
    """A rendered notice template in a configured channel (`operations`, `alerts`, `dev_log`,
    ...) or a channel or thread given by id (`channel_id`, e.g. an incident's thread)."""
    DIRECT = "direct"
    """A DM to a member; when their DMs are closed, a mention in the fallback channel instead."""
    ROLE_REMOVE = "role.remove"
    """Remove an ops role from a member; retried until Discord answers."""
    INCIDENT_CARD = "incident.card"
    """Create or refresh an incident's card (and thread) in #incidents."""
    ALERTS_DELIVER = "alerts.deliver"
    """Post or edit what #alerts shows of the pending alert groups, paced to the channel."""
    GITHUB_ISSUE_CREATE = "github.issue_create"
    """Open an incident's GitHub issue."""
    GITHUB_COMMENT = "github.comment"
    """Comment on an incident's GitHub issue."""
    GITHUB_ISSUE_SYNC = "github.issue_sync"
    """Bring an incident's GitHub issue (title, labels, state) up to date."""
    GITHUB_COMMIT = "github.commit_file"
    """Commit a file (a postmortem) to the repository."""
    EMAIL = "email"
    """An email: `{to, subject, body}`."""
    DEVLOG_APPLY = "devlog.apply"
    """Apply one stored GitHub webhook delivery: `{delivery_row}` (bot/services/devlog.py)."""
    DEVLOG_POST = "devlog.post"
    """Post or edit one #dev-log message the bot keeps up to date: `{post_id}`."""
    STATUS_BOARD = "status.board"
    """Post (and pin) or edit the #miners status board: `{version}` (bot/services/health.py)."""

    @property
    def to_discord(self) -> bool:
        """Delivered through Discord: held while the bot is not logged in, and in a lane of its
        own so a rate-limited Discord holds none of the other kinds' slots."""
        return self in _DISCORD_KINDS


_DISCORD_KINDS = frozenset(
    {
        OutboxKind.DISCORD_MESSAGE,
        OutboxKind.NOTICE,
        OutboxKind.DIRECT,
        OutboxKind.ROLE_REMOVE,
        OutboxKind.INCIDENT_CARD,
        OutboxKind.ALERTS_DELIVER,
        OutboxKind.DEVLOG_POST,
        OutboxKind.STATUS_BOARD,
    }
)


class ReminderKind(enum.StrEnum):
    """Reminders: a due time and a sent-once marker, fired by the scheduler."""

    GRANT_EXPIRY = "grant-expiry"
    INCIDENT_NUDGE = "incident-nudge"
    INCIDENT_REPORT_DUE = "incident-report-due"
    INCIDENT_REPORT_OVERDUE = "incident-report-overdue"
    ALERT_EMAIL_FALLBACK = "alerts.email_fallback"


class NoticeTemplate(enum.StrEnum):
    """What a notice or a DM says, by name: services give the name and plain data, the cog of
    the area renders it (`cogs/<area>/render.py: TEMPLATES`)."""

    ACCESS_APPROVAL_REQUEST = "access.approval_request"
    ACCESS_EXPIRED = "access.expired"
    ACCESS_EXPIRY_KEPT = "access.expiry_kept"
    ACCESS_EXPIRY_REMINDER = "access.expiry_reminder"
    ACCESS_MEMBER_LEFT = "access.member_left"
    ACCESS_DRIFT = "access.drift"
    ACCESS_LOCKOUT = "access.lockout"
    ACCESS_UNLOCKED = "access.unlocked"
    ACCESS_REVIEW = "access.review"
    ACCESS_REVIEW_SUMMARY = "access.review_summary"
    INCIDENT_THREAD = "incident.thread"
    INCIDENT_NUDGE = "incident.nudge"
    INCIDENT_REPORT_DUE = "incident.report_due"
    INCIDENT_REPORT_OVERDUE = "incident.report_overdue"
    INCIDENT_MINERS = "incident.miners"
    ALERTS_PIPELINE_BROKEN = "alerts.pipeline_broken"
    ALERTS_PIPELINE_RECOVERED = "alerts.pipeline_recovered"
    UPGRADE_RELEASE = "upgrade.release"
    UPGRADE_APPROVED = "upgrade.approved"
    UPGRADE_UNHEALTHY = "upgrade.unhealthy"
    DEVLOG_WORKFLOW = "devlog.workflow"
    DEVLOG_MERGES = "devlog.merges"
    STATUS_BOARD = "status.board"


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
