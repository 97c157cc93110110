"""The relay's own safety nets: the email fallback (a critical group not on Discord in time is
emailed, once per episode) and the dead man's switch (Alertmanager's always-firing Watchdog alert
stops arriving: "alert pipeline broken" in #operations, once per outage, and "recovered" after).

Ingest tells this module about new critical groups and Watchdog arrivals, inside its own
transaction; this module knows nothing of ingest."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from bot.domain.alert_rules import fallback_email
from bot.domain.alerts import AlertGroup
from bot.domain.outbox import NoticeTemplate, OutboxKind, Reminder, ReminderKind
from bot.domain.ports import Clock, UnitOfWork, UowFactory
from bot.services.alerts.common import AlertPolicy
from bot.services.notices import Notices
from bot.services.outbox import OutboxService, ReminderHandler, ReminderService

log = logging.getLogger(__name__)


class AlertWatchdog:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        outbox: OutboxService,
        reminders: ReminderService,
        policy: AlertPolicy,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._outbox = outbox
        self._reminders = reminders
        self.policy = policy
        self._notices = Notices(outbox)

    def reminder_handlers(self) -> Mapping[ReminderKind, ReminderHandler]:
        """Registered by the composition root (bot/app/compose.py)."""
        return {ReminderKind.ALERT_EMAIL_FALLBACK: self._email_fallback}

    # -- the email fallback ----------------------------------------------------------------------

    async def schedule_email_fallback(
        self, uow: UnitOfWork, group: AlertGroup, now: datetime
    ) -> None:
        """In the caller's transaction: email this group if it is not on Discord in time."""
        await self._reminders.schedule(
            uow,
            ReminderKind.ALERT_EMAIL_FALLBACK,
            f"{group.id}:{group.episode}",
            now + timedelta(seconds=self.policy.email_fallback_after),
            {"group_id": group.id, "episode": group.episode},
        )

    async def _email_fallback(self, uow: UnitOfWork, reminder: Reminder) -> None:
        group = await uow.alerts.get_group(int(reminder.payload["group_id"]), for_update=True)
        if (
            group is None
            or group.episode != int(reminder.payload["episode"])
            or group.posted_at is not None
            or group.emailed_at is not None
        ):
            return
        subject, body = fallback_email(group, self.policy.email_fallback_after)
        await self._outbox.enqueue(
            uow,
            OutboxKind.EMAIL,
            {"to": list(self.policy.email_to), "subject": subject, "body": body},
            dedupe_key=f"email:alerts:{group.id}:{group.episode}",
        )
        await uow.alerts.set_emailed(group.id, self._clock.now())
        log.warning(
            "alert group %s not on Discord %.0f s after it arrived: emailed",
            group.id,
            self.policy.email_fallback_after,
        )

    # -- the dead man's switch -------------------------------------------------------------------

    async def check_watchdog(self) -> bool:
        """Post "alert pipeline broken" once per outage; True when it did."""
        timeout = self.policy.watchdog_timeout
        if timeout <= 0:
            return False
        now = self._clock.now()
        async with self._uow_factory() as uow:
            last_seen = await uow.alerts.watchdog_overdue(now, now - timedelta(seconds=timeout))
            if last_seen is None:
                return False
            await self._notices.notice(
                uow,
                NoticeTemplate.ALERTS_PIPELINE_BROKEN,
                {"last_seen": last_seen.isoformat(), "timeout": timeout},
            )
            await uow.commit()
        self._outbox.wake()
        log.error("Watchdog alert overdue since %s: alert pipeline broken", last_seen.isoformat())
        return True

    async def watchdog_arrived(self, uow: UnitOfWork, now: datetime) -> None:
        """In the caller's transaction: the Watchdog alert arrived; after a reported outage,
        say it is over."""
        outage_since = await uow.alerts.watchdog_seen(now)
        if outage_since is not None:
            await self._notices.notice(
                uow,
                NoticeTemplate.ALERTS_PIPELINE_RECOVERED,
                {"since": outage_since.isoformat(), "now": now.isoformat()},
            )
