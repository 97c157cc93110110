"""The receiver's spool: a SQLite file of its own between `hh-opsbot receive` and the bot.

Why a file of its own: SQLite has one write lock per file. A receiver process writing into
the bot's database waits for that lock whenever the bot's processor or outbox worker holds it,
many times a second in a storm (measured: p99 59-64 ms at the senders). With a file of its own
the receiver's only writer is itself; the bot only reads it (WAL: readers never block the
writer) and, every few seconds, deletes what it has long since drained.

Exactly once: the bot copies spooled bodies into its own database and records the last spool
id it copied in the same transaction (`alert_spool_cursors`, keyed by the spool's generation, a
random id written when the file is created). A crash on either side repeats nothing and loses
nothing; a spool file replaced by a new one starts a new cursor, and the notifications' unique
dedupe key absorbs whatever is copied twice.

The schema is versioned by `PRAGMA user_version`, not Alembic: the file is a queue, created by
whichever side opens it first, and never migrated in place (a new version uses a new file).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.domain.alerts import SpooledBody, WebhookPayload, group_key_hash
from bot.storage.sqlite_file import checkpoint_file, create_private

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = (
    # AUTOINCREMENT: ids are never reused, even after every row was pruned, so the bot's
    # cursor ("everything up to id N is copied") stays true.
    """CREATE TABLE IF NOT EXISTS spool (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        dedupe_key TEXT NOT NULL UNIQUE,
        group_key_hash TEXT NOT NULL,
        status TEXT NOT NULL,
        receiver TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS spool_received_at ON spool (received_at)",
    """CREATE TABLE IF NOT EXISTS spool_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation TEXT NOT NULL,
        watchdog_at TEXT
    )""",
)


