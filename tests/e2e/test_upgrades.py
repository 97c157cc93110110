"""Upgrades end to end: the real discord.py client against the emulator, manifests signed by the
real minisign and served on loopback, node agents on loopback reporting different versions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.app import Application
from bot.domain.errors import InvalidInput
from bot.domain.roles import Actor, OpsRole
from tests.fakes.minisign_tool import KeyPair, generate
from tests.fakes.network import JsonService
from tests.fakes.releases import ReleaseFiles, manifest
from tests.harness.running import running_app
from tests.harness.waiting import eventually
from tests.harness.world import CORE_USER, NODE_USER, World

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
    nodes = "\n".join(
        f'[[health.nodes]]\nname = "node-{i}"\nendpoint = "{agent.url}"\n'
        for i, agent in enumerate(agents)
    )
    extra = (
        f'\n[upgrades]\ntrusted_keys = ["{keys.public_line}"]\n\n'
        + "[health]\nallow_loopback = true\npoll_interval = 600\nprobe_timeout = 1\nbudget = 3\n"
        + nodes
    )
    await world.emulator.member_join(SECOND_CORE, "core-erin", roles=[world.roles["core_ops"]])
    async with running_app(world, tmp_path, extra=extra) as application:
        await application.outbox.drain_all()
        yield application


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
    good = files.publish(keys, "2.0.0/manifest.json", manifest("2.0.0"), comment="hh version:2.0.0")
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
    assert text.count("signature verified") == 1, "said once (issue 16 §4)"
    core = world.roles["core_ops"]
    assert f"<@&{core}>" in notice["content"] and notice["mention_roles"] == [str(core)]
    assert "⏳ **AWAITING APPROVAL** · Release 2.0.0" in notice["content"].splitlines()[0]
    assert [b["label"] for b in notice["components"][0]["components"]] == [
        "Approve rollout",
        "Reject",
    ]
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
    # The notice itself now says APPROVED (issue 16 §1), read back from the emulator.
    stored = emu.get_message(int(notice["id"]))
    assert stored is not None
    first_line = stored["content"].splitlines()[0]
    assert first_line.startswith("✅ **APPROVED** · Release 2.0.0"), first_line
    assert "rollout approved by core-erin" in first_line and "needs" not in stored["content"]
    assert stored["embeds"][0]["title"].startswith("✅ APPROVED · Release 2.0.0")
    assert stored["embeds"][0]["color"] == 0x2ECC71
    assert [b["disabled"] for b in stored["components"][0]["components"]] == [True]
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


async def test_reject_stops_a_rollout_and_the_notice_says_so(
    world: World, app: Application, files: ReleaseFiles, keys: KeyPair
) -> None:
    """Issue 16 §4 and §1: Reject beside Approve rollout; the notice reads REJECTED, one audit
    row, and Approve is refused afterwards."""
    emu = world.emulator
    url = files.publish(keys, "2.0.0/manifest.json", manifest("2.0.0"), comment="hh version:2.0.0")
    done = await emu.invoke_command("upgrade", CORE_USER, options=sub("announce", url=url))
    await done.wait_for_followups(1)
    notice = await eventually(
        lambda: next((m for m in channel_messages(world, "dev_log") if m.get("components")), None)
    )
    approve, reject = (b["custom_id"] for b in notice["components"][0]["components"])
    assert reject.startswith("hh:upgrade:reject:")
    denied = await emu.click_button(reject, NODE_USER, message=notice)
    assert "**Reject** needs the Core Ops role" in denied.sent["content"]
    pressed = await emu.click_button(reject, CORE_USER, message=notice)  # the announcer may stop
    await pressed.wait_for_edit(1)
    stored = emu.get_message(int(notice["id"]))
    assert stored is not None
    first_line = stored["content"].splitlines()[0]
    assert first_line.startswith("⛔ **REJECTED** · Release 2.0.0"), first_line
    assert "rejected by core-alice" in first_line
    assert stored["embeds"][0]["title"].startswith("⛔ REJECTED · Release 2.0.0")
    assert stored["components"][0]["components"][0]["disabled"] is True
    assert stored["components"][0]["components"][0]["custom_id"] == approve, "greyed out"
    late = Actor(id=SECOND_CORE, name="core-erin", roles=frozenset({OpsRole.CORE_OPS}))
    with pytest.raises(InvalidInput, match="was rejected by core-alice"):
        await app.services.upgrades.approve(late, int(approve.rsplit(":", 1)[1]))
    async with app.database.uow() as uow:
        rows = await uow.audit.recent(5, action="upgrade:reject")
    assert sorted((r.outcome, r.target) for r in rows) == [
        ("denied", None),  # the Node Ops press
        ("ok", "release 2.0.0"),  # one row for the rejection
    ]


def announce(url: str, *, rollback: bool | None = None) -> list[dict]:
    options: list[dict] = [{"name": "url", "value": url}]
    if rollback is not None:
        options.append({"name": "rollback", "value": rollback})
    return [{"name": "announce", "type": 1, "options": options}]


async def reply_to(world: World, user: int, options: list[dict]) -> str:
    result = await world.emulator.invoke_command("upgrade", user, options=options)
    if result.sent and result.sent.get("content"):
        assert result.ephemeral
        return str(result.sent["content"])
    (reply,) = await result.wait_for_followups(1)
    assert reply["flags"] & 64, "ephemeral"
    return str(reply["content"])


async def test_downgrade_needs_an_explicit_rollback_and_replays_are_one_release(
    world: World, app: Application, files: ReleaseFiles, keys: KeyPair
) -> None:
    """Security issue item 7 (and 13) end to end: after 2.0.0, a signed 1.0.0 is refused
    unless Core Ops says rollback:true; the rollback is audited and marked in #dev-log; the
    same manifest again is one release; a trusted comment must name the version."""
    emu = world.emulator
    current = files.publish(keys, "2.0.0/manifest.json", manifest("2.0.0"))
    older = files.publish(keys, "1.0.0/manifest.json", manifest("1.0.0"))
    assert "announced in" in await reply_to(world, CORE_USER, announce(current))
    await eventually(lambda: len(channel_messages(world, "dev_log")) == 1)

    # The downgrade without rollback: refused, saying how to mean it.
    text = await reply_to(world, CORE_USER, announce(older))
    assert "nothing posted" in text and "not newer than 2.0.0" in text and "rollback:true" in text
    # rollback:true from someone who is not Core Ops: denied by the permission table.
    assert "Core Ops" in await reply_to(world, NODE_USER, announce(older, rollback=True))
    # A replay of 2.0.0's signed manifest from a mirror: already announced, nothing posted.
    mirror = files.publish(keys, "mirror/manifest.json", manifest("2.0.0"))
    text = await reply_to(world, CORE_USER, announce(mirror))
    assert "already announced" in text and "same signed manifest" in text
    # Another manifest under 2.0.0: refused.
    other = files.publish(keys, "other/manifest.json", manifest("2.0.0", notes="rebuilt"))
    assert "different manifest" in await reply_to(world, CORE_USER, announce(other))
    # A signature whose trusted comment does not name the release: refused (item 13).
    unnamed = files.publish(keys, "2.1.0/manifest.json", manifest("2.1.0"), comment="hh 2.1.0")
    text = await reply_to(world, CORE_USER, announce(unnamed))
    assert "must name the release: add `version:2.1.0`" in text
    await app.outbox.drain_all()
    assert len(channel_messages(world, "dev_log")) == 1, "none of those reached #dev-log"

    # Core Ops says rollback:true: announced, audited, and #dev-log shows a rollback.
    text = await reply_to(world, CORE_USER, announce(older, rollback=True))
    assert "Rollback to **1.0.0**" in text and "2.0.0" in text
    notice = await eventually(
        lambda: next(
            (m for m in channel_messages(world, "dev_log") if "Rollback" in everything(m)), None
        )
    )
    [embed] = notice["embeds"]
    assert embed["title"].startswith("⏳ AWAITING APPROVAL · ⏪ Rollback to 1.0.0")
    assert embed["color"] == discord.Colour.orange().value
    assert "rollback" in notice["content"].lower() and "2.0.0" in notice["content"]
    assert notice["mention_everyone"] is False
    async with app.database.uow() as uow:
        [row] = await uow.audit.recent(1, action="upgrade:announce")
    assert row.details["rollback"] is True and row.details["rolled_back_from"] == "2.0.0"

    # Its approval says the fleet rolls back.
    approve = notice["components"][0]["components"][0]["custom_id"]
    second = await emu.click_button(approve, SECOND_CORE, message=notice)
    await second.wait_for_edit(1)
    approved = await eventually(
        lambda: next(
            (m for m in channel_messages(world, "dev_log") if "may roll back" in everything(m)),
            None,
        )
    )
    assert approved["embeds"][0]["title"].startswith("Rollback approved: 1.0.0")
