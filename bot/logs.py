"""Logging: readable text or JSON lines, with every configured secret redacted at the handler."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

REDACTED = "[redacted]"


class RedactingFilter(logging.Filter):
    """Rewrites a record so no configured secret survives, whoever logged it (discord.py included).

    It works on the rendered message and the rendered traceback, because a secret can arrive
    through `%s` args or inside an exception's text just as easily as in the format string.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for Loki/journald pipelines (manual §6)."""

    _EXTRA_KEYS = ("correlation_id", "action", "actor_id", "route", "status")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in self._EXTRA_KEYS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class DemoteToDebug(logging.Filter):
    """Logs a library's INFO chatter at DEBUG: APScheduler says "Running job" and "executed
    successfully" for every run of every job, which buries the one line per event that matters.
    With `prefixes`, only the records whose message starts with one of them (any level)."""

    def __init__(self, prefixes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if self.prefixes:
            if not str(record.msg).startswith(self.prefixes):
                return True
        elif record.levelno >= logging.WARNING:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


# Filters are per logger (a parent's filter does not see its children's records), so each is named.
BOOKKEEPING_LOGGERS: dict[str, tuple[str, ...]] = {
    "apscheduler.scheduler": (),
    "apscheduler.executors.default": (),
    # Alembic's plugin list and its dialect lines at every start; "Running upgrade" stays INFO.
    "alembic.runtime.plugins": (),
    "alembic.runtime.migration": ("Context impl", "Will assume"),
    # discord.py warns at every start that voice is unsupported: this bot has no voice.
    "discord.client": ("davey is not installed", "PyNaCl is not installed"),
}

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(
    level: str, fmt: str, secrets: Iterable[str], stream: object = None
) -> logging.Handler:
    """Install one root handler; returns it so tests (and shutdown) can remove it."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # discord.py's gateway chatter is useful at DEBUG only.
    logging.getLogger("discord").setLevel(max(logging.getLevelName(level), logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name, prefixes in BOOKKEEPING_LOGGERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DemoteToDebug) for f in logger.filters):
            logger.addFilter(DemoteToDebug(prefixes))
    return handler