class SpoolError(Exception):
    """The spool file cannot be used; the message is one safe line for the operator."""


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def connect(path: str | Path, *, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating if need be) the spool file: WAL, autocommit, no automatic checkpoints
    (an fsync inside a webhook's answer); `checkpoint()` does them off the request path.

    Creating the file may wait for the other side creating it too; `busy_timeout` (seconds)
    applies after that."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        create_private(target)  # 0600, and so its -wal and -shm
        connection = sqlite3.connect(
            str(target), timeout=5.0, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise SpoolError(f"cannot open the alert spool {target} ({exc})") from None
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        _create(connection)
        connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    except sqlite3.Error as exc:
        connection.close()
        raise SpoolError(f"cannot use the alert spool {target} ({exc})") from None
    return connection


def _create(connection: sqlite3.Connection) -> None:
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        raise sqlite3.DatabaseError(
            f"spool schema version {version}, this version reads {SCHEMA_VERSION}: "
            "move the file aside once the bot has drained it"
        )
    if version == SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA:
            connection.execute(statement)
        connection.execute(
            "INSERT OR IGNORE INTO spool_meta (id, generation) VALUES (1, ?)", (uuid.uuid4().hex,)
        )
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def checkpoint(path: str | Path) -> int:
    """The spool's WAL into the file (PASSIVE); blocking, for a thread."""
    return checkpoint_file(str(path))


def spool_row(payload: WebhookPayload, raw: str) -> tuple[str, str, str, str, str]:
    """What `SpoolWriter.write` stores of one validated body (`raw`: its JSON text)."""
    return (
        payload.dedupe_key(),
        group_key_hash(payload.group_key),
        payload.status.value,
        payload.receiver,
        raw,
    )


@dataclass(frozen=True)
class Spooled:
    """What became of one body written to the spool: its id, or None for a duplicate."""

    dedupe_key: str
    spool_id: int | None


class SpoolWriter:
    """The receiver's side: one short transaction per batch of bodies, on its own file."""

    _INSERT = (
        "INSERT OR IGNORE INTO spool "
        "(dedupe_key, group_key_hash, status, receiver, payload, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )

    def __init__(self, path: str | Path, *, busy_timeout: float = 2.0) -> None:
        # The bot's prune holds the lock for a millisecond or two every few seconds: waiting
        # for it is the receiver's only wait, and it has nothing else to do meanwhile.
        self.path = Path(path)
        self._connection = connect(self.path, busy_timeout=busy_timeout)

    def write(
        self,
        bodies: Sequence[tuple[str, str, str, str, str]],
        now: datetime,
        *,
        watchdog: bool = False,
    ) -> list[Spooled]:
        """Store (dedupe_key, group_key_hash, status, receiver, payload JSON) rows; commit.

        `watchdog`: a firing Watchdog arrived (a duplicate too), for the dead man's switch."""
        stamp = _timestamp(now)
        connection = self._connection
        results: list[Spooled] = []
        connection.execute("BEGIN IMMEDIATE")
        try:
            cursor = connection.cursor()
            for key, key_hash, status, receiver, payload in bodies:
                cursor.execute(
                    self._INSERT, (key, key_hash, status, receiver[:500], payload, stamp)
                )
                results.append(Spooled(key, cursor.lastrowid if cursor.rowcount == 1 else None))
            if watchdog:
                cursor.execute("UPDATE spool_meta SET watchdog_at = ? WHERE id = 1", (stamp,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return results

    def ping(self) -> None:
        self._connection.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._connection.close()


class SpoolReader:
    """The bot's side: notices new bodies cheaply, reads them in id order, prunes old ones.

    Reads run on the caller's thread (a few tens of microseconds, never waiting: WAL readers
    take no lock the writer needs). `prune` writes, so it belongs in a worker thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.generation = ""
        self._open()

    def _open(self) -> None:
        # Busy timeout 0 for the reads on the loop; prune opens its own waiting connection.
        self._connection = connect(self.path, busy_timeout=0.0)
        self._inode = os.stat(self.path).st_ino
        row = self._connection.execute("SELECT generation FROM spool_meta WHERE id = 1").fetchone()
        self.generation = row[0]
        self._data_version = -1

    def changed(self) -> bool:
        """Has anything committed to the file since the last call (a few microseconds).

        A file replaced meanwhile (moved aside by an operator, then a restarted receiver
        made a new one) is opened again: its new generation starts its own cursor. A file
        merely gone is not re-created here: the receiver may still be writing the old one."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = self._inode
        if inode != self._inode:
            log.warning("the alert spool %s was replaced; opening it again", self.path)
            self._connection.close()
            self._open()
            return True
        version = int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        changed, self._data_version = version != self._data_version, version
        return changed

    def sequence(self) -> int:
        """The highest id ever given (ignored duplicates included); only a spool rolled back
        (a power loss with synchronous=NORMAL, a restored copy) makes it go down."""
        found = self._connection.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'spool'"
        ).fetchone()
        return int(found[0]) if found else 0

    def regenerate(self) -> str:
        """Give the file a new generation: its bodies are all copied again (the inbox's dedupe
        key absorbs those already copied), under a cursor that starts at 0."""
        generation = uuid.uuid4().hex
        connection = sqlite3.connect(str(self.path), timeout=1.0, isolation_level=None)
        try:
            connection.execute("UPDATE spool_meta SET generation = ? WHERE id = 1", (generation,))
        finally:
            connection.close()
        self.generation = generation
        return generation

    def count_after(self, after: int) -> int:
        found = self._connection.execute("SELECT count(*) FROM spool WHERE id > ?", (after,))
        return int(found.fetchone()[0])

    def last_id(self) -> int:
        """The newest body's id (0 when empty). Not sqlite_sequence: an ignored duplicate
        takes a number too, and the cursor would never catch up with it."""
        found = self._connection.execute("SELECT max(id) FROM spool").fetchone()
        return int(found[0] or 0)

    def read(self, after: int, limit: int) -> list[SpooledBody]:
        rows = self._connection.execute(
            "SELECT id, dedupe_key, group_key_hash, status, receiver, payload, received_at "
            "FROM spool WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [
            SpooledBody(int(i), key, key_hash, status, receiver, payload, _moment(received))
            for i, key, key_hash, status, receiver, payload, received in rows
        ]

    def watchdog_at(self) -> datetime | None:
        row = self._connection.execute("SELECT watchdog_at FROM spool_meta WHERE id = 1")
        found = row.fetchone()
        return _moment(found[0]) if found else None

    def prune(self, upto: int, before: datetime, *, chunk: int = 500) -> int:
        """Delete copied bodies (id <= `upto`) received before `before`; in short chunks, so
        the receiver never waits long for its lock. Blocking: run it in a thread."""
        connection = sqlite3.connect(str(self.path), timeout=5.0, isolation_level=None)
        removed = 0
        try:
            stamp = _timestamp(before)
            while True:
                cursor = connection.execute(
                    "DELETE FROM spool WHERE id IN (SELECT id FROM spool "
                    "WHERE id <= ? AND received_at < ? ORDER BY id LIMIT ?)",
                    (upto, stamp, chunk),
                )
                removed += max(cursor.rowcount, 0)
                if cursor.rowcount < chunk:
                    break
        finally:
            connection.close()
        return removed

    def count(self) -> int:
        return int(self._connection.execute("SELECT count(*) FROM spool").fetchone()[0])

    def close(self) -> None:
        self._connection.close()
