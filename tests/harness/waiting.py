"""Waiting without guessing: poll a condition with a deadline, or let a running app settle.

A fixed `asyncio.sleep(2)` before "and nothing more happened" is slow when the machine is idle and
wrong when it is loaded. `quiesce(app)` instead waits until the app has nothing left to do *now*
(by its own clock): no interaction in flight, no stored webhook unapplied, no reminder or outbox
item due. With a FakeClock, a test moves time and then quiesces: deterministic, and fast.
`events_handled(app, emulator)` waits until the bot has read every gateway event the emulator
sent and its listeners have finished: "a second 📌 changed nothing" is then a fact, not a guess.

    await until(lambda: len(inbox.messages) >= 2, 15, "two emails")   # a condition, polled
    pin = await eventually_async(pinned, 10, "the pin")               # an async one, its value
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bot.app import Application
    from tests.harness.emulator import DiscordEmulator

T = TypeVar("T")

POLL = 0.02
"""How often a condition is polled (s): far below any delay a test measures."""


async def eventually(
    check: Callable[[], T | None], timeout: float = 15, what: str = "", *, poll: float = POLL
) -> T:
    """The first truthy value of `check()`, polled until `timeout` (then AssertionError)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = check()
                if value:
                    return value
                await asyncio.sleep(poll)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what or check}") from None


async def eventually_async(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 15,
    what: str = "",
    *,
    poll: float = POLL,
) -> T:
    """The first truthy value of `await check()` (a database read, an HTTP probe), polled."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = await check()
                if value:
                    return value
                await asyncio.sleep(poll)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what or check}") from None


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    await eventually(lambda: bool(predicate()), timeout, what)


async def until_async(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str) -> None:
    async def holds() -> bool:
        return bool(await predicate())

    await eventually_async(holds, timeout, what)


LISTENER_TASK = "discord.py: "
"""discord.py names the task of each event listener it schedules `discord.py: <event>`."""


async def events_handled(app: Application, emulator: DiscordEmulator, timeout: float = 15) -> None:
    """Every gateway event the emulator has sent so far has reached the bot, and the listeners
    it started (a 📌 reaction onto the timeline, a member's leave) have finished.

    A round trip through the gateway's own sequence numbers: discord.py parses a frame (and
    schedules its listeners) in the same step as it records the frame's number, so once the bot's
    `ws.sequence` has reached the emulator's, every listener task of those events exists, and is
    waited for here. Outbox work a listener enqueued is not: `quiesce(app)` delivers it."""
    sent = emulator.dispatched_sequence

    def received() -> bool:
        ws = app.bot.ws
        return ws is not None and (ws.sequence or 0) >= sent

    await until(received, timeout, f"the bot to read gateway event #{sent}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        listeners = {
            task
            for task in asyncio.all_tasks()
            if task.get_name().startswith(LISTENER_TASK) and not task.done()
        } - {asyncio.current_task()}
        if not listeners:
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            names = sorted(task.get_name() for task in listeners)
            raise AssertionError(f"event listeners still running after {timeout}s: {names}")
        # A listener may dispatch another event (its task appears meanwhile): look again.
        await asyncio.wait(listeners, timeout=remaining)


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
