"""The scheduled jobs: what runs when (the table), and each job's body, a call into services.

Every job is idempotent (a run that repeats changes nothing the second time) and never raises
into the scheduler: a failure is one log line and the next run retries.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.app.services import Services
from bot.config import Settings
from bot.domain.errors import DomainError
from bot.domain.roles import Actor
from bot.metrics import Metrics
from bot.scheduling import Job
from bot.services.alerts import AlertService
from bot.services.health import HealthService
from bot.storage.database import Database

log = logging.getLogger(__name__)


class Jobs:
    """The bodies of the scheduled jobs (tests call them directly instead of waiting)."""

    def __init__(
        self,
        *,
        database: Database,
        metrics: Metrics,
        services: Services,
        health: HealthService,
        alerts: AlertService,
    ) -> None:
        self.database = database
        self.metrics = metrics
        self.services = services
        self.health = health
        self.alerts = alerts

    def table(self, settings: Settings) -> list[Job]:
        """What runs when."""
        return [
            Job("database-health", self.check_database, IntervalTrigger(seconds=30)),
            Job("database-checkpoint", self.checkpoint_database, IntervalTrigger(seconds=2)),
            Job("reminders", self.fire_reminders, IntervalTrigger(seconds=30)),
            Job("access-sweep", self.access_sweep, IntervalTrigger(seconds=60)),
            Job(
                "access-review",
                self.start_review,
                CronTrigger.from_crontab(settings.access.review_cron, timezone="UTC"),
            ),
            # Probes feed /status (its cache), uptime and charts.
            Job(
                "health-poll",
                self.poll_health,
                IntervalTrigger(seconds=settings.health.poll_interval),
            ),
            # Raw samples -> per-minute aggregates; 48 h / 90 d retention.
            Job("health-rollup", self.health.maintain_job, IntervalTrigger(minutes=1)),
            Job(
                "alerts",
                self.check_alerts,
                IntervalTrigger(seconds=settings.alerts.check_interval),
            ),
            # Signed releases published on GitHub ([upgrades] github_repo), hourly.
            Job(
                "release-poll",
                self.poll_releases,
                IntervalTrigger(minutes=settings.upgrades.poll_minutes),
            ),
        ]

    async def checkpoint_database(self) -> None:
        try:
            await self.database.checkpoint()
        except Exception as exc:
            log.warning("SQLite checkpoint failed (%s); retried shortly", type(exc).__name__)

    async def check_database(self) -> None:
        try:
            latency = await self.database.ping()
        except Exception as exc:
            self.metrics.database_up.set(0)
            log.warning("database did not answer the health check (%s)", type(exc).__name__)
        else:
            self.metrics.database_up.set(1)
            self.metrics.database_latency.set(latency)

    async def poll_health(self) -> None:
        start = time.perf_counter()
        try:
            self.health.set_notice(await self.services.incidents.public_notice())
        except Exception:
            log.exception("could not read the public incident notice for /status")
        view = await self.health.poll()
        try:
            await self.health.refresh_board()
        except Exception:
            log.exception("could not refresh the #miners status board")
        states = Counter(verdict.state.value for verdict in view.verdicts)
        self.metrics.record_health_poll(states, time.perf_counter() - start)

    async def poll_releases(self) -> None:
        """Announce each new signed release of `[upgrades] github_repo` once (no repo: no-op)."""
        try:
            count = await self.services.upgrades.poll_releases()
        except Exception as exc:
            log.warning("release poll failed (%s); next poll retries", type(exc).__name__)
            return
        if count:
            log.info("release poll announced %d release(s)", count)

    async def fire_reminders(self) -> None:
        if await self.services.reminders.fire_due():
            self.services.outbox.wake()

    async def access_sweep(self) -> None:
        """Expired grants, lapsed approval requests, overdue reviews; also run at start."""
        await self.services.grants.sweep()
        await self.services.reviews.close_overdue()

    async def start_review(self) -> None:
        try:
            await self.services.reviews.start(Actor.system("scheduler"))
        except DomainError as exc:
            log.info("scheduled access review not started: %s", exc.user_message)

    async def check_alerts(self) -> None:
        """Email fallbacks that came due, the dead man's switch, the inbox's backlog, and the
        receiver's spool kept short."""
        await self.fire_reminders()
        await self.alerts.check_watchdog()
        self.metrics.alert_backlog.set(await self.alerts.backlog())
        try:
            await self.alerts.prune_spool()
        except Exception as exc:
            log.warning(
                "could not prune the alert spool (%s); next check retries", type(exc).__name__
            )
