"""The unit of work: one session, one transaction, the repositories bound to it."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.repositories import (
    SqlAlertRepository,
    SqlAuditRepository,
    SqlOutboxRepository,
    SqlReminderRepository,
)


class TaskLock:
    """An asyncio lock that the task holding it may take again (a nested unit of work)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if self._owner is task and task is not None:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


class SqlUnitOfWork:
    """`async with db.uow() as uow: ...; await uow.commit()`; leaving without commit rolls back."""

    audit: SqlAuditRepository
    outbox: SqlOutboxRepository
    reminders: SqlReminderRepository
    alerts: SqlAlertRepository

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], lock: TaskLock | None = None
    ) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None
        self._lock = lock

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        if self._lock is not None:
            await self._lock.acquire()
        self._session = self._sessions()
        self.audit = SqlAuditRepository(self._session)
        self.outbox = SqlOutboxRepository(self._session)
        self.reminders = SqlReminderRepository(self._session)
        self.alerts = SqlAlertRepository(self._session)
        return self

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

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()
