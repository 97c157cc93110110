"""The #miners status board and `/status node:` end to end (issue 16 §6): the real discord.py
client against the emulator, two runs of the app on one database for the restart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Application
from tests.e2e.test_health import node_command, register_and_approve
from tests.fakes.network import JsonService
from tests.harness.clocks import FakeClock
from tests.harness.running import running_app
from tests.harness.waiting import quiesce
from tests.harness.world import LAB, MINER_USER, NODE_USER, World

pytestmark = pytest.mark.e2e


@pytest.fixture
async def agent() -> AsyncIterator[JsonService]:
    service = JsonService(
        {
            "status": "ok",
            "block_height": 871234,
            "template_latency_ms": 9.5,
            "disk_used_percent": 40,
            "seconds_since_last_share": 2,
        }
    )
    await service.start()
    yield service
    await service.stop()


def boards(world: World) -> list[dict]:
    """The bot's own posts in #miners that are not answers to a command."""
    return [
        m
        for m in world.emulator.messages.get(world.channels["miners"], [])
        if m.get("interaction") is None
        and m.get("interaction_metadata") is None
        and m.get("embeds")
        and m["embeds"][0]["title"].startswith("Hyper Hash Network status")
    ]


def message(world: World, message_id: int) -> dict:
    found = world.emulator.get_message(message_id)
    assert found is not None, message_id
    return found


async def poll(app: Application, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds=seconds)
    await app.jobs.poll_health()
    await quiesce(app)


async def test_board_posted_once_edited_on_change_and_survives_a_restart(
    world: World, tmp_path: Path, agent: JsonService
) -> None:
    clock = FakeClock()
    miners = world.channels["miners"]
    async with running_app(world, tmp_path, extra=LAB, clock=clock) as app:
        await register_and_approve(world, agent.url)
        await poll(app, clock, 1)
        [board] = boards(world)
        assert board["embeds"][0]["title"] == "Hyper Hash Network status: 🟢 Pool up"
        assert message(world, int(board["id"]))["pinned"], "the board is pinned"
        board_id = int(board["id"])
        payloads = world.emulator.message_payloads(board_id)
        assert all(p.get("allowed_mentions") == {"parse": []} for p in payloads)

        # Nothing changed: no edit, however often the poll runs.
        await poll(app, clock, 120)
        await poll(app, clock, 120)
        assert len(world.emulator.message_payloads(board_id)) == 1

        # The node stops answering: the board says so, in the same message.
        agent.mode = "error"
        await poll(app, clock, 120)
        assert [int(m["id"]) for m in boards(world)] == [board_id]
        edited = message(world, board_id)
        assert edited["embeds"][0]["title"] == "Hyper Hash Network status: 🔴 Pool down"
        assert len(world.emulator.message_payloads(board_id)) == 2
        text = json.dumps(edited)
        for leak in ("127.0.0.1", str(agent.port), "node-7", "HTTP 500"):
            assert leak not in text, leak

        # /status answers with the board's words.
        answer = await world.emulator.invoke_command("status", MINER_USER, channel_id=miners)
        said, shown = answer.sent["embeds"][0], edited["embeds"][0]
        for key in ("title", "description", "fields", "color"):
            assert said.get(key) == shown.get(key), key

        # Back up within [health] board_interval (60 s): not edited yet, edited once it passes.
        agent.mode = "ok"
        await poll(app, clock, 10)
        assert len(world.emulator.message_payloads(board_id)) == 2
        await poll(app, clock, 60)
        assert len(world.emulator.message_payloads(board_id)) == 3
        assert message(world, board_id)["embeds"][0]["title"].endswith("Pool up")

    # A restart on the same database edits the same message.
    async with running_app(world, tmp_path, extra=LAB, clock=clock) as second:
        agent.mode = "error"
        await poll(second, clock, 120)
        assert [int(m["id"]) for m in boards(world)] == [board_id]
        assert len(world.emulator.message_payloads(board_id)) == 4
        assert message(world, board_id)["embeds"][0]["title"].endswith("Pool down")

        # Someone deletes the board: the next change posts it again (and pins it).
        await world.emulator.delete_message(miners, board_id)
        agent.mode = "ok"
        await poll(second, clock, 120)
        [again] = boards(world)
        assert int(again["id"]) != board_id
        assert again["embeds"][0]["title"].endswith("Pool up")
        assert message(world, int(again["id"]))["pinned"]


async def test_status_node_known_unknown_and_unapproved(
    world: World, tmp_path: Path, agent: JsonService
) -> None:
    clock = FakeClock()
    miners = world.channels["miners"]
    async with running_app(world, tmp_path, extra=LAB, clock=clock) as app:
        await register_and_approve(world, agent.url)
        pending = await world.emulator.invoke_command(
            "node",
            NODE_USER,
            channel_id=world.channels["operations"],
            options=node_command("register", name="node-p", endpoint=agent.url),
        )
        assert "node-p" in pending.sent["content"]
        await poll(app, clock, 1)

        async def ask(name: str) -> str:
            clock.advance(seconds=30)  # past the /status cooldown
            result = await world.emulator.invoke_command(
                "status", MINER_USER, channel_id=miners, options=[{"name": "node", "value": name}]
            )
            assert result.allowed_mentions == {"parse": []}
            return str(result.sent["content"])

        up = await ask("node-7")
        assert up == "🟢 Node `node-7` is up."
        unknown = await ask("node-x")
        unapproved = await ask("node-p")
        assert unknown.replace("node-x", "NAME") == unapproved.replace("node-p", "NAME")
        assert "No public node named" in unknown
        for leak in ("127.0.0.1", str(agent.port), "eu-west", "pending", "approv"):
            assert leak not in unknown + unapproved + up, leak

        agent.mode = "error"
        await poll(app, clock, 120)
        down = await ask("node-7")
        assert down.startswith("🔴 Node `node-7` is not answering")
        assert "HTTP 500" not in down

        clock.advance(seconds=30)  # `/status` without the option still answers the embed
        plain = await world.emulator.invoke_command("status", MINER_USER, channel_id=miners)
        assert plain.sent["embeds"][0]["title"].startswith("Hyper Hash Network status")
