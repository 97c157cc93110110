"""The schema. Every change here needs an Alembic revision (the `alembic check` test agrees)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names: batch migrations on SQLite and ALTERs on PostgreSQL name the same thing.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use the clock (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class AuditEntry(Base):
    """One state-changing action (or attempt), written in the transaction of the change."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor_id_at", "actor_id", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """One row: the newest audit row (id, hash) and the row count, updated in the transaction
    of every append; `audit verify` compares them with the log. Locking it serialises appends.
    `keyed_from`: the first row hashed with the HMAC key (`[audit] hmac_key_file`), and
    `key_check` that key's fingerprint (bot.domain.audit.key_fingerprint); NULL: not keyed."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    last_id: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(BigInteger)
    keyed_from: Mapped[int | None] = mapped_column(BigInteger)
    key_check: Mapped[str | None] = mapped_column(String(64))


class OutboxEntry(Base):
    """Work that must reach the outside world (Discord, GitHub, SMTP), delivered by a worker."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_available_at", "status", "available_at"),
        Index("ix_outbox_ordering_key_status", "ordering_key", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    ordering_key: Mapped[str | None] = mapped_column(String(200))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    available_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[dict[str, Any] | None]


class ReminderEntry(Base):
    """A due time and a sent-once marker (grant expiry, incident nudges, maintenance)."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("kind", "subject", name="uq_reminders_kind_subject"),
        Index("ix_reminders_sent_at_due_at", "sent_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]]


class GrantEntry(Base):
    """An ops role held by a member, for a while (manual §18: at most 90 days)."""

    __tablename__ = "grants"
    __table_args__ = (
        Index("ix_grants_member_id_role_status", "member_id", "role", "status"),
        Index("ix_grants_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(BigInteger)
    member_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    granted_by_id: Mapped[int | None] = mapped_column(BigInteger)
    granted_by_name: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime]
    days: Mapped[int] = mapped_column(Integer)
    granted_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    approved_by_id: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[datetime | None]
    ended_by_name: Mapped[str | None] = mapped_column(String(100))
    end_reason: Mapped[str | None] = mapped_column(String(500))


class StrikeEntry(Base):
    """A denied privileged attempt (manual §9: three of them lock the member out)."""

    __tablename__ = "access_strikes"
    __table_args__ = (Index("ix_access_strikes_member_id_at", "member_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))


class LockoutEntry(Base):
    __tablename__ = "access_lockouts"
    __table_args__ = (Index("ix_access_lockouts_member_id_until", "member_id", "until"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(BigInteger)
    locked_at: Mapped[datetime]
    until: Mapped[datetime]
    lifted_at: Mapped[datetime | None]
    lifted_by_name: Mapped[str | None] = mapped_column(String(100))


class ReviewEntry(Base):
    """A quarterly access review (manual §18)."""

    __tablename__ = "access_reviews"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime]
    deadline: Mapped[datetime]
    started_by_name: Mapped[str] = mapped_column(String(100))
    closed_at: Mapped[datetime | None]


class ReviewItemEntry(Base):
    __tablename__ = "access_review_items"
    __table_args__ = (Index("ix_access_review_items_review_id", "review_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("access_reviews.id", ondelete="CASCADE"))
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    member_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime | None]
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_by_name: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]


class DriftEntry(Base):
    """An ops role held without a grant; open until the role is gone or granted."""

    __tablename__ = "access_drift"
    __table_args__ = (Index("ix_access_drift_member_id_role", "member_id", "role"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(BigInteger)
    member_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    found_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class NodeEntry(Base):
    """A Hyper Node registration: pending, then approved or rejected by Core Ops.

    One row per request: asking again replaces the row, so a request's id is never reused
    (AUTOINCREMENT on SQLite, a sequence on PostgreSQL) and an approval button names exactly
    the request its message showed.
    """

    __tablename__ = "health_nodes"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    endpoint: Mapped[str] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[int] = mapped_column(BigInteger)
    requested_at: Mapped[datetime]
    decided_by: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[datetime | None]
    approval_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    approval_message_id: Mapped[int | None] = mapped_column(BigInteger)


class ProbeSampleEntry(Base):
    """One probe outcome, raw; rolled up per minute and deleted after 48 h."""

    __tablename__ = "probe_samples"
    __table_args__ = (
        Index("ix_probe_samples_at", "at"),
        Index("ix_probe_samples_target_at", "target", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(8))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(200))


class ProbeMinuteEntry(Base):
    """Per-minute aggregate of one target's samples, kept 90 days (uptime and charts)."""

    __tablename__ = "probe_minutes"
    __table_args__ = (
        UniqueConstraint("target", "minute", name="uq_probe_minutes_target_minute"),
        Index("ix_probe_minutes_minute", "minute"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    minute: Mapped[datetime]
    samples: Mapped[int] = mapped_column(Integer)
    up_samples: Mapped[int] = mapped_column(Integer)
    latency_avg_ms: Mapped[float | None] = mapped_column(Float)
    latency_max_ms: Mapped[float | None] = mapped_column(Float)


class IncidentSequenceEntry(Base):
    """The last incident number given out per year; locking the row serialises new ids."""

    __tablename__ = "incident_sequences"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)


class IncidentEntry(Base):
    """A Sev 1–3 incident (manual §12): its state, checklist, links to Discord and GitHub."""

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("ref", name="uq_incidents_ref"),
        Index("ix_incidents_status_opened_at", "status", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(20))
    severity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(1500))
    nodes: Mapped[str] = mapped_column(String(300))
    reporter_id: Mapped[int | None] = mapped_column(BigInteger)
    reporter_name: Mapped[str] = mapped_column(String(100))
    commander_id: Mapped[int | None] = mapped_column(BigInteger)
    commander_name: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[datetime]
    last_update_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    cause: Mapped[str | None] = mapped_column(String(1500))
    resolution: Mapped[str | None] = mapped_column(String(1500))
    report_due_at: Mapped[datetime | None]
    report_at: Mapped[datetime | None]
    checklist: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updates: Mapped[int] = mapped_column(Integer, default=0)
    github_number: Mapped[int | None] = mapped_column(Integer)
    github_url: Mapped[str | None] = mapped_column(String(300))
    github_error: Mapped[str | None] = mapped_column(String(300))
    report_url: Mapped[str | None] = mapped_column(String(300))
    card_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger)
    miners_enabled: Mapped[bool] = mapped_column(default=True)
    miners_text: Mapped[str | None] = mapped_column(String(500))


