"""Delivery that loses nothing: an outbox drained by a worker, and sent-once reminders.

A use case enqueues work in its own unit of work (so the work exists exactly when the change
does), commits, and wakes the worker. The worker hands each item to the handler registered for
its kind: success marks it done, `RetryLater` reschedules it (honouring `retry_after`),
`PermanentFailure` marks it failed, and any other exception is treated as transient. Items that
share an `ordering_key` are delivered one at a time, oldest first, so per-group order holds even
across retries and restarts.

Nothing slow holds anything else: each item runs in a task of its own and the worker never waits
for a round to end, and kinds are grouped in lanes with slots of their own (the app puts Discord's
kinds in one lane, so a rate-limited or hung Discord call never delays an email or a GitHub write).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.domain.outbox import (
    NewOutboxItem,
    OutboxItem,
    PermanentFailure,
    Reminder,
    RetryLater,
)
from bot.domain.ports import Clock, UnitOfWork

log = logging.getLogger(__name__)

OutboxHandler = Callable[[OutboxItem], Awaitable[Mapping[str, Any] | None]]
ReminderHandler = Callable[[UnitOfWork, Reminder], Awaitable[None]]
UowFactory = Callable[[], UnitOfWork]
MAX_ERROR = 500


def backoff(attempts: int, *, base: float = 1.0, cap: float = 300.0, jitter: float = 0.2) -> float:
    """Exponential with a cap and some jitter, so a recovering Discord is not hit in lockstep."""
    delay = min(cap, base * 2 ** max(attempts - 1, 0))
    return float(delay * (1 + random.uniform(-jitter, jitter)))


DEFAULT_LANE = "default"
"""Every kind registered without a lane: email, GitHub writes, whatever Discord cannot touch."""
DISCORD_LANE = "discord"
"""The composition root registers Discord's kinds here."""


class _Lane:
    """Slots of their own for a group of kinds: work in one lane never waits for another's."""

    def __init__(self, slots: int) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.claimed = 0
        """Items handed out (running or waiting for a slot)."""


