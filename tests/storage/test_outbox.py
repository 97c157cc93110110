"""The outbox and reminders against real databases: ordering, retries, idempotence, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from bot.domain.outbox import OutboxItem, OutboxStatus, PermanentFailure, Reminder, RetryLater
from bot.domain.ports import UnitOfWork
from bot.services.outbox import OutboxService, ReminderService, backoff
from bot.storage.database import Database


class Recorder:
    """A handler whose behaviour the test scripts: a queue of outcomes, then success."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, Mapping[str, Any]]] = []
        self.script: list[Exception] = []

    async def __call__(self, item: OutboxItem) -> Mapping[str, Any]:
        self.seen.append((item.id, item.payload))
        if self.script:
            raise self.script.pop(0)
        return {"delivered": item.payload.get("n")}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def outbox(database: Database, clock, recorder: Recorder) -> OutboxService:
    service = OutboxService(database.uow, clock)
    service.register("test", recorder)
    return service


async def enqueue(database: Database, outbox: OutboxService, n: int, **kwargs: Any) -> int | None:
    async with database.uow() as uow:
        item = await outbox.enqueue(uow, "test", {"n": n}, **kwargs)
        await uow.commit()
    return item.id if item else None


async def status_of(database: Database, item_id: int) -> OutboxItem:
    async with database.uow() as uow:
        item = await uow.outbox.get(item_id)
    assert item is not None
    return item


async def test_delivers_and_records_the_result(database, outbox, recorder) -> None:
    item_id = await enqueue(database, outbox, 1)
    assert item_id is not None
    assert await outbox.drain_once() == 1
    item = await status_of(database, item_id)
    assert item.status is OutboxStatus.DONE and item.result == {"delivered": 1}
    assert item.attempts == 1 and item.completed_at is not None
    assert await outbox.drain_once() == 0, "a done item is never delivered again"


async def test_enqueue_is_part_of_the_callers_transaction(database, outbox) -> None:
    async with database.uow() as uow:
        await outbox.enqueue(uow, "test", {"n": 1})
        await uow.rollback()
    assert await outbox.drain_once() == 0


async def test_dedupe_key_makes_enqueue_idempotent(database, outbox, recorder) -> None:
    first = await enqueue(database, outbox, 1, dedupe_key="alert:abc:v1")
    second = await enqueue(database, outbox, 2, dedupe_key="alert:abc:v1")
    assert first is not None and second is None
    await outbox.drain_all()
    assert [p["n"] for _, p in recorder.seen] == [1]


async def test_retry_later_honours_retry_after(database, outbox, recorder, clock) -> None:
    recorder.script = [RetryLater("429", retry_after=7.5)]
    item_id = await enqueue(database, outbox, 1)
    assert item_id is not None
    await outbox.drain_once()
    item = await status_of(database, item_id)
    assert item.status is OutboxStatus.PENDING and item.attempts == 1
    assert item.available_at == clock.now() + timedelta(seconds=7.5)
    assert item.last_error == "429"
    clock.advance(seconds=7)
    assert await outbox.drain_once() == 0, "not before retry_after"
    clock.advance(seconds=1)
    assert await outbox.drain_once() == 1
    assert (await status_of(database, item_id)).status is OutboxStatus.DONE


async def test_unexpected_errors_are_retried(database, outbox, recorder, clock) -> None:
    recorder.script = [ConnectionResetError("reset"), RuntimeError("odd")]
    item_id = await enqueue(database, outbox, 1)
    assert item_id is not None
    for _ in range(2):
        await outbox.drain_once()
        clock.advance(seconds=600)
    await outbox.drain_once()
    item = await status_of(database, item_id)
    assert item.status is OutboxStatus.DONE and item.attempts == 3
    assert len(recorder.seen) == 3


async def test_permanent_failure_is_kept_not_retried(database, outbox, recorder, clock) -> None:
    recorder.script = [PermanentFailure("Discord 400 (50035)")]
    item_id = await enqueue(database, outbox, 1)
    assert item_id is not None
    await outbox.drain_once()
    clock.advance(days=1)
    assert await outbox.drain_once() == 0
    item = await status_of(database, item_id)
    assert item.status is OutboxStatus.FAILED and item.last_error == "Discord 400 (50035)"


