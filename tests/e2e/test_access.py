"""Access control end to end: the real discord.py client, the emulator, a clock the test moves."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.app import Application
from bot.domain.access import GrantStatus
from bot.domain.roles import OpsRole
from tests.harness.clocks import FakeClock
from tests.harness.emulator import ROLE_ADD
from tests.harness.running import running_app
from tests.harness.seeding import seed_grant
from tests.harness.waiting import eventually, until_async
from tests.harness.world import CORE_USER, GUILD_ID, MINER_USER, NODE_USER, OWNER_USER, World

pytestmark = pytest.mark.e2e
SECOND_CORE = 700000000000000009


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def app(world: World, tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Application]:
    async with running_app(world, tmp_path, clock=fake_clock) as application:
        # Start-up work (the drift check's notices) done, so tests see only their own effects.
        await application.outbox.drain_all()
        yield application


def sub(name: str, **options: Any) -> list[dict]:
    types = {"member": 6, "role": 3, "days": 4, "reason": 3}
    opts = [{"name": k, "type": types.get(k, 3), "value": v} for k, v in options.items()]
    return [{"name": name, "type": 1, "options": opts}]


def member_roles(world: World, user_id: int) -> set[int]:
    return {int(r) for r in world.emulator.member(user_id)["roles"]}


def texts(world: World, channel: str) -> list[str]:
    out = []
    for message in world.emulator.messages.get(world.channels[channel], []):
        parts = [message.get("content") or ""]
        for embed in message.get("embeds", []):
            parts += [embed.get("title", ""), embed.get("description", "")]
        out.append(" ".join(parts))
    return out


async def test_grant_adds_role_and_expiry_removes_it(
    world: World, app: Application, fake_clock: FakeClock
) -> None:
    emu, node_role = world.emulator, world.roles["node_ops"]
    result = await emu.invoke_command(
        "access",
        CORE_USER,
        options=sub("grant", member=str(MINER_USER), role="node_ops", days=7, reason="runs node-7"),
    )
    reply = await result.wait_for_followups(1)
    assert result.ephemeral or reply[0]["flags"] & 64
    assert reply[0]["embeds"][0]["title"] == "Node Ops granted"
    assert node_role in member_roles(world, MINER_USER)

    # /whoami shows the grant and its expiry.
    whoami = await emu.invoke_command("whoami", MINER_USER)
    first = whoami.sent["embeds"][0]["description"].splitlines()[0]
    assert first.startswith("**Node Ops**: expires <t:"), first

    # Seven days later the sweep ends the grant and the worker takes the role off.
    fake_clock.advance(days=7)
    await app.jobs.access_sweep()
    app.outbox.wake()
    await eventually(lambda: node_role not in member_roles(world, MINER_USER))
    await eventually(lambda: any("Node Ops grant expired" in t for t in texts(world, "operations")))


async def test_core_ops_grant_needs_a_second_core_ops_approval(
    world: World, app: Application
) -> None:
    emu, core_role = world.emulator, world.roles["core_ops"]
    result = await emu.invoke_command(
        "access",
        CORE_USER,
        options=sub("grant", member=str(MINER_USER), role="core_ops", reason="joins the rota"),
    )
    reply = (await result.wait_for_followups(1))[0]
    assert (
        "awaiting" in reply["embeds"][0]["title"].lower()
        or "requested" in reply["embeds"][0]["title"]
    )
    assert core_role not in member_roles(world, MINER_USER)

    request = await eventually(
        lambda: next(
            (
                m
                for m in emu.messages.get(world.channels["operations"], [])
                if m.get("components") and "two-person" in m["embeds"][0]["title"]
            ),
            None,
        )
    )
    assert f"<@&{core_role}>" in request["content"], "Core Ops are pinged"
    assert request["mention_roles"] == [str(core_role)]
    approve_id = request["components"][0]["components"][0]["custom_id"]
    assert approve_id.startswith("hh:access:approve:")

    # The requester cannot approve their own request.
    same = await emu.click_button(approve_id, CORE_USER, message=request)
    followups = await same.wait_for_followups(1)
    assert "second Core Ops member" in followups[0]["content"]
    assert core_role not in member_roles(world, MINER_USER)

    # A second Core Ops member (here the break-glass owner) approves: the role is added.
    assert (
        request["content"].splitlines()[0].startswith(f"<@&{core_role}> ⏳ **AWAITING APPROVAL**")
    )
    done = await emu.click_button(approve_id, OWNER_USER, message=request)
    edited = await done.wait_for_edit(1)
    assert edited["components"] == [], "the buttons are gone once decided"
    # The request now says APPROVED in its title, text line and colour (issue 16 §1), read back
    # from the emulator: no "awaiting approval" in orange any more.
    stored = emu.get_message(int(request["id"]))
    assert stored is not None
    first_line = stored["content"].splitlines()[0]
    assert first_line.startswith("✅ **APPROVED** · Core Ops grant for"), first_line
    assert "approved by" in first_line
    assert stored["embeds"][0]["title"].startswith("✅ APPROVED · Core Ops grant for")
    assert stored["embeds"][0]["color"] == 0x2ECC71
    assert "awaiting" not in str(stored).lower()
    await eventually(lambda: core_role in member_roles(world, MINER_USER))


async def test_refused_role_change_says_how_to_fix_it(world: World, app: Application) -> None:
    emu = world.emulator
    emu.roles[world.roles["treasury_ops"]]["position"] = 10_000  # above the bot's own role
    result = await emu.invoke_command(
        "access",
        CORE_USER,
        options=sub("grant", member=str(MINER_USER), role="treasury_ops", reason="treasury"),
    )
    (reply,) = await result.wait_for_followups(1)
    assert "drag the bot's role above Treasury Ops" in reply["content"]
    assert reply["flags"] & 64, "ephemeral"
    assert await app.services.grants.find(member_id=MINER_USER) == [], "no half-made grant"


async def test_member_leaving_loses_every_grant(world: World, app: Application) -> None:
    emu = world.emulator
    result = await emu.invoke_command(
        "access",
        CORE_USER,
        options=sub("grant", member=str(MINER_USER), role="observer", reason="audits"),
    )
    await result.wait_for_followups(1)
    assert len(await app.services.grants.find(member_id=MINER_USER)) == 1
    await emu.member_leave(MINER_USER)

    async def gone() -> bool:
        return not await app.services.grants.find(member_id=MINER_USER)

    await until_async(gone, 10, "the leaver's grants ended")
    await eventually(lambda: any("Member left" in t for t in texts(world, "operations")))


async def test_hand_given_role_grants_nothing_is_reported_and_removed(
    world: World, app: Application
) -> None:
    """Security item 9: the permission check reads grants; a role given by hand in Discord is
    drift, and (`[access] enforce = true`, the default) it is removed."""
    emu, core_role = world.emulator, world.roles["core_ops"]
    removal = emu.hold_requests("DELETE", ROLE_ADD)  # keep the role on while we try it
    await emu.set_member_roles(MINER_USER, [core_role])
    ping = await emu.invoke_command("ping", MINER_USER)
    assert "needs the Core Ops or Node Ops or Treasury Ops or Observer role" in ping.sent["content"]
    whoami = await emu.invoke_command("whoami", MINER_USER)
    said = whoami.sent["embeds"][0]["description"]
    assert said.startswith("⚠️ **Core Ops**: you hold the Discord role but no grant"), said
    assert core_role in member_roles(world, MINER_USER)

    await eventually(lambda: removal.waiting >= 1)
    removal.release()
    await eventually(lambda: core_role not in member_roles(world, MINER_USER))
    text = await eventually(
        lambda: next(
            (
                t
                for t in texts(world, "operations")
                if "Core Ops without a grant" in t and str(MINER_USER) in t
            ),
            None,
        )
    )
    assert "grant nothing" in text and "**Core Ops**, removed" in text
    async with app.database.uow() as uow:
        rows = await uow.audit.recent(20, action="access:drift")
    assert [(r.details["member_id"], r.details["removed"]) for r in rows] == [(MINER_USER, True)]


async def test_an_owner_grants_the_first_core_ops_member(world: World, app: Application) -> None:
    """The bootstrap: with nobody holding a Core Ops grant, an owner's Core Ops grant is active
    at once (nobody could approve it); from then on the two-person rule applies."""
    emu, core_role = world.emulator, world.roles["core_ops"]
    revoke = await emu.invoke_command(
        "access",
        OWNER_USER,
        options=sub("revoke", member=str(CORE_USER), role="core_ops", reason="rota ended"),
    )
    await revoke.wait_for_followups(1)
    assert core_role not in member_roles(world, CORE_USER)
    denied = await emu.invoke_command("ping", CORE_USER)
    assert "needs the" in denied.sent["content"], "no grant, no Core Ops"

    result = await emu.invoke_command(
        "access",
        OWNER_USER,
        options=sub("grant", member=str(MINER_USER), role="core_ops", reason="first member"),
    )
    (reply,) = await result.wait_for_followups(1)
    assert reply["embeds"][0]["title"] == "Core Ops granted"
    assert core_role in member_roles(world, MINER_USER)
    ping = await emu.invoke_command("ping", MINER_USER)
    assert ping.sent["embeds"][0]["title"] == "hh-opsbot is up"

    second = await emu.invoke_command(
        "access",
        OWNER_USER,
        options=sub("grant", member=str(CORE_USER), role="core_ops", reason="back on the rota"),
    )
    (reply,) = await second.wait_for_followups(1)
    assert reply["embeds"][0]["title"] != "Core Ops granted", "now a second member must approve"
    assert core_role not in member_roles(world, CORE_USER)


async def approval_request(world: World) -> dict[str, Any]:
    request: dict[str, Any] = await eventually(
        lambda: next(
            (
                m
                for m in world.emulator.messages.get(world.channels["operations"], [])
                if m.get("components") and "two-person" in m["embeds"][0]["title"]
            ),
            None,
        )
    )
    return request


async def test_two_approve_presses_at_once_leave_one_decision_and_the_role(
    world: World, app: Application
) -> None:
    """Security item 4: both presses reached Discord, and the loser's compensation took the
    winner's role off again. Decisions on one request are serialised now."""
    emu, core_role = world.emulator, world.roles["core_ops"]
    await emu.member_join(SECOND_CORE, "core-erin", roles=[core_role])
    await seed_grant(app.database, app.clock, SECOND_CORE, OpsRole.CORE_OPS, "core-erin")
    result = await emu.invoke_command(
        "access",
        CORE_USER,
        options=sub("grant", member=str(MINER_USER), role="core_ops", reason="joins the rota"),
    )
    await result.wait_for_followups(1)
    request = await approval_request(world)
    approve_id = request["components"][0]["components"][0]["custom_id"]

    additions = emu.hold_requests("PUT", ROLE_ADD)
    presses = [
        asyncio.create_task(emu.click_button(approve_id, user, message=request))
        for user in (OWNER_USER, SECOND_CORE)
    ]
    await eventually(lambda: additions.waiting >= 1)
    with contextlib.suppress(AssertionError):  # unserialised decisions both reach Discord here
        await eventually(lambda: additions.waiting >= 2, timeout=1)
    additions.release()
    outcomes = await asyncio.gather(*presses)

    assert core_role in member_roles(world, MINER_USER)
    edits = [o for o in outcomes if o.edits]
    refusals = [o for o in outcomes if o.followups]
    assert len(edits) == 1 and len(refusals) == 1
    assert edits[0].sent["embeds"][0]["title"].startswith("✅ APPROVED")
    assert "already decided" in refusals[0].followups[0]["content"]
    assert refusals[0].followups[0]["flags"] & 64, "ephemeral"
    (grant,) = await app.services.grants.find(member_id=MINER_USER)
    assert grant.status is GrantStatus.ACTIVE
    removals = [r for r in emu.request_log if r.method == "DELETE" and "/roles/" in r.path]
    assert removals == [], "nothing was undone"


