"""The alert repository: stored webhook bodies, alert groups, messages, spool cursor, watchdog."""

from __future__ import annotations

import json
from collections.abc import Container, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.alerts import (
    AlertGroup,
    AlertMessage,
    AlertStatus,
    AlertView,
    NotificationRow,
    StoredNotification,
    WebhookAlert,
)
from bot.storage.models import (
    AlertGroupRow,
    AlertMessageRow,
    AlertNotification,
    AlertSpoolCursor,
    AlertWatchdog,
)
from bot.storage.repositories._sql import _insert_ignoring_conflicts
from bot.storage.syncbridge import BridgedSession, EncodedJson, SqliteInsert

PENDING = "pending"
"""The outcome of a stored webhook body whose group is not updated yet."""
_NOTIFICATIONS = cast(Table, AlertNotification.__table__)
_GROUPS = cast(Table, AlertGroupRow.__table__)
_SPOOL_CURSORS = cast(Table, AlertSpoolCursor.__table__)


_NOTIFICATION_COLUMNS = (
    "dedupe_key", "group_key_hash", "status", "receiver", "received_at", "outcome", "payload",
    "processed_at",
)  # fmt: skip
_INSERT_NOTIFICATIONS = SqliteInsert(
    _NOTIFICATIONS, _NOTIFICATION_COLUMNS, ignore_conflicts=True, returning=("dedupe_key", "id")
)


def _notification_values(row: NotificationRow, now: datetime) -> tuple[Any, ...]:
    payload = row.payload
    return (
        row.dedupe_key,
        row.group_key_hash,
        row.status,
        row.receiver[:500],
        now,
        PENDING,
        EncodedJson(payload) if isinstance(payload, str) else dict(payload),
        None,
    )


def _decoded(payload: Mapping[str, Any] | str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(payload)) if isinstance(payload, str) else dict(payload)


class SqlAlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_notifications(self, rows: list[NotificationRow], now: datetime) -> dict[str, int]:
        if not rows:
            return {}
        values = [_notification_values(row, now) for row in rows]
        if isinstance(self._session, BridgedSession):
            # The webhook's write: through sqlite3, not a millisecond of the ORM per body.
            returned = _INSERT_NOTIFICATIONS.run(self._session, values)
        else:
            statement = _insert_ignoring_conflicts(self._session, _NOTIFICATIONS).returning(
                _NOTIFICATIONS.c.dedupe_key, _NOTIFICATIONS.c.id
            )
            params = [dict(zip(_NOTIFICATION_COLUMNS, v, strict=True)) for v in values]
            for param in params:  # a JSON column through the ORM: the decoded document
                param["payload"] = _decoded(param["payload"])
            returned = list((await self._session.execute(statement, params)).all())
        return {key: int(new_id) for key, new_id in returned}

    async def unprocessed(self, limit: int, known: Container[int] = ()) -> list[StoredNotification]:
        table = _NOTIFICATIONS
        rows = (
            await self._session.execute(
                select(table.c.id, table.c.dedupe_key, table.c.group_key_hash)
                .where(table.c.processed_at.is_(None))
                .order_by(table.c.id)
                .limit(limit)
            )
        ).all()
        wanted = [int(row.id) for row in rows if row.id not in known]
        payloads: dict[int, Mapping[str, Any]] = {}
        if wanted:
            found = await self._session.execute(
                select(table.c.id, table.c.payload).where(table.c.id.in_(wanted))
            )
            payloads = {int(i): payload for i, payload in found.all()}
        return [
            StoredNotification(int(i), key, key_hash, payloads.get(int(i), {}))
            for i, key, key_hash in rows
        ]

    async def mark_processed(self, outcomes: Mapping[int, str], now: datetime) -> None:
        if not outcomes:
            return
        table = _NOTIFICATIONS
        await self._session.execute(
            update(table)
            .where(table.c.id == bindparam("n_id"))
            .values(outcome=bindparam("n_outcome"), processed_at=now),
            [{"n_id": i, "n_outcome": outcome} for i, outcome in outcomes.items()],
        )

    async def count_unprocessed(self) -> int:
        table = _NOTIFICATIONS
        count = await self._session.scalar(
            select(func.count()).select_from(table).where(table.c.processed_at.is_(None))
        )
        return int(count or 0)

    async def notification_result(self, notification_id: int) -> tuple[str, int | None] | None:
        table, groups = _NOTIFICATIONS, _GROUPS
        row = (
            await self._session.execute(
                select(table.c.outcome, groups.c.id)
                .select_from(table.outerjoin(groups, groups.c.key_hash == table.c.group_key_hash))
                .where(table.c.id == notification_id)
            )
        ).first()
        if row is None:
            return None
        outcome, group_id = row
        return str(outcome), (int(group_id) if group_id is not None else None)

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
        if isinstance(self._session, BridgedSession):
            # The processor's write, a storm's worth of new groups: through sqlite3.
            returned = _INSERT_GROUPS.run(
                self._session, ([row[name] for name in _GROUP_COLUMNS] for row in values)
            )
        else:
            statement = _insert_ignoring_conflicts(self._session, _GROUPS).returning(
                _GROUPS.c.key_hash, _GROUPS.c.id
            )
            returned = list((await self._session.execute(statement, values)).all())
        return {key_hash: int(new_id) for key_hash, new_id in returned}

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
            await self._session.execute(select(*_GROUPS.c).where(_GROUPS.c.id.in_(group_ids)))
        ).all()
        by_id = {row.id: _to_group(row) for row in rows}
        return [by_id[i] for i in group_ids if i in by_id]

    async def pending_new_versions(self, limit: int) -> list[tuple[int, int]]:
        rows = await self._session.execute(
            select(_GROUPS.c.id, _GROUPS.c.version)
            .where(_GROUPS.c.message_ref.is_(None))
            .order_by(_GROUPS.c.id)
            .limit(limit)
        )
        return [(int(i), int(v)) for i, v in rows.all()]

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
            update(table).where(table.c.id.in_(list(versions))).values(message_ref=message_ref)
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

    async def spool_cursor(self, generation: str) -> int:
        found = await self._session.scalar(
            select(AlertSpoolCursor.last_id).where(AlertSpoolCursor.generation == generation)
        )
        return int(found or 0)

    async def set_spool_cursor(self, generation: str, last_id: int, now: datetime) -> None:
        statement = _insert_ignoring_conflicts(self._session, _SPOOL_CURSORS)
        await self._session.execute(
            update(AlertSpoolCursor)
            .where(AlertSpoolCursor.generation == generation, AlertSpoolCursor.last_id < last_id)
            .values(last_id=last_id, updated_at=now)
        )
        await self._session.execute(
            statement.values(generation=generation, last_id=last_id, updated_at=now)
        )


