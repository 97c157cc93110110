"""End-to-end fixtures: the Discord emulator with the Hyper Hash guild, a config pointing at it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import discord
import pytest

from bot.app import Application
from bot.config import load_settings
from bot.domain.access import Grant, GrantStatus
from bot.domain.permissions import CORE, PERMISSIONS
from bot.domain.ports import Clock
from bot.domain.roles import OpsRole
from bot.storage import migrations
from bot.storage.database import Database
from cogs import EXTENSIONS
from tests.fakes.discord_emulator import DiscordEmulator

TOKEN = "emulator-bot-token.abcdef.0123456789"
GUILD_ID = 800000000000000001
CORE_USER = 700000000000000001
NODE_USER = 700000000000000002
MINER_USER = 700000000000000003
OWNER_USER = 700000000000000004


@dataclass
class World:
    emulator: DiscordEmulator
    roles: dict[str, int]
    channels: dict[str, int]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


async def seed_grant(
    database: Database, clock: Clock, member_id: int, role: OpsRole, name: str = "operator"
) -> Grant | None:
    """An active 90-day grant written straight to the database (no role change, no audit row).

    The bot reads grants, not Discord roles (security item 9): this is how a test gives one of
    its operators an ops role. None when the member already holds a live grant of that role."""
    now = clock.now()
    async with database.uow() as uow:
        if await uow.grants.live_for(member_id, role) is not None:
            return None
        grant = await uow.grants.add(
            member_id=member_id,
            member_name=name,
            role=role,
            status=GrantStatus.ACTIVE,
            reason="seeded by the test world",
            granted_by_id=None,
            granted_by_name="test world",
            requested_at=now,
            days=90,
            granted_at=now,
            expires_at=now + timedelta(days=90),
        )
        await uow.commit()
    return grant


async def seed_grants(world: World, database: Database, clock: Clock) -> None:
    """Every emulator member who holds an ops role in Discord also holds the grant for it.

    The test world's stand-in for an owner granting the first operators (README, Bootstrap).
    Call it after migrating and before starting the app; it is idempotent."""
    ops = {role_id: OpsRole(key) for key, role_id in world.roles.items()}
    for user_id, member in world.emulator.members.items():
        if user_id == world.emulator.bot_user_id:
            continue
        for role_id in member["roles"]:
            role = ops.get(int(role_id))
            if role is not None:
                name = str(member["user"]["username"])
                await seed_grant(database, clock, user_id, role, name)


def config_text(world: World, *, database_url: str, web_port: int, extra: str = "") -> str:
    emu = world.emulator
    roles = "\n".join(f"{k} = {v}" for k, v in world.roles.items())
    channels = "\n".join(f"{k} = {v}" for k, v in world.channels.items())
    return f"""
[discord]
guild_id = {GUILD_ID}
owner_ids = [{OWNER_USER}]
api_base = "{emu.api_base}"
gateway_url = "{emu.gateway_url}"

[channels]
{channels}

[roles]
{roles}

[database]
url = "{database_url}"

[web]
host = "127.0.0.1"
port = {web_port}

[logging]
level = "INFO"
format = "text"
{extra}
"""


@pytest.fixture
def config_path(world: World, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    url = f"sqlite+aiosqlite:///{tmp_path / 'hh-opsbot.db'}"
    path.write_text(config_text(world, database_url=url, web_port=free_port()))
    return path


# In-process: the whole Application (bot, web, scheduler, outbox) plus a test-only extension.
TABLE = {**PERMISSIONS, "boom": None, "reject": None, "buttons": None, "test:press": CORE}


@pytest.fixture
async def app(world: World, config_path: Path) -> AsyncIterator[Application]:
    settings = load_settings(config_path, environ={"HH_DISCORD__TOKEN": TOKEN}).settings
    application = Application(
        settings, extensions=(*EXTENSIONS, "tests.e2e.policy_cog"), permissions=TABLE
    )
    await migrations.upgrade(application.database.engine)
    await seed_grants(world, application.database, application.clock)
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    await application.start()
    try:
        await world.emulator.wait_for_commands(GUILD_ID, timeout=30)
        await world.emulator.wait_ready(timeout=30)
        yield application
    finally:
        await application.shutdown()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