async def test_approve_refuses_a_request_whose_requester_left(
    world: World, app: Application
) -> None:
    """Security item 6: a Core Ops request does not outlive its requester."""
    emu, core_role = world.emulator, world.roles["core_ops"]
    result = await emu.invoke_command(
        "access",
        CORE_USER,
        options=sub("grant", member=str(MINER_USER), role="core_ops", reason="joins the rota"),
    )
    await result.wait_for_followups(1)
    request = await approval_request(world)
    approve_id = request["components"][0]["components"][0]["custom_id"]
    await emu.member_leave(CORE_USER)

    async def requester_gone() -> bool:
        return not await app.services.grants.find(member_id=CORE_USER)

    await until_async(requester_gone, 10, "the requester's grants ended")
    pressed = await emu.click_button(approve_id, OWNER_USER, message=request)
    assert pressed.edits == 0, f"approved all the same: {pressed.message}"
    (answer,) = await pressed.wait_for_followups(1)
    assert "void" in answer["content"] and "left the server" in answer["content"]
    assert answer["flags"] & 64, "ephemeral"
    assert core_role not in member_roles(world, MINER_USER)
    (void,) = await app.services.grants.find(member_id=MINER_USER, statuses=(GrantStatus.VOID,))
    assert void.end_reason and "left the server" in void.end_reason


