"""Shared fixtures: databases on SQLite and (when HH_TEST_DATABASE_URL is set) PostgreSQL, and a
FakeClock. The clocks and the database helpers themselves live in `tests/harness/` (bench uses
them too); they are imported here for the test modules that still name `tests.conftest`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import migrations
from bot.storage.database import Database
from tests.harness.clocks import FakeClock, RunningClock, default_start
from tests.harness.databases import postgres_url, reset_postgres, sqlite_url

__all__ = ["BACKENDS", "PG_URL", "FakeClock", "RunningClock", "default_start", "reset_postgres"]

PG_URL = postgres_url()
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database per backend; PostgreSQL only when HH_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "test.db")
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
