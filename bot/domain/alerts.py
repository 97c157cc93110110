"""Alerts from Alertmanager: the webhook payload (version 4), alert groups, and what they mean.

The payload model follows Alertmanager's `webhook_configs` body exactly (field names as sent);
everything else here is the bot's own view of an alert group: its status and severity, who
acknowledged it, its silence, and which Discord message shows it.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

MAX_GROUP_KEY = 10_000
SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}
"""Lower is more severe; anything not listed ranks after info."""
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _storable_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character, which the database cannot store")
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
"""A string a text column can store (no NUL: PostgreSQL text cannot hold it). Labels and
annotations are stored as JSON, where a NUL is an escape like any other."""
Timestamp = Annotated[
    AwareDatetime,
    Field(ge=ZERO_TIME, le=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
]
"""An instant a UTC timestamp column holds, on SQLite as on PostgreSQL: with an offset, in
years 1 to 9999 once in UTC (checked in pydantic's core, as instants). Refused at the webhook,
400 naming the field: never a store that fails with 503 for ever, failing the other bodies of
its batch with it."""


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class WebhookAlert(_Payload):
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: Timestamp = Field(alias="endsAt", default=ZERO_TIME)
    generator_url: Text = Field(alias="generatorURL", default="", max_length=4000)
    fingerprint: Text = Field(min_length=1, max_length=64)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "").lower()

    @property
    def ended(self) -> datetime | None:
        """Alertmanager sends year 1 for 'not ended'."""
        return self.ends_at if self.ends_at.year > 1 else None


class WebhookPayload(_Payload):
    """Alertmanager's webhook body, version "4" (Alertmanager 0.x up to today)."""

    version: Literal["4"]
    group_key: Text = Field(alias="groupKey", min_length=1, max_length=MAX_GROUP_KEY)
    truncated_alerts: int = Field(alias="truncatedAlerts", default=0, ge=0)
    status: AlertStatus
    receiver: Text = Field(max_length=500)
    group_labels: dict[str, str] = Field(alias="groupLabels", default_factory=dict)
    common_labels: dict[str, str] = Field(alias="commonLabels", default_factory=dict)
    common_annotations: dict[str, str] = Field(alias="commonAnnotations", default_factory=dict)
    external_url: Text = Field(alias="externalURL", default="", max_length=4000)
    alerts: list[WebhookAlert] = Field(min_length=1)

    def dedupe_key(self) -> str:
        """The same content gives the same key: a retry, a repeat or the HA twin all match.

        groupKey, receiver, status, truncatedAlerts and each alert's fingerprint, status,
        startsAt and endsAt; not the annotations (their values change between evaluations
        without the alert changing) and not the order of the alerts.
        """
        alerts = sorted(
            (a.fingerprint, a.status.value, _iso(a.starts_at), _iso(a.ends_at)) for a in self.alerts
        )
        material = [
            self.group_key,
            self.receiver,
            self.status.value,
            self.truncated_alerts,
            alerts,
        ]
        blob = json.dumps(material, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def group_key_hash(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()


def worst_severity(severities: Sequence[str]) -> str:
    known = [s for s in severities if s]
    if not known:
        return ""
    return min(known, key=lambda s: (SEVERITY_RANK.get(s, 99), s))


@dataclass(frozen=True)
class AlertView:
    """One alert as the bot shows it (plain data, from the stored payload)."""

    name: str
    status: AlertStatus
    severity: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    fingerprint: str

    @classmethod
    def from_payload(cls, alert: WebhookAlert) -> AlertView:
        return cls(
            name=alert.name,
            status=alert.status,
            severity=alert.severity,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.starts_at.astimezone(UTC),
            ends_at=alert.ended.astimezone(UTC) if alert.ended else None,
            generator_url=alert.generator_url,
            fingerprint=alert.fingerprint,
        )


@dataclass(frozen=True)
class AlertGroup:
    """An Alertmanager group (`groupKey`) as #alerts shows it, with its latest notification."""

    id: int
    group_key: str
    episode: int
    status: AlertStatus
    severity: str
    version: int
    rendered_version: int
    receiver: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    external_url: str
    truncated_alerts: int
    alerts: tuple[AlertView, ...]
    first_seen_at: datetime
    last_notified_at: datetime
    resolved_at: datetime | None = None
    message_ref: int | None = None
    posted_at: datetime | None = None
    acked_by_id: int | None = None
    acked_by_name: str | None = None
    acked_at: datetime | None = None
    silence_id: str | None = None
    silence_ends_at: datetime | None = None
    silenced_by_name: str | None = None
    emailed_at: datetime | None = None
    incident_ref: str | None = None
    """The incident opened from this group (the Open incident button), if any."""

    @property
    def firing(self) -> bool:
        return self.status is AlertStatus.FIRING

    @property
    def title(self) -> str:
        """The alert name, or the names when the group mixes several."""
        names = list(dict.fromkeys(a.name for a in self.alerts))
        if len(names) == 1:
            return names[0]
        return ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")

    @property
    def firing_count(self) -> int:
        return sum(1 for a in self.alerts if a.status is AlertStatus.FIRING)

    @property
    def started_at(self) -> datetime:
        return min(a.starts_at for a in self.alerts)

    @property
    def ended_at(self) -> datetime | None:
        ends = [a.ends_at for a in self.alerts if a.ends_at is not None]
        return max(ends) if ends else None

    def silence_active(self, now: datetime) -> bool:
        return self.silence_id is not None and (
            self.silence_ends_at is None or self.silence_ends_at > now
        )


@dataclass(frozen=True)
class AlertMessage:
    """A Discord message in #alerts: one group's own, or a storm digest of several."""

    id: int
    channel_id: int
    message_id: int
    digest: bool
    group_ids: tuple[int, ...]


class AlertRepository(Protocol):
    async def add_notifications(self, rows: list[NotificationRow], now: datetime) -> dict[str, int]:
        """Store webhook bodies (unique dedupe keys, unprocessed); dedupe key -> id of new ones."""
        ...

    async def unprocessed(self, limit: int, known: Container[int] = ()) -> list[StoredNotification]:
        """Stored bodies whose group is not updated yet, oldest first; the payload is left
        empty for the ids in `known` (the caller has it parsed already)."""
        ...

    async def mark_processed(self, outcomes: Mapping[int, str], now: datetime) -> None: ...

    async def count_unprocessed(self) -> int: ...

    async def notification_result(self, notification_id: int) -> tuple[str, int | None] | None:
        """(outcome, id of its group) of a stored body; None when there is no such body."""
        ...

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

    async def pending_new_versions(self, limit: int) -> list[tuple[int, int]]:
        """(id, version) of the groups without a message yet, oldest first."""
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

    async def spool_cursor(self, generation: str) -> int:
        """The last id copied from the receiver's spool of this generation (0: none yet)."""
        ...

    async def set_spool_cursor(self, generation: str, last_id: int, now: datetime) -> None: ...


@dataclass(frozen=True)
class DeliveryPlan:
    """What the transport must do next for #alerts: post a new message or edit one."""

    channel_id: int
    groups: tuple[AlertGroup, ...]
    digest: bool
    message: AlertMessage | None = None
    """The message to edit; None means post a new one."""
    mention_role_ids: tuple[int, ...] = ()

    @property
    def is_edit(self) -> bool:
        return self.message is not None


@dataclass(frozen=True)
class NotificationRow:
    """A webhook body to store, under its dedupe key."""

    dedupe_key: str
    group_key_hash: str
    status: str
    receiver: str
    payload: Mapping[str, Any] | str
    """The body: its JSON text as it arrived (stored as is), or the decoded object."""


@dataclass(frozen=True)
class StoredNotification:
    """A webhook body in the inbox, waiting for its group to be updated."""

    id: int
    dedupe_key: str
    group_key_hash: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class SpooledBody:
    """A webhook body the receiver process stored in its spool, for the bot to copy in."""

    id: int
    dedupe_key: str
    group_key_hash: str
    status: str
    receiver: str
    payload: str
    """The body's JSON text, as it arrived."""
    received_at: datetime | None


IngestOutcome = Literal[
    "accepted", "duplicate", "stale", "watchdog", "invalid", "quarantined", "pending"
]


@dataclass(frozen=True)
class IngestResult:
    """What became of one webhook body.

    From `receive()` (the webhook's answer) only "accepted" (stored, its group is updated
    shortly) or "duplicate"; once processed also "stale", "watchdog", "invalid" or
    "quarantined" (set aside: see `AlertService.process_pending`), and the group it updated.
    """

    outcome: IngestOutcome
    group_id: int | None = None
    dedupe_key: str = ""
    notification_id: int | None = None


@dataclass(frozen=True)
class Silence:
    id: str
    ends_at: datetime
    matchers: tuple[tuple[str, str], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