async def test_commands_from_a_dm_never_count_as_strikes(world: World, app: Application) -> None:
    """Security item 14: only guild interactions count towards the 3-strike lockout."""
    emu = world.emulator
    for _ in range(3):
        result = await emu.invoke_command("ping", NODE_USER, dm=True)
        assert result.ephemeral
        assert "only works in the server" in result.sent["content"]
    whoami = await emu.invoke_command("whoami", NODE_USER, dm=True)
    said = whoami.sent["embeds"][0]["description"]
    assert "**Node Ops**" in said, "public commands work in DMs, from grants"
    async with app.database.uow() as uow:
        assert await uow.lockouts.strikes_since(NODE_USER, app.clock.now() - timedelta(days=1)) == 0
    ping = await emu.invoke_command("ping", NODE_USER)
    assert ping.sent["embeds"][0]["title"] == "hh-opsbot is up", "not locked out"


async def test_three_denied_attempts_lock_out(world: World, app: Application) -> None:
    emu = world.emulator
    replies = []
    for _ in range(3):
        result = await emu.invoke_command(
            "access",
            NODE_USER,
            options=sub("grant", member=str(MINER_USER), role="observer", reason="try"),
        )
        replies.append(result.sent["content"])
    assert "needs the Core Ops role" in replies[0]
    hour_from_now = (app.clock.now() + timedelta(hours=1)).timestamp()
    assert "One more denied attempt" in replies[1]
    warned = re.search(r"until about <t:(\d+):t>, <t:\1:R>", replies[1])
    assert warned and abs(int(warned[1]) - hour_from_now) < 60, replies[1]
    assert "`/access unlock`" in replies[1]
    assert "you are now locked out" in replies[2]
    locked = re.search(r"until <t:(\d+):t> \(<t:\1:R>\)", replies[2])
    assert locked and abs(int(locked[1]) - hour_from_now) < 60, "until when (issue 16 §5)"
    until = int(locked[1])
    assert "A Core Ops member can lift it with `/access unlock`" in replies[2], "and who lifts it"
    # Now even what the Node Ops role allows is refused, until Core Ops unlock.
    ping = await emu.invoke_command("ping", NODE_USER)
    assert "locked out of privileged actions" in ping.sent["content"]
    assert f"<t:{until}:R>" in ping.sent["content"] and "/access unlock" in ping.sent["content"]
    # ... and so is what it never allowed: the refusal says the lockout too.
    beyond = await emu.invoke_command(
        "access",
        NODE_USER,
        options=sub("grant", member=str(MINER_USER), role="observer", reason="try"),
    )
    assert "needs the Core Ops role" in beyond.sent["content"]
    assert f"until <t:{until}:t>" in beyond.sent["content"]
    whoami = await emu.invoke_command("whoami", NODE_USER)
    assert whoami.sent["embeds"], "public commands still work"
    await eventually(lambda: any("locked out" in t for t in texts(world, "operations")))
    unlock = await emu.invoke_command(
        "access",
        CORE_USER,
        options=[
            {
                "name": "unlock",
                "type": 1,
                "options": [{"name": "member", "type": 6, "value": str(NODE_USER)}],
            }
        ],
    )
    assert "may use privileged commands again" in unlock.sent["content"]
    ping = await emu.invoke_command("ping", NODE_USER)
    assert ping.sent["embeds"][0]["title"] == "hh-opsbot is up"


