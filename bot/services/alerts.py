"""The alert relay's rules: durable idempotent ingest, what #alerts must show next, operators' acts.

Ingest is two steps. `receive()` stores the webhook body and commits it: that short write is all
Alertmanager waits for, and "200 OK" means "it will reach Discord". The processor then applies
stored bodies, oldest first, to their groups: the group's new state, the outbox work and the
body's outcome commit together, so a body is applied exactly once, even across a crash. The
outbox handler (a transport in
cogs/alerts) asks `plan()` what to send: an edit of the group's message, its own new message, or,
during a storm, a digest that shows many new groups at once; then tells `record_*()` what Discord
answered. Every plan is rendered from the latest stored state, so a replay sends nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any, Protocol, cast

from pydantic import ValidationError

from bot.domain.alerts import (
    AlertGroup,
    AlertMessage,
    AlertStatus,
    AlertView,
    DeliveryPlan,
    IngestOutcome,
    IngestResult,
    NotificationRow,
    Silence,
    StoredNotification,
    WebhookAlert,
    WebhookPayload,
    worst_severity,
)
from bot.domain.errors import InvalidInput, NotFound, Unavailable
from bot.domain.outbox import OutboxKind, Reminder
from bot.domain.ports import AlertSpool, Clock, SilenceGateway, UnitOfWork
from bot.domain.roles import Actor
from bot.services.inbox import Inbox, watchdog_fired
from bot.services.outbox import OutboxService, ReminderService

log = logging.getLogger(__name__)

ALERTS_DELIVER = "alerts.deliver"
EMAIL_FALLBACK = "alerts.email_fallback"
EMBEDS_PER_MESSAGE = 10
SILENCE_HOURS = (1, 4, 24)
PARSED_CACHE = 10_000
"""Bodies parsed on arrival kept for the processor; beyond this it parses them again."""
FRESH_CACHE = 5_000
"""New groups kept for their first digest (a plan checks each one's version first)."""
RENDERED_CACHE = 10_000
"""Versions this process has shown, so an already-shown item needs no transaction."""
QUARANTINE_AFTER = 3
"""Failed transactions of one stored body alone, in a row, before it is set aside (provided
the body after it applies: then the fault is the body's, not the database's)."""

UowFactory = Callable[[], UnitOfWork]


class AlertObserver(Protocol):
    """Told when a stored body is set aside (the metric)."""

    def alert_body_quarantined(self, reason: str) -> None:
        """`invalid`: it no longer passes the webhook's model; `failed`: applying it fails."""
        ...


@dataclass(frozen=True)
class AlertPolicy:
    """The `[alerts]`, `[channels]` and `[smtp]` settings the rules need."""

    alerts_channel_id: int
    operations_channel_id: int
    mention_roles: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    email_to: tuple[str, ...] = ()
    email_fallback_after: float = 120.0
    watchdog_alertname: str = "Watchdog"
    watchdog_timeout: float = 600.0
    batch_wait: float = 0.5
    process_delay: float = 0.02
    """After a body arrives, wait this long so a burst is applied in one transaction."""
    process_batch: int = 10
    """At most this many bodies per transaction: it runs on the event loop's thread on a
    SQLite file, and webhooks wait while it does."""
    process_budget: float = 0.008
    """Fewer, when the last batches show that many would take longer than this (seconds)."""
    process_poll: float = 5.0
    process_retry: float = 1.0
    spool_poll: float = 0.05
    """How often the processor looks for bodies in the receiver process's spool (seconds)."""
    spool_retention: float = 600.0
    """Bodies copied from the spool stay there this long, so the receiver still answers
    "duplicate" to a retry or an HA twin; after that the inbox's dedupe key still applies."""
    storm_threshold: int = 10
    digest_max_groups: int = 40


class AlertService:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        outbox: OutboxService,
        reminders: ReminderService,
        policy: AlertPolicy,
        *,
        silences: SilenceGateway | None = None,
        ingest_uow_factory: UowFactory | None = None,
        spool: AlertSpool | None = None,
        observer: AlertObserver | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._ingest_uow_factory = ingest_uow_factory or uow_factory
        self._clock = clock
        self._outbox = outbox
        self._reminders = reminders
        self.policy = policy
        self._silences = silences
        self._observer = observer
        self.inbox = Inbox(self._ingest_uow_factory, clock, self._received)
        self._process_wake = asyncio.Event()
        self._process_lock = asyncio.Lock()
        self._body_seconds = 0.0  # the processor's recent cost per body, on this loop
        self._last_work = 0.0
        self._watchdog_arrived = False
        self._parsed: dict[int, WebhookPayload] = {}
        self._fresh: dict[int, AlertGroup] = {}
        self._rendered: dict[int, int] = {}
        self.spool = spool
        self._spool_cursor: int | None = None  # last spool id copied; None: read it again
        self._spool_generation = ""  # the generation that cursor belongs to
        self._spool_watchdog: datetime | None = None  # the last Watchdog seen in the spool
        self._attempted: list[int] = []  # the stored bodies of the transaction under way
        self._aside: list[str] = []  # bodies set aside in it: counted once it commits
        self._alone = 0  # after a failed batch: bodies still to apply one at a time
        self._suspect: tuple[int, int] | None = None  # a body failing alone: (id, times)
        reminders.register(EMAIL_FALLBACK, self._email_fallback)

    # -- ingest -----------------------------------------------------------------------------

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
            self._watchdog_arrived = True  # a duplicate too: see watchdog_fired
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
                await _wait_either(stop, None, self.policy.process_retry)
                continue
            if done:
                await asyncio.sleep(0)  # let waiting webhooks in between two batches
                continue
            await self._wait_for_work(stop)
            if self.policy.process_delay > 0 and not stop.is_set():
                # Let a burst gather: one transaction for many bodies, not one each.
                await _wait_either(stop, None, self.policy.process_delay)

    async def _wait_for_work(self, stop: asyncio.Event) -> None:
        """Until a webhook is stored here, the receiver's spool has news, `process_poll`
        passes or `stop`. The spool is another process's file: it is looked at, cheaply,
        every `spool_poll`."""
        policy = self.policy
        if self.spool is None:
            await _wait_either(stop, self._process_wake, policy.process_poll)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.process_poll
        while not (stop.is_set() or self._process_wake.is_set()) and loop.time() < deadline:
            if self._spool_changed():
                return
            await _wait_either(stop, self._process_wake, policy.spool_poll)

    def _spool_changed(self) -> bool:
        assert self.spool is not None
        try:
            changed = self.spool.changed()
            cursor = self._spool_cursor
            # More than one batch may be waiting: the file changed only once for them.
            return changed or cursor is None or self.spool.last_id() > cursor
        except Exception as exc:
            log.warning("could not look at the alert spool (%s); retrying", type(exc).__name__)
            return False

    async def process_pending(self, limit: int | None = None) -> int:
        """Apply stored bodies to their groups, oldest first; returns how many were applied.

        Bodies in the receiver process's spool are copied in first, in the same transaction."""
        async with self._process_lock:
            watchdog, self._watchdog_arrived = self._watchdog_arrived, False
            watchdog = self._spool_watchdog_arrived() or watchdog
            batch = 1 if self._alone else (limit or self.batch_limit())
            try:
                applied, delay = await self._process(watchdog, batch, self._uow_factory)
            except BaseException as exc:
                self._watchdog_arrived = self._watchdog_arrived or watchdog
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
                self._outbox.wake(delay, kind=ALERTS_DELIVER)
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
                if self.spool is not None:
                    previous = self._spool_cursor
                    cursor, copied = await self._copy_spool(uow, limit, now)
                    moved = previous is not None and cursor != previous
                known = self._parsed.keys() | copied.keys() if copied else self._parsed.keys()
                stored = await uow.alerts.unprocessed(limit, known)
                self._attempted = [notification.id for notification in stored]
                if not stored and not watchdog and not moved and cursor == self._spool_cursor:
                    return 0, 0.0
                if watchdog:
                    outage_since = await uow.alerts.watchdog_seen(now)
                    if outage_since is not None:
                        await self._post_operations(uow, *pipeline_recovered(outage_since, now))
                delay, touched = (
                    await self._apply(uow, stored, now, copied) if stored else (0.0, [])
                )
                await uow.commit()
                self._last_work = perf_counter() - started
        except BaseException:
            self._spool_cursor = None  # not committed: read it again next time
            raise
        # Copying only bodies the inbox had already still counts as progress (1), so that
        # loops that run "while something was done" go on to the rest of the spool.
        if cursor is not None:
            self._spool_cursor = cursor
        aside, self._aside, self._attempted = self._aside, [], []
        for reason in aside:
            if self._observer is not None:
                self._observer.alert_body_quarantined(reason)
        self._remember(touched)
        return len(stored) or int(watchdog) or int(moved), delay

    async def _copy_spool(
        self, uow: UnitOfWork, limit: int, now: datetime
    ) -> tuple[int, dict[int, WebhookPayload]]:
        """Copy up to `limit` new bodies from the spool into the inbox and move the cursor,
        in the caller's transaction: each is copied exactly once. Returns the new cursor and
        the copied bodies parsed, by their new notification id."""
        spool = self.spool
        assert spool is not None
        generation = spool.generation
        if generation != self._spool_generation:
            self._spool_generation, self._spool_cursor = generation, None
        cursor = self._spool_cursor
        if cursor is None:
            cursor = await uow.alerts.spool_cursor(generation)
        if cursor and spool.sequence() < cursor:
            # Ids at or under the cursor would be given again and never copied.
            log.error(
                "the alert spool went backwards (its ids end before %d, already copied): "
                "copying all of it again under a new generation",
                cursor,
            )
            generation = self._spool_generation = spool.regenerate()
            cursor = 0
        if spool.last_id() <= cursor:
            return cursor, {}
        bodies = spool.read(cursor, limit)
        if not bodies:
            return cursor, {}
        inserted = await uow.alerts.add_notifications(
            [
                NotificationRow(b.dedupe_key, b.group_key_hash, b.status, b.receiver, b.payload)
                for b in bodies
            ],
            now,
        )
        last = bodies[-1].id
        await uow.alerts.set_spool_cursor(generation, last, now)
        parsed: dict[int, WebhookPayload] = {}
        for body in bodies:
            new_id = inserted.get(body.dedupe_key)
            if new_id is None:
                continue  # already here (it came in through the bot's own webhook too)
            try:
                parsed[new_id] = WebhookPayload.model_validate_json(body.payload)
            except ValueError:
                continue  # the processor parses it again and records "invalid"
        return last, parsed

    def _spool_watchdog_arrived(self) -> bool:
        """Did the receiver get a firing Watchdog since last asked (a duplicate counts)."""
        if self.spool is None:
            return False
        try:
            seen = self.spool.watchdog_at()
        except Exception as exc:
            log.warning("could not read the alert spool (%s)", type(exc).__name__)
            return False
        previous, self._spool_watchdog = self._spool_watchdog, seen
        if seen is None:
            return False
        if previous is None:
            # The first look since start: one that arrived while the bot was away counts if
            # it is recent enough to mean the pipeline works.
            age = (self._clock.now() - seen).total_seconds()
            return age < self.policy.watchdog_timeout
        return seen > previous

    async def prune_spool(self) -> int:
        """Delete from the spool what was copied long enough ago (in a worker thread)."""
        spool, cursor = self.spool, self._spool_cursor
        if spool is None or not cursor:
            return 0
        before = self._clock.now() - timedelta(seconds=self.policy.spool_retention)
        return await asyncio.to_thread(spool.prune, cursor, before)

    def _remember(self, groups: Sequence[AlertGroup]) -> None:
        """Keep the new groups just committed, for the digest that will show them (it would
        otherwise read and decode forty groups again, on the loop that answers webhooks)."""
        for group in groups:
            if group.message_ref is None:
                self._fresh.pop(group.id, None)
                self._fresh[group.id] = group
        while len(self._fresh) > FRESH_CACHE:
            del self._fresh[next(iter(self._fresh))]

    async def backlog(self) -> int:
        """Stored bodies not applied yet, spooled ones included (a gauge for /metrics)."""
        async with self._uow_factory() as uow:
            count = await uow.alerts.count_unprocessed()
            if self.spool is not None:
                cursor = await uow.alerts.spool_cursor(self.spool.generation)
                count += self.spool.count_after(cursor)
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
                new_episode = (
                    current.status is AlertStatus.RESOLVED and payload.status is AlertStatus.FIRING
                )
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
        await self._outbox.enqueue_many(uow, ALERTS_DELIVER, deliveries)
        for key_hash in touched:
            group = groups[key_hash]
            if (
                policy.email_to
                and key_hash in email_check
                and group.firing
                and group.severity == "critical"
                and group.posted_at is None
            ):
                await self._reminders.schedule(
                    uow,
                    EMAIL_FALLBACK,
                    f"{group.id}:{group.episode}",
                    now + timedelta(seconds=policy.email_fallback_after),
                    {"group_id": group.id, "episode": group.episode},
                )
        await uow.alerts.mark_processed(outcomes, now)
        delay = min((delay for _, _, delay in deliveries), default=0.0)
        return delay, [groups[h] for h in touched]

    def _set_aside(self, outcomes: dict[int, str], body: int, outcome: str, why: str) -> None:
        """A stored body that cannot be applied: marked, logged, counted (after the commit)."""
        outcomes[body] = outcome
        log.error("stored webhook body %s set aside as %s: %s", body, outcome, why[:300])
        self._aside.append("invalid" if outcome == "invalid" else "failed")

    # -- delivery ---------------------------------------------------------------------------

    async def plan(
        self, payload: Mapping[str, Any], capacity: int | None = None
    ) -> DeliveryPlan | None:
        """What to send for one `alerts.deliver` item; None when Discord already shows it.

        `capacity` is how many messages the channel can take in the next ~10 s (the transport
        knows its rate budget); when more new groups wait than that, they go out as digests.
        """
        group_id, version = int(payload["group_id"]), int(payload["version"])
        if self._rendered.get(group_id, 0) >= version:
            return None  # shown by a message this process sent (a digest's other items)
        policy = self.policy
        threshold = policy.storm_threshold if capacity is None else max(capacity, 1)
        async with self._uow_factory() as uow:
            group = await uow.alerts.get_group(group_id)
            if group is None or group.rendered_version >= version:
                return None
            if group.message_ref is not None:
                message = await uow.alerts.get_message(group.message_ref)
                if message is not None:
                    members = [group]
                    if message.digest:
                        members = [
                            g
                            for g in await uow.alerts.groups(list(message.group_ids))
                            if g.message_ref == message.id
                        ]
                    return DeliveryPlan(
                        channel_id=message.channel_id,
                        groups=tuple(members),
                        digest=message.digest,
                        message=message,
                    )
            pending = await uow.alerts.count_pending_new()
            if pending <= threshold:
                return DeliveryPlan(
                    channel_id=policy.alerts_channel_id,
                    groups=(group,),
                    digest=False,
                    mention_role_ids=self.mentions_for([group]),
                )
            size = digest_size(pending, threshold, policy.digest_max_groups)
            waiting = await uow.alerts.pending_new_versions(size)
            known = {
                group_id: cached
                for group_id, version in waiting
                if (cached := self._fresh.get(group_id)) is not None and cached.version == version
            }
            loaded = await uow.alerts.groups([i for i, _ in waiting if i not in known])
            by_id = {**known, **{g.id: g for g in loaded}}
            others = [by_id[i] for i, _ in waiting if i in by_id]
        members = [group, *[g for g in others if g.id != group.id]][:size]
        return DeliveryPlan(
            channel_id=policy.alerts_channel_id,
            groups=tuple(members),
            digest=True,
            mention_role_ids=self.mentions_for(members),
        )

    def mentions_for(self, groups: Sequence[AlertGroup]) -> tuple[int, ...]:
        """The roles `[alerts] mention_roles` names for the firing groups' severities."""
        roles: dict[int, None] = {}
        for group in groups:
            if group.firing:
                for role_id in self.policy.mention_roles.get(group.severity, ()):
                    roles[role_id] = None
        return tuple(roles)

    async def record_posted(self, plan: DeliveryPlan, message_id: int) -> None:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            message = await uow.alerts.add_message(
                plan.channel_id, message_id, plan.digest, [g.id for g in plan.groups], now
            )
            await uow.alerts.mark_posted({g.id: g.version for g in plan.groups}, message.id, now)
            for shown in plan.groups:
                self._fresh.pop(shown.id, None)
            # Email fallbacks that come due now find `posted_at` set and send nothing.
            await self._settle(uow, plan, now)
            await uow.commit()
        self._shown(plan)

    async def forget_message(self, plan: DeliveryPlan) -> None:
        """The message is gone from Discord: its groups will be posted again."""
        if plan.message is None:
            return
        async with self._uow_factory() as uow:
            await uow.alerts.clear_message(plan.message.id)
            await uow.commit()
        self._rendered.clear()  # rare: let every plan ask the database again

    async def record_edited(self, plan: DeliveryPlan) -> None:
        async with self._uow_factory() as uow:
            await uow.alerts.mark_rendered({g.id: g.version for g in plan.groups})
            await self._settle(uow, plan, self._clock.now())
            await uow.commit()
        self._shown(plan)

    def _shown(self, plan: DeliveryPlan) -> None:
        """Remember what Discord shows now, so the other waiting items of a digest's groups
        are answered without a transaction each."""
        for group in plan.groups:
            self._rendered.pop(group.id, None)
            self._rendered[group.id] = group.version
        while len(self._rendered) > RENDERED_CACHE:
            del self._rendered[next(iter(self._rendered))]

    async def _settle(self, uow: UnitOfWork, plan: DeliveryPlan, now: datetime) -> None:
        """The groups' waiting items that this message already shows are done: a digest of
        forty groups settles forty items in one statement instead of forty plans."""
        shown = {f"alerts:{g.id}": g.version for g in plan.groups}
        items = await uow.outbox.pending_for_keys(ALERTS_DELIVER, list(shown))
        done = [
            item.id
            for item in items
            if int(item.payload.get("version", 0)) <= shown[item.ordering_key or ""]
        ]
        await uow.outbox.complete_many(done, now, {"shown": True})

    # -- operators' acts --------------------------------------------------------------------

    async def get_group(self, group_id: int) -> AlertGroup:
        async with self._uow_factory() as uow:
            group = await uow.alerts.get_group(group_id)
        if group is None:
            raise NotFound("That alert group no longer exists.")
        return group

    async def message_of(self, group: AlertGroup) -> AlertMessage | None:
        """The #alerts message that shows the group (None before it is posted)."""
        if group.message_ref is None:
            return None
        async with self._uow_factory() as uow:
            return await uow.alerts.get_message(group.message_ref)

    async def group_on_message(self, group_id: int, message_id: int) -> AlertGroup:
        """A group picked from a digest: it must be one that this Discord message shows (a
        forged choice names another group, or none)."""
        async with self._uow_factory() as uow:
            group = await uow.alerts.get_group(group_id)
            message = (
                await uow.alerts.get_message(group.message_ref)
                if group is not None and group.message_ref is not None
                else None
            )
        if group is None or message is None or message.message_id != message_id:
            raise InvalidInput("That alert group is not on this message.")
        return group

    async def _actionable(self, uow: UnitOfWork, group_id: int, episode: int | None) -> AlertGroup:
        group = await uow.alerts.get_group(group_id, for_update=True)
        if group is None:
            raise NotFound("That alert group no longer exists.")
        if not group.firing or (episode is not None and group.episode != episode):
            raise InvalidInput("This alert group is resolved: nothing to act on.")
        return group

    async def acknowledge(self, uow: UnitOfWork, group_id: int, actor: Actor) -> AlertGroup:
        """Record who took the alert; idempotent. The caller audits and commits."""
        group = await self._actionable(uow, group_id, None)
        if group.acked_at is not None:
            return group
        group = replace(
            group,
            acked_by_id=actor.id,
            acked_by_name=actor.name,
            acked_at=self._clock.now(),
            version=group.version + 1,
        )
        await uow.alerts.save_group(group)
        await self._enqueue_refresh(uow, group)
        return group

    async def link_incident(self, uow: UnitOfWork, group_id: int, ref: str) -> AlertGroup:
        """Remember the incident opened from this group; the first link wins (idempotent)."""
        group = await self._actionable(uow, group_id, None)
        if group.incident_ref is not None:
            return group
        group = replace(group, incident_ref=ref, version=group.version + 1)
        await uow.alerts.save_group(group)
        await self._enqueue_refresh(uow, group)
        return group

    @staticmethod
    def incident_draft(group: AlertGroup) -> tuple[int, str, str, str | None]:
        """Severity, title, summary and nodes for an incident opened from a firing group.

        Critical alerts open Sev 2 (several nodes / major), anything else Sev 3; Sev 1 (mining or
        payout halted) is a human call: `/incident severity` raises it."""
        severity = 2 if group.severity.lower() == "critical" else 3
        first = group.alerts[0] if group.alerts else None
        summary_line = (first.annotations.get("summary") if first else None) or group.title
        title = f"{group.title}: {summary_line}" if summary_line != group.title else group.title
        nodes = sorted({a.labels["node"] for a in group.alerts if a.labels.get("node")})
        summary = (
            f"Opened from alert group #{group.id} ({len(group.alerts)} alert(s), "
            f"{group.severity}). " + ((first.annotations.get("description") or "") if first else "")
        )
        return severity, title[:100], summary[:1000], ", ".join(nodes)[:300] or None

    async def create_silence(
        self, group: AlertGroup, hours: int, actor: Actor, link: str
    ) -> Silence:
        """Ask Alertmanager for a silence matching the group's common labels."""
        if hours not in SILENCE_HOURS:
            raise InvalidInput(f"Silences last {', '.join(map(str, SILENCE_HOURS))} hours.")
        if self._silences is None:
            raise Unavailable("Silences need `[alertmanager] api_url` in the bot's configuration.")
        if not group.firing:
            raise InvalidInput("This alert group is resolved: nothing to silence.")
        matchers = {k: v for k, v in group.common_labels.items() if v}
        if not matchers:
            raise InvalidInput("This group's alerts share no labels: silence them in Alertmanager.")
        now = self._clock.now()
        comment = f"Silenced from Discord #alerts by {actor.name} for {hours} h: {link}"
        return await self._silences.create_silence(
            matchers,
            now,
            now + timedelta(hours=hours),
            created_by=f"{actor.name} (Discord {actor.id})",
            comment=comment,
        )

    async def record_silence(
        self, uow: UnitOfWork, group_id: int, silence: Silence | None, actor: Actor
    ) -> AlertGroup:
        """Store the silence (or its removal, with None) on the group; caller audits, commits."""
        group = await uow.alerts.get_group(group_id, for_update=True)
        if group is None:
            raise NotFound("That alert group no longer exists.")
        group = replace(
            group,
            silence_id=silence.id if silence else None,
            silence_ends_at=silence.ends_at if silence else None,
            silenced_by_name=actor.name if silence else None,
            version=group.version + 1,
        )
        await uow.alerts.save_group(group)
        await self._enqueue_refresh(uow, group)
        return group

    async def expire_silence(self, group: AlertGroup) -> str:
        if group.silence_id is None:
            raise InvalidInput("This alert group has no silence to expire.")
        if self._silences is None:
            raise Unavailable("Silences need `[alertmanager] api_url` in the bot's configuration.")
        await self._silences.expire_silence(group.silence_id)
        return group.silence_id

    async def _enqueue_refresh(self, uow: UnitOfWork, group: AlertGroup) -> None:
        """Durable edit of the group's message; the interaction response shows it first."""
        await self._outbox.enqueue(
            uow,
            ALERTS_DELIVER,
            {"group_id": group.id, "version": group.version},
            ordering_key=f"alerts:{group.id}",
            delay=3.0,
        )

    # -- email fallback and the dead man's switch -------------------------------------------

    async def _email_fallback(self, uow: UnitOfWork, reminder: Reminder) -> None:
        group = await uow.alerts.get_group(int(reminder.payload["group_id"]), for_update=True)
        if (
            group is None
            or group.episode != int(reminder.payload["episode"])
            or group.posted_at is not None
            or group.emailed_at is not None
        ):
            return
        subject, body = fallback_email(group, self.policy.email_fallback_after)
        await self._outbox.enqueue(
            uow,
            OutboxKind.EMAIL,
            {"to": list(self.policy.email_to), "subject": subject, "body": body},
            dedupe_key=f"email:alerts:{group.id}:{group.episode}",
        )
        await uow.alerts.set_emailed(group.id, self._clock.now())
        log.warning(
            "alert group %s not on Discord %.0f s after it arrived: emailed",
            group.id,
            self.policy.email_fallback_after,
        )

    async def check_watchdog(self) -> bool:
        """Post "alert pipeline broken" once per outage; True when it did."""
        timeout = self.policy.watchdog_timeout
        if timeout <= 0:
            return False
        now = self._clock.now()
        async with self._uow_factory() as uow:
            last_seen = await uow.alerts.watchdog_overdue(now, now - timedelta(seconds=timeout))
            if last_seen is None:
                return False
            await self._post_operations(uow, *pipeline_broken(last_seen, timeout))
            await uow.commit()
        self._outbox.wake()
        log.error("Watchdog alert overdue since %s: alert pipeline broken", last_seen.isoformat())
        return True

    async def _post_operations(self, uow: UnitOfWork, title: str, text: str, colour: int) -> None:
        await self._outbox.enqueue(
            uow,
            OutboxKind.DISCORD_MESSAGE,
            {
                "channel_id": self.policy.operations_channel_id,
                "content": None,
                "embeds": [{"title": title, "description": text, "color": colour, "type": "rich"}],
                "mention_role_ids": [],
                "mention_user_ids": [],
            },
        )


async def _wait_either(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep until `stop` (or `wake`) is set, at most `seconds`."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def fresh_group(
    payload: WebhookPayload, alerts: Sequence[WebhookAlert], now: datetime
) -> AlertGroup:
    """A group as this notification alone describes it (id 0 until stored)."""
    views = tuple(AlertView.from_payload(a) for a in alerts)
    firing = [a.severity for a in views if a.status is AlertStatus.FIRING]
    return AlertGroup(
        id=0,
        group_key=payload.group_key,
        episode=1,
        status=payload.status,
        severity=worst_severity(firing or [a.severity for a in views]),
        version=1,
        rendered_version=0,
        receiver=payload.receiver,
        group_labels=dict(payload.group_labels),
        common_labels=dict(payload.common_labels),
        external_url=payload.external_url,
        truncated_alerts=payload.truncated_alerts,
        alerts=views,
        first_seen_at=now,
        last_notified_at=now,
        resolved_at=now if payload.status is AlertStatus.RESOLVED else None,
    )


def is_stale(group: AlertGroup, payload: WebhookPayload) -> bool:
    """A late firing notification (a retry, the HA twin) after the same alerts were resolved."""
    if not (group.status is AlertStatus.RESOLVED and payload.status is AlertStatus.FIRING):
        return False
    known = {(a.fingerprint, a.starts_at) for a in group.alerts}
    return all((a.fingerprint, a.starts_at) in known for a in payload.alerts)


def updated_group(
    group: AlertGroup, fresh: AlertGroup, now: datetime, *, new_episode: bool
) -> AlertGroup:
    """The group after a new notification; a firing after a resolve starts a new episode."""
    changes: dict[str, Any] = {
        "status": fresh.status,
        "severity": fresh.severity,
        "version": group.version + 1,
        "receiver": fresh.receiver,
        "group_labels": fresh.group_labels,
        "common_labels": fresh.common_labels,
        "external_url": fresh.external_url,
        "truncated_alerts": fresh.truncated_alerts,
        "alerts": fresh.alerts,
        "last_notified_at": now,
    }
    if fresh.status is AlertStatus.RESOLVED and group.resolved_at is None:
        changes["resolved_at"] = now
    if new_episode:
        changes.update(
            episode=group.episode + 1,
            first_seen_at=now,
            resolved_at=None,
            message_ref=None,
            posted_at=None,
            acked_by_id=None,
            acked_by_name=None,
            acked_at=None,
            silence_id=None,
            silence_ends_at=None,
            silenced_by_name=None,
            emailed_at=None,
            incident_ref=None,  # a new episode may deserve a new incident
        )
    return replace(group, **changes)


def digest_size(pending: int, capacity: int, maximum: int) -> int:
    """Groups per digest: at least 10 (one embed each), more when the backlog is larger.

    `capacity` is how many messages the channel takes in about 10 s; spreading the backlog
    over that many messages keeps every group visible within seconds.
    """
    wanted = math.ceil(pending / max(capacity, 1))
    return max(EMBEDS_PER_MESSAGE, min(wanted, maximum))


def fallback_email(group: AlertGroup, after: float) -> tuple[str, str]:
    subject = f"[hh-opsbot] CRITICAL {group.title}: not on Discord after {after:.0f} s"
    lines = [
        f"A critical alert group could not be posted to Discord #alerts within {after:.0f} s.",
        "The bot keeps trying; this email is the fallback of the ops manual, section 5.",
        "",
        f"Group: {group.group_key}",
        f"Status: {group.status.value}, severity {group.severity or 'none'}",
        f"First seen: {group.first_seen_at.isoformat()}",
        "",
    ]
    for alert in group.alerts:
        summary = alert.annotations.get("summary") or alert.name
        where = alert.labels.get("node") or alert.labels.get("instance") or ""
        lines.append(f"- [{alert.status.value}] {alert.name} {where}: {summary}")
        description = alert.annotations.get("description")
        if description:
            lines.append(f"  {description[:500]}")
        if alert.generator_url:
            lines.append(f"  {alert.generator_url}")
    if group.truncated_alerts:
        lines.append(f"+{group.truncated_alerts} more not sent by Alertmanager")
    if group.external_url:
        lines += ["", f"Alertmanager: {group.external_url}"]
    return subject[:200], "\n".join(lines)


def pipeline_broken(last_seen: datetime, timeout: float) -> tuple[str, str, int]:
    epoch = int(last_seen.timestamp())
    text = (
        f"Alertmanager's Watchdog alert has not arrived for more than {timeout / 60:.0f} min "
        f"(last seen <t:{epoch}:R>). Alerts may not be reaching #alerts: check Prometheus, "
        "Alertmanager and the bot's webhook."
    )
    return "Alert pipeline broken", text, 0xE74C3C


def pipeline_recovered(since: datetime, now: datetime) -> tuple[str, str, int]:
    minutes = max((now - since).total_seconds() / 60, 0)
    text = (
        f"The Watchdog alert arrives again; the pipeline was reported broken for {minutes:.0f} min."
    )
    return "Alert pipeline recovered", text, 0x2ECC71
