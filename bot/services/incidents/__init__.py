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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.domain.devlog import safe_line
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.incident_texts import (  # re-exported
    _mean,
    duration,
    github_text,
    issue_body,
    issue_marker,
    issue_title,
    postmortem,
    utc,
)
from bot.domain.incidents import (
    NODES_MAX,
    SUMMARY_MAX,
    TEXT_MAX,
    TITLE_MAX,
    UPDATE_STATUSES,
    ChecklistItem,
    Incident,
    IncidentLink,
    IncidentStatus,
    LinkKind,
    Severity,
    SeverityStats,
    TimelineEntry,
    TimelineKind,
    format_ref,
    link_target,
    miners_notice_text,
    miners_safe,
)
from bot.domain.outbox import OutboxKind, ReminderKind
from bot.domain.ports import UnitOfWork
from bot.domain.roles import Actor, OpsRole
from bot.services.incidents.common import (  # re-exported
    IncidentObserver,
    Report,
    _clean,
    _github_key,
    _severity,
    _who,
)
from bot.services.incidents.github_sync import GitHubSync
from bot.services.incidents.reminders import IncidentReminders
from bot.services.outbox import OutboxHandler, ReminderHandler

__all__ = [
    "IncidentObserver",
    "IncidentService",
    "Report",
    "duration",
    "github_text",
    "issue_body",
    "issue_marker",
    "issue_title",
    "postmortem",
    "utc",
]

log = logging.getLogger(__name__)


class IncidentService(GitHubSync, IncidentReminders):
    """The incident use cases: reading, and every command (open, update, severity, assign,
    resolve, checklist, report, miners notice, pins). Reminders and the GitHub handlers are
    in their own modules; what all share is in `common.py`."""

    def reminder_handlers(self) -> Mapping[ReminderKind, ReminderHandler]:
        """Registered by the composition root (bot/app/services.py)."""
        return {
            ReminderKind.INCIDENT_NUDGE: self._nudge,
            ReminderKind.INCIDENT_REPORT_DUE: self._report_reminder,
            ReminderKind.INCIDENT_REPORT_OVERDUE: self._report_reminder,
        }

    def outbox_handlers(self) -> Mapping[OutboxKind, OutboxHandler]:
        """The GitHub writes; none without a tracker (no `[github]`: nothing is enqueued)."""
        if self.tracker is None:
            return {}
        return {
            OutboxKind.GITHUB_ISSUE_CREATE: self._github_issue_create,
            OutboxKind.GITHUB_COMMENT: self._github_comment,
            OutboxKind.GITHUB_ISSUE_SYNC: self._github_issue_sync,
            OutboxKind.GITHUB_COMMIT: self._github_commit,
        }

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

    async def open(
        self,
        actor: Actor,
        *,
        severity: int,
        title: str,
        summary: str | None = None,
        nodes: str | None = None,
        then: Callable[[UnitOfWork, Incident], Awaitable[None]] | None = None,
    ) -> Incident:
        """`/incident open`. `then` runs in the same transaction, before it commits: what must
        happen with the incident or not at all (an alert group linking it)."""
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
                    OutboxKind.GITHUB_ISSUE_CREATE,
                    {"incident_id": incident.id},
                    ordering_key=_github_key(incident),
                    dedupe_key=f"github:issue:{incident.id}",
                )
            await self._schedule_nudge(uow, incident)
            await self._tell_miners(uow, incident, resolved=False)
            if then is not None:
                await then(uow, incident)
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
                f"Cause: {cause}. Resolution: {resolution}",
                "incident resolve",
                sync_issue=True,
            )
            await self._cancel_nudge(uow, incident)
            subject = str(incident.id)
            data = {"incident_id": incident.id}
            warn_at = max(due - self.policy.report_warning, now)
            await self._reminders.schedule(
                uow, ReminderKind.INCIDENT_REPORT_DUE, subject, warn_at, data
            )
            await self._reminders.schedule(
                uow, ReminderKind.INCIDENT_REPORT_OVERDUE, subject, due, data
            )
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
                f"{item.label} ✔",
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
                    OutboxKind.GITHUB_COMMIT,
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
                await self._reminders.cancel(
                    uow, ReminderKind.INCIDENT_REPORT_DUE, str(incident.id)
                )
                await self._reminders.cancel(
                    uow, ReminderKind.INCIDENT_REPORT_OVERDUE, str(incident.id)
                )
            await uow.commit()
        self._outbox.wake()
        return Report(incident=incident, markdown=markdown, path=path)

    async def link(
        self,
        actor: Actor,
        ref: str,
        url: str,
        *,
        kind: LinkKind | None = None,
        title: str | None = None,
        author: str | None = None,
    ) -> tuple[Incident, bool]:
        """Link a pull request or commit to an incident (`/incident link`, or a merged pull
        request or pushed commit naming it): shown on the card, listed in the report, noted in
        the thread and on the GitHub issue, audited. Once per incident and URL: a second time
        changes nothing and says so (False). Resolved incidents take links too (the fix often
        lands after). `title` and `author` come from GitHub or default to the URL's label and
        the member; they are shown made safe, never trusted."""
        url = url.strip()
        target_kind, label = link_target(url)
        kind = kind or target_kind
        title = " ".join((title or label).split())[:300] or label
        author = " ".join((author or _who(actor)).split())[:100] or "unknown"
        async with self._uow() as uow:
            incident = await self._by_ref(uow, ref, for_update=True)
            link = IncidentLink(kind, url, title, author, self._clock.now())
            if not await uow.incidents.add_link(incident.id, link):
                return incident, False
            what = "Pull request" if kind is LinkKind.PR else "Commit"
            await self._record(
                uow,
                incident,
                TimelineKind.LINKED,
                actor,
                f"{what} linked: {safe_line(title, 200)} by {safe_line(author, 60)} <{url}>",
                "incident link",
            )
            incident = replace(incident, links=(*incident.links, link))
            await uow.commit()
        self._outbox.wake()
        return incident, True

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
