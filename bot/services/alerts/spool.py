"""The spool file the retired receiver process left behind, copied into the inbox by the processor.

Older versions answered Alertmanager from a separate receiver process that kept each body in a
spool file on the host. The bot reads what such a file still holds: each body is copied into the
inbox exactly once (a cursor per spool generation, moved in the processor's transaction), a
Watchdog the receiver saw counts as an arrival, and copied bodies are pruned after
`spool_retention`. Nothing here writes the spool's bodies anywhere but the inbox.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from bot.domain.alerts import NotificationRow, WebhookPayload
from bot.domain.ports import AlertSpool, Clock, UnitOfWork
from bot.services.alerts.common import AlertPolicy

log = logging.getLogger(__name__)


class SpoolCopy:
    def __init__(self, spool: AlertSpool | None, clock: Clock, policy: AlertPolicy) -> None:
        self.spool = spool
        self._clock = clock
        self.policy = policy
        self.cursor: int | None = None
        """The last spool id copied; None: read it from the database again (after a failed
        transaction, or for a new generation)."""
        self._generation = ""  # the generation that cursor belongs to
        self._watchdog: datetime | None = None  # the last Watchdog seen in the spool

    def changed(self) -> bool:
        """Anything new to copy? Cheap: the spool is another process's file, looked at often."""
        assert self.spool is not None
        try:
            changed = self.spool.changed()
            cursor = self.cursor
            # More than one batch may be waiting: the file changed only once for them.
            return changed or cursor is None or self.spool.last_id() > cursor
        except Exception as exc:
            log.warning("could not look at the alert spool (%s); retrying", type(exc).__name__)
            return False

    async def copy(
        self, uow: UnitOfWork, limit: int, now: datetime
    ) -> tuple[int, dict[int, WebhookPayload]]:
        """Copy up to `limit` new bodies from the spool into the inbox and move the cursor,
        in the caller's transaction: each is copied exactly once. Returns the new cursor (the
        caller keeps it in `cursor` once its transaction commits) and the copied bodies
        parsed, by their new notification id."""
        spool = self.spool
        assert spool is not None
        generation = spool.generation
        if generation != self._generation:
            self._generation, self.cursor = generation, None
        cursor = self.cursor
        if cursor is None:
            cursor = await uow.alerts.spool_cursor(generation)
        if cursor and spool.sequence() < cursor:
            # Ids at or under the cursor would be given again and never copied.
            log.error(
                "the alert spool went backwards (its ids end before %d, already copied): "
                "copying all of it again under a new generation",
                cursor,
            )
            generation = self._generation = spool.regenerate()
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

    def watchdog_arrived(self) -> bool:
        """Did the receiver get a firing Watchdog since last asked (a duplicate counts)."""
        if self.spool is None:
            return False
        try:
            seen = self.spool.watchdog_at()
        except Exception as exc:
            log.warning("could not read the alert spool (%s)", type(exc).__name__)
            return False
        previous, self._watchdog = self._watchdog, seen
        if seen is None:
            return False
        if previous is None:
            # The first look since start: one that arrived while the bot was away counts if
            # it is recent enough to mean the pipeline works.
            age = (self._clock.now() - seen).total_seconds()
            return age < self.policy.watchdog_timeout
        return seen > previous

    async def prune(self) -> int:
        """Delete from the spool what was copied long enough ago (in a worker thread)."""
        spool, cursor = self.spool, self.cursor
        if spool is None or not cursor:
            return 0
        before = self._clock.now() - timedelta(seconds=self.policy.spool_retention)
        return await asyncio.to_thread(spool.prune, cursor, before)

    async def waiting(self, uow: UnitOfWork) -> int:
        """Bodies in the spool not copied yet."""
        if self.spool is None:
            return 0
        cursor = await uow.alerts.spool_cursor(self.spool.generation)
        return self.spool.count_after(cursor)
