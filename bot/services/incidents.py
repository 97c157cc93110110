"""Incidents (manual §9, §12, §19, §20): declare, work and close Sev 1–3 incidents.

The rules live here, pure of Discord: readable ids from a per-year sequence, statuses, the
timeline, the manual's checklist, the commander, the report deadline (+48 h at resolve).
Every change commits with its audit row, its timeline entry and the work it causes for the
outside world, as outbox items: thread posts and card refreshes for Discord, and GitHub writes
(issue, comments, body, close, report file), in order per incident (`ordering_key`) and
idempotent on replay. Nudges are database reminders, fired once, also across restarts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.domain.errors import InvalidInput, NotFound
from bot.domain.incidents import (
    NODES_MAX,
    SUMMARY_MAX,
    TEXT_MAX,
    TITLE_MAX,
    UPDATE_STATUSES,
    ChecklistItem,
    Incident,
    IncidentPolicy,
    IncidentStatus,
    Severity,
    SeverityStats,
    Tick,
    TimelineEntry,
    TimelineKind,
    format_ref,
    miners_notice_text,
    miners_safe,
    parse_ref,
)
from bot.domain.outbox import OutboxItem, PermanentFailure, Reminder, RetryLater
from bot.domain.ports import Clock, IssueTracker, UnitOfWork
from bot.domain.roles import Actor, OpsRole
from bot.services.audit import AuditService
from bot.services.notices import Notices
from bot.services.outbox import OutboxService, ReminderService, UowFactory

log = logging.getLogger(__name__)

# Outbox kinds.
CARD_REFRESH = "incident.card"
"""Re-render the incident card in #operations from the database (idempotent)."""
GITHUB_ISSUE_CREATE = "github.issue_create"
GITHUB_COMMENT = "github.comment"
GITHUB_ISSUE_SYNC = "github.issue_sync"
"""Bring the issue's body (checklist), state and labels in line with the incident."""
GITHUB_COMMIT = "github.commit_file"

# Reminder kinds.
NUDGE = "incident-nudge"
REPORT_DUE = "incident-report-due"
REPORT_OVERDUE = "incident-report-overdue"

