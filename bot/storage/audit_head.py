"""The audit chain's head outside the database: a small file rewritten after every append, and a
log line, so a log truncated or rewritten wholesale (its chain recomputed, its stored head
updated) no longer matches something its editor did not also change.

The file is one JSON object, `{"format": ..., "row_id": N, "hash": "...", "rows": R}`, written
atomically (a temporary file beside it, fsync, rename, fsync of the directory), mode 0600. It is
only ever moved forward along the chain: this process overwrites it only while it still holds
what this process wrote last (or what the start checked against the database), so a file that
names a head the log no longer has stays as evidence; each refusal is an error log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bot.domain.audit import EMPTY_HEAD, HeadFileReading, HeadMark
from bot.domain.ports import UowFactory
from bot.storage.urls import sqlite_file_path

log = logging.getLogger("bot.audit")

FORMAT = "hh-opsbot audit head 1"
HEAD_SUFFIX = ".audit-head"
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ChainOptions:
    """How the chain is kept: its HMAC key (a secret: never in a repr, log or message) and
    the head file (None: none is written)."""

    key: bytes | None = field(default=None, repr=False)
    head_file: Path | None = None


class HeadFileError(Exception):
    """The head file cannot be read or written; one safe line (no secret is in it)."""


def default_head_file(url: str) -> Path | None:
    """Beside a SQLite database file (`hh-opsbot.db.audit-head`); none for PostgreSQL or an
    in-memory database."""

    database = sqlite_file_path(url)
    return Path(database + HEAD_SUFFIX) if database else None


def chain_options(url: str, head_file: str | None, key: str | None) -> ChainOptions:
    """From `[database] url` and `[audit] head_file` / `hmac_key`. head_file unset: the default
    above; "" (empty): off."""
    if head_file is None:
        path = default_head_file(url)
    else:
        path = Path(head_file).expanduser() if head_file.strip() else None
    return ChainOptions(key=key.encode("utf-8") if key else None, head_file=path)


def read_head_file(path: Path) -> HeadMark | None:
    """The mark in the file; None when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HeadFileError(f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise HeadFileError("is not an audit head file (not UTF-8 text)") from None
    try:
        data = json.loads(text)
        mark = HeadMark(int(data["row_id"]), str(data["hash"]), int(data["rows"]))
        if data.get("format") != FORMAT or not _HASH.match(mark.hash):
            raise ValueError("format")
        if mark.row_id < 0 or mark.rows < 0:
            raise ValueError("negative")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HeadFileError("is not an audit head file (unexpected content)") from None
    return mark


def write_head_file(path: Path, mark: HeadMark) -> None:
    """Atomically: a temporary file (0600) in the same directory, fsync, rename, fsync the
    directory. Blocking: run it in a thread."""
    body = json.dumps(
        {"format": FORMAT, "row_id": mark.row_id, "hash": mark.hash, "rows": mark.rows},
        sort_keys=True,
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise HeadFileError(f"cannot be written ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(body + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise HeadFileError(f"cannot be written ({exc.strerror})") from None
    with contextlib.suppress(OSError):
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def reading(path: Path) -> HeadFileReading:
    """For `audit verify`: the file's mark, None when it does not exist, or what is wrong."""
    try:
        return HeadFileReading(str(path), read_head_file(path))
    except HeadFileError as exc:
        return HeadFileReading(str(path), None, str(exc))


class HeadRecorder:
    """After each commit that appended to the chain: one log line with the new head and, with a
    head file, the file moved forward (in a thread; the caller holds no transaction lock)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._written: HeadMark | None = None
        self._blocked: str | None = None

    @property
    def written(self) -> HeadMark | None:
        return self._written

    async def committed(self, before: HeadMark, after: HeadMark) -> None:
        log.info("audit head: %s", after.describe())
        if self.path is None:
            return
        async with self._lock:
            if self._written is not None and after.row_id <= self._written.row_id:
                return  # a transaction that committed later already moved the file further
            try:
                await asyncio.to_thread(self._advance, before, after)
            except HeadFileError as exc:
                log.error("audit head file %s %s; it still names an older head", self.path, exc)

    def _advance(self, before: HeadMark, after: HeadMark) -> None:
        assert self.path is not None
        if self._blocked:
            log.error("audit head file %s left as it is: %s", self.path, self._blocked)
            return
        try:
            current = read_head_file(self.path)
        except HeadFileError as exc:
            self._refuse(str(exc))
            return
        if current is None and self._written is not None:
            self._refuse(f"was removed (this process last wrote row {self._written.row_id} there)")
            return
        if current is not None and current not in (before, self._written):
            self._refuse(
                f"names row {current.row_id}, which this process neither wrote nor checked at start"
            )
            return
        write_head_file(self.path, after)
        self._written = after

    def _refuse(self, why: str) -> None:
        self._blocked = f"it {why}; move it aside and restart once the log is checked"
        log.error(
            "audit head file %s %s: it is left as it is and no longer updated; run `hh-opsbot "
            "audit verify`",
            self.path,
            why,
        )

    async def reconcile(self, uow: UowFactory) -> None:
        """At start: the file must name a row the log still has, with that row's hash. Then it
        is moved to the stored head; missing, it is created there (with a warning: if it existed
        before, the log must be checked). A file that does not match is left as evidence."""
        if self.path is None:
            return
        path = self.path
        try:
            current = await asyncio.to_thread(read_head_file, path)
        except HeadFileError as exc:
            self._refuse(str(exc))
            return
        async with uow() as work:
            stored = await work.audit.head()
            found = (
                await work.audit.mark_at(current.row_id)
                if current is not None and current.row_id
                else None
            )
        head = stored.mark if stored is not None else EMPTY_HEAD
        if current is not None and current.row_id and found != current:
            self._refuse(
                f"names {current.describe()}, but the log "
                + (f"has {found.describe()}" if found else "has no such row")
                + ": the audit log was truncated or rewritten"
            )
            return
        if current is not None and current.row_id == 0 and current != EMPTY_HEAD:
            self._refuse("names row 0 with a hash that is not the start of a chain")
            return
        if current is None and head.rows:
            log.warning(
                "audit head file %s did not exist: created at row %d; if it existed before, "
                "check the log with `hh-opsbot audit verify`",
                path,
                head.row_id,
            )
        async with self._lock:
            if current is not None and current.row_id >= head.row_id:
                self._written = current
                return
            try:
                await asyncio.to_thread(write_head_file, path, head)
            except HeadFileError as exc:
                log.error("audit head file %s %s", path, exc)
                return
            self._written = head