async def test_review_buttons(world: World, app: Application, fake_clock: FakeClock) -> None:
    emu = world.emulator
    for role in ("observer", "node_ops"):
        result = await emu.invoke_command(
            "access",
            CORE_USER,
            options=sub("grant", member=str(MINER_USER), role=role, reason="quarter"),
        )
        await result.wait_for_followups(1)
    started = await emu.invoke_command(
        "access", CORE_USER, options=[{"name": "review", "type": 1, "options": []}]
    )
    assert "Access review #" in started.sent["content"]
    review = await eventually(
        lambda: next(
            (
                m
                for m in emu.messages.get(world.channels["operations"], [])
                if m.get("embeds") and "Quarterly access review" in m["embeds"][0]["title"]
            ),
            None,
        )
    )
    every = [c for row in review["components"] for c in row["components"]]
    buttons = [b for b in every if b["label"].endswith("miner-carol")]
    assert [b["label"].split()[0] for b in buttons] == ["Keep", "Revoke", "Keep", "Revoke"]
    # The holder cannot review their own grant.
    emu.add_member(MINER_USER, "miner-carol", roles=[world.roles["core_ops"]])
    await seed_grant(app.database, app.clock, MINER_USER, OpsRole.CORE_OPS, "miner-carol")
    own = await emu.click_button(buttons[0]["custom_id"], MINER_USER, message=review)
    assert "your own grant" in (await own.wait_for_followups(1))[0]["content"]
    # Keep the first, revoke the second.
    keep = await emu.click_button(buttons[0]["custom_id"], CORE_USER, message=review)
    after_keep = await keep.wait_for_edit(1)
    revoke = await emu.click_button(buttons[3]["custom_id"], CORE_USER, message=after_keep)
    after = await revoke.wait_for_edit(1)
    labels = [c["label"] for row in after["components"] for c in row["components"]]
    assert any(label.startswith("Kept by") for label in labels)
    assert any(label.startswith("Revoked by") for label in labels)
    # The test world's operators hold grants too: an owner keeps them, which closes the review.
    for button in every:
        if button["label"].startswith("Keep") and button not in buttons:
            kept = await emu.click_button(button["custom_id"], OWNER_USER, message=after)
            after = await kept.wait_for_edit(1)
    await eventually(
        lambda: any("Access review #" in t and "closed" in t for t in texts(world, "operations"))
    )
    remaining = await app.services.grants.find(member_id=MINER_USER)
    assert [g.role for g in remaining if g.role is not OpsRole.CORE_OPS] == [OpsRole.OBSERVER]


