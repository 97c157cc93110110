"""Delivery that loses nothing: an outbox drained by a worker, and sent-once reminders.

A use case enqueues work in its own unit of work (so the work exists exactly when the change
does), commits, and wakes the worker. The worker hands each item to the handler registered for
its kind: success marks it done, `RetryLater` reschedules it (honouring `retry_after`),
`PermanentFailure` marks it failed, and any other exception is treated as transient. Items that
share an `ordering_key` are delivered one at a time, oldest first, so per-group order holds even
across retries and restarts.
"""

from __future__ import annotations

import asyncio
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

    def register(self, kind: str, handler: OutboxHandler) -> None:
        if kind in self._handlers:
            raise ValueError(f"outbox kind {kind!r} already has a handler")
        self._handlers[kind] = handler

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
        """Deliver what is due now; returns how many items were attempted."""
        async with self._uow_factory() as uow:
            items = await uow.outbox.due(self._clock.now(), self._batch, self._held())
        if not items:
            return 0
        semaphore = asyncio.Semaphore(self._concurrency)
        postponed: dict[str, list[int]] = {}

        async def bounded(item: OutboxItem) -> None:
            async with semaphore:
                if item.kind in self._held():
                    postponed.setdefault(item.kind, []).append(item.id)
                    return
                await self._deliver(item)

        await asyncio.gather(*(bounded(item) for item in items))
        if postponed:
            async with self._uow_factory() as uow:
                for kind, ids in postponed.items():
                    held = self._paused.get(kind)
                    if held is not None:  # else the hold ended: they are due as they are
                        await uow.outbox.postpone(ids, held[0], held[1][:MAX_ERROR])
                await uow.commit()
        return len(items)

    async def drain_all(self, max_rounds: int = 100) -> None:
        """Deliver until nothing is due (tests, shutdown)."""
        for _ in range(max_rounds):
            if not await self.drain_once():
                return

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
            self.delivered += 1
            async with self._uow_factory() as uow:
                await uow.outbox.complete(item.id, self._clock.now(), result)
                await uow.commit()

    def _backoff(self, item: OutboxItem) -> float:
        return backoff(item.attempts + 1, cap=self._max_backoff)

    async def _reschedule(self, item: OutboxItem, delay: float, error: str) -> None:
        self.retried += 1
        when = self._clock.now() + timedelta(seconds=max(delay, 0.0))
        async with self._uow_factory() as uow:
            await uow.outbox.reschedule(item.id, when, error[:MAX_ERROR])
            await uow.commit()

    async def _sleep_for(self) -> float:
        """Until the next item is due (a retry_after that ends soon), at most `idle_poll`."""
        held = self._held()
        try:
            async with self._uow_factory() as uow:
                due = await uow.outbox.next_due(held)
        except Exception:
            log.warning("outbox worker could not read the next due time", exc_info=True)
            return self._idle_poll
        wait = self._idle_poll if due is None else (due - self._clock.now()).total_seconds()
        if held:
            first = min(self._paused[k][0] for k in held)
            wait = min(wait, (first - self._clock.now()).total_seconds())
        return min(max(wait, 0.01), self._idle_poll)

    def _held(self) -> list[str]:
        """Kinds still held by a whole-kind RetryLater (expired holds are forgotten)."""
        now = self._clock.now()
        for kind in [k for k, (until, _) in self._paused.items() if until <= now]:
            del self._paused[kind]
        return list(self._paused)

    async def run(self, stop: asyncio.Event) -> None:
        """The worker loop: drain, then sleep until woken, the next poll, or stop."""
        while not stop.is_set():
            # Cleared before draining: a wake() that lands while this round queries is kept.
            self._wake.clear()
            try:
                attempted = await self.drain_once()
            except Exception:
                log.exception("outbox worker round failed")
                attempted = 0
            if attempted:
                continue
            waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
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
