"""The webhook receiver process: `[alertmanager] receiver = "process"`.

Alertmanager's webhook is answered by a small process of its own: it authorises, validates and
commits each body to its spool (bot/storage/spool.py), a SQLite file no other process writes,
then answers. The bot copies the spool into its database and does everything else. Why: on the
2 shared cores this was measured on, a webhook answered inside the bot waits whenever the bot's
event loop is busy posting a storm; in a process that does nothing else, it waits for nothing
(docs/benchmarks.md).

Same answers as the bot's own `POST /webhooks/alertmanager` (the same handler), except that
"accepted" means "in the spool" and carries no notification id. `GET /healthz` says whether
the spool takes writes, `GET /metrics` the receiver's own request figures.

`hh-opsbot run` starts it as a child (`ReceiverProcess`), restarts it if it dies and stops it
on the way out; `hh-opsbot receive` runs it alone, under a supervisor of your own.
The child reads its options as one JSON line on stdin (the token never shows in `ps`), says
`ready <port>` on stdout once it listens, and exits when stdin closes (its parent is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import SecretStr

from bot import __version__
from bot.domain.alerts import IngestOutcome, IngestResult, WebhookPayload
from bot.domain.clock import SystemClock
from bot.metrics import Metrics
from bot.services.inbox import watchdog_fired
from bot.storage import spool as spool_file
from bot.web import alertmanager
from bot.web.app import METRICS_KEY, WebServer, json_response, metrics_endpoint, metrics_middleware

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 2.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
STEADY = 60.0
"""A child that ran this long (seconds) before it died starts again after the shortest wait."""


@dataclass(frozen=True)
class ReceiverOptions:
    token: SecretStr
    host: str
    port: int
    spool_path: str
    watchdog_alertname: str = "Watchdog"
    log_level: str = "INFO"
    log_format: str = "text"

    @classmethod
    def from_settings(cls, settings: Settings) -> ReceiverOptions:
        """From `[alertmanager]` (which must be configured), `[alerts]` and `[logging]`."""
        am = settings.alertmanager
        assert am is not None
        return cls(
            token=am.webhook_token,
            host=am.receiver_host,
            port=am.receiver_port,
            spool_path=am.spool_path,
            watchdog_alertname=settings.alerts.watchdog_alertname,
            log_level=settings.logging.level,
            log_format=settings.logging.format,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "token": self.token.get_secret_value(),
                "host": self.host,
                "port": self.port,
                "spool_path": self.spool_path,
                "watchdog_alertname": self.watchdog_alertname,
                "log_level": self.log_level,
                "log_format": self.log_format,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ReceiverOptions:
        data: dict[str, Any] = json.loads(text)
        return cls(
            token=SecretStr(str(data["token"])),
            host=str(data["host"]),
            port=int(data["port"]),
            spool_path=str(data["spool_path"]),
            watchdog_alertname=str(data.get("watchdog_alertname", "Watchdog")),
            log_level=str(data.get("log_level", "INFO")),
            log_format=str(data.get("log_format", "text")),
        )


class SpoolIngest:
    """The webhook's store in the receiver: one short sqlite3 transaction per body.

    Synchronous on purpose: a commit on a file nobody else writes takes tens of microseconds
    (no fsync: WAL with synchronous=NORMAL, as the bot's database), less than handing it to a
    thread would."""

    def __init__(self, writer: spool_file.SpoolWriter, watchdog_alertname: str) -> None:
        self._writer = writer
        self._watchdog = watchdog_alertname
        self._clock = SystemClock()

    async def __call__(self, payload: WebhookPayload, raw: str) -> IngestResult:
        (spooled,) = self._writer.write(
            [spool_file.spool_row(payload, raw)],
            self._clock.now(),
            watchdog=watchdog_fired([payload], self._watchdog),
        )
        outcome: IngestOutcome = "accepted" if spooled.spool_id is not None else "duplicate"
        return IngestResult(outcome, dedupe_key=spooled.dedupe_key)


SPOOL_KEY = web.AppKey("spool_writer", spool_file.SpoolWriter)


async def healthz(request: web.Request) -> web.Response:
    writer = request.app[SPOOL_KEY]
    try:
        writer.ping()
    except Exception as exc:
        log.warning("receiver health check: the spool did not answer (%s)", type(exc).__name__)
        return json_response(
            {"status": "fail", "spool": "unreachable", "version": __version__}, status=503
        )
    return json_response({"status": "ok", "spool": "ok", "version": __version__})


def create_receiver_app(
    options: ReceiverOptions, writer: spool_file.SpoolWriter, metrics: Metrics
) -> web.Application:
    app = web.Application(middlewares=[metrics_middleware], client_max_size=alertmanager.MAX_BODY)
    app[METRICS_KEY] = metrics
    app[SPOOL_KEY] = writer
    app[alertmanager.WEBHOOK_KEY] = alertmanager.AlertmanagerWebhook(
        options.token.get_secret_value().encode(),
        SpoolIngest(writer, options.watchdog_alertname),
        metrics,
    )
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/metrics", metrics_endpoint)
    alertmanager.add_routes(app)
    return app


async def _checkpoints(path: str, stop: asyncio.Event) -> None:
    """The spool's WAL copied into the file every few seconds, in a thread: the fsync never
    lands inside a webhook's answer."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECKPOINT_EVERY)
        try:
            await asyncio.to_thread(spool_file.checkpoint, path)
        except Exception as exc:
            log.warning("spool checkpoint failed (%s); retried shortly", type(exc).__name__)


async def serve(
    options: ReceiverOptions,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[int | None], None] | None = None,
) -> None:
    """Listen until `stop`; `on_ready(port)` once listening. Raises `spool.SpoolError` or
    OSError (cannot listen) before that."""
    writer = spool_file.SpoolWriter(options.spool_path)
    server = WebServer(create_receiver_app(options, writer, Metrics()), options.host, options.port)
    checkpoints: asyncio.Task[None] | None = None
    try:
        await server.start()
        if on_ready is not None:
            on_ready(server.port)
        checkpoints = asyncio.create_task(_checkpoints(options.spool_path, stop))
        await stop.wait()
    finally:
        await server.stop()  # answers the requests already read first
        if checkpoints is not None:
            checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checkpoints
        writer.close()


