"""Plain sqlite3 helpers shared by the bot's database and the receiver's spool. No SQLAlchemy:
the receiver process imports this, and stays small (bench: its peak RSS)."""

from __future__ import annotations

import sqlite3


def checkpoint_file(path: str) -> int:
    """Copy a SQLite file's write-ahead log into it (PASSIVE: waits for nobody, blocks no
    writer); the WAL pages left over. Blocking (an fsync): run it in a thread."""
    connection = sqlite3.connect(path, timeout=1)
    try:
        _busy, log_pages, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(int(log_pages) - int(done), 0)
    finally:
        connection.close()
