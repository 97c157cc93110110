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
from bot.storage.repositories.alerts import _alert_json, _alert_view
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


async def test_fast_inserts_store_what_the_orm_stores(sqlite_file) -> None:
    """The hot-path inserts (sqlite3, `SqliteInsert`) and the ORM path write identical rows:
    the same group, outbox item and webhook body, once each way, compared column by column."""
    from datetime import UTC, datetime

    from bot.domain.alerts import NotificationRow, group_key_hash
    from bot.domain.outbox import NewOutboxItem
    from bot.services.alerts import fresh_group
    from bot.storage.repositories import SqlAlertRepository, SqlOutboxRepository

    db, path = sqlite_file
    raw = fixture("04_firing_group_4_alerts.json")
    payload = WebhookPayload.model_validate(raw)
    now = datetime(2026, 11, 28, 12, 0, 1, 250000, tzinfo=UTC)
    group = fresh_group(payload, payload.alerts, now)
    item = NewOutboxItem(
        kind="alerts.deliver", payload={"group_id": 1, "version": 1}, available_at=now,
        ordering_key="alerts:1",
    )  # fmt: skip

    def note(key: str, body: dict) -> NotificationRow:
        return NotificationRow(key, group_key_hash(payload.group_key), "firing", "bot", body)

    async with db.uow() as uow:
        assert isinstance(uow.session, BridgedSession)
        await uow.alerts.create_groups([("fast", group)])
        await uow.outbox.add_many([item], now)
        await uow.alerts.add_notifications([note("fast", raw)], now)
        await uow.commit()
    async with db.sessions() as session, session.begin():
        assert not isinstance(session, BridgedSession)
        await SqlAlertRepository(session).create_groups([("orm", group)])
        await SqlOutboxRepository(session).add_many([item], now)
        await SqlAlertRepository(session).add_notifications([note("orm", raw)], now)

    plain = sqlite3.connect(path)
    try:
        for table, key in (
            ("alert_groups", "key_hash"),
            ("outbox", None),
            ("alert_notifications", "dedupe_key"),
        ):
            rows = plain.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            names = [d[0] for d in plain.execute(f"SELECT * FROM {table}").description]
            assert len(rows) == 2, table
            fast, orm = (
                {n: v for n, v in zip(names, row, strict=True) if n not in ("id", key)}
                for row in rows
            )
            assert fast == orm, table
    finally:
        plain.close()


async def test_a_body_given_as_text_is_stored_as_it_arrived(sqlite_file) -> None:
    from datetime import UTC, datetime

    from bot.domain.alerts import NotificationRow

    db, path = sqlite_file
    text_body = '{"version": "4",  "alerts": [ ]}'  # exactly these bytes, spaces and all
    async with db.uow() as uow:
        await uow.alerts.add_notifications(
            [NotificationRow("k", "h", "firing", "bot", text_body)], datetime.now(UTC)
        )
        await uow.commit()
    plain = sqlite3.connect(path)
    try:
        assert plain.execute("SELECT payload FROM alert_notifications").fetchone() == (text_body,)
    finally:
        plain.close()
    async with db.uow() as uow:
        (stored,) = await uow.alerts.unprocessed(10)
    assert stored.payload == {"version": "4", "alerts": []}


async def test_a_short_lock_elsewhere_is_waited_for_on_the_fast_path(
    sqlite_file, monkeypatch
) -> None:
    """Another process holds the lock for a moment: the bot's transaction tries again after
    a short sleep on the loop and stays on the fast path."""
    import bot.storage.uow as uow_module

    db, path = sqlite_file
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def first_retry_releases(delay: float) -> None:
        if not slept:
            other.execute("COMMIT")  # the other writer is done by the first retry
        slept.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(uow_module, "_sleep", first_retry_releases)
    async with asyncio.timeout(10), db.uow() as uow:
        assert isinstance(uow.session, BridgedSession), "waited on the loop, not in a thread"
        await uow.commit()
    assert slept == [uow_module.BUSY_RETRIES[0]], "one retry, then the lock was free"
    other.close()


async def test_after_a_fallback_a_held_lock_is_not_retried_again(sqlite_file, monkeypatch) -> None:
    """A lock held past the retries is held longer: for a second the next transactions go
    straight to aiosqlite instead of sleeping 16 ms each first."""
    import bot.storage.uow as uow_module

    db, path = sqlite_file
    slept: list[float] = []

    async def counting(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(uow_module, "_sleep", counting)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    for _ in range(2):
        async with asyncio.timeout(10), db.uow() as uow:
            assert not isinstance(uow.session, BridgedSession)
            await uow.session.execute(text("DELETE FROM alert_watchdog"))  # waits its turn
            await uow.commit()
        assert len(slept) == len(uow_module.BUSY_RETRIES), "the first retried, the next not"
        other.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
        timer.start()
    await asyncio.to_thread(timer.join)
    other.close()