async def _child_main(options: ReceiverOptions) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # stdin closes when the parent dies, however it dies: no orphan keeps the port.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def parent_gone() -> None:
        while await reader.read(4096):
            pass
        stop.set()

    watcher = asyncio.create_task(parent_gone())

    def ready(port: int | None) -> None:
        print(f"ready {port}", flush=True)

    try:
        await serve(options, stop, on_ready=ready)
    except spool_file.SpoolError as exc:
        print(f"error {exc}", flush=True)
        return 1
    except OSError as exc:
        print(f"error cannot listen on {options.host}:{options.port} ({exc.strerror})", flush=True)
        return 1
    finally:
        watcher.cancel()
    return 0


def child_main() -> int:
    """`python -m bot.receiver`: options as one JSON line on stdin."""
    from bot.logs import configure_logging

    line = sys.stdin.readline()
    try:
        options = ReceiverOptions.from_json(line)
    except (ValueError, KeyError) as exc:
        print(f"error bad receiver options ({type(exc).__name__})", flush=True)
        return 2
    configure_logging(options.log_level, options.log_format, [options.token.get_secret_value()])
    return asyncio.run(_child_main(options))


class ReceiverError(Exception):
    """The receiver could not start; the message is one safe line for the operator."""


class ReceiverProcess:
    """The receiver as a child of the bot: started, watched, restarted, stopped."""

    def __init__(
        self, options: ReceiverOptions, *, backoff: tuple[float, ...] = RESTART_BACKOFF
    ) -> None:
        self.options = options
        self.port: int | None = None
        self.restarts = 0
        self.failures = 0
        """Crashes and failed starts in a row; reset by a child that ran `STEADY` seconds."""
        self._backoff = backoff
        self._proc: asyncio.subprocess.Process | None = None
        self._started_at = 0.0
        self._stopping = False

    async def start(self) -> int:
        """Start the child; return its port once it listens, or raise `ReceiverError`."""
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.receiver",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # It reads no configuration: the bot's HH_* variables (secrets among them) stay
                # with the bot; its one secret comes on stdin.
                env={k: v for k, v in os.environ.items() if not k.startswith("HH_")},
                # Its own session: a Ctrl-C in the terminal reaches the bot alone, which then
                # stops the receiver in order. Its parent's death still ends it (stdin closes).
                start_new_session=True,
            )
        except OSError as exc:
            raise ReceiverError(
                f"the alert receiver could not be started ({exc.strerror})"
            ) from None
        try:
            port = await self._handshake(proc)
        except BaseException:
            await self._kill(proc)  # never leave a half-started child behind (a cancel too)
            raise
        self._proc = proc
        self._started_at = time.monotonic()
        self.port = port
        log.info(
            "alert receiver (pid %s) listening on http://%s:%s", proc.pid, self.options.host, port
        )
        return port

    async def _handshake(self, proc: asyncio.subprocess.Process) -> int:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(self.options.to_json().encode() + b"\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            raise ReceiverError(
                f"the alert receiver did not start within {START_TIMEOUT:.0f} s"
            ) from None
        except (BrokenPipeError, ConnectionResetError):
            raise ReceiverError("the alert receiver did not start: it exited") from None
        text = line.decode(errors="replace").strip()
        if not text.startswith("ready "):
            reason = text.removeprefix("error ").strip() or "it exited"
            raise ReceiverError(f"the alert receiver did not start: {reason}")
        return int(text.split()[1])

    def next_delay(self, ran_for: float | None) -> float:
        """The wait before the next start. `ran_for`: how long the child that just exited ran
        (None: a start that failed). A child that ran `STEADY` seconds resets the backoff; one
        that crashes right after starting makes it grow, as failed starts do."""
        if ran_for is not None and ran_for >= STEADY:
            self.failures = 0
        delay = self._backoff[min(self.failures, len(self._backoff) - 1)]
        self.failures += 1
        return delay

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart the child whenever it dies, with backoff, until `stop`. Never raises: a
        supervisor that died would leave the webhook down without a word."""
        while not stop.is_set():
            proc = self._proc
            if proc is None:
                return
            waiter = asyncio.ensure_future(proc.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stop.is_set() or self._stopping:
                waiter.cancel()
                return
            if proc.stdin is not None:
                proc.stdin.close()
            if proc.returncode == 0:
                # It exits 0 only when told to (SIGTERM from outside the bot): starting it
                # again would fight whoever did that. /healthz says "receiver": "down".
                log.warning("the alert receiver was stopped from outside; not restarting it")
                return
            ran_for: float | None = time.monotonic() - self._started_at
            log.error("the alert receiver exited (code %s); restarting it", proc.returncode)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.next_delay(ran_for))
                if stop.is_set() or self._stopping:
                    return
                try:
                    await self.start()
                except ReceiverError as exc:
                    log.error("%s; trying again", exc)
                    ran_for = None
                    continue
                except Exception:
                    log.exception("starting the alert receiver failed; trying again")
                    ran_for = None
                    continue
                self.restarts += 1
                break

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after `STOP_TIMEOUT`: it answers what it has read, then goes."""
        self._stopping = True
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.warning("the alert receiver did not stop in %.0f s; killing it", STOP_TIMEOUT)
            await self._kill(proc)
        if proc.stdin is not None:
            proc.stdin.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


if __name__ == "__main__":
    sys.exit(child_main())
