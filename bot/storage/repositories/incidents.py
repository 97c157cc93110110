"""The incident repository: incidents, their numbering, checklist and timeline."""

from __future__ import annotations

import enum
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.incidents import (
    ChecklistItem,
    Incident,
    IncidentLink,
    IncidentStatus,
    LinkKind,
    Severity,
    Tick,
    TimelineEntry,
    TimelineKind,
)
from bot.storage.models import (
    IncidentEntry,
    IncidentLinkEntry,
    IncidentSequenceEntry,
    IncidentTimelineEntry,
)

_INCIDENT_COLUMNS = frozenset(
    c.key for c in IncidentEntry.__table__.columns if c.key not in ("id", "ref")
)


def _incident(row: IncidentEntry) -> Incident:
    checklist = {
        ChecklistItem(key): Tick(
            by_id=value.get("by_id"),
            by_name=str(value.get("by_name", "")),
            at=datetime.fromisoformat(value["at"]),
        )
        for key, value in (row.checklist or {}).items()
        if key in ChecklistItem.__members__.values()
    }
    return Incident(
        id=row.id,
        ref=row.ref,
        severity=Severity(row.severity),
        status=IncidentStatus(row.status),
        title=row.title,
        summary=row.summary,
        nodes=row.nodes,
        reporter_id=row.reporter_id,
        reporter_name=row.reporter_name,
        opened_at=row.opened_at,
        last_update_at=row.last_update_at,
        commander_id=row.commander_id,
        commander_name=row.commander_name,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
        cause=row.cause,
        resolution=row.resolution,
        report_due_at=row.report_due_at,
        report_at=row.report_at,
        checklist=checklist,
        updates=row.updates,
        github_number=row.github_number,
        github_url=row.github_url,
        github_error=row.github_error,
        report_url=row.report_url,
        card_channel_id=row.card_channel_id,
        card_message_id=row.card_message_id,
        thread_id=row.thread_id,
        miners_enabled=row.miners_enabled,
        miners_text=row.miners_text,
    )


def _column_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return value


class SqlIncidentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def next_number(self, year: int) -> int:
        """The next number of `year`, under a row lock (PostgreSQL) or SQLite's write lock."""
        for _ in range(3):
            row = await self._session.get(IncidentSequenceEntry, year, with_for_update=True)
            if row is not None:
                row.last += 1
                await self._session.flush()
                return row.last
            try:
                async with self._session.begin_nested():
                    self._session.add(IncidentSequenceEntry(year=year, last=1))
                return 1
            except IntegrityError:
                continue  # another transaction created the year's row first: lock it
        raise RuntimeError("could not allocate an incident number")

    async def add(self, ref: str, **values: Any) -> Incident:
        row = IncidentEntry(ref=ref, **{k: _column_value(v) for k, v in values.items()})
        self._session.add(row)
        await self._session.flush()
        return _incident(row)

    async def get(self, incident_id: int, *, for_update: bool = False) -> Incident | None:
        query = select(IncidentEntry).where(IncidentEntry.id == incident_id)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return await self._with_links(_incident(row)) if row else None

    async def by_ref(self, ref: str, *, for_update: bool = False) -> Incident | None:
        query = select(IncidentEntry).where(IncidentEntry.ref == ref)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return await self._with_links(_incident(row)) if row else None

    async def by_thread(self, thread_id: int) -> Incident | None:
        row = await self._session.scalar(
            select(IncidentEntry).where(IncidentEntry.thread_id == thread_id)
        )
        return await self._with_links(_incident(row)) if row else None

    async def _with_links(self, incident: Incident) -> Incident:
        """One incident with what its card shows beside its row: links, the latest update."""
        return replace(
            incident,
            links=tuple(await self.links(incident.id)),
            latest_update=await self._latest_update(incident.id),
        )

    async def _latest_update(self, incident_id: int) -> TimelineEntry | None:
        row = await self._session.scalar(
            select(IncidentTimelineEntry)
            .where(
                IncidentTimelineEntry.incident_id == incident_id,
                IncidentTimelineEntry.kind == TimelineKind.UPDATE.value,
            )
            .order_by(IncidentTimelineEntry.at.desc(), IncidentTimelineEntry.id.desc())
            .limit(1)
        )
        if row is None:
            return None
        return TimelineEntry(
            id=row.id,
            at=row.at,
            kind=TimelineKind(row.kind),
            actor_name=row.actor_name,
            actor_id=row.actor_id,
            text=row.text,
        )

    async def update(self, incident_id: int, **values: Any) -> None:
        unknown = set(values) - _INCIDENT_COLUMNS
        if unknown:
            raise ValueError(f"not incident columns: {sorted(unknown)}")
        await self._session.execute(
            update(IncidentEntry)
            .where(IncidentEntry.id == incident_id)
            .values({k: _column_value(v) for k, v in values.items()})
        )

    async def find(self, *, open_only: bool, limit: int = 25) -> list[Incident]:
        query = select(IncidentEntry).order_by(IncidentEntry.opened_at.desc()).limit(limit)
        if open_only:
            query = query.where(IncidentEntry.status != IncidentStatus.RESOLVED.value)
        return [_incident(row) for row in (await self._session.scalars(query)).all()]

    async def refs_starting(self, prefix: str, limit: int = 25) -> list[tuple[str, str]]:
        query = (
            select(IncidentEntry.ref, IncidentEntry.title)
            .where(IncidentEntry.ref.like(f"{prefix.upper()}%"))
            .order_by(IncidentEntry.id.desc())
            .limit(limit)
        )
        return [(ref, title) for ref, title in (await self._session.execute(query)).all()]

    async def all_for_stats(self, since: datetime | None = None) -> list[Incident]:
        query = select(IncidentEntry).order_by(IncidentEntry.id)
        if since is not None:
            query = query.where(IncidentEntry.opened_at >= since)
        return [_incident(row) for row in (await self._session.scalars(query)).all()]

    async def add_timeline(
        self, incident_id: int, entry: TimelineEntry, *, source_id: int | None = None
    ) -> bool:
        """False when `source_id` (a Discord message) is already on a timeline."""
        if source_id is not None:
            seen = await self._session.scalar(
                select(IncidentTimelineEntry.id).where(IncidentTimelineEntry.source_id == source_id)
            )
            if seen is not None:
                return False
        self._session.add(
            IncidentTimelineEntry(
                incident_id=incident_id,
                at=entry.at,
                kind=entry.kind.value,
                actor_id=entry.actor_id,
                actor_name=entry.actor_name[:100],
                text=entry.text[:2000],
                source_id=source_id,
            )
        )
        await self._session.flush()
        return True

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        query = (
            select(IncidentTimelineEntry)
            .where(IncidentTimelineEntry.incident_id == incident_id)
            .order_by(IncidentTimelineEntry.at, IncidentTimelineEntry.id)
        )
        return [
            TimelineEntry(
                id=row.id,
                at=row.at,
                kind=TimelineKind(row.kind),
                actor_name=row.actor_name,
                actor_id=row.actor_id,
                text=row.text,
            )
            for row in (await self._session.scalars(query)).all()
        ]

    async def add_link(self, incident_id: int, link: IncidentLink) -> bool:
        """False when this URL is linked already (the unique constraint decides)."""
        try:
            async with self._session.begin_nested():
                self._session.add(
                    IncidentLinkEntry(
                        incident_id=incident_id,
                        kind=link.kind.value,
                        url=link.url[:300],
                        title=link.title[:300],
                        author=link.author[:100],
                        at=link.at,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def links(self, incident_id: int) -> list[IncidentLink]:
        query = (
            select(IncidentLinkEntry)
            .where(IncidentLinkEntry.incident_id == incident_id)
            .order_by(IncidentLinkEntry.at, IncidentLinkEntry.id)
        )
        return [
            IncidentLink(
                kind=LinkKind(row.kind),
                url=row.url,
                title=row.title,
                author=row.author,
                at=row.at,
            )
            for row in (await self._session.scalars(query)).all()
        ]
