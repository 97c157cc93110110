"""The test world: the guild's ids, the config that points the bot at the emulator, free ports."""

from __future__ import annotations

import socket
from dataclasses import dataclass

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
