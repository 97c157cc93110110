"""SQLite units of work on the loop's thread (storage/syncbridge.py), their fallback and the
checkpoint that keeps the write-ahead log short; the repository's fast reads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.alerts import AlertView, WebhookAlert, WebhookPayload
from bot.storage import migrations
from bot.storage.database import Database
from bot.storage.repositories import _alert_json, _alert_view
from bot.storage.syncbridge import BridgedSession
from tests.alerting import FIXTURES, fixture


@pytest.fixture
async def sqlite_file(tmp_path: Path):
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}")
    await migrations.upgrade(db.engine)
    yield db, tmp_path / "bridge.db"
    await db.close()


async def test_a_sqlite_file_runs_units_of_work_on_the_loops_thread(sqlite_file) -> None:
    db, _ = sqlite_file
    async with db.uow() as uow:
        assert isinstance(uow.session, BridgedSession)
        assert await uow.session.scalar(text("SELECT 1")) == 1
    memory = Database.from_url("sqlite+aiosqlite://")
    try:
        async with memory.uow() as uow:
            assert isinstance(uow.session, AsyncSession), "in memory: its one connection"
    finally:
        await memory.close()


async def test_a_lock_held_by_another_process_falls_back_and_waits(sqlite_file) -> None:
    """Another process (a CLI command) writing: the bridged session cannot wait on the
    loop's thread, so the same work goes through aiosqlite, which waits its turn."""
    db, path = sqlite_file
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO alert_watchdog (id, last_seen_at) VALUES (7, '2026-01-01')")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    async with asyncio.timeout(10), db.uow() as uow:
        assert not isinstance(uow.session, BridgedSession)
        count = await uow.session.scalar(text("SELECT count(*) FROM alert_watchdog"))
        await uow.commit()
    assert count == 1, "it waited for the other writer and saw its row"
    other.close()
    async with db.uow() as uow:
        assert isinstance(uow.session, BridgedSession), "back on the fast path"


async def test_a_failed_bridged_transaction_rolls_back(sqlite_file) -> None:
    db, _ = sqlite_file
    with pytest.raises(RuntimeError):
        async with db.uow() as uow:
            await uow.session.execute(
                text("INSERT INTO alert_watchdog (id, last_seen_at) VALUES (1, '2026-01-01')")
            )
            raise RuntimeError("boom")
    async with db.uow() as uow:
        assert await uow.session.scalar(text("SELECT count(*) FROM alert_watchdog")) == 0


async def test_checkpoint_empties_the_write_ahead_log(sqlite_file) -> None:
    db, path = sqlite_file
    for n in range(50):
        async with db.uow() as uow:
            await uow.session.execute(
                text("INSERT INTO alert_watchdog (id, last_seen_at) VALUES (:n, '2026-01-01')"),
                {"n": n + 100},
            )
            await uow.commit()
    assert Path(f"{path}-wal").stat().st_size > 0
    assert await db.checkpoint() == 0, "every page copied into the database file"


async def test_checkpoint_is_a_no_op_elsewhere() -> None:
    memory = Database.from_url("sqlite+aiosqlite://")
    try:
        assert await memory.checkpoint() is None
    finally:
        await memory.close()


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("[01]*.json")))
def test_stored_alerts_read_back_as_the_webhook_model_would(name: str) -> None:
    """The fast reader of stored alerts agrees with pydantic on every captured alert."""
    payload = WebhookPayload.model_validate(fixture(name))
    for alert in payload.alerts:
        view = AlertView.from_payload(alert)
        stored = _alert_json(view)
        assert _alert_view(stored) == view
        assert _alert_view(stored) == AlertView.from_payload(WebhookAlert.model_validate(stored))


def test_a_stored_alert_in_another_shape_is_still_read() -> None:
    odd = {
        "status": "firing",
        "labels": {"alertname": "X"},
        "startsAt": "2026-11-28T05:00:00Z",
        "fingerprint": "abc",
    }
    view = _alert_view(odd)
    assert view.name == "X" and view.ends_at is None and view.generator_url == ""


async def test_the_health_ping_does_not_take_the_write_lock(sqlite_file) -> None:
    """/healthz and the database job ping while the bot writes: a read, never a writer."""
    db, path = sqlite_file
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        async with asyncio.timeout(2):
            assert await db.ping() < 2
    finally:
        other.execute("ROLLBACK")
        other.close()
