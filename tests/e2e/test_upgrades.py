"""Upgrades end to end: the real discord.py client against the emulator, manifests signed by the
real minisign and served on loopback, node agents on loopback reporting different versions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.app import Application
from bot.config import load_settings
from bot.storage import migrations
from tests.e2e.conftest import (
    CORE_USER,
    GUILD_ID,
    NODE_USER,
    TOKEN,
    World,
    config_text,
    free_port,
    seed_grants,
)
from tests.fakes.minisign_tool import KeyPair, generate
from tests.fakes.network import JsonService
from tests.fakes.releases import ReleaseFiles, manifest

pytestmark = pytest.mark.e2e

SECOND_CORE = 700000000000000009


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate(tmp_path_factory.mktemp("e2e-release-key"))


@pytest.fixture
async def files() -> AsyncIterator[ReleaseFiles]:
    async with ReleaseFiles() as server:
        yield server


@pytest.fixture
async def agents() -> AsyncIterator[list[JsonService]]:
    started = [
        JsonService({"status": "ok", "version": "2.0.0", "block_height": 871234}),
        JsonService({"status": "ok", "version": "1.9.3", "block_height": 871234}),
        JsonService({"status": "rollback-pending", "version": "2.0.0", "block_height": 871234}),
    ]
    for agent in started:
        await agent.start()
    yield started
    for agent in started:
        await agent.stop()


@pytest.fixture
async def app(
    world: World, tmp_path: Path, keys: KeyPair, agents: list[JsonService]
) -> AsyncIterator[Application]:
    path = tmp_path / "config.toml"
    url = f"sqlite+aiosqlite:///{tmp_path / 'hh-opsbot.db'}"
    nodes = "\n".join(
        f'[[health.nodes]]\nname = "node-{i}"\nendpoint = "{agent.url}"\n'
        for i, agent in enumerate(agents)
    )
    path.write_text(
        config_text(world, database_url=url, web_port=free_port())
        + f'\n[upgrades]\ntrusted_keys = ["{keys.public_line}"]\n\n'
        + "[health]\npoll_interval = 600\nprobe_timeout = 1\nbudget = 3\n"
        + nodes
    )
    await world.emulator.member_join(SECOND_CORE, "core-erin", roles=[world.roles["core_ops"]])
    settings = load_settings(path, environ={"HH_DISCORD__TOKEN": TOKEN}).settings
    application = Application(settings)
    await migrations.upgrade(application.database.engine)
    await seed_grants(world, application.database, application.clock)
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    await application.start()
    try:
        await world.emulator.wait_for_commands(GUILD_ID, timeout=30)
        await world.emulator.wait_ready(timeout=30)
        async with asyncio.timeout(15):
            while not application.bot.is_ready():
                await asyncio.sleep(0.05)
        await application.outbox.drain_all()
        yield application
    finally:
        await application.shutdown()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


async def eventually(check: Callable[[], Any], timeout: float = 10) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if value:
                return value
            await asyncio.sleep(0.05)


def sub(name: str, **options: Any) -> list[dict]:
    return [
        {
            "name": name,
            "type": 1,
            "options": [{"name": k, "type": 3, "value": v} for k, v in options.items()],
        }
    ]


def channel_messages(world: World, channel: str) -> list[dict]:
    return list(world.emulator.messages.get(world.channels[channel], []))


def everything(message: dict) -> str:
    parts = [message.get("content") or ""]
    for embed in message.get("embeds", []):
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']} {f['value']}" for f in embed.get("fields", [])]
        parts.append((embed.get("footer") or {}).get("text", ""))
    return " ".join(parts)


async def test_announce_approve_and_follow_the_rollout(
    world: World, app: Application, files: ReleaseFiles, keys: KeyPair
) -> None:
    emu = world.emulator
    good = files.publish(keys, "2.0.0/manifest.json", manifest("2.0.0"), comment="hh 2.0.0")
    bad = files.publish(keys, "bad/manifest.json", manifest("2.0.0"))
    files.files["bad/manifest.json"] = files.files["bad/manifest.json"].replace(b"ab", b"ef")

    # Only Core Ops announce.
    denied = await emu.invoke_command("upgrade", NODE_USER, options=sub("announce", url=good))
    assert denied.ephemeral and "Core Ops" in denied.sent["content"]

    # A tampered manifest: a clear ephemeral refusal, and #dev-log hears nothing.
    refused = await emu.invoke_command("upgrade", CORE_USER, options=sub("announce", url=bad))
    (reply,) = await refused.wait_for_followups(1)
    assert reply["flags"] & 64, "ephemeral"
    assert "nothing posted" in reply["content"] and "does not match" in reply["content"]

    # The signed manifest: verified, recorded, noticed in #dev-log with the key id and a button.
    done = await emu.invoke_command("upgrade", CORE_USER, options=sub("announce", url=good))
    (reply,) = await done.wait_for_followups(1)
    assert reply["flags"] & 64 and keys.key_id in reply["content"]
    notice = await eventually(
        lambda: next((m for m in channel_messages(world, "dev_log") if m.get("components")), None)
    )
    text = everything(notice)
    assert f"signature verified, key `{keys.key_id}`" in text
    assert "ab" * 32 in text and "cd" * 32 in text
    assert notice["mention_everyone"] is False and "@everyone" in text, "notes cannot ping"
    assert len(channel_messages(world, "dev_log")) == 1, "the tampered one was never posted"
    approve = notice["components"][0]["components"][0]["custom_id"]
    assert approve.startswith("hh:upgrade:approve:")

    # The same version again is refused.
    again = await emu.invoke_command("upgrade", CORE_USER, options=sub("announce", url=good))
    (reply,) = await again.wait_for_followups(1)
    assert "already announced" in reply["content"]

    # Two-person rule: the announcer cannot approve; a Node Ops member may not; a second may.
    own = await emu.click_button(approve, CORE_USER, message=notice)
    (reply,) = await own.wait_for_followups(1)
    assert "second Core Ops member" in reply["content"]
    node = await emu.click_button(approve, NODE_USER, message=notice)
    assert "Core Ops" in node.sent["content"]
    second = await emu.click_button(approve, SECOND_CORE, message=notice)
    edited = await second.wait_for_edit(1)
    assert "approved by core-erin" in str(edited["components"])
    approved = await eventually(
        lambda: next(
            (m for m in channel_messages(world, "dev_log") if "may upgrade" in everything(m)),
            None,
        )
    )
    assert "core-erin" in everything(approved)

    # The rollout, node by node, in #operations.
    ops = world.channels["operations"]
    status = await emu.invoke_command(
        "upgrade", NODE_USER, channel_id=ops, options=sub("status", version="2.0.0")
    )
    (answer,) = await status.wait_for_followups(1)
    embed = answer["embeds"][0]
    assert "Rollout of 2.0.0" in embed["title"]
    assert "33 %" in embed["description"], "1 of 3 upgraded and healthy"
    lines = embed["description"]
    assert "node-0" in lines and "upgraded" in lines
    assert "node-1" in lines and "1.9.3" in lines and "pending" in lines
    assert "node-2" in lines and "unhealthy after upgrade" in lines
    flagged = await eventually(
        lambda: [m for m in channel_messages(world, "operations") if "rollback" in everything(m)]
    )
    assert "node-2" in everything(flagged[0])

    # A second check flags nothing new; the history shows who did what and the rollout.
    again_status = await emu.invoke_command(
        "upgrade", NODE_USER, channel_id=ops, options=sub("status")
    )
    await again_status.wait_for_followups(1)
    await app.outbox.drain_all()
    assert (
        len([m for m in channel_messages(world, "operations") if "rollback" in everything(m)]) == 1
    )
    history = await emu.invoke_command("upgrade", CORE_USER, channel_id=ops, options=sub("history"))
    (answer,) = await history.wait_for_followups(1)
    text = everything(answer)
    assert "2.0.0" in text and "core-alice" in text and "core-erin" in text
    assert "33 % → 33 %" in text
