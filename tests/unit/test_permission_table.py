"""Every command the bot registers is in the permission table, and the table names nothing else."""

from __future__ import annotations

from pathlib import Path

from bot.domain.permissions import PERMISSIONS
from tests.harness.offline import offline_bot


async def test_table_and_registered_commands_agree(tmp_path: Path) -> None:
    async with offline_bot(tmp_path) as bot:
        commands = set(bot.available_actions())
        table_commands = {action for action in PERMISSIONS if ":" not in action}
        assert commands == table_commands
        for command in bot.tree.walk_commands():
            assert command.description, f"/{command.qualified_name} needs a description"
