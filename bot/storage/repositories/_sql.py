"""SQL helpers shared by the per-area repositories (a dialect-aware INSERT ... ON CONFLICT)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def _insert_ignoring_conflicts(session: AsyncSession, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike; executed with a list
    of rows it is one statement of many VALUES (SQLAlchemy's insertmanyvalues), compiled once."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()