# Notice templates (rendered in cogs/incidents/render.py).
T_THREAD = "incident.thread"
T_NUDGE = "incident.nudge"
T_REPORT_DUE = "incident.report_due"
T_REPORT_OVERDUE = "incident.report_overdue"
T_MINERS = "incident.miners"

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


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def utc(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


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


class IncidentService:
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
        reminders.register(NUDGE, self._nudge)
        reminders.register(REPORT_DUE, self._report_reminder)
        reminders.register(REPORT_OVERDUE, self._report_reminder)
        if tracker is not None:
            outbox.register(GITHUB_ISSUE_CREATE, self._github_issue_create)
            outbox.register(GITHUB_COMMENT, self._github_comment)
            outbox.register(GITHUB_ISSUE_SYNC, self._github_issue_sync)
            outbox.register(GITHUB_COMMIT, self._github_commit)

    @property
    def github_configured(self) -> bool:
        return self.tracker is not None

    # -- reading -----------------------------------------------------------------------------

    async def get(self, ref: str) -> Incident:
        async with self._uow() as uow:
            return await self._by_ref(uow, ref)

    async def get_by_id(self, incident_id: int) -> Incident:
        async with self._uow() as uow:
            incident = await uow.incidents.get(incident_id)
        if incident is None:
            raise NotFound(f"No incident with row id {incident_id}.")
        return incident

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        async with self._uow() as uow:
            return await uow.incidents.timeline(incident_id)

    async def public_notice(self) -> str | None:
        """What /status shows miners: the newest open Sev 1/2 incident they are told about."""
        for incident in await self.find(open_only=True, limit=50):
            if incident.severity.tells_miners and incident.miners_enabled:
                return miners_notice_text(incident, resolved=False)
        return None

    async def find(self, *, open_only: bool, limit: int = 25) -> list[Incident]:
        async with self._uow() as uow:
            return await uow.incidents.find(open_only=open_only, limit=limit)

    async def autocomplete(self, typed: str, limit: int = 25) -> list[tuple[str, str]]:
        prefix = typed.strip().upper()
        if prefix and not prefix.startswith("INC-"):
            prefix = ""  # typed part of a title or a number: offer the latest ones
        async with self._uow() as uow:
            return await uow.incidents.refs_starting(prefix or "INC-", limit)

    async def stats(self, since: datetime | None = None) -> list[SeverityStats]:
        async with self._uow() as uow:
            incidents = await uow.incidents.all_for_stats(since)
        out = []
        for severity in Severity:
            mine = [i for i in incidents if i.severity is severity]
            acks = [i.acknowledged_at - i.opened_at for i in mine if i.acknowledged_at]
            fixes = [i.resolved_at - i.opened_at for i in mine if i.resolved_at]
            out.append(
                SeverityStats(
                    severity=severity,
                    count=len(mine),
                    resolved=len(fixes),
                    mean_acknowledge=_mean(acks),
                    mean_resolve=_mean(fixes),
                )
            )
        return out

    # -- commands ----------------------------------------------------------------------------

    async def open(
        self,
        actor: Actor,
        *,
        severity: int,
        title: str,
        summary: str | None = None,
        nodes: str | None = None,
    ) -> Incident:
        level = _severity(severity)
        title = _clean(title, TITLE_MAX, "title", required=True)
        summary = _clean(summary, SUMMARY_MAX, "summary")
        nodes = _clean(nodes, NODES_MAX, "list of nodes")
        now = self._clock.now()
        async with self._uow() as uow:
            number = await uow.incidents.next_number(now.year)
            ref = format_ref(now.year, number)
            incident = await uow.incidents.add(
                ref,
                severity=level,
                status=IncidentStatus.INVESTIGATING,
                title=title,
                summary=summary,
                nodes=nodes,
                reporter_id=actor.id,
                reporter_name=_who(actor),
                opened_at=now,
                last_update_at=now,
                checklist={},
                updates=0,
                miners_enabled=self.policy.miners_notice,
            )
            await self._timeline(
                uow,
                incident,
                TimelineKind.OPENED,
                actor,
                f"{level.label} opened: {title}" + (f". {summary}" if summary else ""),
            )
            await self._audit.record(
                uow,
                actor,
                "incident open",
                target=ref,
                details={"incident_id": incident.id, "severity": int(level), "title": title},
            )
            if self.tracker is not None:
                await self._outbox.enqueue(
                    uow,
                    GITHUB_ISSUE_CREATE,
                    {"incident_id": incident.id},
                    ordering_key=_github_key(incident),
                    dedupe_key=f"github:issue:{incident.id}",
                )
            await self._schedule_nudge(uow, incident)
            await self._tell_miners(uow, incident, resolved=False)
            await uow.commit()
        self._outbox.wake()
        return incident

    async def attach_discord(
        self, incident_id: int, *, channel_id: int, message_id: int, thread_id: int | None
    ) -> Incident:
        """Remember where the card and the thread are; the card is then kept up to date."""
        async with self._uow() as uow:
            await uow.incidents.update(
                incident_id,
                card_channel_id=channel_id,
                card_message_id=message_id,
                thread_id=thread_id,
            )
            incident = await uow.incidents.get(incident_id)
            assert incident is not None
            if incident.github_number is not None or incident.github_error is not None:
                # GitHub answered before the card was posted: show its link. Otherwise the
                # card is as posted, and the GitHub handler refreshes it when it knows more.
                await self._refresh_card(uow, incident)
            if self.tracker is not None:
                await self._sync_issue(uow, incident)  # the issue links back to the card
            await uow.commit()
        self._outbox.wake()
        return incident

    async def update(
        self, actor: Actor, ref: str, text: str, status: str | None = None
    ) -> Incident:
        text = _clean(text, TEXT_MAX, "update", required=True)
        new_status: IncidentStatus | None = None
        if status:
            try:
                new_status = IncidentStatus(status.lower())
            except ValueError:
                new_status = None
            if new_status not in UPDATE_STATUSES:
                raise InvalidInput(
                    "Status must be investigating, identified or monitoring "
                    "(use `/incident resolve` to close)."
                )
        async with self._uow() as uow:
            incident = await self._open_incident(uow, ref)
            changes: dict[str, Any] = {}
            if new_status is not None and new_status is not incident.status:
                changes["status"] = new_status
            line = text if "status" not in changes else f"[{new_status}] {text}"
            incident = await self._touch(uow, incident, actor, changes)
            await self._record(uow, incident, TimelineKind.UPDATE, actor, line, "incident update")
            await uow.commit()
        self._outbox.wake()
        return incident

    async def set_severity(self, actor: Actor, ref: str, level: int) -> Incident:
        severity = _severity(level)
        async with self._uow() as uow:
            incident = await self._open_incident(uow, ref)
            if severity is incident.severity:
                raise InvalidInput(f"{incident.ref} is already {severity.label}.")
            before = incident.severity
            incident = await self._touch(uow, incident, actor, {"severity": severity})
            await self._record(
                uow,
                incident,
                TimelineKind.SEVERITY,
                actor,
                f"Severity {before.label} → {severity.label} ({severity.meaning})",
                "incident severity",
                sync_issue=True,
            )
            if severity.tells_miners and not before.tells_miners:
                await self._tell_miners(uow, incident, resolved=False)
            await uow.commit()
        self._outbox.wake()
        return incident

    async def assign(self, actor: Actor, ref: str, member_id: int, member_name: str) -> Incident:
        async with self._uow() as uow:
            incident = await self._open_incident(uow, ref)
            if incident.commander_id == member_id:
                raise InvalidInput(f"{member_name} already commands {incident.ref}.")
            incident = await self._touch(
                uow,
                incident,
                actor,
                {"commander_id": member_id, "commander_name": member_name[:100]},
            )
            await self._record(
                uow,
                incident,
                TimelineKind.ASSIGNED,
                actor,
                f"Commander: {member_name}",
                "incident assign",
                sync_issue=True,
            )
            await uow.commit()
        self._outbox.wake()
        return incident

    async def resolve(self, actor: Actor, ref: str, cause: str, resolution: str) -> Incident:
        async with self._uow() as uow:
            incident = await self._by_ref(uow, ref, for_update=True)
            if not incident.is_open:
                raise InvalidInput(
                    f"{incident.ref} was already resolved {utc(incident.resolved_at)} "
                    "and stays resolved; add to the report with `/incident report`."
                    if incident.resolved_at
                    else f"{incident.ref} is already resolved."
                )
            cause = _clean(cause, TEXT_MAX, "cause", required=True)
            resolution = _clean(resolution, TEXT_MAX, "resolution", required=True)
            now = self._clock.now()
            due = now + self.policy.report_due
            incident = await self._touch(
                uow,
                incident,
                actor,
                {
                    "status": IncidentStatus.RESOLVED,
                    "resolved_at": now,
                    "cause": cause,
                    "resolution": resolution,
                    "report_due_at": due,
                },
            )
            await self._record(
                uow,
                incident,
                TimelineKind.RESOLVED,
                actor,
                f"Resolved. Cause: {cause}. Resolution: {resolution}",
                "incident resolve",
                sync_issue=True,
            )
            await self._cancel_nudge(uow, incident)
            subject = str(incident.id)
            data = {"incident_id": incident.id}
            warn_at = max(due - self.policy.report_warning, now)
            await self._reminders.schedule(uow, REPORT_DUE, subject, warn_at, data)
            await self._reminders.schedule(uow, REPORT_OVERDUE, subject, due, data)
            await self._tell_miners(uow, incident, resolved=True)
            await uow.commit()
        if self.observer is not None:
            self.observer.resolved(incident.severity, (now - incident.opened_at).total_seconds())
        self._outbox.wake()
        return incident

    async def tick(self, actor: Actor, incident_id: int, item: ChecklistItem) -> Incident:
        """A checklist button: who and when, once; the card and the GitHub issue follow."""
        async with self._uow() as uow:
            incident = await uow.incidents.get(incident_id, for_update=True)
            if incident is None:
                raise NotFound("This incident no longer exists.")
            done = incident.checklist.get(item)
            if done is not None:
                raise InvalidInput(
                    f"“{item.label}” was already ticked by {done.by_name} at {utc(done.at)}."
                )
            incident = await self._tick(uow, incident, actor, item)
            await self._record(
                uow,
                incident,
                TimelineKind.CHECKLIST,
                actor,
                f"Checklist: {item.label} ✔",
                f"incident:{item.value}",
                sync_issue=True,
                comment=False,
            )
            await uow.commit()
        self._outbox.wake()
        return incident

    async def report(self, actor: Actor, ref: str) -> Report:
        """The postmortem from the timeline; ticks "report" and commits it to GitHub."""
        async with self._uow() as uow:
            incident = await self._by_ref(uow, ref, for_update=True)
            now = self._clock.now()
            first = incident.report_at is None
            if ChecklistItem.REPORT not in incident.checklist:
                incident = await self._tick(uow, incident, actor, ChecklistItem.REPORT)
            await uow.incidents.update(incident.id, report_at=now)
            incident = replace(incident, report_at=now)
            entry = await self._timeline(
                uow,
                incident,
                TimelineKind.REPORT,
                actor,
                "Report published" if first else "Report updated",
            )
            timeline = await uow.incidents.timeline(incident.id)
            markdown = postmortem(incident, timeline, now=now)
            path = f"incidents/{incident.ref}.md"
            await self._audit.record(
                uow, actor, "incident report", target=incident.ref, details={"path": path}
            )
            if self.tracker is not None:
                await self._outbox.enqueue(
                    uow,
                    GITHUB_COMMIT,
                    {
                        "incident_id": incident.id,
                        "path": path,
                        "content": markdown,
                        "message": f"{incident.ref}: postmortem ({actor.name})",
                        "entry_id": entry.id,
                    },
                    ordering_key=_github_key(incident),
                    dedupe_key=f"github:report:{incident.id}:{entry.id}",
                )
                await self._sync_issue(uow, incident)
            await self._refresh_card(uow, incident)
            if incident.report_due_at is not None:
                await self._reminders.cancel(uow, REPORT_DUE, str(incident.id))
                await self._reminders.cancel(uow, REPORT_OVERDUE, str(incident.id))
            await uow.commit()
        self._outbox.wake()
        return Report(incident=incident, markdown=markdown, path=path)

    async def miners(
        self, actor: Actor, ref: str, *, enabled: bool, text: str | None = None
    ) -> Incident:
        """The commander (or Core Ops) edits the #miners notice or turns it off."""
        text = _clean(text, 500, "notice")
        async with self._uow() as uow:
            incident = await self._by_ref(uow, ref, for_update=True)
            if actor.id != incident.commander_id and not (
                OpsRole.CORE_OPS in actor.roles or actor.is_owner
            ):
                raise InvalidInput(
                    f"Only the commander of {incident.ref} (or Core Ops) may change its "
                    "#miners notice; `/incident assign` names the commander."
                )
            if text and not miners_safe(text):
                raise InvalidInput("That notice has nothing left once hostnames are removed.")
            changes: dict[str, Any] = {"miners_enabled": enabled}
            if text:
                changes["miners_text"] = text
            await uow.incidents.update(incident.id, **changes)
            incident = replace(incident, miners_enabled=enabled, miners_text=text or None)
            await self._timeline(
                uow,
                incident,
                TimelineKind.MINERS,
                actor,
                f"#miners notice {'on' if enabled else 'off'}" + (f": {text}" if text else ""),
            )
            await self._audit.record(
                uow,
                actor,
                "incident miners",
                target=incident.ref,
                details={"enabled": enabled, "text": text},
            )
            await uow.commit()
        return incident

    async def pinned(
        self,
        *,
        thread_id: int,
        message_id: int,
        author_id: int | None,
        author_name: str,
        text: str,
        at: datetime | None = None,
    ) -> bool:
        """A message pinned (or marked 📌) in an incident thread joins the timeline, once."""
        async with self._uow() as uow:
            incident = await uow.incidents.by_thread(thread_id)
            if incident is None:
                return False
            added = await uow.incidents.add_timeline(
                incident.id,
                TimelineEntry(
                    at=at or self._clock.now(),
                    kind=TimelineKind.PINNED,
                    actor_name=author_name[:100],
                    actor_id=author_id,
                    text=(text or "(no text)")[:TEXT_MAX],
                ),
                source_id=message_id,
            )
            if added:
                await uow.commit()
        return added

    # -- internals ---------------------------------------------------------------------------

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
            T_THREAD,
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
                GITHUB_COMMENT,
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
            GITHUB_ISSUE_SYNC,
            {"incident_id": incident.id},
            ordering_key=_github_key(incident),
        )

    async def _refresh_card(self, uow: UnitOfWork, incident: Incident) -> None:
        await self._outbox.enqueue(
            uow,
            CARD_REFRESH,
            {"incident_id": incident.id},
            ordering_key=f"incident:{incident.id}:card",
        )

    async def _schedule_nudge(self, uow: UnitOfWork, incident: Incident) -> None:
        after = self.policy.nudge_after(incident.severity)
        if after is None:
            return
        await self._reminders.schedule(
            uow,
            NUDGE,
            f"{incident.id}:{incident.updates}",
            incident.last_update_at + after,
            {"incident_id": incident.id, "updates": incident.updates},
        )

    async def _cancel_nudge(self, uow: UnitOfWork, incident: Incident) -> None:
        await self._reminders.cancel(uow, NUDGE, f"{incident.id}:{incident.updates}")

    async def _tell_miners(self, uow: UnitOfWork, incident: Incident, *, resolved: bool) -> None:
        if not (incident.severity.tells_miners and incident.miners_enabled):
            return
        await self._notices.notice(
            uow,
            T_MINERS,
            {
                "text": miners_notice_text(incident, resolved=resolved),
                "resolved": resolved,
                "severity": int(incident.severity),
            },
            channel="miners",
            dedupe_key=f"incident:miners:{incident.id}:{'resolved' if resolved else 'open'}",
        )

    # -- reminders ---------------------------------------------------------------------------

    async def _nudge(self, uow: UnitOfWork, reminder: Reminder) -> None:
        incident = await uow.incidents.get(int(reminder.payload["incident_id"]))
        if incident is None or not incident.is_open:
            return
        if incident.updates != int(reminder.payload.get("updates", -1)):
            return  # an update came in meanwhile; its own nudge is scheduled
        after = self.policy.nudge_after(incident.severity)
        minutes = int(after.total_seconds() // 60) if after else 0
        await self._notices.notice(
            uow,
            T_NUDGE,
            {
                "ref": incident.ref,
                "severity": int(incident.severity),
                "minutes": minutes,
                "last_update_at": incident.last_update_at.isoformat(),
            },
            **_thread_target(incident),
            mention_user_ids=[incident.commander_id] if incident.commander_id else [],
            dedupe_key=f"incident:nudge:{reminder.id}",
        )

    async def _report_reminder(self, uow: UnitOfWork, reminder: Reminder) -> None:
        incident = await uow.incidents.get(int(reminder.payload["incident_id"]))
        if incident is None or incident.report_at is not None:
            return
        person = incident.commander_id or incident.reporter_id
        template = T_REPORT_OVERDUE if reminder.kind == REPORT_OVERDUE else T_REPORT_DUE
        data = {
            "ref": incident.ref,
            "title": incident.title,
            "due_at": _iso(incident.report_due_at),
        }
        if person is None:
            await self._notices.notice(
                uow, template, data, dedupe_key=f"incident:{reminder.kind}:{incident.id}"
            )
            return
        await self._notices.direct(
            uow, person, template, data, dedupe_key=f"incident:{reminder.kind}:{incident.id}"
        )

    # -- GitHub (outbox handlers) ------------------------------------------------------------

    async def _load(self, item: OutboxItem) -> Incident:
        async with self._uow() as uow:
            incident = await uow.incidents.get(int(item.payload["incident_id"]))
        if incident is None:
            raise PermanentFailure("incident no longer exists")
        return incident

    def _tracker(self) -> IssueTracker:
        if self.tracker is None:
            raise PermanentFailure("GitHub is not configured")
        return self.tracker

    async def _github_failed(self, incident: Incident, error: str) -> None:
        async with self._uow() as uow:
            await uow.incidents.update(incident.id, github_error=error[:300])
            await self._refresh_card(uow, incident)
            await uow.commit()
        self._outbox.wake()

    async def _guarded(self, incident: Incident, work: Any) -> Any:
        try:
            return await work
        except PermanentFailure as exc:
            await self._github_failed(incident, str(exc))
            raise

    async def _github_issue_create(self, item: OutboxItem) -> Mapping[str, Any]:
        """Idempotent: an issue carrying the incident's marker is reused, never duplicated."""
        incident = await self._load(item)
        if incident.github_number is not None:
            return {"number": incident.github_number, "reused": True}
        tracker = self._tracker()
        marker = issue_marker(incident)
        found = await self._guarded(incident, tracker.find_issue(marker))
        if found is None:
            found = await self._guarded(
                incident,
                tracker.create_issue(
                    issue_title(incident),
                    issue_body(incident, self.guild_id),
                    issue_labels(incident),
                ),
            )
        number, url = found
        async with self._uow() as uow:
            await uow.incidents.update(
                incident.id, github_number=number, github_url=url[:300], github_error=None
            )
            await self._refresh_card(uow, incident)
            await uow.commit()
        self._outbox.wake()
        return {"number": number, "url": url}

    async def _issue_number(self, incident: Incident) -> int:
        if incident.github_number is not None:
            return incident.github_number
        if incident.github_error:
            raise PermanentFailure(f"no GitHub issue ({incident.github_error})")
        raise RetryLater("the GitHub issue is not created yet")

    async def _github_comment(self, item: OutboxItem) -> Mapping[str, Any]:
        incident = await self._load(item)
        number = await self._issue_number(incident)
        url = await self._guarded(
            incident,
            self._tracker().comment(
                number, github_text(str(item.payload["body"])), str(item.payload["marker"])
            ),
        )
        return {"url": url}

    async def _github_issue_sync(self, item: OutboxItem) -> Mapping[str, Any]:
        incident = await self._load(item)
        number = await self._issue_number(incident)
        state = "open" if incident.is_open else "closed"
        await self._guarded(
            incident,
            self._tracker().edit_issue(
                number,
                body=issue_body(incident, self.guild_id),
                state=state,
                labels=issue_labels(incident),
            ),
        )
        return {"number": number, "state": state}

    async def _github_commit(self, item: OutboxItem) -> Mapping[str, Any]:
        incident = await self._load(item)
        tracker = self._tracker()
        path = str(item.payload["path"])
        url = await self._guarded(
            incident,
            tracker.put_file(
                path, github_text(str(item.payload["content"])), str(item.payload["message"])
            ),
        )
        async with self._uow() as uow:
            await uow.incidents.update(incident.id, report_url=url[:300])
            await self._refresh_card(uow, incident)
            await uow.commit()
        if incident.github_number is not None:
            await self._guarded(
                incident,
                tracker.comment(
                    incident.github_number,
                    f"Postmortem: [{path}]({url})",
                    f"hh-opsbot:{incident.ref}:report:{item.payload.get('entry_id')}",
                ),
            )
        self._outbox.wake()
        return {"url": url}


def _github_key(incident: Incident) -> str:
    return f"incident:{incident.id}:github"


def _thread_target(incident: Incident) -> dict[str, Any]:
    if incident.thread_id is not None:
        return {"channel_id": incident.thread_id}
    return {"channel": "operations"}


def _mean(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    return sum(values, timedelta()) / len(values)


def duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


# -- what GitHub shows ------------------------------------------------------------------------


_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def github_text(text: str) -> str:
    """Text from people or alerts, made safe for GitHub: HTML comments go (one could carry a
    marker of the bot's, or hide the rest of the page; an unclosed one loses its opener, and the
    loop catches comments that removing others would assemble), and every `@` gets a zero-width
    space after it, so no user or team is mentioned. Apply once, to text as sent."""
    while True:
        cleaned = _HTML_COMMENT.sub("", text).replace("<!--", "")
        if cleaned == text:
            break
        text = cleaned
    return text.replace("@", "@\u200b")


def issue_marker(incident: Incident) -> str:
    """The issue's first line (and only there, see `IssueTracker.find_issue`)."""
    return f"<!-- hh-opsbot:{incident.ref} -->"


def issue_title(incident: Incident) -> str:
    return f"[{incident.ref}] {incident.severity.label}: {github_text(incident.title)}"


def issue_labels(incident: Incident) -> list[str]:
    labels = ["incident", f"sev-{int(incident.severity)}"]
    if not incident.is_open:
        labels.append("resolved")
    return labels


def checklist_lines(incident: Incident) -> list[str]:
    lines = []
    for item in ChecklistItem:
        tick = incident.checklist.get(item)
        if tick is None:
            lines.append(f"- [ ] {item.label}")
        else:
            lines.append(f"- [x] {item.label} (by {tick.by_name}, {utc(tick.at)})")
    return lines


def discord_link(incident: Incident, guild_id: int | None) -> str | None:
    if guild_id is None or incident.card_channel_id is None or incident.card_message_id is None:
        return None
    return (
        f"https://discord.com/channels/{guild_id}/{incident.card_channel_id}/"
        f"{incident.card_message_id}"
    )


def issue_body(incident: Incident, guild_id: int | None = None) -> str:
    """The issue: timestamp, severity, reporter, summary, checklist (manual §19). The marker
    is the first line; everything after it passes `github_text`."""
    parts = [
        f"**Incident:** {incident.ref}",
        f"**Opened:** {utc(incident.opened_at)}",
        f"**Severity:** {incident.severity.label} ({incident.severity.meaning})",
        f"**Status:** {incident.status.value}",
        f"**Reporter:** {incident.reporter_name}",
        f"**Commander:** {incident.commander_name or 'not assigned'}",
    ]
    if incident.nodes:
        parts.append(f"**Nodes:** {incident.nodes}")
    link = discord_link(incident, guild_id)
    if link:
        parts.append(f"**Discord:** [incident card]({link})")
    parts += ["", "## Summary", "", incident.summary or "_none given_", "", "## Checklist", ""]
    parts += checklist_lines(incident)
    if incident.resolved_at is not None:
        parts += [
            "",
            "## Resolution",
            "",
            f"**Resolved:** {utc(incident.resolved_at)}",
            f"**Cause:** {incident.cause}",
            f"**Resolution:** {incident.resolution}",
        ]
        if incident.report_due_at is not None:
            parts.append(f"**Report due:** {utc(incident.report_due_at)}")
    if incident.report_url:
        parts.append(f"**Report:** {incident.report_url}")
    return issue_marker(incident) + "\n" + github_text("\n".join(parts)) + "\n"


def postmortem(incident: Incident, timeline: Sequence[TimelineEntry], *, now: datetime) -> str:
    """The report (manual §20): summary, impact, UTC timeline, cause, resolution, checklist,
    time to acknowledge and to resolve."""
    ack = incident.acknowledged_at - incident.opened_at if incident.acknowledged_at else None
    fix = incident.resolved_at - incident.opened_at if incident.resolved_at else None
    lines = [
        f"# {incident.ref}: {incident.title}",
        "",
        f"- **Severity:** {incident.severity.label} ({incident.severity.meaning})",
        f"- **Status:** {incident.status.value}",
        f"- **Opened:** {utc(incident.opened_at)} by {incident.reporter_name}",
        f"- **Commander:** {incident.commander_name or 'not assigned'}",
        f"- **Resolved:** {utc(incident.resolved_at) if incident.resolved_at else 'not yet'}",
        f"- **Time to acknowledge:** {duration(ack)}",
        f"- **Time to resolve:** {duration(fix)}",
        f"- **Report written:** {utc(now)}",
        "",
        "## Summary",
        "",
        incident.summary or incident.title,
        "",
        "## Impact",
        "",
        f"{incident.severity.label}: {incident.severity.meaning}."
        + (f" Nodes: {incident.nodes}." if incident.nodes else ""),
        "",
        "## Timeline (UTC)",
        "",
    ]
    for entry in timeline:
        text = entry.text.replace("\n", " ")
        lines.append(
            f"- {entry.at.strftime('%Y-%m-%d %H:%M')}: {entry.kind.value}: {text} "
            f"({entry.actor_name})"
        )
    lines += [
        "",
        "## Cause",
        "",
        incident.cause or "_not established yet_",
        "",
        "## Resolution",
        "",
        incident.resolution or "_not resolved yet_",
        "",
        "## Checklist",
        "",
        *checklist_lines(incident),
        "",
    ]
    return "\n".join(lines)
