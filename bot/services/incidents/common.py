"""What the incident use cases share: their state, the outbox kinds and templates they use, and
the steps every command takes inside its transaction (timeline, audit, card, GitHub sync)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bot.domain.errors import InvalidInput, NotFound
from bot.domain.incident_texts import (
    utc,
)
from bot.domain.incidents import (
    ChecklistItem,
    Incident,
    IncidentPolicy,
    Severity,
    Tick,
    TimelineEntry,
    TimelineKind,
    format_ref,
    miners_notice_text,
    parse_ref,
)
from bot.domain.outbox import NoticeTemplate, OutboxKind, ReminderKind
from bot.domain.ports import Clock, IssueTracker, UnitOfWork
from bot.domain.roles import Actor
from bot.services.audit import AuditService
from bot.services.notices import Notices
from bot.services.outbox import OutboxService, ReminderService, UowFactory

log = logging.getLogger(__name__)


SYSTEM = Actor.system("scheduler")


class IncidentObserver(Protocol):
    """Metrics: time to acknowledge and to resolve, per severity."""

    def acknowledged(self, severity: Severity, seconds: float) -> None: ...

    def resolved(self, severity: Severity, seconds: float) -> None: ...


@dataclass(frozen=True)
class Report:
    incident: Incident
    markdown: str
    path: str


def _clean(text: str | None, limit: int, what: str, *, required: bool = False) -> str:
    value = (text or "").strip()
    if required and len(value) < 3:
        raise InvalidInput(f"The {what} needs at least 3 characters.")
    if len(value) > limit:
        raise InvalidInput(f"The {what} is {len(value)} characters long: at most {limit}, please.")
    return value


def _severity(level: int) -> Severity:
    try:
        return Severity(int(level))
    except ValueError:
        raise InvalidInput(
            f"Severity {level} does not exist: 1 (mining or payout halted), 2 (several nodes "
            "offline > 30 min) or 3 (UI glitch or delayed telemetry), manual §12."
        ) from None


def _who(actor: Actor) -> str:
    return actor.name[:100]


def _github_key(incident: Incident) -> str:
    return f"incident:{incident.id}:github"


def _thread_target(incident: Incident) -> dict[str, Any]:
    if incident.thread_id is not None:
        return {"channel_id": incident.thread_id}
    return {"channel": "operations"}


class IncidentBase:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        policy: IncidentPolicy,
        *,
        outbox: OutboxService,
        reminders: ReminderService,
        notices: Notices,
        audit: AuditService,
        tracker: IssueTracker | None = None,
        observer: IncidentObserver | None = None,
        guild_id: int | None = None,
    ) -> None:
        self._uow = uow_factory
        self.guild_id = guild_id
        self._clock = clock
        self.policy = policy
        self._outbox = outbox
        self._reminders = reminders
        self._notices = notices
        self._audit = audit
        self.tracker = tracker
        self.observer = observer

    @property
    def github_configured(self) -> bool:
        return self.tracker is not None

    async def _by_ref(self, uow: UnitOfWork, ref: str, *, for_update: bool = False) -> Incident:
        parsed = parse_ref(ref)
        if parsed is None:
            raise NotFound(f"`{ref[:40]}` is not an incident id (they look like INC-2026-0042).")
        incident = await uow.incidents.by_ref(format_ref(*parsed), for_update=for_update)
        if incident is None:
            raise NotFound(f"There is no incident {format_ref(*parsed)}.")
        return incident

    async def _open_incident(self, uow: UnitOfWork, ref: str) -> Incident:
        incident = await self._by_ref(uow, ref, for_update=True)
        if not incident.is_open:
            raise InvalidInput(f"{incident.ref} is resolved: nothing more to change.")
        return incident

    async def _touch(
        self, uow: UnitOfWork, incident: Incident, actor: Actor, changes: dict[str, Any]
    ) -> Incident:
        """An update: the nudge clock restarts; the first one after open acknowledges."""
        now = self._clock.now()
        changes = {**changes, "last_update_at": now, "updates": incident.updates + 1}
        acknowledged = incident.acknowledged_at is None and actor.id is not None
        if acknowledged:
            changes["acknowledged_at"] = now
        await uow.incidents.update(incident.id, **changes)
        await self._cancel_nudge(uow, incident)
        incident = replace(incident, **changes)
        if incident.is_open:
            await self._schedule_nudge(uow, incident)
        if acknowledged and self.observer is not None:
            self.observer.acknowledged(
                incident.severity, (now - incident.opened_at).total_seconds()
            )
        return incident

    async def _tick(
        self, uow: UnitOfWork, incident: Incident, actor: Actor, item: ChecklistItem
    ) -> Incident:
        now = self._clock.now()
        checklist = dict(incident.checklist)
        checklist[item] = Tick(by_id=actor.id, by_name=_who(actor), at=now)
        stored = {
            key.value: {"by_id": t.by_id, "by_name": t.by_name, "at": t.at.isoformat()}
            for key, t in checklist.items()
        }
        await uow.incidents.update(incident.id, checklist=stored)
        return replace(incident, checklist=checklist)

    async def _timeline(
        self, uow: UnitOfWork, incident: Incident, kind: TimelineKind, actor: Actor, text: str
    ) -> TimelineEntry:
        entry = TimelineEntry(
            at=self._clock.now(), kind=kind, actor_name=_who(actor), actor_id=actor.id, text=text
        )
        await uow.incidents.add_timeline(incident.id, entry)
        entries = await uow.incidents.timeline(incident.id)
        return entries[-1] if entries else entry

    async def _record(
        self,
        uow: UnitOfWork,
        incident: Incident,
        kind: TimelineKind,
        actor: Actor,
        text: str,
        action: str,
        *,
        sync_issue: bool = False,
        comment: bool = True,
    ) -> None:
        """Timeline entry, audit row, thread post, GitHub comment, card refresh: one change."""
        entry = await self._timeline(uow, incident, kind, actor, text)
        await self._audit.record(
            uow,
            actor,
            action,
            target=incident.ref,
            details={"incident_id": incident.id, "text": text},
        )
        await self._notices.notice(
            uow,
            NoticeTemplate.INCIDENT_THREAD,
            {
                "ref": incident.ref,
                "kind": kind.value,
                "actor": actor.name,
                "text": text,
                "at": entry.at.isoformat(),
            },
            **_thread_target(incident),
            ordering_key=f"incident:{incident.id}:thread",
            dedupe_key=f"incident:thread:{incident.id}:{entry.id}",
        )
        if self.tracker is not None and comment:
            marker = f"hh-opsbot:{incident.ref}:entry:{entry.id}"
            await self._outbox.enqueue(
                uow,
                OutboxKind.GITHUB_COMMENT,
                {
                    "incident_id": incident.id,
                    "marker": marker,
                    "body": f"**{kind.value}** by {actor.name} at {utc(entry.at)}\n\n{text}",
                },
                ordering_key=_github_key(incident),
                dedupe_key=f"github:comment:{incident.id}:{entry.id}",
            )
        if self.tracker is not None and sync_issue:
            await self._sync_issue(uow, incident)
        await self._refresh_card(uow, incident)

    async def _sync_issue(self, uow: UnitOfWork, incident: Incident) -> None:
        await self._outbox.enqueue(
            uow,
            OutboxKind.GITHUB_ISSUE_SYNC,
            {"incident_id": incident.id},
            ordering_key=_github_key(incident),
        )

    async def _refresh_card(self, uow: UnitOfWork, incident: Incident) -> None:
        await self._outbox.enqueue(
            uow,
            OutboxKind.INCIDENT_CARD,
            {"incident_id": incident.id},
            ordering_key=f"incident:{incident.id}:card",
        )

    async def _schedule_nudge(self, uow: UnitOfWork, incident: Incident) -> None:
        after = self.policy.nudge_after(incident.severity)
        if after is None:
            return
        await self._reminders.schedule(
            uow,
            ReminderKind.INCIDENT_NUDGE,
            f"{incident.id}:{incident.updates}",
            incident.last_update_at + after,
            {"incident_id": incident.id, "updates": incident.updates},
        )

    async def _cancel_nudge(self, uow: UnitOfWork, incident: Incident) -> None:
        await self._reminders.cancel(
            uow, ReminderKind.INCIDENT_NUDGE, f"{incident.id}:{incident.updates}"
        )

    async def _tell_miners(self, uow: UnitOfWork, incident: Incident, *, resolved: bool) -> None:
        if not (incident.severity.tells_miners and incident.miners_enabled):
            return
        await self._notices.notice(
            uow,
            NoticeTemplate.INCIDENT_MINERS,
            {
                "text": miners_notice_text(incident, resolved=resolved),
                "resolved": resolved,
                "severity": int(incident.severity),
            },
            channel="miners",
            dedupe_key=f"incident:miners:{incident.id}:{'resolved' if resolved else 'open'}",
        )
