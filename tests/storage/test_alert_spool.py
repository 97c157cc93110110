"""The processor copying the receiver's spool into the bot's database: exactly once, on both
backends, across restarts, failures and a replaced spool file."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.domain.alerts import WebhookPayload
from bot.services.alerts import AlertIngest, AlertService
from bot.storage import spool
from bot.storage.models import AlertGroupRow, AlertNotification, AlertSpoolCursor
from bot.storage.spool import SpoolReader, SpoolWriter
from tests.alerting import fixture_bytes, storm, wire


def spool_row(raw: bytes) -> tuple[str, str, str, str, str]:
    return spool.spool_row(WebhookPayload.model_validate_json(raw), raw.decode())


async def count(database: Any, model: Any) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def drain(service: AlertService) -> int:
    total = 0
    while done := await service.process_pending():
        total += done
    return total


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool.db"


def spooled_service(database: Any, clock: Any, path: Path, **overrides: Any) -> AlertService:
    service, _ = wire(database, clock, **overrides)
    service.spool = SpoolReader(path)
    return service


async def test_spooled_bodies_become_groups_once(database, clock, spool_path) -> None:
    writer = SpoolWriter(spool_path)
    lines = storm("firing")
    writer.write([spool_row(line) for line in lines], clock.now())
    service = spooled_service(database, clock, spool_path)
    assert await service.backlog() == 50
    assert await drain(service) == 50
    assert await count(database, AlertGroupRow) == 50
    assert await count(database, AlertNotification) == 50
    assert await service.backlog() == 0
    assert service.spool is not None
    async with database.sessions() as session:
        cursor = await session.get(AlertSpoolCursor, service.spool.generation)
    assert cursor is not None and cursor.last_id == 50

    # A restart (a new service on the same database and spool) copies nothing again.
    again = spooled_service(database, clock, spool_path)
    assert await drain(again) == 0
    assert await count(database, AlertNotification) == 50


async def test_a_body_also_posted_to_the_bot_itself_is_stored_once(
    database, clock, spool_path
) -> None:
    raw = fixture_bytes("01_firing_single_nodeoffline.json")
    service = spooled_service(database, clock, spool_path)
    received = await service.receive(WebhookPayload.model_validate_json(raw), raw.decode())
    assert received.outcome == "accepted"
    SpoolWriter(spool_path).write([spool_row(raw)], clock.now())
    assert await drain(service) == 1
    assert await count(database, AlertNotification) == 1
    assert await service.backlog() == 0


async def test_a_failed_transaction_copies_again_and_nothing_twice(
    database, clock, spool_path, monkeypatch
) -> None:
    writer = SpoolWriter(spool_path)
    lines = storm("firing")
    writer.write([spool_row(line) for line in lines[:2]], clock.now())
    service = spooled_service(database, clock, spool_path)
    assert await drain(service) == 2  # the cursor is known (cached) before the failure
    writer.write([spool_row(line) for line in lines[2:7]], clock.now())
    original = AlertIngest._apply

    async def broken(self: AlertIngest, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away mid-transaction")

    monkeypatch.setattr(AlertIngest, "_apply", broken)
    with pytest.raises(RuntimeError):
        await service.process_pending()
    assert await count(database, AlertNotification) == 2, "rolled back with the cursor"
    monkeypatch.setattr(AlertIngest, "_apply", original)
    assert await drain(service) == 5
    assert await count(database, AlertNotification) == 7
    assert await count(database, AlertGroupRow) == 7


async def test_a_replaced_spool_file_is_read_from_its_start(database, clock, tmp_path) -> None:
    lines = storm("firing")
    first_path = tmp_path / "one.db"
    SpoolWriter(first_path).write([spool_row(line) for line in lines[:3]], clock.now())
    service = spooled_service(database, clock, first_path)
    assert await drain(service) == 3
    # A new file (another generation) whose ids start at 1 again, one body already copied.
    second_path = tmp_path / "two.db"
    SpoolWriter(second_path).write([spool_row(line) for line in lines[2:6]], clock.now())
    service = spooled_service(database, clock, second_path)
    assert service.spool is not None and SpoolReader(first_path).generation != (
        service.spool.generation
    )
    await drain(service)
    assert await count(database, AlertNotification) == 6, "the repeated body was absorbed"
    assert await count(database, AlertGroupRow) == 6


async def test_big_spools_are_taken_in_batches(database, clock, spool_path) -> None:
    SpoolWriter(spool_path).write([spool_row(line) for line in storm("firing")], clock.now())
    service = spooled_service(database, clock, spool_path, process_batch=7)
    assert await service.process_pending() == 7
    assert await service.backlog() == 43
    assert await drain(service) == 43


async def test_the_processor_wakes_for_the_spool(database, clock, spool_path) -> None:
    service = spooled_service(
        database, clock, spool_path, process_delay=0.0, spool_poll=0.01, process_poll=60.0
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run_processor(stop))
    try:
        await asyncio.sleep(0.1)  # idle, looking at the spool
        raw = fixture_bytes("04_firing_group_4_alerts.json")
        SpoolWriter(spool_path).write([spool_row(raw)], clock.now())
        async with asyncio.timeout(5):
            while await count(database, AlertGroupRow) == 0:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task


async def test_an_old_watchdog_in_the_spool_is_no_arrival(database, clock, spool_path) -> None:
    service = spooled_service(database, clock, spool_path, watchdog_timeout=600.0)
    SpoolWriter(spool_path).write([], clock.now() - timedelta(seconds=601), watchdog=True)
    assert not service.intake.spooled.watchdog_arrived(), "older than the timeout: proves nothing"
    SpoolWriter(spool_path).write([], clock.now(), watchdog=True)
    assert service.intake.spooled.watchdog_arrived()


async def test_a_watchdog_seen_by_the_receiver_counts_once(database, clock, spool_path) -> None:
    service = spooled_service(database, clock, spool_path, watchdog_timeout=600.0)
    watchdog = json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="Watchdog"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "hh-opsbot",
            "groupLabels": {"alertname": "Watchdog"},
            "commonLabels": {"alertname": "Watchdog"},
            "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "Watchdog"},
                    "annotations": {},
                    "startsAt": "2026-11-28T02:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://127.0.0.1:9090/graph",
                    "fingerprint": "00000000000000aa",
                }
            ],
        }
    ).encode()
    writer = SpoolWriter(spool_path)
    writer.write([spool_row(watchdog)], clock.now(), watchdog=True)
    await drain(service)  # recent, though from before the bot first looked: it counts
    assert not service.intake.spooled.watchdog_arrived(), "the same arrival counts once"
    assert not await service.check_watchdog(), "seen just now"
    clock.advance(seconds=700)
    assert await service.check_watchdog(), "overdue: the pipeline is broken"
    # The receiver answers the repeat "duplicate" but still records the arrival.
    (dup,) = writer.write([spool_row(watchdog)], clock.now(), watchdog=True)
    assert dup.spool_id is None
    await drain(service)
    async with database.sessions() as session:
        from bot.storage.models import AlertWatchdog

        row = await session.get(AlertWatchdog, 1)
    assert row is not None and row.outage_since is None, "the arrival ended the outage"


async def test_copied_bodies_are_pruned_after_the_retention(database, clock, spool_path) -> None:
    writer = SpoolWriter(spool_path)
    writer.write([spool_row(line) for line in storm("firing")[:4]], clock.now())
    service = spooled_service(database, clock, spool_path, spool_retention=600.0)
    assert await service.prune_spool() == 0, "nothing copied yet"
    await drain(service)
    assert await service.prune_spool() == 0, "copied, but a retry could still come"
    clock.advance(seconds=601)
    writer.write([spool_row(storm("firing")[4])], clock.now())
    assert await service.prune_spool() == 4
    assert service.spool is not None and [r.id for r in service.spool.read(0, 10)] == [5]


async def test_a_spool_that_went_backwards_is_copied_again_not_skipped(
    database, clock, tmp_path
) -> None:
    """A spool restored from an older copy (or rolled back by a power loss) gives ids that the
    cursor already passed: they must be copied, not skipped."""
    import shutil

    path = tmp_path / "spool.db"
    lines = storm("firing")
    writer = SpoolWriter(path)
    writer.write([spool_row(lines[0])], clock.now())
    writer.close()
    shutil.copy(path, tmp_path / "old.db")  # the state after one body
    writer = SpoolWriter(path)
    writer.write([spool_row(line) for line in lines[1:4]], clock.now())
    writer.close()
    service, _ = wire(database, clock)
    service.spool = first = SpoolReader(path)
    assert await drain(service) == 4
    generation = first.generation
    first.close()
    shutil.copy(tmp_path / "old.db", path)  # back to id 1, same generation, cursor at 4
    for extra in ("-wal", "-shm"):
        (tmp_path / f"spool.db{extra}").unlink(missing_ok=True)
    service.spool = SpoolReader(path)
    assert service.spool.generation == generation
    SpoolWriter(path).write([spool_row(line) for line in lines[4:6]], clock.now())
    await drain(service)  # ids 2 and 3 again, now new bodies: copied, not skipped
    assert service.spool.generation != generation
    assert await count(database, AlertNotification) == 6
    assert await count(database, AlertGroupRow) == 6


async def test_a_replaced_spool_file_is_followed(database, clock, tmp_path) -> None:
    path = tmp_path / "spool.db"
    lines = storm("firing")
    SpoolWriter(path).write([spool_row(lines[0])], clock.now())
    service = spooled_service(database, clock, path)
    assert await drain(service) == 1
    assert service.spool is not None
    service.spool.changed()
    path.rename(tmp_path / "aside.db")
    assert service.spool is not None and not service.spool.changed(), "gone: keep the old one"
    SpoolWriter(path).write([spool_row(line) for line in lines[1:3]], clock.now())
    assert service.spool.changed(), "a new file at the path"
    assert await drain(service) == 2
    assert await count(database, AlertNotification) == 3


async def test_the_backlog_counts_bodies_not_ids(database, clock, spool_path) -> None:
    writer = SpoolWriter(spool_path)
    lines = storm("firing")
    writer.write([spool_row(lines[0])], clock.now())
    writer.write([spool_row(lines[0])] * 3, clock.now())  # ignored duplicates use up ids
    writer.write([spool_row(lines[1])], clock.now())
    service = spooled_service(database, clock, spool_path)
    assert await service.backlog() == 2
