"""Incident reminders: the nudge of an open incident without updates, and the report due and
overdue notices, each a database reminder fired once."""

from __future__ import annotations

import logging

from bot.domain.incident_texts import (
    _iso,
)
from bot.domain.outbox import NoticeTemplate, Reminder, ReminderKind
from bot.domain.ports import UnitOfWork
from bot.services.incidents.common import (
    IncidentBase,
    _thread_target,
)

log = logging.getLogger(__name__)


class IncidentReminders(IncidentBase):
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
            NoticeTemplate.INCIDENT_NUDGE,
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
        template = (
            NoticeTemplate.INCIDENT_REPORT_OVERDUE
            if reminder.kind == ReminderKind.INCIDENT_REPORT_OVERDUE
            else NoticeTemplate.INCIDENT_REPORT_DUE
        )
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