class OutboxService:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        *,
        batch: int = 50,
        concurrency: int = 4,
        idle_poll: float = 5.0,
        max_backoff: float = 300.0,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._handlers: dict[str, OutboxHandler] = {}
        self._wake = asyncio.Event()
        self._sleeping_until: float | None = None
        self._batch = batch
        self._concurrency = concurrency
        self._idle_poll = idle_poll
        self._max_backoff = max_backoff
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self._paused: dict[str, tuple[datetime, str]] = {}
        """Kinds held by a `RetryLater(whole_kind=True)`: kind -> (when it ends, why).
        Rounds leave them out of their query until then, and wakes for them are ignored."""
        self._lanes: dict[str, _Lane] = {DEFAULT_LANE: _Lane(concurrency)}
        self._lane_of: dict[str, str] = {}
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        """Items handed out and not finished: no round hands them out again."""
        self._claiming = asyncio.Lock()
        self._postponed: dict[str, list[int]] = {}

    def register(self, kind: str, handler: OutboxHandler, *, lane: str = DEFAULT_LANE) -> None:
        """`lane`: kinds that share a lane share its `concurrency` slots and nothing else, so
        a slow or rate-limited service (Discord) cannot hold the others (email, GitHub)."""
        if kind in self._handlers:
            raise ValueError(f"outbox kind {kind!r} already has a handler")
        self._handlers[kind] = handler
        self._lane_of[kind] = lane
        if lane not in self._lanes:
            self._lanes[lane] = _Lane(self._concurrency)

    def kinds(self) -> frozenset[str]:
        """The kinds with a handler (the catalogue's guard test asks)."""
        return frozenset(self._handlers)

    def lane_of(self, kind: str) -> str:
        return self._lane_of.get(kind, DEFAULT_LANE)

    async def enqueue(
        self,
        uow: UnitOfWork,
        kind: str,
        payload: Mapping[str, Any],
        *,
        ordering_key: str | None = None,
        dedupe_key: str | None = None,
        delay: float = 0.0,
    ) -> OutboxItem | None:
        """Add work to the caller's transaction; None if `dedupe_key` was already enqueued."""
        now = self._clock.now()
        item = NewOutboxItem(
            kind=kind,
            payload=dict(payload),
            available_at=now + timedelta(seconds=delay),
            ordering_key=ordering_key,
            dedupe_key=dedupe_key,
        )
        return await uow.outbox.add(item, now)

    async def enqueue_many(
        self,
        uow: UnitOfWork,
        kind: str,
        items: list[tuple[Mapping[str, Any], str | None, float]],
    ) -> None:
        """Add several items (payload, ordering_key, delay) in one statement; no dedupe keys."""
        if not items:
            return
        now = self._clock.now()
        await uow.outbox.add_many(
            [
                NewOutboxItem(
                    kind=kind,
                    payload=dict(payload),
                    available_at=now + timedelta(seconds=delay),
                    ordering_key=ordering_key,
                )
                for payload, ordering_key, delay in items
            ],
            now,
        )

    def wake(self, delay: float = 0.0, *, kind: str | None = None) -> None:
        """Call after committing an enqueue, so delivery starts now rather than at the next poll.

        `delay` is when the new work becomes due; a worker already sleeping until then is left
        alone (a burst of enqueues then costs no database round trips of the worker's), and so
        is one whose `kind` is held until after then.
        """
        if kind is not None:
            held = self._paused.get(kind)
            if held is not None and held[0] > self._clock.now() + timedelta(seconds=delay):
                return
        now = time.monotonic()
        until = self._sleeping_until
        if until is not None and now + delay >= until - 0.005:
            return
        self._wake.set()

    async def drain_once(self) -> int:
        """Deliver what is due now and wait for it; returns how many items were attempted.
        (Tests, shutdown: the worker loop itself never waits for a round.)"""
        tasks = await self._claim()
        if tasks:
            await asyncio.wait(tasks)
        await self._flush_postponed()
        errors = [e for t in tasks if not t.cancelled() and (e := t.exception()) is not None]
        if errors:
            raise errors[0]
        return len(tasks)

    async def drain_all(self, max_rounds: int = 100) -> None:
        """Deliver until nothing is due (tests, shutdown), the worker's items in flight too."""
        for _ in range(max_rounds):
            if await self.drain_once():
                continue
            if not self._in_flight:
                return
            await asyncio.wait(list(self._in_flight.values()))

    async def _claim(self) -> list[asyncio.Task[None]]:
        """Hand out what is due and not in flight, each item in a task of its own: the caller
        never waits for a round, so one slow item holds nothing but its own slot."""
        async with self._claiming:  # two rounds at once would both see the same items
            skip = self._skipped_kinds()
            in_flight = list(self._in_flight)
            async with self._uow_factory() as uow:
                items = await uow.outbox.due(self._clock.now(), self._batch, skip, in_flight)
            tasks = []
            for item in items:
                lane = self._lanes[self.lane_of(item.kind)]
                no_room = lane.claimed >= self._batch and item.kind in self._handlers
                if item.id in self._in_flight or no_room:
                    continue  # the next round asks again (no handler: failed at once)
                lane.claimed += 1
                task = asyncio.create_task(self._run_item(lane, item), name=f"outbox {item.id}")
                self._in_flight[item.id] = task
                task.add_done_callback(functools.partial(self._finished, lane, item))
                tasks.append(task)
            return tasks

    async def _run_item(self, lane: _Lane, item: OutboxItem) -> None:
        async with lane.slots:
            if item.kind in self._held():
                # Its kind was held while it waited for a slot: postponed with the others of
                # its kind in one statement, without a handler call each.
                self._postponed.setdefault(item.kind, []).append(item.id)
                return
            await self._deliver(item)

    def _finished(self, lane: _Lane, item: OutboxItem, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(item.id, None)
        lane.claimed -= 1
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "outbox item %s (%s) could not be recorded; it stays pending",
                item.id,
                item.kind,
                exc_info=exc,
            )
        # Refill before the lane runs dry (and let a group's next item go), without a query
        # for every item of a storm.
        if lane.claimed <= self._batch // 2:
            self._wake.set()

    async def _flush_postponed(self) -> None:
        if not self._postponed:
            return
        postponed, self._postponed = self._postponed, {}
        async with self._uow_factory() as uow:
            for kind, ids in postponed.items():
                held = self._paused.get(kind)
                if held is not None:  # else the hold ended: they are due as they are
                    await uow.outbox.postpone(ids, held[0], held[1][:MAX_ERROR])
            await uow.commit()

    async def _deliver(self, item: OutboxItem) -> None:
        handler = self._handlers.get(item.kind)
        try:
            if handler is None:
                raise PermanentFailure(f"no handler for outbox kind {item.kind!r}")
            result = await handler(item)
        except RetryLater as exc:
            delay = exc.retry_after if exc.retry_after is not None else self._backoff(item)
            if exc.whole_kind:
                until = self._clock.now() + timedelta(seconds=max(delay, 0.0))
                held = self._paused.get(item.kind)
                if held is None or held[0] < until:
                    self._paused[item.kind] = (until, exc.reason)
            await self._reschedule(item, delay, exc.reason)
        except PermanentFailure as exc:
            self.failed += 1
            log.error("outbox item %s (%s) refused for good: %s", item.id, item.kind, exc)
            async with self._uow_factory() as uow:
                await uow.outbox.fail(item.id, self._clock.now(), str(exc)[:MAX_ERROR])
                await uow.commit()
        except Exception as exc:
            log.warning(
                "outbox item %s (%s) failed, will retry: %s", item.id, item.kind, exc, exc_info=True
            )
            await self._reschedule(item, self._backoff(item), f"{type(exc).__name__}: {exc}")
        else:
            async with self._uow_factory() as uow:
                await uow.outbox.complete(item.id, self._clock.now(), result)
                await uow.commit()
            self.delivered += 1  # counted once recorded: a reader of the count finds it DONE

    def _backoff(self, item: OutboxItem) -> float:
        return backoff(item.attempts + 1, cap=self._max_backoff)

    async def _reschedule(self, item: OutboxItem, delay: float, error: str) -> None:
        self.retried += 1
        when = self._clock.now() + timedelta(seconds=max(delay, 0.0))
        async with self._uow_factory() as uow:
            await uow.outbox.reschedule(item.id, when, error[:MAX_ERROR])
            await uow.commit()

    async def _sleep_for(self) -> float:
        """Until the next item it could start is due (a retry_after that ends soon), at most
        `idle_poll`; items in flight and full lanes wake the worker as they finish."""
        held = self._held()
        try:
            async with self._uow_factory() as uow:
                due = await uow.outbox.next_due(self._skipped_kinds(), list(self._in_flight))
        except Exception:
            log.warning("outbox worker could not read the next due time", exc_info=True)
            return self._idle_poll
        wait = self._idle_poll if due is None else (due - self._clock.now()).total_seconds()
        if held:
            first = min(self._paused[k][0] for k in held)
            wait = min(wait, (first - self._clock.now()).total_seconds())
        return min(max(wait, 0.01), self._idle_poll)

    def _skipped_kinds(self) -> list[str]:
        """Kinds a round leaves out: those held, and those of a lane with no room."""
        full = (k for k, lane in self._lane_of.items() if self._lanes[lane].claimed >= self._batch)
        return sorted({*full, *self._held()})

    def _held(self) -> list[str]:
        """Kinds still held by a whole-kind RetryLater (expired holds are forgotten)."""
        now = self._clock.now()
        for kind in [k for k, (until, _) in self._paused.items() if until <= now]:
            del self._paused[kind]
        return list(self._paused)

    async def run(self, stop: asyncio.Event) -> None:
        """The worker loop: hand out what is due, then sleep until woken (an enqueue, a slot
        freed), the next due time, or stop. It never waits for the items it handed out, so a
        hung or rate-limited one holds only its own slot; at stop it lets them finish."""
        try:
            await self._loop(stop)
        except BaseException:  # cancelled (a bounded shutdown): they stay pending
            for task in list(self._in_flight.values()):
                task.cancel()
            raise
        await self._settle()

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before claiming: a wake() that lands while this round queries is kept.
            self._wake.clear()
            try:
                started = await self._claim()
                await self._flush_postponed()
            except Exception:
                log.exception("outbox worker round failed")
                started = []
            if started:
                continue
            waiters = {
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(stop.wait()),
            }
            timeout = await self._sleep_for()
            self._sleeping_until = time.monotonic() + timeout
            try:
                _done, pending = await asyncio.wait(
                    waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                self._sleeping_until = None
            for task in pending:
                task.cancel()

    async def _settle(self) -> None:
        """At stop: the items in flight finish and are recorded; cancelled with the worker
        (a bounded shutdown), they stay pending for the next start."""
        tasks = list(self._in_flight.values())
        try:
            if tasks:
                await asyncio.wait(tasks)
            await self._flush_postponed()
        finally:
            for task in tasks:
                task.cancel()


class ReminderService:
    """Due-time reminders, each fired once: the sent marker commits with what the handler does."""

    def __init__(self, uow_factory: UowFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._handlers: dict[str, ReminderHandler] = {}

    def register(self, kind: str, handler: ReminderHandler) -> None:
        if kind in self._handlers:
            raise ValueError(f"reminder kind {kind!r} already has a handler")
        self._handlers[kind] = handler

    def kinds(self) -> frozenset[str]:
        """The kinds with a handler (the catalogue's guard test asks)."""
        return frozenset(self._handlers)

    async def schedule(
        self,
        uow: UnitOfWork,
        kind: str,
        subject: str,
        due_at: datetime,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        await uow.reminders.schedule(kind, subject, due_at, dict(payload or {}))

    async def cancel(self, uow: UnitOfWork, kind: str, subject: str) -> None:
        await uow.reminders.cancel(kind, subject)

    async def fire_due(self, limit: int = 100) -> int:
        """Fire every due reminder once; returns how many fired. Safe to run twice at once."""
        now = self._clock.now()
        async with self._uow_factory() as uow:
            due = await uow.reminders.due(now, limit)
        fired = 0
        for reminder in due:
            handler = self._handlers.get(reminder.kind)
            if handler is None:
                log.error("no handler for reminder kind %r (id %s)", reminder.kind, reminder.id)
                continue
            try:
                async with self._uow_factory() as uow:
                    if not await uow.reminders.mark_sent(reminder.id, now):
                        continue
                    await handler(uow, reminder)
                    await uow.commit()
                    fired += 1
            except Exception:
                log.exception("reminder %s (%s) failed; it stays due", reminder.id, reminder.kind)
        return fired
