"""Queries, one repository per aggregate; services see them through the Protocols in ports."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.alerts import (
    AlertGroup,
    AlertMessage,
    AlertStatus,
    AlertView,
    NotificationRow,
    WebhookAlert,
)
from bot.domain.audit import AuditRecord
from bot.domain.outbox import NewOutboxItem, OutboxItem, OutboxStatus, Reminder
from bot.storage.models import (
    AlertGroupRow,
    AlertMessageRow,
    AlertNotification,
    AlertWatchdog,
    AuditEntry,
    OutboxEntry,
    ReminderEntry,
)


class SqlAuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, record: AuditRecord) -> None:
        self._session.add(
            AuditEntry(
                at=record.at,
                actor_id=record.actor_id,
                actor_name=record.actor_name,
                action=record.action,
                target=record.target,
                outcome=record.outcome,
                details=dict(record.details),
            )
        )

    async def recent(
        self, limit: int = 20, *, actor_id: int | None = None, action: str | None = None
    ) -> list[AuditRecord]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if actor_id is not None:
            query = query.where(AuditEntry.actor_id == actor_id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        rows = (await self._session.scalars(query)).all()
        return [_to_record(row) for row in rows]


def _to_record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        details=row.details,
    )


_OUTBOX = cast(Table, OutboxEntry.__table__)
_NOTIFICATIONS = cast(Table, AlertNotification.__table__)
_GROUPS = cast(Table, AlertGroupRow.__table__)


class SqlOutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, item: NewOutboxItem, now: datetime) -> OutboxItem | None:
        if item.dedupe_key is not None:
            existing = await self._session.scalar(
                select(OutboxEntry.id).where(OutboxEntry.dedupe_key == item.dedupe_key)
            )
            if existing is not None:
                return None
        table = _OUTBOX
        new_id = await self._session.scalar(
            insert(table)
            .values(
                kind=item.kind,
                payload=dict(item.payload),
                ordering_key=item.ordering_key,
                dedupe_key=item.dedupe_key,
                status=OutboxStatus.PENDING.value,
                attempts=0,
                created_at=now,
                available_at=item.available_at,
            )
            .returning(table.c.id)
        )
        assert new_id is not None
        return OutboxItem(
            id=int(new_id),
            kind=item.kind,
            payload=dict(item.payload),
            ordering_key=item.ordering_key,
            dedupe_key=item.dedupe_key,
            attempts=0,
            status=OutboxStatus.PENDING,
            created_at=now,
            available_at=item.available_at,
        )

    async def add_many(self, items: list[NewOutboxItem], now: datetime) -> None:
        if not items:
            return
        await self._session.execute(
            insert(_OUTBOX),
            [
                {
                    "kind": item.kind,
                    "payload": dict(item.payload),
                    "ordering_key": item.ordering_key,
                    "dedupe_key": item.dedupe_key,
                    "status": OutboxStatus.PENDING.value,
                    "attempts": 0,
                    "created_at": now,
                    "available_at": item.available_at,
                }
                for item in items
            ],
        )

    async def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        pending = OutboxStatus.PENDING.value
        older = aliased(OutboxEntry)
        head_of_key = (
            select(func.min(older.id))
            .where(older.ordering_key == OutboxEntry.ordering_key, older.status == pending)
            .scalar_subquery()
        )
        query = (
            select(OutboxEntry)
            .where(
                OutboxEntry.status == pending,
                OutboxEntry.available_at <= now,
                or_(OutboxEntry.ordering_key.is_(None), OutboxEntry.id == head_of_key),
            )
            .order_by(OutboxEntry.id)
            .limit(limit)
        )
        return [_to_item(row) for row in (await self._session.scalars(query)).all()]

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self._session.get(OutboxEntry, item_id)
        return _to_item(row) if row else None

    async def complete(self, item_id: int, now: datetime, result: Mapping[str, Any] | None) -> None:
        await self._session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == item_id)
            .values(
                status=OutboxStatus.DONE.value,
                completed_at=now,
                attempts=OutboxEntry.attempts + 1,
                result=dict(result) if result is not None else None,
                last_error=None,
            )
        )

    async def reschedule(self, item_id: int, available_at: datetime, error: str) -> None:
        await self._session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == item_id)
            .values(available_at=available_at, attempts=OutboxEntry.attempts + 1, last_error=error)
        )

    async def fail(self, item_id: int, now: datetime, error: str) -> None:
        await self._session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == item_id)
            .values(
                status=OutboxStatus.FAILED.value,
                completed_at=now,
                attempts=OutboxEntry.attempts + 1,
                last_error=error,
            )
        )

    async def count(self, status: OutboxStatus) -> int:
        query = select(func.count()).select_from(OutboxEntry).where(OutboxEntry.status == status)
        return int(await self._session.scalar(query) or 0)

    async def next_due(self) -> datetime | None:
        query = select(func.min(OutboxEntry.available_at)).where(
            OutboxEntry.status == OutboxStatus.PENDING.value
        )
        value = await self._session.scalar(query)
        if value is None:
            return None
        if isinstance(value, str):  # SQLite's MIN() of a text column comes back untyped
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)


def _to_item(row: OutboxEntry) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        kind=row.kind,
        payload=row.payload,
        ordering_key=row.ordering_key,
        dedupe_key=row.dedupe_key,
        attempts=row.attempts,
        status=OutboxStatus(row.status),
        created_at=row.created_at,
        available_at=row.available_at,
        completed_at=row.completed_at,
        last_error=row.last_error,
        result=row.result,
    )


class SqlReminderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def schedule(
        self, kind: str, subject: str, due_at: datetime, payload: Mapping[str, Any]
    ) -> None:
        row = await self._session.scalar(
            select(ReminderEntry).where(
                ReminderEntry.kind == kind, ReminderEntry.subject == subject
            )
        )
        if row is None:
            self._session.add(
                ReminderEntry(kind=kind, subject=subject, due_at=due_at, payload=dict(payload))
            )
            await self._session.flush()
        elif row.sent_at is None:
            row.due_at = due_at
            row.payload = dict(payload)

    async def cancel(self, kind: str, subject: str) -> None:
        await self._session.execute(
            delete(ReminderEntry).where(
                ReminderEntry.kind == kind,
                ReminderEntry.subject == subject,
                ReminderEntry.sent_at.is_(None),
            )
        )

    async def due(self, now: datetime, limit: int) -> list[Reminder]:
        query = (
            select(ReminderEntry)
            .where(ReminderEntry.sent_at.is_(None), ReminderEntry.due_at <= now)
            .order_by(ReminderEntry.due_at, ReminderEntry.id)
            .limit(limit)
        )
        return [
            Reminder(
                id=row.id,
                kind=row.kind,
                subject=row.subject,
                due_at=row.due_at,
                payload=row.payload,
                sent_at=row.sent_at,
            )
            for row in (await self._session.scalars(query)).all()
        ]

    async def mark_sent(self, reminder_id: int, now: datetime) -> bool:
        result = await self._session.execute(
            update(ReminderEntry)
            .where(ReminderEntry.id == reminder_id, ReminderEntry.sent_at.is_(None))
            .values(sent_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


def _insert_ignoring_conflicts(session: AsyncSession, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike; executed with a list
    of rows it is one statement of many VALUES (SQLAlchemy's insertmanyvalues), compiled once."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


class SqlAlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_notifications(self, rows: list[NotificationRow], now: datetime) -> dict[str, int]:
        if not rows:
            return {}
        table = _NOTIFICATIONS
        statement = _insert_ignoring_conflicts(self._session, table).returning(
            table.c.dedupe_key, table.c.id
        )
        result = await self._session.execute(
            statement,
            [
                {
                    "dedupe_key": row.dedupe_key,
                    "group_key_hash": row.group_key_hash,
                    "status": row.status,
                    "receiver": row.receiver[:500],
                    "received_at": now,
                    "outcome": "accepted",
                    "payload": dict(row.payload),
                }
                for row in rows
            ],
        )
        return {key: int(new_id) for key, new_id in result.all()}

    async def set_notification_outcomes(self, outcomes: Mapping[int, str]) -> None:
        for notification_id, outcome in outcomes.items():
            await self._session.execute(
                update(_NOTIFICATIONS)
                .where(_NOTIFICATIONS.c.id == notification_id)
                .values(outcome=outcome)
            )

    async def groups_by_keys(self, key_hashes: list[str]) -> dict[str, AlertGroup]:
        if not key_hashes:
            return {}
        rows = (
            await self._session.scalars(
                select(AlertGroupRow)
                .where(AlertGroupRow.key_hash.in_(key_hashes))
                .order_by(AlertGroupRow.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()
        return {row.key_hash: _to_group(row) for row in rows}

    async def group_by_key(self, key_hash: str) -> AlertGroup | None:
        row = await self._session.scalar(
            select(AlertGroupRow)
            .where(AlertGroupRow.key_hash == key_hash)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return _to_group(row) if row else None

    async def create_groups(self, groups: list[tuple[str, AlertGroup]]) -> dict[str, int]:
        if not groups:
            return {}
        values = []
        for key_hash, group in groups:
            row = _group_values(group)
            row.update(key_hash=key_hash, group_key=group.group_key)
            values.append(row)
        table = _GROUPS
        statement = _insert_ignoring_conflicts(self._session, table).returning(
            table.c.key_hash, table.c.id
        )
        result = await self._session.execute(statement, values)
        return {key_hash: int(new_id) for key_hash, new_id in result.all()}

    async def save_group(self, group: AlertGroup) -> None:
        await self._session.execute(
            update(AlertGroupRow).where(AlertGroupRow.id == group.id).values(**_group_values(group))
        )

    async def save_groups(self, groups: list[AlertGroup]) -> None:
        if not groups:
            return
        table = _GROUPS
        columns = list(_group_values(groups[0]))
        statement = (
            update(table)
            .where(table.c.id == bindparam("group_id"))
            .values({name: bindparam(f"v_{name}") for name in columns})
        )
        params = [
            {"group_id": g.id, **{f"v_{k}": v for k, v in _group_values(g).items()}} for g in groups
        ]
        await self._session.execute(statement, params)

    async def get_group(self, group_id: int, *, for_update: bool = False) -> AlertGroup | None:
        row = await self._session.get(
            AlertGroupRow, group_id, populate_existing=True, with_for_update=for_update or None
        )
        return _to_group(row) if row else None

    async def set_emailed(self, group_id: int, now: datetime) -> None:
        await self._session.execute(
            update(AlertGroupRow).where(AlertGroupRow.id == group_id).values(emailed_at=now)
        )

    async def groups(self, group_ids: list[int]) -> list[AlertGroup]:
        if not group_ids:
            return []
        rows = (
            await self._session.scalars(
                select(AlertGroupRow)
                .where(AlertGroupRow.id.in_(group_ids))
                .execution_options(populate_existing=True)
            )
        ).all()
        by_id = {row.id: _to_group(row) for row in rows}
        return [by_id[i] for i in group_ids if i in by_id]

    async def pending_new(self, limit: int) -> list[AlertGroup]:
        rows = (
            await self._session.scalars(
                select(AlertGroupRow)
                .where(AlertGroupRow.message_ref.is_(None))
                .order_by(AlertGroupRow.id)
                .limit(limit)
                .execution_options(populate_existing=True)
            )
        ).all()
        return [_to_group(row) for row in rows]

    async def count_pending_new(self) -> int:
        query = (
            select(func.count())
            .select_from(AlertGroupRow)
            .where(AlertGroupRow.message_ref.is_(None))
        )
        return int(await self._session.scalar(query) or 0)

    async def add_message(
        self, channel_id: int, message_id: int, digest: bool, group_ids: list[int], now: datetime
    ) -> AlertMessage:
        row = AlertMessageRow(
            channel_id=channel_id,
            message_id=message_id,
            digest=digest,
            group_ids=list(group_ids),
            created_at=now,
        )
        self._session.add(row)
        await self._session.flush()
        return _to_message(row)

    async def get_message(self, ref: int) -> AlertMessage | None:
        row = await self._session.get(AlertMessageRow, ref)
        return _to_message(row) if row else None

    async def clear_message(self, ref: int) -> None:
        await self._session.execute(
            update(AlertGroupRow)
            .where(AlertGroupRow.message_ref == ref)
            .values(message_ref=None, rendered_version=0)
        )

    async def mark_posted(
        self, versions: Mapping[int, int], message_ref: int, now: datetime
    ) -> None:
        if not versions:
            return
        table = _GROUPS
        await self._session.execute(
            update(table)
            .where(table.c.id.in_(list(versions)), table.c.posted_at.is_(None))
            .values(posted_at=now)
        )
        await self._session.execute(
            update(table)
            .where(table.c.id == bindparam("group_id"))
            .values(message_ref=message_ref),
            [{"group_id": group_id} for group_id in versions],
        )
        await self.mark_rendered(versions)

    async def mark_rendered(self, versions: Mapping[int, int]) -> None:
        if not versions:
            return
        table = _GROUPS
        await self._session.execute(
            update(table)
            .where(
                table.c.id == bindparam("group_id"),
                table.c.rendered_version < bindparam("b_version"),
            )
            .values(rendered_version=bindparam("b_version")),
            [{"group_id": g, "b_version": v} for g, v in versions.items()],
        )

    async def watchdog_seen(self, now: datetime) -> datetime | None:
        row = await self._session.get(AlertWatchdog, 1, populate_existing=True)
        if row is None:
            self._session.add(AlertWatchdog(id=1, last_seen_at=now, outage_since=None))
            await self._session.flush()
            return None
        outage, row.outage_since = row.outage_since, None
        row.last_seen_at = now
        await self._session.flush()
        return outage

    async def watchdog_overdue(self, now: datetime, cutoff: datetime) -> datetime | None:
        result = await self._session.execute(
            update(AlertWatchdog)
            .where(
                AlertWatchdog.id == 1,
                AlertWatchdog.outage_since.is_(None),
                AlertWatchdog.last_seen_at < cutoff,
            )
            .values(outage_since=now)
            .returning(AlertWatchdog.last_seen_at)
        )
        return result.scalar_one_or_none()


def _group_values(group: AlertGroup) -> dict[str, Any]:
    return {
        "episode": group.episode,
        "status": group.status.value,
        "severity": group.severity[:32],
        "version": group.version,
        "rendered_version": group.rendered_version,
        "receiver": group.receiver[:500],
        "state": {
            "groupLabels": dict(group.group_labels),
            "commonLabels": dict(group.common_labels),
            "externalURL": group.external_url,
            "truncatedAlerts": group.truncated_alerts,
            "alerts": [_alert_json(a) for a in group.alerts],
        },
        "first_seen_at": group.first_seen_at,
        "last_notified_at": group.last_notified_at,
        "resolved_at": group.resolved_at,
        "message_ref": group.message_ref,
        "posted_at": group.posted_at,
        "acked_by_id": group.acked_by_id,
        "acked_by_name": group.acked_by_name[:100] if group.acked_by_name else None,
        "acked_at": group.acked_at,
        "silence_id": group.silence_id,
        "silence_ends_at": group.silence_ends_at,
        "silenced_by_name": group.silenced_by_name[:100] if group.silenced_by_name else None,
        "emailed_at": group.emailed_at,
    }


def _alert_json(alert: AlertView) -> dict[str, Any]:
    return {
        "status": alert.status.value,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": alert.starts_at.isoformat(),
        "endsAt": alert.ends_at.isoformat() if alert.ends_at else "0001-01-01T00:00:00Z",
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def _to_group(row: AlertGroupRow) -> AlertGroup:
    state = row.state or {}
    alerts = tuple(
        AlertView.from_payload(WebhookAlert.model_validate(a)) for a in state.get("alerts", [])
    )
    return AlertGroup(
        id=row.id,
        group_key=row.group_key,
        episode=row.episode,
        status=AlertStatus(row.status),
        severity=row.severity,
        version=row.version,
        rendered_version=row.rendered_version,
        receiver=row.receiver,
        group_labels=state.get("groupLabels", {}),
        common_labels=state.get("commonLabels", {}),
        external_url=state.get("externalURL", ""),
        truncated_alerts=int(state.get("truncatedAlerts", 0)),
        alerts=alerts,
        first_seen_at=row.first_seen_at,
        last_notified_at=row.last_notified_at,
        resolved_at=row.resolved_at,
        message_ref=row.message_ref,
        posted_at=row.posted_at,
        acked_by_id=row.acked_by_id,
        acked_by_name=row.acked_by_name,
        acked_at=row.acked_at,
        silence_id=row.silence_id,
        silence_ends_at=row.silence_ends_at,
        silenced_by_name=row.silenced_by_name,
        emailed_at=row.emailed_at,
    )


def _to_message(row: AlertMessageRow) -> AlertMessage:
    return AlertMessage(
        id=row.id,
        channel_id=row.channel_id,
        message_id=row.message_id,
        digest=row.digest,
        group_ids=tuple(int(i) for i in row.group_ids),
    )
