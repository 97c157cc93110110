from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import REDACTED, configure_logging

SECRET = "MTIz.token-value.xyz"


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, list[logging.Handler]]]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    handlers: list[logging.Handler] = []
    yield stream, handlers
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def test_text_logs_redact_secrets_in_message_args_and_tracebacks(capture) -> None:
    stream, _ = capture
    configure_logging("INFO", "text", [SECRET, "pw"], stream=stream)
    log = logging.getLogger("discord.http")
    log.info("token is " + SECRET)
    log.warning("connecting with %s", SECRET)
    try:
        raise RuntimeError(f"login failed for {SECRET}")
    except RuntimeError:
        log.exception("boom")
    out = stream.getvalue()
    assert SECRET not in out
    assert out.count(REDACTED) == 3
    assert "RuntimeError: login failed for [redacted]" in out
    # Short secrets are not redacted: replacing "pw" everywhere would mangle every log line.
    assert "[redacted]" not in "pw"


def test_json_logs_are_one_object_per_line(capture) -> None:
    stream, _ = capture
    configure_logging("DEBUG", "json", [SECRET], stream=stream)
    logging.getLogger("bot.test").info(
        "hello %s", SECRET, extra={"correlation_id": "abcd1234", "action": "whoami"}
    )
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("bot.test").exception("failed")
    lines = stream.getvalue().strip().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == f"hello {REDACTED}"
    assert first["level"] == "INFO" and first["logger"] == "bot.test"
    assert first["correlation_id"] == "abcd1234" and first["action"] == "whoami"
    assert first["ts"].endswith("+00:00")
    assert "ZeroDivisionError" in second["exc"]


def test_level_is_applied(capture) -> None:
    stream, _ = capture
    configure_logging("WARNING", "text", [], stream=stream)
    logging.getLogger("bot.x").info("quiet")
    logging.getLogger("bot.x").warning("loud")
    assert "quiet" not in stream.getvalue() and "loud" in stream.getvalue()


async def test_scheduler_bookkeeping_is_debug_only(capture) -> None:
    """A job that runs every few ms must not print two INFO lines per run (it did, every 2 s)."""
    import asyncio

    from apscheduler.triggers.interval import IntervalTrigger

    from bot.scheduling import Job, build_scheduler

    stream, _ = capture
    configure_logging("INFO", "text", [], stream=stream)
    ran = asyncio.Event()

    async def tick() -> None:
        logging.getLogger("bot.jobs").info("the one meaningful line")
        ran.set()

    scheduler = build_scheduler([Job("tick", tick, IntervalTrigger(seconds=0.05))])
    scheduler.start()
    try:
        await asyncio.wait_for(ran.wait(), timeout=5)
        ran.clear()
        await asyncio.wait_for(ran.wait(), timeout=5)
    finally:
        scheduler.shutdown(wait=False)
    out = stream.getvalue()
    assert "the one meaningful line" in out
    assert "apscheduler" not in out
    # A warning from the scheduler (a missed run, say) still shows at INFO.
    logging.getLogger("apscheduler.executors.default").warning("Run time of job was missed")
    assert "was missed" in stream.getvalue()

    # Start-up chatter: Alembic's plugins and dialect, discord.py's voice warning; not the upgrade.
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.tables")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade a -> b, incidents")
    logging.getLogger("discord.client").warning(
        "davey is not installed, voice will NOT be supported"
    )
    logging.getLogger("discord.client").warning("logging in using static token failed")
    out = stream.getvalue()
    assert "setup plugin" not in out and "Context impl" not in out and "davey" not in out
    assert "Running upgrade a -> b" in out and "static token failed" in out

    debug = io.StringIO()
    configure_logging("DEBUG", "text", [], stream=debug)
    logging.getLogger("apscheduler.executors.default").info('Running job "tick"')
    assert 'DEBUG   apscheduler.executors.default: Running job "tick"' in debug.getvalue()
