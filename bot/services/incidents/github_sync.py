"""GitHub for incidents: the outbox handlers that create the issue, comment, sync its body and
state, and commit the report file; GitHub never blocks an incident (retries, in order)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.domain.incident_texts import (
    github_text,
    issue_body,
    issue_labels,
    issue_marker,
    issue_title,
)
from bot.domain.incidents import (
    Incident,
)
from bot.domain.outbox import OutboxItem, PermanentFailure, RetryLater
from bot.domain.ports import IssueTracker
from bot.services.incidents.common import (
    IncidentBase,
)

log = logging.getLogger(__name__)


class GitHubSync(IncidentBase):
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
            await uow.incidents.update(incident.id, report_url=url[:300] if url else None)
            await self._refresh_card(uow, incident)
            await uow.commit()
        if incident.github_number is not None:
            await self._guarded(
                incident,
                tracker.comment(
                    incident.github_number,
                    f"Postmortem: [{path}]({url})" if url else f"Postmortem: `{path}`",
                    f"hh-opsbot:{incident.ref}:report:{item.payload.get('entry_id')}",
                ),
            )
        self._outbox.wake()
        return {"url": url}
