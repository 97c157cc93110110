"""The receiver's spool file on its own: ids, duplicates, change detection, pruning, versions."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.storage import spool
from bot.storage.spool import SpoolError, SpoolReader, SpoolWriter

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def body(n: int, key: str | None = None) -> tuple[str, str, str, str, str]:
    return (key or f"key-{n}", f"hash-{n % 3}", "firing", "hh-opsbot", f'{{"n": {n}}}')


def test_bodies_get_increasing_ids_and_a_duplicate_gets_none(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool.db")
    first = writer.write([body(1), body(2)], T0)
    assert [s.spool_id for s in first] == [1, 2]
    again = writer.write([body(2), body(3)], T0)
    assert again[0].spool_id is None, "the same dedupe key is stored once"
    third = again[1].spool_id
    assert third is not None and third > 2
    reader = SpoolReader(tmp_path / "spool.db")
    rows = reader.read(0, 10)
    assert [(r.id, r.dedupe_key, r.payload) for r in rows] == [
        (1, "key-1", '{"n": 1}'),
        (2, "key-2", '{"n": 2}'),
        (third, "key-3", '{"n": 3}'),
    ]
    assert rows[0].received_at == T0
    assert [r.id for r in reader.read(1, 1)] == [2]
    assert reader.last_id() == third
    writer.write([body(3)], T0)  # an ignored duplicate may take a number: not a new body
    assert reader.last_id() == third


def test_ids_are_never_reused_after_everything_is_pruned(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool.db")
    writer.write([body(1), body(2)], T0)
    reader = SpoolReader(tmp_path / "spool.db")
    assert reader.prune(2, T0 + timedelta(seconds=1)) == 2
    assert reader.count() == 0
    (new,) = writer.write([body(3)], T0)
    assert new.spool_id == 3, "a cursor at 2 must still mean 'copied up to here'"
    assert reader.last_id() == 3


def test_prune_keeps_what_is_not_copied_or_still_recent(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool.db")
    writer.write([body(1), body(2)], T0)
    writer.write([body(3)], T0 + timedelta(minutes=20))
    writer.write([body(4)], T0)  # old, but not copied yet
    reader = SpoolReader(tmp_path / "spool.db")
    removed = reader.prune(3, T0 + timedelta(minutes=10), chunk=1)
    assert removed == 2
    assert [r.id for r in reader.read(0, 10)] == [3, 4]


def test_changed_notices_commits_by_the_other_side(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool.db")
    reader = SpoolReader(tmp_path / "spool.db")
    reader.changed()
    assert not reader.changed()
    writer.write([body(1)], T0)
    assert reader.changed()
    assert not reader.changed()
    writer.write([body(1)], T0)  # a duplicate: an empty commit may or may not count
    reader.changed()
    assert not reader.changed()


def test_the_watchdog_is_recorded_even_for_a_duplicate(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool.db")
    reader = SpoolReader(tmp_path / "spool.db")
    assert reader.watchdog_at() is None
    writer.write([body(1)], T0, watchdog=True)
    assert reader.watchdog_at() == T0
    later = T0 + timedelta(minutes=1)
    (dup,) = writer.write([body(1)], later, watchdog=True)
    assert dup.spool_id is None and reader.watchdog_at() == later


def test_the_generation_is_kept_by_the_file_and_new_for_a_new_file(tmp_path: Path) -> None:
    SpoolWriter(tmp_path / "spool.db").close()
    one = SpoolReader(tmp_path / "spool.db").generation
    assert SpoolReader(tmp_path / "spool.db").generation == one
    (tmp_path / "spool.db").unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / f"spool.db{extra}").unlink(missing_ok=True)
    assert SpoolReader(tmp_path / "spool.db").generation != one


def test_a_spool_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version=99")
    with pytest.raises(SpoolError, match="schema version 99"):
        SpoolReader(path)


def test_an_unusable_path_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(SpoolError, match="cannot open the alert spool"):
        SpoolWriter(tmp_path / "file" / "spool.db")


def test_a_write_waits_for_a_prune_instead_of_failing(tmp_path: Path) -> None:
    """The bot's prune takes the lock briefly; the receiver waits for it (busy timeout)."""
    path = tmp_path / "spool.db"
    writer = SpoolWriter(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        (stored,) = writer.write([body(1)], T0)
    finally:
        released.join()
        holder.close()
    assert stored.spool_id == 1


def test_checkpoint_empties_the_write_ahead_log(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    writer = SpoolWriter(path)
    writer.write([body(n) for n in range(50)], T0)
    assert (tmp_path / "spool.db-wal").stat().st_size > 0
    assert spool.checkpoint(path) == 0