async def test_expiry_reminder_by_dm_or_mention_when_dms_are_closed(
    world: World, app: Application, fake_clock: FakeClock
) -> None:
    emu = world.emulator
    for user, role in ((MINER_USER, "observer"), (OWNER_USER, "node_ops")):
        result = await emu.invoke_command(
            "access",
            CORE_USER,
            options=sub("grant", member=str(user), role=role, days=30, reason="rota"),
        )
        await result.wait_for_followups(1)
    emu.closed_dms.add(OWNER_USER)
    fake_clock.advance(days=23)  # seven days left
    await app.jobs.fire_reminders()
    dm = await eventually(lambda: emu.dm_messages(MINER_USER))
    assert "expires in 7 days" in dm[0]["embeds"][0]["title"]
    fallback = await eventually(
        lambda: next(
            (
                m
                for m in emu.messages.get(world.channels["operations"], [])
                if f"<@{OWNER_USER}>" in (m.get("content") or "")
                and "DMs are closed" in m["content"]
            ),
            None,
        )
    )
    assert fallback["mentions"][0]["id"] == str(OWNER_USER), "the holder is pinged, nobody else"
    # Sent once, also when the job runs again (or after a restart).
    await app.jobs.fire_reminders()
    await app.outbox.drain_all()
    assert len(emu.dm_messages(MINER_USER)) == 1


