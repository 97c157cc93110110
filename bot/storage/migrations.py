"""Running Alembic from the bot: `hh-opsbot migrate`, and the schema check `run` does first."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations as _migrations_package

MIGRATIONS_DIR = Path(_migrations_package.__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    if url:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["skip_logging_config"] = True
    return cfg


def url_from_environment() -> str:
    """For the `alembic` CLI: the same URL the bot would use."""
    url = os.environ.get("HH_DATABASE__URL")
    if url:
        return url
    try:
        from bot.config import load_settings

        return load_settings().settings.database.url.get_secret_value()
    except Exception:
        from bot.config import DEFAULT_DATABASE_URL

        return DEFAULT_DATABASE_URL


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no Alembic revisions found in migrations/versions")
    return head


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def schema_state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    return SchemaState(current=current, head=head_revision())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, lambda cfg: command.downgrade(cfg, revision))


async def check(engine: AsyncEngine) -> None:
    """`alembic check`: raises when the models and the migrations disagree."""
    await _run(engine, command.check)


async def _run(engine: AsyncEngine, action: Callable[[Config], object]) -> None:
    def go(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        action(cfg)

    async with engine.begin() as conn:
        await conn.run_sync(go)