class IncidentTimelineEntry(Base):
    """One line of an incident's timeline: every action, and pinned messages."""

    __tablename__ = "incident_timeline"
    __table_args__ = (Index("ix_incident_timeline_incident_id_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(2000))
    source_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    """The Discord message a pinned entry came from: each message enters the timeline once."""


class AlertNotification(Base):
    """Every webhook body Alertmanager delivered, once: the dedupe key is its content.

    Also the inbox: the webhook answers once the row is committed; `processed_at` is set when
    its group has been updated from it (outcome "pending" until then).
    """

    __tablename__ = "alert_notifications"
    __table_args__ = (
        Index("ix_alert_notifications_group_key_hash", "group_key_hash"),
        Index("ix_alert_notifications_processed_at", "processed_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    group_key_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    receiver: Mapped[str] = mapped_column(String(500))
    received_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    processed_at: Mapped[datetime | None]


class AlertGroupRow(Base):
    """An Alertmanager group (groupKey): latest state, its Discord message, ack and silence."""

    __tablename__ = "alert_groups"
    __table_args__ = (Index("ix_alert_groups_message_ref", "message_ref"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    group_key: Mapped[str] = mapped_column(Text)
    episode: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    rendered_version: Mapped[int] = mapped_column(Integer, default=0)
    receiver: Mapped[str] = mapped_column(String(500))
    state: Mapped[dict[str, Any]]
    first_seen_at: Mapped[datetime]
    last_notified_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    message_ref: Mapped[int | None] = mapped_column(BigInteger)
    posted_at: Mapped[datetime | None]
    acked_by_id: Mapped[int | None] = mapped_column(BigInteger)
    acked_by_name: Mapped[str | None] = mapped_column(String(100))
    acked_at: Mapped[datetime | None]
    silence_id: Mapped[str | None] = mapped_column(String(64))
    silence_ends_at: Mapped[datetime | None]
    silenced_by_name: Mapped[str | None] = mapped_column(String(100))
    emailed_at: Mapped[datetime | None]
    incident_ref: Mapped[str | None] = mapped_column(String(16))


class AlertMessageRow(Base):
    """A message in #alerts: one group's own, or a storm digest of several groups."""

    __tablename__ = "alert_messages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    group_ids: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class AlertWatchdog(Base):
    """The dead man's switch: when Alertmanager's Watchdog last arrived, and any open outage."""

    __tablename__ = "alert_watchdog"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seen_at: Mapped[datetime]
    outage_since: Mapped[datetime | None]


class AlertSpoolCursor(Base):
    """How far the bot has copied the receiver process's spool (bot/storage/spool.py): moved
    in the same transaction as the copied bodies, so each is copied exactly once."""

    __tablename__ = "alert_spool_cursors"

    generation: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class ReleaseEntry(Base):
    """A release whose signed manifest was verified and announced (manual §8)."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("version", name="uq_releases_version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    released_at: Mapped[datetime]
    manifest: Mapped[str] = mapped_column(String(262144))
    key_id: Mapped[str] = mapped_column(String(16))
    trusted_comment: Mapped[str] = mapped_column(String(1000))
    source: Mapped[str] = mapped_column(String(600))
    announced_by: Mapped[int | None] = mapped_column(BigInteger)
    announced_by_name: Mapped[str] = mapped_column(String(100))
    announced_at: Mapped[datetime]
    approved_by: Mapped[int | None] = mapped_column(BigInteger)
    approved_by_name: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None]
    rolled_back_from: Mapped[str | None] = mapped_column(String(64))
    """A rollback: the newest version announced when Core Ops announced this older one."""
    rejected_by: Mapped[int | None] = mapped_column(BigInteger)
    rejected_by_name: Mapped[str | None] = mapped_column(String(100))
    rejected_at: Mapped[datetime | None]
    """A Core Ops member stopped the rollout before anyone approved it (Reject)."""


class RolloutSnapshotEntry(Base):
    """A release's rollout counted at one `/upgrade status` (the history's percentages)."""

    __tablename__ = "rollout_snapshots"
    __table_args__ = (Index("ix_rollout_snapshots_release_id_at", "release_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    total: Mapped[int] = mapped_column(Integer)
    upgraded: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer)
    unhealthy: Mapped[int] = mapped_column(Integer)
    unreachable: Mapped[int] = mapped_column(Integer)


class IncidentLinkEntry(Base):
    """A pull request or commit linked to an incident (a webhook or `/incident link`)."""

    __tablename__ = "incident_links"
    __table_args__ = (
        UniqueConstraint("incident_id", "url", name="uq_incident_links_incident_id_url"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(String(300))
    title: Mapped[str] = mapped_column(String(300))
    author: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]


class GitHubDelivery(Base):
    """Every GitHub webhook delivery the bot used, once (GitHub's `X-GitHub-Delivery`): stored
    before the answer, applied by the outbox (`devlog.apply`); a redelivery stores nothing."""

    __tablename__ = "github_deliveries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(32))


class DevLogPostEntry(Base):
    """A #dev-log message the bot edits later: what it shows and where it is."""

    __tablename__ = "devlog_posts"
    __table_args__ = (Index("ix_devlog_posts_key_open", "key", "open"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]]
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)


class StatusBoardEntry(Base):
    """The #miners status board (one row): what it says and where the message is."""

    __tablename__ = "status_board"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer, default=1)
    changed_at: Mapped[datetime]
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
