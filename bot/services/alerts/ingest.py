"""Ingest: webhook bodies in, alert groups out.

Two steps. `receive()` stores the webhook body and commits it: that short write is all
Alertmanager waits for, and "200 OK" means "it will reach Discord". The processor then applies
stored bodies, oldest first, to their groups: the group's new state, the outbox work and the
body's outcome commit together, so a body is applied exactly once, even across a crash. A body
that cannot be applied is set aside (quarantined) so it never holds up the others. Bodies left in
the retired receiver process's spool file are copied in, each once (`spool.py`).

Uses the watchdog (new critical groups get an email fallback, a Watchdog arrival ends an
outage) and the spool copy, never the reverse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from time import perf_counter
from typing import Any, cast

from pydantic import ValidationError

from bot.domain.alert_rules import (
    fresh_group,
    is_stale,
    starts_new_episode,
    updated_group,
    wants_email_fallback,
)
from bot.domain.alerts import (
    AlertGroup,
    IngestOutcome,
    IngestResult,
    StoredNotification,
    WebhookPayload,
)
from bot.domain.outbox import OutboxKind
from bot.domain.ports import AlertSpool, Clock, UnitOfWork, UowFactory
from bot.services.alerts.common import AlertObserver, AlertPolicy, FreshGroups
from bot.services.alerts.spool import SpoolCopy
from bot.services.alerts.watchdog import AlertWatchdog
from bot.services.inbox import Inbox, watchdog_fired
from bot.services.outbox import OutboxService

log = logging.getLogger(__name__)

PARSED_CACHE = 10_000
"""Bodies parsed on arrival kept for the processor; beyond this it parses them again."""
QUARANTINE_AFTER = 3
"""Failed transactions of one stored body alone, in a row, before it is set aside (provided
the body after it applies: then the fault is the body's, not the database's)."""


class AlertIngest:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        outbox: OutboxService,
        policy: AlertPolicy,
        watchdog: AlertWatchdog,
        fresh: FreshGroups,
        *,
        ingest_uow_factory: UowFactory | None = None,
        spool: AlertSpool | None = None,
        observer: AlertObserver | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._outbox = outbox
        self.policy = policy
        self._watchdog = watchdog
        self._fresh = fresh
        self._observer = observer
        self.inbox = Inbox(ingest_uow_factory or uow_factory, clock, self._received)
        self._process_wake = asyncio.Event()
        self._process_lock = asyncio.Lock()
        self._body_seconds = 0.0  # the processor's recent cost per body, on this loop
        self._last_work = 0.0
        self.watchdog_arrival_pending = False  # a Watchdog arrived, not yet applied
        self._parsed: dict[int, WebhookPayload] = {}
        self.spooled = SpoolCopy(spool, clock, policy)
        self._attempted: list[int] = []  # the stored bodies of the transaction under way
        self._aside: list[str] = []  # bodies set aside in it: counted once it commits
        self._alone = 0  # after a failed batch: bodies still to apply one at a time
        self._suspect: tuple[int, int] | None = None  # a body failing alone: (id, times)

    async def receive(self, payload: WebhookPayload, raw: Mapping[str, Any] | str) -> IngestResult:
        """Store one webhook body; return once it is committed ("accepted" or "duplicate").

        This is all Alertmanager waits for. Its group is updated right after by the processor
        (`run_processor`), from the stored body, so nothing stored is ever lost: a crash
        between the two leaves the body waiting, and the next start applies it.
        Concurrent calls share one write (group commit). See `Inbox.receive`.
        """
        return await self.inbox.receive(payload, raw)

    async def ingest(self, payload: WebhookPayload, raw: Mapping[str, Any] | str) -> IngestResult:
        """`receive()`, then process it now: the full outcome and the group it updated."""
        received = await self.receive(payload, raw)
        await self.process_pending()  # a duplicate Watchdog still counts as an arrival
        if received.notification_id is None:
            return received
        return await self.result_of(received.notification_id) or received

    async def result_of(self, notification_id: int) -> IngestResult | None:
        """What became of a stored body ("pending" while it waits for the processor)."""
        async with self._uow_factory() as uow:
            found = await uow.alerts.notification_result(notification_id)
        if found is None:
            return None
        outcome, group_id = found
        return IngestResult(
            cast(IngestOutcome, outcome),
            group_id=group_id
            if outcome not in ("watchdog", "invalid", "quarantined", "pending")
            else None,
            notification_id=notification_id,
        )

    def _received(
        self, payloads: Sequence[WebhookPayload], results: Sequence[IngestResult]
    ) -> None:
        """Bodies were stored: keep them parsed for the processor, and wake it."""
        for payload, result in zip(payloads, results, strict=True):
            if result.notification_id is not None and len(self._parsed) < PARSED_CACHE:
                # The processor need not validate the stored body a second time.
                self._parsed[result.notification_id] = payload
        if watchdog_fired(payloads, self.policy.watchdog_alertname):
            self.watchdog_arrival_pending = True  # a duplicate too: see watchdog_fired
            self._process_wake.set()
        if any(r.outcome == "accepted" for r in results):
            self._process_wake.set()

    async def run_processor(self, stop: asyncio.Event) -> None:
        """Update groups from stored bodies as they arrive, until `stop`; bodies left over
        from before a restart first. A burst is taken in batches of `process_batch`."""
        while not stop.is_set():
            self._process_wake.clear()
            try:
                done = await self.process_pending()
            except Exception:
                log.exception("could not update alert groups from stored webhooks; retrying")
                done = 0
                await wait_either(stop, None, self.policy.process_retry)
                continue
            if done:
                await asyncio.sleep(0)  # let waiting webhooks in between two batches
                continue
            await self._wait_for_work(stop)
            if self.policy.process_delay > 0 and not stop.is_set():
                # Let a burst gather: one transaction for many bodies, not one each.
                await wait_either(stop, None, self.policy.process_delay)

    async def _wait_for_work(self, stop: asyncio.Event) -> None:
        """Until a webhook is stored here, the receiver's spool has news, `process_poll`
        passes or `stop`. The spool is another process's file: it is looked at, cheaply,
        every `spool_poll`."""
        policy = self.policy
        if self.spooled.spool is None:
            await wait_either(stop, self._process_wake, policy.process_poll)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.process_poll
        while not (stop.is_set() or self._process_wake.is_set()) and loop.time() < deadline:
            if self.spooled.changed():
                return
            await wait_either(stop, self._process_wake, policy.spool_poll)

    async def process_pending(self, limit: int | None = None) -> int:
        """Apply stored bodies to their groups, oldest first; returns how many were applied.

        Bodies in the receiver process's spool are copied in first, in the same transaction."""
        async with self._process_lock:
            watchdog, self.watchdog_arrival_pending = self.watchdog_arrival_pending, False
            watchdog = self.spooled.watchdog_arrived() or watchdog
            batch = 1 if self._alone else (limit or self.batch_limit())
            try:
                applied, delay = await self._process(watchdog, batch, self._uow_factory)
            except BaseException as exc:
                self.watchdog_arrival_pending = self.watchdog_arrival_pending or watchdog
                if isinstance(exc, Exception) and await self._set_aside_failing(exc):
                    return 1  # the body at fault is set aside: the others go on
                raise
            if applied and self._alone:
                self._alone = max(self._alone - applied, 0)
                self._suspect = None
            if applied:
                # The transaction's own time: waiting for the lock is no reason to shrink.
                per_body = self._last_work / applied
                previous = self._body_seconds or per_body
                self._body_seconds = 0.7 * previous + 0.3 * per_body
                self._outbox.wake(delay, kind=OutboxKind.ALERTS_DELIVER)
            return applied

    def batch_limit(self) -> int:
        """As many bodies as fit the time budget at the recent cost per body, 1 at least.

        On a slow moment (a busy machine, a throttled VM) batches shrink to one body, so a
        webhook arriving meanwhile waits for one body's work, not ten."""
        policy = self.policy
        if self._body_seconds <= 0:
            return policy.process_batch
        fits = int(policy.process_budget / self._body_seconds)
        return max(1, min(policy.process_batch, fits))

    async def _set_aside_failing(self, error: Exception) -> bool:
        """After a failed transaction: find the body at fault and set it aside, so that one
        bad body never holds up the others (the webhook's model refuses what is known to be
        bad at the door; this is for what is not known, and bodies stored by an older version).

        A failed batch is applied again one body at a time; a body that fails alone
        `QUARANTINE_AFTER` times in a row, while the body after it applies (tried in a
        transaction rolled back: the database works), and once more after that, is marked
        "quarantined", logged and counted. True when a body was set aside."""
        attempted = self._attempted
        if len(attempted) != 1:
            self._alone = max(self._alone, len(attempted))
            return False
        (body,) = attempted
        times = self._suspect[1] + 1 if self._suspect and self._suspect[0] == body else 1
        self._suspect = (body, times)
        self._alone = max(self._alone, 1)
        if times < QUARANTINE_AFTER or not await self._next_body_applies(body):
            return False
        try:  # once more: a database that just came back would apply it now
            await self._process(False, 1, self._uow_factory)
        except Exception as again:
            error = again
        else:
            self._suspect = None
            return True
        async with self._uow_factory() as uow:
            await uow.alerts.mark_processed({body: "quarantined"}, self._clock.now())
            await uow.commit()
        self._parsed.pop(body, None)
        self._suspect = None
        log.error(
            "stored webhook body %s quarantined: applying it failed %d times (last: %s) while "
            "the body after it applies; the bodies after it go on",
            body,
            times + 1,
            type(error).__name__,
        )
        if self._observer is not None:
            self._observer.alert_body_quarantined("failed")
        return True

    async def _next_body_applies(self, suspect: int) -> bool:
        """Does the body waiting after `suspect` apply? Tried and rolled back."""
        try:
            async with self._uow_factory() as uow:
                stored = [n for n in await uow.alerts.unprocessed(2) if n.id != suspect][:1]
                if not stored:
                    return False
                await self._apply(uow, stored, self._clock.now())
                await uow.rollback()
            return True
        except Exception:
            return False
        finally:
            self._aside = []

    async def _process(self, watchdog: bool, limit: int, uows: UowFactory) -> tuple[int, float]:
        """One transaction."""
        now = self._clock.now()
        cursor: int | None = None
        moved = False
        self._attempted, self._aside = [], []
        try:
            async with uows() as uow:
                started = perf_counter()
                copied: dict[int, WebhookPayload] = {}
                if self.spooled.spool is not None:
                    previous = self.spooled.cursor
                    cursor, copied = await self.spooled.copy(uow, limit, now)
                    moved = previous is not None and cursor != previous
                known = self._parsed.keys() | copied.keys() if copied else self._parsed.keys()
                stored = await uow.alerts.unprocessed(limit, known)
                self._attempted = [notification.id for notification in stored]
                if not stored and not watchdog and not moved and cursor == self.spooled.cursor:
                    return 0, 0.0
                if watchdog:
                    await self._watchdog.watchdog_arrived(uow, now)
                delay, touched = (
                    await self._apply(uow, stored, now, copied) if stored else (0.0, [])
                )
                await uow.commit()
                self._last_work = perf_counter() - started
        except BaseException:
            self.spooled.cursor = None  # not committed: read it again next time
            raise
        # Copying only bodies the inbox had already still counts as progress (1), so that
        # loops that run "while something was done" go on to the rest of the spool.
        if cursor is not None:
            self.spooled.cursor = cursor
        aside, self._aside, self._attempted = self._aside, [], []
        for reason in aside:
            if self._observer is not None:
                self._observer.alert_body_quarantined(reason)
        self._fresh.remember(touched)
        return len(stored) or int(watchdog) or int(moved), delay

    async def backlog(self) -> int:
        """Stored bodies not applied yet, spooled ones included (a gauge for /metrics)."""
        async with self._uow_factory() as uow:
            count = await uow.alerts.count_unprocessed()
            count += await self.spooled.waiting(uow)
        return count

    async def _apply(
        self,
        uow: UnitOfWork,
        stored: list[StoredNotification],
        now: datetime,
        copied: dict[int, WebhookPayload] | None = None,
    ) -> tuple[float, list[AlertGroup]]:
        """Update groups, enqueue their delivery; returns when the first delivery is due."""
        policy = self.policy
        watchdog_name = policy.watchdog_alertname
        outcomes: dict[int, str] = {}
        items: list[tuple[StoredNotification, WebhookPayload]] = []
        for notification in stored:
            parsed = self._parsed.pop(notification.id, None)
            if parsed is None and copied:
                parsed = copied.get(notification.id)
            if parsed is not None:
                items.append((notification, parsed))
                continue
            try:
                items.append((notification, WebhookPayload.model_validate(notification.payload)))
            except ValidationError as exc:
                # Validated when it arrived; only a body stored by another version gets here.
                problem = exc.errors(include_input=False, include_url=False)[0]
                where = ".".join(str(part) for part in problem["loc"]) or "(body)"
                self._set_aside(outcomes, notification.id, "invalid", f"{where}: {problem['msg']}")

        fresh: dict[int, AlertGroup] = {}
        for index, (notification, payload) in enumerate(items):
            alerts = [a for a in payload.alerts if a.name != watchdog_name]
            if not alerts:
                outcomes[notification.id] = "watchdog"
                continue
            try:
                fresh[index] = fresh_group(payload, alerts, now)
            except Exception as exc:  # one body's values: never the others' failure
                self._set_aside(outcomes, notification.id, "quarantined", type(exc).__name__)
        hashes = [notification.group_key_hash for notification, _ in items]
        # New groups first, straight from their first body (a storm is all new groups: one
        # statement); only the groups that exist are read and locked.
        first: dict[str, int] = {}
        for index in fresh:
            first.setdefault(hashes[index], index)
        new_ids = await uow.alerts.create_groups([(h, fresh[i]) for h, i in first.items()])
        groups: dict[str, AlertGroup] = {
            h: replace(fresh[first[h]], id=group_id) for h, group_id in new_ids.items()
        }
        groups.update(await uow.alerts.groups_by_keys([h for h in first if h not in new_ids]))
        email_check: set[str] = set()
        touched: list[str] = []
        dirty: set[str] = set()
        for index, new in fresh.items():
            notification, payload = items[index]
            key_hash = hashes[index]
            if key_hash in new_ids and index == first[key_hash]:
                email_check.add(key_hash)
            else:
                current = groups[key_hash]
                if is_stale(current, payload):
                    outcomes[notification.id] = "stale"
                    continue
                new_episode = starts_new_episode(current, payload)
                if new_episode or current.severity != "critical":
                    email_check.add(key_hash)
                groups[key_hash] = updated_group(current, new, now, new_episode=new_episode)
                dirty.add(key_hash)
            outcomes[notification.id] = "accepted"
            if key_hash not in touched:
                touched.append(key_hash)
        await uow.alerts.save_groups([groups[h] for h in touched if h in dirty])
        deliveries: list[tuple[Mapping[str, Any], str | None, float]] = [
            (
                {"group_id": groups[h].id, "version": groups[h].version},
                f"alerts:{groups[h].id}",
                policy.batch_wait if groups[h].message_ref is None else 0.0,
            )
            for h in touched
        ]
        await self._outbox.enqueue_many(uow, OutboxKind.ALERTS_DELIVER, deliveries)
        for key_hash in touched:
            group = groups[key_hash]
            if policy.email_to and key_hash in email_check and wants_email_fallback(group):
                await self._watchdog.schedule_email_fallback(uow, group, now)
        await uow.alerts.mark_processed(outcomes, now)
        delay = min((delay for _, _, delay in deliveries), default=0.0)
        return delay, [groups[h] for h in touched]

    def _set_aside(self, outcomes: dict[int, str], body: int, outcome: str, why: str) -> None:
        """A stored body that cannot be applied: marked, logged, counted (after the commit)."""
        outcomes[body] = outcome
        log.error("stored webhook body %s set aside as %s: %s", body, outcome, why[:300])
        self._aside.append("invalid" if outcome == "invalid" else "failed")


async def wait_either(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep until `stop` (or `wake`) is set, at most `seconds`."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
