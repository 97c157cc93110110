"""Composition root: settings -> database -> services -> bot, web server, scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import discord
import yarl
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Settings
from bot.discord.client import OpsBot
from bot.discord.outbound.notices import DiscordDelivery, NoticeDelivery
from bot.discord.outbound.roles import DiscordMemberRoles
from bot.domain.clock import SystemClock
from bot.domain.errors import DomainError
from bot.domain.outbox import DISCORD_MESSAGE, EMAIL, OutboxItem, RetryLater
from bot.domain.permissions import PERMISSIONS
from bot.domain.ports import Clock
from bot.domain.roles import Actor, OpsRole
from bot.integrations.alertmanager import AlertmanagerClient
from bot.integrations.github import GitHubIssues, GitHubReleases
from bot.integrations.probes import ProbeRunner, static_targets
from bot.integrations.releases import HttpManifestFetcher
from bot.integrations.smtp import SmtpMailer
from bot.metrics import Metrics
from bot.scheduling import Job, RunningJobs, build_scheduler
from bot.services.alerts import ALERTS_DELIVER, AlertPolicy, AlertService
from bot.services.audit import AuditKeyError
from bot.services.container import Services
from bot.services.health import HealthService
from bot.services.incidents import CARD_REFRESH
from bot.services.notices import DIRECT, NOTICE, ROLE_REMOVE
from bot.services.outbox import DISCORD_LANE, OutboxHandler
from bot.storage.audit_head import ChainOptions, chain_options
from bot.storage.database import Database
from bot.storage.spool import SpoolError, SpoolReader
from bot.web.app import HealthSources, WebServer, create_app
from cogs import EXTENSIONS
from cogs.alerts.delivery import AlertDelivery, ChannelPacer

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0
LOGIN_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Seconds between Discord login attempts while Discord or the network fails (the last repeats)."""
DISCORD_KINDS = (DISCORD_MESSAGE, NOTICE, DIRECT, ROLE_REMOVE, CARD_REFRESH, ALERTS_DELIVER)


class StartupError(Exception):
    """Start-up cannot go on; the message is one safe line for the operator."""


def point_discord_at(api_base: str, gateway_url: str | None) -> None:
    """Redirect discord.py (REST proxies, the test emulator). Must run before `start()`."""
    discord.http.Route.BASE = api_base
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class Gateway:
    """Logs the bot in, retrying with backoff while Discord answers 5xx or the network fails,
    then stays connected (discord.py reconnects by itself). Nothing else waits for it: the web
    server, the scheduler and the outbox (email included) run from the start.

    A refused token or a missing privileged intent ends the process with one line: those are
    configuration errors that no retry mends."""

    def __init__(self, bot: OpsBot, token: str, backoff: tuple[float, ...] = LOGIN_BACKOFF) -> None:
        self._bot = bot
        self._token = token
        self._backoff = backoff
        self.state = "starting"
        self.failed_logins = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.state = "logging in"
            try:
                await self._bot.login(self._token)
                break
            except (discord.LoginFailure, discord.PrivilegedIntentsRequired):
                self.state = "refused"
                raise
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                await self._reset_http()
                delay = self._backoff[min(self.failed_logins, len(self._backoff) - 1)]
                self.failed_logins += 1
                reason = (
                    f"HTTP {exc.status}"
                    if isinstance(exc, discord.HTTPException)
                    else type(exc).__name__
                )
                self.state = f"login failing ({reason}); retrying"
                log.warning(
                    "Discord login failed (%s); retrying in %gs. Webhooks, alerts by email and "
                    "scheduled jobs go on meanwhile",
                    reason,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return
        self.state = "connecting"
        await self._bot.connect(reconnect=True)

    async def _reset_http(self) -> None:
        """A failed login leaves discord.py's HTTP session open: close it, so the next attempt
        starts clean (static_login opens a new one each time)."""
        with contextlib.suppress(Exception):
            await self._bot.http.close()
        self._bot.http.connector = discord.utils.MISSING
        self._bot.http.clear()


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
        spool_retention=settings.alertmanager.spool_retention
        if settings.alertmanager
        else AlertPolicy.spool_retention,
        storm_threshold=max(
            int(alerts.channel_rate_limit * alerts.storm_horizon / alerts.channel_rate_period), 1
        ),
        digest_max_groups=alerts.digest_max_groups,
    )


