"""The schema. Every change here needs an Alembic revision (the `alembic check` test agrees)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
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


class AlertNotification(Base):
    """Every webhook body Alertmanager delivered, once: the dedupe key is its content."""

    __tablename__ = "alert_notifications"
    __table_args__ = (Index("ix_alert_notifications_group_key_hash", "group_key_hash"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    group_key_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    receiver: Mapped[str] = mapped_column(String(500))
    received_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]


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