async def test_unknown_kind_fails_instead_of_looping(database, outbox) -> None:
    async with database.uow() as uow:
        item = await outbox.enqueue(uow, "nobody-handles-this", {})
        await uow.commit()
    assert item is not None
    await outbox.drain_all()
    assert (await status_of(database, item.id)).status is OutboxStatus.FAILED


async def test_order_is_kept_per_key_across_retries(database, outbox, recorder, clock) -> None:
    """The second message of a group waits while the first is being retried."""
    recorder.script = [RetryLater("503")]
    a1 = await enqueue(database, outbox, 1, ordering_key="group-a")
    a2 = await enqueue(database, outbox, 2, ordering_key="group-a")
    b1 = await enqueue(database, outbox, 3, ordering_key="group-b")
    await outbox.drain_once()  # a1 fails, b1 delivered, a2 held back
    assert [p["n"] for _, p in recorder.seen] == [1, 3]
    await outbox.drain_once()
    assert [p["n"] for _, p in recorder.seen] == [1, 3], "a2 must not overtake a1"
    clock.advance(seconds=600)
    await outbox.drain_all()
    assert [p["n"] for _, p in recorder.seen] == [1, 3, 1, 2]
    for item_id in (a1, a2, b1):
        assert item_id is not None
        assert (await status_of(database, item_id)).status is OutboxStatus.DONE


async def test_pending_work_survives_a_restart(database, clock, recorder) -> None:
    """Enqueued by one process, delivered by the next."""
    first = OutboxService(database.uow, clock)
    async with database.uow() as uow:
        await first.enqueue(uow, "test", {"n": 9})
        await uow.commit()
    second = OutboxService(database.uow, clock)
    second.register("test", recorder)
    await second.drain_all()
    assert [p["n"] for _, p in recorder.seen] == [9]


async def test_worker_loop_wakes_on_enqueue_and_stops(database, outbox, recorder) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(outbox.run(stop))
    await enqueue(database, outbox, 5)
    outbox.wake()
    async with asyncio.timeout(5):
        while not recorder.seen:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(worker, 5)


def test_backoff_grows_and_is_capped() -> None:
    assert 0.8 <= backoff(1) <= 1.2
    assert 6.4 <= backoff(4) <= 9.6
    assert backoff(30, cap=300) <= 360


# -- reminders ---------------------------------------------------------------------------------


async def test_reminder_fires_once_even_across_restarts(database, clock) -> None:
    fired: list[str] = []

    async def handler(uow: UnitOfWork, reminder: Reminder) -> None:
        fired.append(reminder.subject)

    def service() -> ReminderService:
        s = ReminderService(database.uow, clock)
        s.register("grant-expiry-7d", handler)
        return s

    async with database.uow() as uow:
        await service().schedule(
            uow, "grant-expiry-7d", "grant:1", clock.now() + timedelta(hours=1), {"g": 1}
        )
        await uow.commit()
    assert await service().fire_due() == 0, "not due yet"
    clock.advance(hours=1)
    assert await service().fire_due() == 1
    assert await service().fire_due() == 0, "a new process does not send it again"
    # Re-scheduling a sent reminder (e.g. a sweep that runs again) does not re-arm it.
    async with database.uow() as uow:
        await service().schedule(uow, "grant-expiry-7d", "grant:1", clock.now(), {"g": 1})
        await uow.commit()
    assert await service().fire_due() == 0
    assert fired == ["grant:1"]


async def test_concurrent_firing_sends_once(database, clock) -> None:
    fired: list[str] = []

    async def handler(uow: UnitOfWork, reminder: Reminder) -> None:
        await asyncio.sleep(0.01)
        fired.append(reminder.subject)

    services = []
    for _ in range(3):
        s = ReminderService(database.uow, clock)
        s.register("nudge", handler)
        services.append(s)
    async with database.uow() as uow:
        await services[0].schedule(uow, "nudge", "inc:1", clock.now())
        await uow.commit()
    results = await asyncio.gather(*(s.fire_due() for s in services), return_exceptions=True)
    assert fired == ["inc:1"]
    assert sum(r for r in results if isinstance(r, int)) == 1