def audit_chain_options(settings: Settings) -> ChainOptions:
    key = settings.audit.hmac_key
    return chain_options(
        settings.database.url.get_secret_value(),
        settings.audit.head_file,
        key.get_secret_value() if key else None,
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
        clock: Clock | None = None,
        login_backoff: tuple[float, ...] = LOGIN_BACKOFF,
    ) -> None:
        self.settings = settings
        self.login_backoff = login_backoff
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.database = Database.from_url(
            settings.database.url.get_secret_value(),
            echo=settings.database.echo,
            audit=audit_chain_options(settings),
        )
        self.roles = DiscordMemberRoles(
            settings.discord.guild_id,
            {role: getattr(settings.roles, role.value) for role in OpsRole},
        )
        health = settings.health
        self.prober = ProbeRunner.from_settings(self.clock, health, settings.prometheus)
        self.health = HealthService(
            self.database.uow,
            self.clock,
            self.prober,
            static_targets(health, settings.prometheus),
            share_stale_after=health.share_stale_after,
            status_cooldown=health.status_cooldown,
            allow_loopback=health.allow_loopback,
        )
        self.services = Services.build(
            self.database.uow,
            self.clock,
            access_settings=settings.access,
            roles=self.roles,
            owner_ids=frozenset(settings.discord.owner_ids),
            permissions=dict(permissions),
            incident_settings=settings.incidents,
            tracker=GitHubIssues(settings.github, self.clock)
            if settings.github.configured
            else None,
            observer=self.metrics,
            guild_id=settings.discord.guild_id,
            outbox_max_backoff=settings.outbox.max_backoff,
            outbox_idle_poll=settings.outbox.idle_poll,
            upgrade_settings=settings.upgrades,
            fetcher=HttpManifestFetcher(
                timeout=settings.upgrades.fetch_timeout, allow_loopback=health.allow_loopback
            ),
            check_nodes=self.health.check,
            release_source=GitHubReleases(
                settings.github, settings.upgrades.github_repo, self.clock
            )
            if settings.upgrades.github_repo
            else None,
        )
        self.outbox = self.services.outbox
        self.reminders = self.services.reminders
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
            observer=self.metrics,
        )
        self.running_jobs = RunningJobs()
        self.scheduler = build_scheduler(
            [
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
                Job("health-poll", self.poll_health, IntervalTrigger(seconds=health.poll_interval)),
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
            ],
            self.running_jobs,
        )
        self.bot = OpsBot(
            settings,
            database=self.database,
            metrics=self.metrics,
            services=self.services,
            health=self.health,
            alerts=self.alerts,
            extensions=extensions,
        )
        self.roles.bind(self.bot)
        self._gateway_stop = asyncio.Event()
        self.gateway: Gateway | None = None
        self.delivery = DiscordDelivery(self.bot)
        self.notice_delivery = NoticeDelivery(self.bot)
        self._register_discord(DISCORD_MESSAGE, self.delivery.send_message)
        self._register_discord(NOTICE, self.notice_delivery.notice)
        self._register_discord(DIRECT, self.notice_delivery.direct)
        self._register_discord(ROLE_REMOVE, self.roles.remove_item)
        self.incident_cards = self.bot.cards
        self._register_discord(CARD_REFRESH, self.incident_cards.refresh)
        self.alert_delivery = AlertDelivery(
            self.bot,
            self.alerts,
            ChannelPacer(settings.alerts.channel_rate_limit, settings.alerts.channel_rate_period),
            horizon=settings.alerts.storm_horizon,
        )
        self._register_discord(ALERTS_DELIVER, self.alert_delivery.deliver)
        self.mailer = SmtpMailer(settings.smtp) if settings.smtp else None
        if self.mailer is not None:
            self.outbox.register(EMAIL, self.mailer.send_item)
        self._outbox_stop = asyncio.Event()
        self._outbox_task: asyncio.Task[None] | None = None
        self._processor_stop = asyncio.Event()
        self._processor_task: asyncio.Task[None] | None = None
        self._bot_task: asyncio.Task[None] | None = None
        self._first_poll: asyncio.Task[None] | None = None
        self._stopped = False
        self.spool: SpoolReader | None = None
        self.metrics.track_gateway(lambda: self.bot.latency, self.discord_ready)
        self.web = WebServer(
            create_app(
                self.metrics,
                HealthSources(
                    self.discord_ready,
                    self.database.ping,
                    discord_state=self.discord_state,
                ),
                alertmanager_token=am.webhook_token.get_secret_value() if am else None,
                ingest=self.alerts.receive if am else None,
            ),
            settings.web.host,
            settings.web.port,
        )

    def _register_discord(self, kind: str, handler: OutboxHandler) -> None:
        """Discord work waits (the kind is held, nothing is lost) until a login has reached
        Discord and loaded the cogs: a bot that cannot log in still sends its email."""

        async def when_logged_in(item: OutboxItem) -> Mapping[str, Any] | None:
            if not self.bot.logged_in:
                raise RetryLater("Discord not logged in yet", retry_after=1.0, whole_kind=True)
            return await handler(item)

        # Discord's kinds share a lane of their own: a rate-limited or hung Discord holds none
        # of the outbox's other slots (emails, GitHub writes).
        self.outbox.register(kind, when_logged_in, lane=DISCORD_LANE)

    def discord_state(self) -> str:
        """What /healthz says of Discord: ready, or where the gateway is."""
        if self.discord_ready():
            return "ready"
        return self.gateway.state if self.gateway is not None else "not started"

    def discord_ready(self) -> bool:
        return self.bot.is_ready() and not self.bot.is_closed()

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
        if await self.reminders.fire_due():
            self.outbox.wake()

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

    async def _open_left_spool(self) -> None:
        """A spool file left by an older version's webhook receiver process (retired) is read,
        so the bodies it accepted are applied once; nothing writes to it any more."""
        am = self.settings.alertmanager
        if am is None or not Path(am.spool_path).exists():  # noqa: ASYNC240
            return
        try:
            self.spool = SpoolReader(am.spool_path)
        except SpoolError as exc:
            raise StartupError(f"{exc}: check [alertmanager] spool_path") from None
        self.alerts.spool = self.spool
        log.info(
            "reading the spool %s left by the retired webhook receiver: its bodies are applied",
            am.spool_path,
        )

    async def start(self) -> None:
        """Web server first (so /healthz can say what is wrong), then the gateway in a task."""
        point_discord_at(self.settings.discord.api_base, self.settings.discord.gateway_url)
        await self.check_database()
        await self._prepare_audit_chain()
        try:
            await self.web.start()
        except OSError as exc:
            await self.database.close()
            raise StartupError(
                f"web server cannot listen on {self.settings.web.host}:{self.settings.web.port}"
                f" ({exc.strerror}): change [web] port"
            ) from None
        try:
            await self._open_left_spool()
        except StartupError:
            await self.web.stop()
            await self.database.close()
            raise
        # Jobs (the watchdog, email fallbacks, sweeps) run whether or not Discord lets us in.
        self.scheduler.start()
        # Pending work from before a restart is delivered as soon as REST answers.
        self._outbox_task = asyncio.create_task(self.outbox.run(self._outbox_stop), name="outbox")
        # Webhook bodies stored but not applied before a restart are applied first.
        self._processor_task = asyncio.create_task(
            self.alerts.run_processor(self._processor_stop), name="alerts-processor"
        )
        # /status has figures from the start, not only after the first 30 s interval.
        self._first_poll = asyncio.create_task(self._poll_quietly(), name="first health poll")
        token = self.settings.discord.token
        assert token is not None  # validated by config
        self.gateway = Gateway(self.bot, token.get_secret_value(), self.login_backoff)
        self._bot_task = asyncio.create_task(self.gateway.run(self._gateway_stop), name="discord")
        # What start-up allocated (modules, config, compiled statements) lives as long as the
        # process: out of the collector's sight, so a full collection in a storm stays short.
        gc.collect()
        gc.freeze()

    async def _prepare_audit_chain(self) -> None:
        """The head file checked against the log (and moved to its head), then the chain's key:
        a keyed chain without its key, or with another, stops the start (nothing appended)."""
        try:
            await self.database.reconcile_audit_head()
            async with self.database.uow() as uow:
                if await self.services.audit.key_chain(uow):
                    log.info("audit chain keyed with [audit] hmac_key_file from this row on")
        except AuditKeyError as exc:
            await self.database.close()
            raise StartupError(exc.user_message) from None
        except Exception as exc:
            log.error(
                "could not check the audit chain at start (%s); `hh-opsbot audit verify` does",
                type(exc).__name__,
            )

    async def _poll_quietly(self) -> None:
        try:
            await self.poll_health()
        except Exception:
            log.exception("the first health poll failed")

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

    async def _stop_processor(self) -> None:
        """No webhook arrives any more: apply what was stored, so its outbox work goes out
        while the gateway is still open (what is left waits for the next start)."""
        self._processor_stop.set()
        try:
            if self._processor_task is not None:
                await asyncio.wait_for(self._processor_task, SHUTDOWN_TIMEOUT)
            await asyncio.wait_for(self._apply_stored(), SHUTDOWN_TIMEOUT)
        except Exception:
            log.exception("applying the last stored webhooks failed; they wait for the next start")

    async def _apply_stored(self) -> None:
        while await self.alerts.process_pending():
            pass

    async def shutdown(self) -> None:
        """Scheduler, web server, gateway, database: each bounded, none able to block the rest."""
        if self._stopped:
            return
        self._stopped = True
        self._gateway_stop.set()  # a login still being retried gives up
        if self.scheduler.running:
            self.scheduler.pause()  # no new runs; those running finish (bounded) first
            still = await self.running_jobs.wait(SHUTDOWN_TIMEOUT)
            if still:
                log.warning("%d scheduled jobs still running at shutdown", still)
            self.scheduler.shutdown(wait=False)
        if self._first_poll is not None and not self._first_poll.done():
            # Let it finish (it is bounded by the probe budget): a query cancelled mid-way
            # leaves a connection for the garbage collector, which logs a traceback.
            try:
                await asyncio.wait_for(self._first_poll, SHUTDOWN_TIMEOUT)
            except Exception:
                log.exception("the first health poll did not finish")
        try:
            await self.web.stop()
        except Exception:
            log.exception("stopping the web server failed")
        await self._stop_processor()
        # Commands and buttons being handled finish (and are audited) while REST still works.
        unfinished = await self.bot.drain(SHUTDOWN_TIMEOUT)
        if unfinished:
            log.warning("%d interactions still running at shutdown", unfinished)
        self._outbox_stop.set()
        if self._outbox_task is not None:
            try:
                await asyncio.wait_for(self._outbox_task, SHUTDOWN_TIMEOUT)
            except Exception:
                log.exception("stopping the outbox worker failed")
        try:
            await asyncio.wait_for(self.bot.close(), SHUTDOWN_TIMEOUT)
        except Exception:
            log.exception("closing the gateway failed")
        if self._bot_task is not None and not self._bot_task.done():
            self._bot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._bot_task
        await self.prober.close()
        if self.silences is not None:
            await self.silences.close()
        if self.spool is not None:
            self.spool.close()
        await self.database.close()
        log.info("stopped")
