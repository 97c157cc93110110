"""The test world: the Hyper Hash guild on the Discord emulator, the config that points the bot
at it, free ports.

    world = await new_world()        # started; `await world.emulator.stop()` at the end
    async with running_app(world, tmp_path) as app: ...
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from tests.harness.emulator import DiscordEmulator

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


ROLES = (
    ("core_ops", "Core Ops"),
    ("node_ops", "Node Ops"),
    ("treasury_ops", "Treasury Ops"),
    ("observer", "Observer"),
)
CHANNELS = ("operations", "alerts", "dev_log", "miners")


async def new_world(*, members: bool = True, **emulator_options: Any) -> World:
    """The guild on a started emulator: the four ops roles, the four channels, and four members
    (Core Ops alice, Node Ops + Observer bob, miner carol, owner dave; `members=False`: none, for
    a benchmark whose bot must not spend its start on them). `emulator_options` go to
    `DiscordEmulator` (a channel rate limit, say). The caller stops the emulator."""
    options: dict[str, Any] = {"token": TOKEN, "guild_id": GUILD_ID, "ack_timeout": 3.0}
    emulator = DiscordEmulator(**{**options, **emulator_options})
    roles = {key: emulator.add_role(name) for key, name in ROLES}
    channels = {key: emulator.add_channel(key.replace("_", "-")) for key in CHANNELS}
    if members:
        emulator.add_member(CORE_USER, "core-alice", roles=[roles["core_ops"]])
        emulator.add_member(NODE_USER, "node-bob", roles=[roles["node_ops"], roles["observer"]])
        emulator.add_member(MINER_USER, "miner-carol")
        emulator.add_member(OWNER_USER, "owner-dave")
    await emulator.start()
    return World(emulator, roles, channels)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_text(
    world: World, *, database_url: str, web_port: int, extra: str = "", discord_extra: str = ""
) -> str:
    emu = world.emulator
    roles = "\n".join(f"{k} = {v}" for k, v in world.roles.items())
    channels = "\n".join(f"{k} = {v}" for k, v in world.channels.items())
    return f"""
[discord]
guild_id = {GUILD_ID}
owner_ids = [{OWNER_USER}]
api_base = "{emu.api_base}"
gateway_url = "{emu.gateway_url}"
{discord_extra}

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


LAB = "\n[health]\nallow_loopback = true\n"
"""A lab's config: node endpoints and manifests on 127.0.0.1 (the tests' loopback servers)."""