async def test_failing_handler_leaves_the_reminder_due(database, clock) -> None:
    attempts = 0

    async def handler(uow: UnitOfWork, reminder: Reminder) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("DM refused and fallback failed")

    service = ReminderService(database.uow, clock)
    service.register("nudge", handler)
    async with database.uow() as uow:
        await service.schedule(uow, "nudge", "x", clock.now())
        await uow.commit()
    assert await service.fire_due() == 0
    assert await service.fire_due() == 1
    assert attempts == 2


async def test_cancel_and_reschedule(database, clock) -> None:
    fired: list[Any] = []

    async def handler(uow: UnitOfWork, reminder: Reminder) -> None:
        fired.append(reminder.payload)

    service = ReminderService(database.uow, clock)
    service.register("k", handler)
    async with database.uow() as uow:
        await service.schedule(uow, "k", "a", clock.now() + timedelta(days=1), {"v": 1})
        await service.schedule(uow, "k", "a", clock.now() + timedelta(days=2), {"v": 2})
        await service.schedule(uow, "k", "b", clock.now(), {"v": 3})
        await service.cancel(uow, "k", "b")
        await uow.commit()
    clock.advance(days=1)
    assert await service.fire_due() == 0
    clock.advance(days=1)
    assert await service.fire_due() == 1
    assert fired == [{"v": 2}]


async def test_pacing_postpones_the_rest_of_the_kind_without_asking(
    database, outbox, recorder, clock
) -> None:
    """A channel's pace holds every item of the kind: one statement, no handler call each,
    and no attempt counted against them."""
    other: list[int] = []

    async def other_kind(item: OutboxItem) -> Mapping[str, Any]:
        other.append(item.id)
        return {}

    outbox.register("other", other_kind)
    recorder.script = [RetryLater("pacing", retry_after=4.0, whole_kind=True)]
    ids = [await enqueue(database, outbox, n) for n in range(5)]
    async with database.uow() as uow:
        unrelated = await outbox.enqueue(uow, "other", {})
        await uow.commit()
    assert unrelated is not None
    await outbox.drain_once()
    assert len(recorder.seen) == 1, "asked once for the whole kind"
    assert other == [unrelated.id], "another kind is not held"
    items = [await status_of(database, i) for i in ids if i is not None]
    assert all(i.status is OutboxStatus.PENDING for i in items)
    assert all(i.available_at == clock.now() + timedelta(seconds=4) for i in items)
    assert [i.attempts for i in items] == [1, 0, 0, 0, 0]
    assert await outbox.drain_once() == 0
    clock.advance(seconds=4)
    await outbox.drain_once()
    done = [(await status_of(database, i)).status for i in ids if i is not None]
    assert done == [OutboxStatus.DONE] * 5


# -- nothing slow holds anything else ------------------------------------------------------------


