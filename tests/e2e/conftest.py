"""End-to-end fixtures: the Discord emulator with the Hyper Hash guild, a config pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Application
from bot.domain.permissions import CORE, PERMISSIONS
from cogs import EXTENSIONS
from tests.harness.emulator import DiscordEmulator
from tests.harness.running import running_app
from tests.harness.seeding import seed_grant, seed_grants
from tests.harness.world import (
    CORE_USER,
    GUILD_ID,
    LAB,
    MINER_USER,
    NODE_USER,
    OWNER_USER,
    TOKEN,
    World,
    config_text,
    free_port,
)

__all__ = [
    "CORE_USER",
    "GUILD_ID",
    "LAB",
    "MINER_USER",
    "NODE_USER",
    "OWNER_USER",
    "TOKEN",
    "World",
    "config_text",
    "free_port",
    "seed_grant",
    "seed_grants",
]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    emulator = DiscordEmulator(token=TOKEN, guild_id=GUILD_ID, ack_timeout=3.0)
    roles = {
        key: emulator.add_role(name)
        for key, name in (
            ("core_ops", "Core Ops"),
            ("node_ops", "Node Ops"),
            ("treasury_ops", "Treasury Ops"),
            ("observer", "Observer"),
        )
    }
    channels = {
        key: emulator.add_channel(key.replace("_", "-"))
        for key in ("operations", "alerts", "dev_log", "miners")
    }
    emulator.add_member(CORE_USER, "core-alice", roles=[roles["core_ops"]])
    emulator.add_member(NODE_USER, "node-bob", roles=[roles["node_ops"], roles["observer"]])
    emulator.add_member(MINER_USER, "miner-carol")
    emulator.add_member(OWNER_USER, "owner-dave")
    await emulator.start()
    try:
        yield World(emulator, roles, channels)
    finally:
        await emulator.stop()


@pytest.fixture
def config_extra() -> str:
    """TOML appended to the config: a module overrides it, a test parametrizes it (`LAB`)."""
    return ""


@pytest.fixture
def config_path(world: World, tmp_path: Path, config_extra: str) -> Path:
    path = tmp_path / "config.toml"
    url = f"sqlite+aiosqlite:///{tmp_path / 'hh-opsbot.db'}"
    path.write_text(config_text(world, database_url=url, web_port=free_port(), extra=config_extra))
    return path


# In-process: the whole Application (bot, web, scheduler, outbox) plus a test-only extension.
TABLE = {
    **PERMISSIONS,
    "boom": None,
    "reject": None,
    "shout": None,
    "buttons": None,
    "test:press": CORE,
}


@pytest.fixture
async def app(
    world: World, config_path: Path, tmp_path: Path, config_extra: str
) -> AsyncIterator[Application]:
    async with running_app(
        world,
        tmp_path,
        extra=config_extra,
        extensions=(*EXTENSIONS, "tests.e2e.policy_cog"),
        permissions=TABLE,
    ) as application:
        yield application
