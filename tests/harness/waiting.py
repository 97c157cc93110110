"""Waiting without guessing: poll a condition with a deadline, or let a running app settle.

A fixed `asyncio.sleep(2)` before "and nothing more happened" is slow when the machine is idle and
wrong when it is loaded. `quiesce(app)` instead waits until the app has nothing left to do *now*
(by its own clock): no interaction in flight, no stored webhook unapplied, no reminder or outbox
item due. With a FakeClock, a test moves time and then quiesces: deterministic, and fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bot.app import Application

T = TypeVar("T")

POLL = 0.02


async def eventually(check: Callable[[], T], timeout: float = 15, what: str = "") -> T:
    """The first truthy value of `check()`, polled until `timeout` (then AssertionError)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = check()
                if value:
                    return value
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what or check}") from None


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    await eventually(lambda: bool(predicate()), timeout, what)


async def until_async(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def _busy(app: Application) -> bool:
    now = app.clock.now()
    async with app.database.uow() as uow:
        due = await uow.outbox.next_due(app.outbox._held())
        reminders = await uow.reminders.due(now, 1)
    if due is not None and due <= now:
        app.outbox.wake()
        return True
    if reminders:
        return True
    # A Watchdog that arrived (a repeat too) is applied by the processor, like a stored body.
    return bool(await app.alerts.backlog()) or app.alerts.watchdog_arrival_pending


async def quiesce(app: Application, timeout: float = 15) -> None:
    """Run the periodic checks once at the app's time, then wait until nothing is due.

    Outbox items held by a pace or a retry in the future are not waited for: they are not due.
    """
    await app.bot.drain(timeout)
    await _settle(app, timeout)
    await app.jobs.check_alerts()  # due reminders (email fallbacks), the dead man's switch, backlog
    await _settle(app, timeout)
    await app.bot.drain(timeout)


async def _settle(app: Application, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                if not await _busy(app):
                    # Twice in a row: a delivery that just finished may have enqueued more.
                    await asyncio.sleep(POLL)
                    if not await _busy(app):
                        break
                await app.jobs.fire_reminders()
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise AssertionError(f"the app did not settle within {timeout}s") from None