async def test_audit_recent_and_export(world: World, app: Application) -> None:
    emu = world.emulator
    result = await emu.invoke_command(
        "access",
        CORE_USER,
        options=sub("grant", member=str(MINER_USER), role="node_ops", reason="runs a node"),
    )
    await result.wait_for_followups(1)
    recent = await emu.invoke_command(
        "audit",
        CORE_USER,
        options=[
            {
                "name": "recent",
                "type": 1,
                "options": [{"name": "action", "type": 3, "value": "access grant"}],
            }
        ],
    )
    assert recent.ephemeral
    assert "**access grant** ok" in recent.sent["embeds"][0]["description"]
    denied = await emu.invoke_command(
        "audit", MINER_USER, options=[{"name": "recent", "type": 1, "options": []}]
    )
    assert "needs the Core Ops or Observer role" in denied.sent["content"]

    export = await emu.invoke_command(
        "audit",
        CORE_USER,
        options=[
            {"name": "export", "type": 1, "options": [{"name": "since", "type": 3, "value": "1d"}]}
        ],
    )
    (message,) = await export.wait_for_followups(1)
    (attachment,) = message["attachments"]
    assert attachment["filename"].endswith(".jsonl")
    body = emu.files[int(attachment["id"])]
    lines = [line for line in body.decode().splitlines() if line]
    import json

    rows = [json.loads(line) for line in lines]
    assert any(r["action"] == "access grant" and r["actor_id"] == CORE_USER for r in rows)
    bad = await emu.invoke_command(
        "audit",
        CORE_USER,
        options=[
            {
                "name": "export",
                "type": 1,
                "options": [{"name": "since", "type": 3, "value": "soon"}],
            }
        ],
    )
    assert "`since` must be a date" in bad.sent["content"]


async def test_a_miner_trying_an_ops_command_is_pointed_to_status_and_never_struck(
    world: World, app: Application
) -> None:
    """Issue 16 §5: strikes protect privileged accounts; a miner's curiosity pages nobody."""
    emu = world.emulator
    for _ in range(4):
        result = await emu.invoke_command("ping", MINER_USER)
        assert result.ephemeral
        text = result.sent["content"]
        assert "`/status`" in text and "`/whoami`" in text, text
        assert "locked out" not in text and "denied attempt" not in text
    async with app.database.uow() as uow:
        assert (
            await uow.lockouts.strikes_since(MINER_USER, app.clock.now() - timedelta(days=1)) == 0
        )
        assert await uow.lockouts.current(MINER_USER, app.clock.now()) is None
        rows = await uow.audit.recent(10, action="ping")
    assert [r.outcome for r in rows] == ["denied"] * 4, "still audited"
    await app.outbox.drain_all()
    assert not any("locked out" in t for t in texts(world, "operations"))
    status = await emu.invoke_command("status", MINER_USER)
    assert status.sent["embeds"], "/status still answers"


async def test_ops_commands_are_hidden_from_everyone_by_default(
    world: World, app: Application
) -> None:
    """Issue 16 §5: `default_member_permissions` on every ops command; /status and /whoami
    stay visible to everyone (the emulator keeps what the bot registered)."""
    registered = {c["name"]: c for c in world.emulator.commands[GUILD_ID]}
    manage_guild = str(discord.Permissions(manage_guild=True).value)
    for name in ("incident", "access", "audit", "node", "upgrade", "health", "ping"):
        assert registered[name]["default_member_permissions"] == manage_guild, name
    for name in ("status", "whoami"):
        assert registered[name]["default_member_permissions"] is None, name
