from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import func, select

from bot.domain.audit import AuditRecord
from bot.domain.roles import Actor
from bot.services.audit import AuditService
from bot.storage.database import Database
from bot.storage.models import AuditEntry


async def count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


async def test_round_trip_keeps_utc_and_details(database: Database) -> None:
    at = datetime(2026, 11, 28, 3, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    async with database.uow() as uow:
        await uow.audit.add(
            AuditRecord(
                at=at,
                actor_id=2**62,
                actor_name="alice",
                action="whoami",
                outcome="ok",
                target="self",
                details={"channel_id": 5, "nested": {"ü": "✅"}},
            )
        )
        await uow.commit()
    async with database.uow() as uow:
        (row,) = await uow.audit.recent()
    assert row.at == at and row.at.tzinfo == UTC
    assert row.actor_id == 2**62
    assert row.details == {"channel_id": 5, "nested": {"ü": "✅"}}
    assert row.id is not None


async def test_recent_filters_and_orders_newest_first(database: Database, clock) -> None:
    service = AuditService(clock)
    async with database.uow() as uow:
        for i in range(5):
            clock.advance(minutes=1)
            actor = Actor(id=100 + i % 2, name=f"m{i}")
            await service.record(uow, actor, "ping" if i % 2 else "whoami")
        await uow.commit()
    async with database.uow() as uow:
        newest = await uow.audit.recent(2)
        mine = await uow.audit.recent(actor_id=101)
        pings = await uow.audit.recent(action="ping")
    assert [r.actor_name for r in newest] == ["m4", "m3"]
    assert [r.actor_name for r in mine] == ["m3", "m1"]
    assert {r.action for r in pings} == {"ping"}


async def test_audit_row_shares_the_transaction_of_the_change(database: Database, clock) -> None:
    """A rolled-back change leaves no audit row claiming it happened; a committed one does."""
    service = AuditService(clock)
    async with database.uow() as uow:
        await service.record(uow, Actor(id=1, name="a"), "change")
        await uow.rollback()
    async with database.uow() as uow:
        await service.record(uow, Actor(id=1, name="a"), "change")
        # leaving without commit also rolls back
    assert await count(database) == 0
    async with database.uow() as uow:
        await service.record(uow, Actor(id=1, name="a"), "change")
        await uow.commit()
    assert await count(database) == 1


async def test_naive_datetimes_are_refused(database: Database) -> None:
    import pytest
    from sqlalchemy.exc import StatementError

    async with database.uow() as uow:
        with pytest.raises(StatementError):
            await uow.audit.add(
                AuditRecord(
                    at=datetime(2026, 1, 1), actor_id=1, actor_name="a", action="x", outcome="ok"
                )
            )
            await uow.commit()


async def test_ping(database: Database) -> None:
    assert 0 <= await database.ping() < 2