_GROUP_COLUMNS = (
    "key_hash", "group_key", "episode", "status", "severity", "version", "rendered_version",
    "receiver", "state", "first_seen_at", "last_notified_at", "resolved_at", "message_ref",
    "posted_at", "acked_by_id", "acked_by_name", "acked_at", "silence_id", "silence_ends_at",
    "silenced_by_name", "emailed_at", "incident_ref",
)  # fmt: skip
"""Every column of a new group: `_group_values()` and its two keys."""
_INSERT_GROUPS = SqliteInsert(
    _GROUPS, _GROUP_COLUMNS, ignore_conflicts=True, returning=("key_hash", "id")
)


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
        "incident_ref": group.incident_ref,
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


def _alert_view(data: Mapping[str, Any]) -> AlertView:
    """From what `_alert_json` stored; straight, since a digest reads forty groups of ten."""
    try:
        labels = data["labels"]
        ends_raw = data.get("endsAt") or "0001-01-01T00:00:00+00:00"
        ends = datetime.fromisoformat(ends_raw)
        return AlertView(
            name=labels.get("alertname", "alert"),
            status=AlertStatus(data["status"]),
            severity=labels.get("severity", "").lower(),
            labels=dict(labels),
            annotations=dict(data.get("annotations") or {}),
            starts_at=datetime.fromisoformat(data["startsAt"]).astimezone(UTC),
            ends_at=ends.astimezone(UTC) if ends.year > 1 else None,
            generator_url=data.get("generatorURL", ""),
            fingerprint=data["fingerprint"],
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        # Not in the shape we write: let the webhook's own model read it (or say why not).
        return AlertView.from_payload(WebhookAlert.model_validate(data))


def _to_group(row: Any) -> AlertGroup:
    """From an `AlertGroupRow` or a row of its table's columns."""
    state = row.state or {}
    alerts = tuple(_alert_view(a) for a in state.get("alerts", []))
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
        incident_ref=row.incident_ref,
    )


def _to_message(row: AlertMessageRow) -> AlertMessage:
    return AlertMessage(
        id=row.id,
        channel_id=row.channel_id,
        message_id=row.message_id,
        digest=row.digest,
        group_ids=tuple(int(i) for i in row.group_ids),
    )