class Hung:
    """A handler that does not answer until released: a Discord call that hangs."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[int] = []

    async def __call__(self, item: OutboxItem) -> Mapping[str, Any]:
        self.started.append(item.id)
        await self.release.wait()
        return {"late": True}


async def eventually(predicate: Any, what: str, timeout: float = 5.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def test_a_hung_item_does_not_hold_the_next_round(database, clock, recorder) -> None:
    """No batch barrier: work enqueued while one item hangs is delivered at once."""
    outbox = OutboxService(database.uow, clock, idle_poll=0.05)
    hung = Hung()
    outbox.register("hung", hung)
    outbox.register("test", recorder)
    async with database.uow() as uow:
        slow = await outbox.enqueue(uow, "hung", {})
        await uow.commit()
    assert slow is not None
    stop = asyncio.Event()
    worker = asyncio.create_task(outbox.run(stop))
    try:
        await eventually(lambda: hung.started == [slow.id], "the hung item to start")
        quick = await enqueue(database, outbox, 1)
        outbox.wake()
        await eventually(lambda: recorder.seen, "the next item, while the first one hangs")
        await eventually(lambda: outbox.delivered == 1, "the next item recorded as done")
        assert quick is not None and (await status_of(database, quick)).status is OutboxStatus.DONE
        assert (await status_of(database, slow.id)).status is OutboxStatus.PENDING
        hung.release.set()
        await eventually(lambda: outbox.delivered == 2, "the hung item to finish")
    finally:
        hung.release.set()
        stop.set()
        await asyncio.wait_for(worker, 5)
    assert hung.started == [slow.id], "handed out once"
    assert (await status_of(database, slow.id)).status is OutboxStatus.DONE


async def test_a_full_discord_lane_does_not_hold_email(database, clock, recorder) -> None:
    """Every slot of the Discord lane hangs, and it has all the items it may hold waiting; an
    email (another lane) still goes out at once."""
    outbox = OutboxService(database.uow, clock, batch=3, concurrency=2, idle_poll=0.05)
    hung = Hung()
    outbox.register("discord.message", hung, lane="discord")
    outbox.register("email", recorder)
    async with database.uow() as uow:
        for n in range(5):
            await outbox.enqueue(uow, "discord.message", {"n": n})
        await uow.commit()
    stop = asyncio.Event()
    worker = asyncio.create_task(outbox.run(stop))
    try:
        await eventually(lambda: len(hung.started) == 2, "both Discord slots to hang")
        async with database.uow() as uow:
            email = await outbox.enqueue(uow, "email", {"n": 99})
            await uow.commit()
        assert email is not None
        outbox.wake()
        await eventually(lambda: recorder.seen, "the email, while Discord hangs")
        assert recorder.seen == [(email.id, {"n": 99})]
        assert len(hung.started) == 2, "the Discord lane keeps to its own slots"
        hung.release.set()
        await eventually(lambda: outbox.delivered == 6, "the Discord items, once released")
    finally:
        hung.release.set()
        stop.set()
        await asyncio.wait_for(worker, 5)
    assert len(hung.started) == len(set(hung.started)) == 5, "each handed out once"


async def test_an_item_in_flight_is_not_handed_out_again(database, clock) -> None:
    """drain_once (tests, shutdown) next to the running worker skips what the worker holds."""
    outbox = OutboxService(database.uow, clock, idle_poll=0.05)
    hung = Hung()
    outbox.register("hung", hung)
    async with database.uow() as uow:
        item = await outbox.enqueue(uow, "hung", {})
        await uow.commit()
    assert item is not None
    stop = asyncio.Event()
    worker = asyncio.create_task(outbox.run(stop))
    try:
        await eventually(lambda: hung.started == [item.id], "the item to start")
        async with asyncio.timeout(5):
            assert await outbox.drain_once() == 0
        assert hung.started == [item.id]
    finally:
        hung.release.set()
        stop.set()
        await asyncio.wait_for(worker, 5)
    assert hung.started == [item.id]
    assert (await status_of(database, item.id)).status is OutboxStatus.DONE


async def test_next_due_skips_items_in_flight_and_those_queued_behind_them(
    database, outbox, clock
) -> None:
    """The worker sleeps until work it could start is due, not until work it already holds
    (nor a group's second item, which waits for the first): no spinning while one hangs."""
    first = await enqueue(database, outbox, 1, ordering_key="group-a")
    second = await enqueue(database, outbox, 2, ordering_key="group-a")
    assert first is not None and second is not None
    later = await enqueue(database, outbox, 3, delay=30)
    assert later is not None
    async with database.uow() as uow:
        assert await uow.outbox.next_due() == clock.now()
        assert await uow.outbox.next_due(exclude_ids=[first]) == clock.now() + timedelta(seconds=30)
        assert [i.id for i in await uow.outbox.due(clock.now(), 10)] == [first]
        assert await uow.outbox.due(clock.now(), 10, exclude_ids=[first]) == []


async def test_a_cancelled_worker_does_not_wait_for_a_hung_item(database, clock) -> None:
    """Shutdown is bounded: cancelling the worker cancels what hangs, which stays pending."""
    outbox = OutboxService(database.uow, clock, idle_poll=0.05)
    hung = Hung()
    outbox.register("hung", hung)
    async with database.uow() as uow:
        item = await outbox.enqueue(uow, "hung", {})
        await uow.commit()
    assert item is not None
    stop = asyncio.Event()
    worker = asyncio.create_task(outbox.run(stop))
    await eventually(lambda: hung.started == [item.id], "the item to start")
    stop.set()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(worker, 0.1)
    assert worker.done()
    assert (await status_of(database, item.id)).status is OutboxStatus.PENDING
