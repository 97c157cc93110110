"""Shared fixtures: databases on SQLite and (when HH_TEST_DATABASE_URL is set) PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import migrations
from bot.storage.database import Database

PG_URL = os.environ.get("HH_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", "postgres"]


def default_start() -> datetime:
    """Where every FakeClock starts: 2026-11-28 03:00 UTC, or HH_TEST_CLOCK_START (an ISO date),
    so the whole suite can be run years ahead to prove nothing reads the wall clock."""
    given = os.environ.get("HH_TEST_CLOCK_START", "").strip()
    if not given:
        return datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    moment = datetime.fromisoformat(given)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or default_start()

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


class RunningClock:
    """The wall clock plus an offset a test moves forward: time passes as usual (batching,
    backoff, reminders), and a test can skip a long wait such as a 120 s Retry-After."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> datetime:
        self.offset += timedelta(**kwargs)
        return self.now()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def reset_postgres(url: str) -> None:
    """A clean public schema: each test starts from an empty database, as on a new install."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database per backend; PostgreSQL only when HH_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    if not PG_URL:
        pytest.skip("HH_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    await reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database (the real Alembic revisions, never create_all)."""
    db = Database.from_url(database_url)
    await migrations.upgrade(db.engine)
    yield db
    await db.close()
