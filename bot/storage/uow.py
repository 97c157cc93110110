"""The unit of work: one session, one transaction, the repositories bound to it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.repositories import (
    SqlAuditRepository,
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
    releases: SqlReleaseRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        self.audit = SqlAuditRepository(self._session)
        self.outbox = SqlOutboxRepository(self._session)
        self.reminders = SqlReminderRepository(self._session)
        self.grants = SqlGrantRepository(self._session)
        self.lockouts = SqlLockoutRepository(self._session)
        self.reviews = SqlReviewRepository(self._session)
        self.drift = SqlDriftRepository(self._session)
        self.health = SqlHealthRepository(self._session)
        self.incidents = SqlIncidentRepository(self._session)
        self.releases = SqlReleaseRepository(self._session)
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
            await session.close()

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()
