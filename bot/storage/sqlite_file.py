"""Plain sqlite3 helpers shared by the bot's database and the receiver's spool. No SQLAlchemy:
the receiver process imports this, and stays small (bench: its peak RSS)."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE = 0o600
_warned: set[str] = set()


def create_private(path: str | Path) -> None:
    """Create a SQLite file 0600 before SQLite opens it: SQLite gives its -wal, -shm and
    journal the database file's mode, so they are private too, whatever the umask. An existing
    file keeps its mode; one that others may read is named in a warning."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            return
        if mode & 0o077 and str(path) not in _warned:
            _warned.add(str(path))
            log.warning(
                "%s is accessible to other users (mode %04o): `chmod 600` it (and its -wal, -shm)",
                path,
                mode,
            )
        return
    except OSError:
        return  # SQLite reports it, in its own words, when it opens the file
    os.close(descriptor)


def checkpoint_file(path: str) -> int:
    """Copy a SQLite file's write-ahead log into it (PASSIVE: waits for nobody, blocks no
    writer); the WAL pages left over. Blocking (an fsync): run it in a thread."""
    connection = sqlite3.connect(path, timeout=1)
    try:
        _busy, log_pages, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(int(log_pages) - int(done), 0)
    finally:
        connection.close()
