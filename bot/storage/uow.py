"""The unit of work: one session, one transaction, the repositories bound to it."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.audit import HeadMark, note_audit_committed
from bot.storage.audit_head import HeadRecorder
from bot.storage.repositories import (
    SqlAlertRepository,
    SqlAuditRepository,
    SqlDevLogRepository,
    SqlDriftRepository,
    SqlGrantRepository,
    SqlHealthRepository,
    SqlIncidentRepository,
    SqlLockoutRepository,
    SqlOutboxRepository,
    SqlReleaseRepository,
    SqlReminderRepository,
    SqlReviewRepository,
)
from bot.storage.syncbridge import is_busy

BUSY_RETRIES = (0.0005, 0.001, 0.002, 0.004, 0.008)
"""Seconds between tries of a busy SQLite write lock on the fast path (16 ms in all)."""
BUSY_QUIET = 1.0
"""After a fallback, this long without retries: a lock held that long is held longer."""
_sleep = asyncio.sleep  # the retries' sleep (a test watches it)


class BusyMemo:
    """Shared by a database's units of work: when the last fallback to aiosqlite was."""

    def __init__(self) -> None:
        self.fell_back_at = -math.inf


class TaskLock:
    """A FIFO asyncio lock with a priority lane, re-entrant for the task that holds it.

    SQLite has one writer, so the process's transactions take turns here; webhook ingest
    takes the priority lane, so a burst of alerts never queues behind the delivery worker.
    """

    def __init__(self) -> None:
        self._owner: asyncio.Task[object] | None = None
        self._depth = 0
        self._high: deque[tuple[asyncio.Task[object] | None, asyncio.Future[None]]] = deque()
        self._low: deque[tuple[asyncio.Task[object] | None, asyncio.Future[None]]] = deque()

    @property
    def locked(self) -> bool:
        return self._depth > 0

    async def acquire(self, *, priority: bool = False) -> None:
        task = asyncio.current_task()
        if self._depth and self._owner is task:
            self._depth += 1
            return
        if not self._depth and not self._high and not self._low:
            self._owner, self._depth = task, 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (task, future)
        (self._high if priority else self._low).append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just as we were cancelled: pass it on
            else:
                for lane in (self._high, self._low):
                    if entry in lane:
                        lane.remove(entry)
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        self._owner = None
        for lane in (self._high, self._low):
            while lane:
                task, future = lane.popleft()
                if future.cancelled():
                    continue
                # Handed over directly: nobody can slip in between.
                self._owner, self._depth = task, 1
                future.set_result(None)
                return


class SqlUnitOfWork:
    """`async with db.uow() as uow: ...; await uow.commit()`; leaving without commit rolls back."""

    audit: SqlAuditRepository
    outbox: SqlOutboxRepository
    reminders: SqlReminderRepository
    grants: SqlGrantRepository
    lockouts: SqlLockoutRepository
    reviews: SqlReviewRepository
    drift: SqlDriftRepository
    health: SqlHealthRepository
    incidents: SqlIncidentRepository
    alerts: SqlAlertRepository
    releases: SqlReleaseRepository
    devlog: SqlDevLogRepository

    def __init__(
        self,
        sessions: Callable[[], AsyncSession],
        lock: TaskLock | None = None,
        *,
        priority: bool = False,
        bridge: Callable[[], AsyncSession] | None = None,
        busy: BusyMemo | None = None,
        audit_key: bytes | None = None,
        audit_head: HeadRecorder | None = None,
    ) -> None:
        self._sessions = sessions
        self._audit_key = audit_key
        self._audit_head = audit_head
        self._committed_heads: tuple[HeadMark, HeadMark] | None = None
        self._bridge = bridge
        self._busy = busy or BusyMemo()
        self._session: AsyncSession | None = None
        self._lock = lock
        self._priority = priority

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        if self._lock is not None:
            await self._lock.acquire(priority=self._priority)
        try:
            self._session = await self._open()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self.audit = SqlAuditRepository(self._session, self._audit_key)
        self.outbox = SqlOutboxRepository(self._session)
        self.reminders = SqlReminderRepository(self._session)
        self.grants = SqlGrantRepository(self._session)
        self.lockouts = SqlLockoutRepository(self._session)
        self.reviews = SqlReviewRepository(self._session)
        self.drift = SqlDriftRepository(self._session)
        self.health = SqlHealthRepository(self._session)
        self.incidents = SqlIncidentRepository(self._session)
        self.alerts = SqlAlertRepository(self._session)
        self.releases = SqlReleaseRepository(self._session)
        self.devlog = SqlDevLogRepository(self._session)
        return self

    async def _open(self) -> AsyncSession:
        """A bridged session on a SQLite file (see syncbridge), begun at once; the aiosqlite
        one when another process keeps the write lock (it waits its turn in its thread).

        Another process's transactions are mostly short (a CLI command's), so a busy lock is
        first tried again a few times, sleeping on the loop, not in SQLite's busy handler:
        that one would block the loop, and its sleeps grow to 100 ms."""
        if self._bridge is not None:
            recently = time.monotonic() - self._busy.fell_back_at < BUSY_QUIET
            for delay in (*(() if recently else BUSY_RETRIES), None):
                bridged = self._bridge()
                try:
                    await bridged.connection()
                except Exception as exc:
                    await bridged.close()
                    if not is_busy(exc):
                        raise
                    if delay is None:
                        self._busy.fell_back_at = time.monotonic()
                        break
                    await _sleep(delay)
                else:
                    return bridged
        return self._sessions()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            try:
                await session.close()
            finally:
                if self._lock is not None:
                    self._lock.release()
        heads, self._committed_heads = self._committed_heads, None
        if heads is not None and self._audit_head is not None:
            # After the lock: the head file's fsync holds up no other transaction.
            try:
                await self._audit_head.committed(*heads)
            except Exception:
                logging.getLogger("bot.audit").exception("recording the audit head failed")

    async def commit(self) -> None:
        await self.session.commit()
        appended, self.audit.appended = self.audit.appended, None
        if appended is not None:
            note_audit_committed()  # the request's audit scope (bot/domain/audit.py)
            before = self._committed_heads[0] if self._committed_heads else appended[0]
            self._committed_heads = (before, appended[1])

    async def rollback(self) -> None:
        await self.session.rollback()
        self.audit.appended = None
