"""The real OpsBot with every extension loaded, never connected: for tests that read what the
bot registers (commands, persistent components) without Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.app.policies import probe_runner
from bot.app.services import Services
from bot.config import load_settings
from bot.discord.client import OpsBot
from bot.discord.outbound.roles import DiscordMemberRoles
from bot.domain.clock import SystemClock
from bot.metrics import Metrics
from bot.services.health import HealthService
from bot.storage.database import Database
from cogs import EXTENSIONS
from tests.unit.test_config import GOOD


@asynccontextmanager
async def offline_bot(tmp_path: Path) -> AsyncIterator[OpsBot]:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    settings = load_settings(path, environ={}).settings
    database = Database.from_url("sqlite+aiosqlite:///:memory:")
    clock = SystemClock()
    services = Services.build(
        database.uow,
        clock,
        access_settings=settings.access,
        roles=DiscordMemberRoles(settings.discord.guild_id, {}),
        owner_ids=frozenset(),
    )
    bot = OpsBot(
        settings,
        extensions=EXTENSIONS,
        database=database,
        metrics=Metrics(),
        services=services,
        health=HealthService(database.uow, clock, probe_runner(clock, settings), []),
    )
    try:
        for name in EXTENSIONS:
            await bot.load_extension(name)
        yield bot
    finally:
        await bot.close()
        await database.close()
