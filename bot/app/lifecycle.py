"""How the process starts and stops: the web server, the scheduler and every non-Discord
delivery first and independently of the gateway; on SIGTERM each part stopped in order, each
step bounded so none can block the rest."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from pathlib import Path

import discord
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app.gateway import Gateway, point_discord_at
from bot.app.jobs import Jobs
from bot.app.services import Services
from bot.config import Settings
from bot.discord.client import OpsBot
from bot.integrations.alertmanager import AlertmanagerClient
from bot.integrations.probes import ProbeRunner
from bot.scheduling import RunningJobs
from bot.services.alerts import AlertService
from bot.services.audit import AuditKeyError
from bot.services.outbox import OutboxService
from bot.storage.database import Database
from bot.storage.spool import SpoolError, SpoolReader
from bot.web.app import WebServer

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0


class StartupError(Exception):
    """Start-up cannot go on; the message is one safe line for the operator."""


class Lifecycle:
    """Start, run and stop of the parts `Application` (bot/app/compose.py) wires."""

    settings: Settings
    database: Database
    services: Services
    outbox: OutboxService
    alerts: AlertService
    jobs: Jobs
    running_jobs: RunningJobs
    scheduler: AsyncIOScheduler
    prober: ProbeRunner
    silences: AlertmanagerClient | None
    bot: OpsBot
    web: WebServer
    gateway: Gateway | None
    spool: SpoolReader | None
    login_backoff: tuple[float, ...]
    _gateway_stop: asyncio.Event
    _outbox_stop: asyncio.Event
    _outbox_task: asyncio.Task[None] | None
    _processor_stop: asyncio.Event
    _processor_task: asyncio.Task[None] | None
    _bot_task: asyncio.Task[None] | None
    _catch_up_task: asyncio.Task[None] | None
    _stopped: bool

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
        await self.jobs.check_database()
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
        # What came due while the process was down (expired grants, overdue reviews), and
        # /status figures from the start, not only after the first intervals.
        self._catch_up_task = asyncio.create_task(self._catch_up(), name="start-up catch-up")
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

    async def _catch_up(self) -> None:
        """The start-up runs of the access sweep and the health poll (each once, here only)."""
        try:
            await self.jobs.access_sweep()
        except Exception:
            log.exception("the start-up access sweep failed; the scheduled one retries")
        try:
            await self.jobs.poll_health()
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
        if self._catch_up_task is not None and not self._catch_up_task.done():
            # Let it finish (it is bounded by the probe budget): a query cancelled mid-way
            # leaves a connection for the garbage collector, which logs a traceback.
            try:
                await asyncio.wait_for(self._catch_up_task, SHUTDOWN_TIMEOUT)
            except Exception:
                log.exception("the start-up catch-up did not finish")
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
