"""The test databases: a SQLite file per test, or the PostgreSQL of HH_TEST_DATABASE_URL reset to
an empty schema (each test, and each benchmark run, starts as a new install would)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

PG_URL_ENV = "HH_TEST_DATABASE_URL"


def postgres_url() -> str:
    """HH_TEST_DATABASE_URL, or "" when PostgreSQL tests are not asked for."""
    return os.environ.get(PG_URL_ENV, "")


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


async def reset_postgres(url: str) -> None:
    """A clean public schema: each test starts from an empty database, as on a new install."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
