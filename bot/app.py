"""Composition root: settings -> database -> services -> bot, web server, scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping

import discord
import yarl
from apscheduler.triggers.interval import IntervalTrigger

from bot.client import OpsBot
from bot.config import Settings
from bot.delivery import DISCORD_MESSAGE, DiscordDelivery
from bot.domain.clock import SystemClock
from bot.domain.outbox import EMAIL
from bot.domain.permissions import PERMISSIONS
from bot.domain.roles import OpsRole
from bot.integrations.alertmanager import AlertmanagerClient
from bot.integrations.smtp import SmtpMailer
from bot.metrics import Metrics
from bot.scheduling import Job, build_scheduler
from bot.services.access import AccessService
from bot.services.alerts import ALERTS_DELIVER, AlertPolicy, AlertService
from bot.services.audit import AuditService
from bot.services.outbox import OutboxService, ReminderService
from bot.storage.database import Database
from bot.web.app import HealthSources, WebServer, create_app
from cogs import EXTENSIONS
from cogs.alerts.delivery import AlertDelivery, ChannelPacer

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0


class StartupError(Exception):
    """Start-up cannot go on; the message is one safe line for the operator."""


def point_discord_at(api_base: str, gateway_url: str | None) -> None:
    """Redirect discord.py (REST proxies, the test emulator). Must run before `start()`."""
    discord.http.Route.BASE = api_base
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def alert_policy(settings: Settings) -> AlertPolicy:
    alerts = settings.alerts
    return AlertPolicy(
        alerts_channel_id=settings.channels.alerts,
        operations_channel_id=settings.channels.operations,
        mention_roles={k: tuple(v) for k, v in alerts.mention_roles.items()},
        email_to=tuple(settings.smtp.to) if settings.smtp else (),
        email_fallback_after=alerts.email_fallback_after,
        watchdog_alertname=alerts.watchdog_alertname,
        watchdog_timeout=alerts.watchdog_timeout,
        batch_wait=alerts.batch_wait,
        storm_threshold=max(
            int(alerts.channel_rate_limit * alerts.storm_horizon / alerts.channel_rate_period), 1
        ),
        digest_max_groups=alerts.digest_max_groups,
    )


class Application:
    """Everything the process runs, wired once, started and stopped in order."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        extensions: tuple[str, ...] = EXTENSIONS,
        permissions: Mapping[str, frozenset[OpsRole] | None] = PERMISSIONS,
    ) -> None:
        self.settings = settings
        self.clock = SystemClock()
        self.metrics = metrics or Metrics()
        self.database = Database.from_url(
            settings.database.url.get_secret_value(), echo=settings.database.echo
        )
        self.outbox = OutboxService(
            self.database.uow,
            self.clock,
            max_backoff=settings.outbox.max_backoff,
            idle_poll=settings.outbox.idle_poll,
        )
        self.reminders = ReminderService(self.database.uow, self.clock)
        am = settings.alertmanager
        self.silences = (
            AlertmanagerClient(am.api_url, timeout=am.api_timeout) if am and am.api_url else None
        )
        self.alerts = AlertService(
            self.database.uow,
            self.clock,
            self.outbox,
            self.reminders,
            alert_policy(settings),
            silences=self.silences,
            ingest_uow_factory=self.database.priority_uow,
        )
        self.scheduler = build_scheduler(
            [
                Job("database-health", self.check_database, IntervalTrigger(seconds=30)),
                Job("reminders", self.fire_reminders, IntervalTrigger(seconds=30)),
                Job(
                    "alerts",
                    self.check_alerts,
                    IntervalTrigger(seconds=settings.alerts.check_interval),
                ),
            ]
        )
        self.bot = OpsBot(
            settings,
            database=self.database,
            metrics=self.metrics,
            access=AccessService(permissions),
            audit=AuditService(self.clock),
            scheduler=self.scheduler,
            outbox=self.outbox,
            reminders=self.reminders,
            alerts=self.alerts,
            extensions=extensions,
        )
        self.delivery = DiscordDelivery(self.bot)
        self.outbox.register(DISCORD_MESSAGE, self.delivery.send_message)
        self.alert_delivery = AlertDelivery(
            self.bot,
            self.alerts,
            ChannelPacer(settings.alerts.channel_rate_limit, settings.alerts.channel_rate_period),
            horizon=settings.alerts.storm_horizon,
        )
        self.outbox.register(ALERTS_DELIVER, self.alert_delivery.deliver)
        self.mailer = SmtpMailer(settings.smtp) if settings.smtp else None
        if self.mailer is not None:
            self.outbox.register(EMAIL, self.mailer.send_item)
        self._outbox_stop = asyncio.Event()
        self._outbox_task: asyncio.Task[None] | None = None
        self._bot_task: asyncio.Task[None] | None = None
        self._stopped = False
        self.metrics.track_gateway(lambda: self.bot.latency, self.discord_ready)
        self.web = WebServer(
            create_app(
                self.metrics,
                HealthSources(self.discord_ready, self.database.ping),
                alertmanager_token=am.webhook_token.get_secret_value() if am else None,
                ingest=self.alerts.ingest if am else None,
            ),
            settings.web.host,
            settings.web.port,
        )

    def discord_ready(self) -> bool:
        return self.bot.is_ready() and not self.bot.is_closed()

    async def check_database(self) -> None:
        try:
            latency = await self.database.ping()
        except Exception as exc:
            self.metrics.database_up.set(0)
            log.warning("database did not answer the health check (%s)", type(exc).__name__)
        else:
            self.metrics.database_up.set(1)
            self.metrics.database_latency.set(latency)

    async def fire_reminders(self) -> None:
        if await self.reminders.fire_due():
            self.outbox.wake()

    async def check_alerts(self) -> None:
        """Email fallbacks that came due, and the dead man's switch."""
        await self.fire_reminders()
        await self.alerts.check_watchdog()

    async def start(self) -> None:
        """Web server first (so /healthz can say what is wrong), then the gateway in a task."""
        point_discord_at(self.settings.discord.api_base, self.settings.discord.gateway_url)
        await self.check_database()
        try:
            await self.web.start()
        except OSError as exc:
            await self.database.close()
            raise StartupError(
                f"web server cannot listen on {self.settings.web.host}:{self.settings.web.port}"
                f" ({exc.strerror}): change [web] port"
            ) from None
        token = self.settings.discord.token
        assert token is not None  # validated by config
        self._bot_task = asyncio.create_task(
            self.bot.start(token.get_secret_value()), name="discord"
        )
        # Pending work from before a restart is delivered as soon as REST answers.
        self._outbox_task = asyncio.create_task(self.outbox.run(self._outbox_stop), name="outbox")

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT or until the gateway gives up; then stop everything in order."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            assert self._bot_task is not None
            stop_task = asyncio.create_task(stop.wait(), name="signals")
            await asyncio.wait({self._bot_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            if stop.is_set():
                log.info("signal received: shutting down")
            await self.shutdown()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        self._raise_gateway_failure()

    def _raise_gateway_failure(self) -> None:
        task = self._bot_task
        failure = task.exception() if task and task.done() and not task.cancelled() else None
        if failure is None:
            return
        if isinstance(failure, discord.LoginFailure):
            raise StartupError(
                "Discord refused the bot token: check HH_DISCORD__TOKEN (discord.token)"
            ) from None
        if isinstance(failure, discord.PrivilegedIntentsRequired):
            raise StartupError(
                "Discord refused the members intent: enable 'Server Members Intent' for the "
                "bot in the Developer Portal"
            ) from None
        raise failure

    async def shutdown(self) -> None:
        """Scheduler, web server, gateway, database: each bounded, none able to block the rest."""
        if self._stopped:
            return
        self._stopped = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._outbox_stop.set()
        if self._outbox_task is not None:
            try:
                await asyncio.wait_for(self._outbox_task, SHUTDOWN_TIMEOUT)
            except Exception:
                log.exception("stopping the outbox worker failed")
        steps = (("web server", self.web.stop), ("gateway", self.bot.close))
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), SHUTDOWN_TIMEOUT)
            except Exception:
                log.exception("stopping the %s failed", name)
        if self._bot_task is not None and not self._bot_task.done():
            self._bot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._bot_task
        if self.silences is not None:
            await self.silences.close()
        await self.database.close()
        log.info("stopped")
