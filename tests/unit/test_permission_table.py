"""Every command the bot registers is in the permission table, and the table names nothing else."""

from __future__ import annotations

from pathlib import Path

from bot.app.policies import probe_runner
from bot.app.services import Services
from bot.config import load_settings
from bot.discord.client import OpsBot
from bot.discord.outbound.roles import DiscordMemberRoles
from bot.domain.clock import SystemClock
from bot.domain.permissions import PERMISSIONS
from bot.metrics import Metrics
from bot.services.health import HealthService
from bot.storage.database import Database
from cogs import EXTENSIONS
from tests.unit.test_config import GOOD


async def test_table_and_registered_commands_agree(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    settings = load_settings(path, environ={}).settings
    database = Database.from_url("sqlite+aiosqlite:///:memory:")
    roles = DiscordMemberRoles(settings.discord.guild_id, {})
    services = Services.build(
        database.uow,
        SystemClock(),
        access_settings=settings.access,
        roles=roles,
        owner_ids=frozenset(),
    )
    bot = OpsBot(
        settings,
        extensions=EXTENSIONS,
        database=database,
        metrics=Metrics(),
        services=services,
        health=HealthService(
            database.uow,
            SystemClock(),
            probe_runner(SystemClock(), settings),
            [],
        ),
    )
    try:
        for name in EXTENSIONS:
            await bot.load_extension(name)
        commands = set(bot.available_actions())
        table_commands = {action for action in PERMISSIONS if ":" not in action}
        assert commands == table_commands
        for command in bot.tree.walk_commands():
            assert command.description, f"/{command.qualified_name} needs a description"
    finally:
        await bot.close()
        await database.close()
