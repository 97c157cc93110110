"""Every command writes exactly one audit row, whoever writes it: the use case (inside its own
transaction) or, for read-only commands, the gate when the command ends well.

Before the audit scope, a cog had to set a flag after a service had audited; forgetting it wrote a
second "ok" row that no test noticed (the incident and upgrade commands could lose theirs).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import discord
import pytest
from discord import app_commands
from sqlalchemy import select

from bot.app import Application
from bot.domain.permissions import PERMISSIONS
from bot.storage.models import AuditEntry
from tests.harness.world import CORE_USER, NODE_USER, OWNER_USER, World

pytestmark = pytest.mark.e2e

TYPES = {"severity": 4, "member": 6}


def sub(name: str, **options: Any) -> list[dict[str, Any]]:
    opts = [{"name": k, "type": TYPES.get(k, 3), "value": v} for k, v in options.items()]
    return [{"name": name, "type": 1, "options": opts}]


async def audit_actions(app: Application) -> Counter[tuple[str, str]]:
    async with app.database.sessions() as session:
        rows = await session.execute(select(AuditEntry.action, AuditEntry.outcome))
        return Counter((action, outcome) for action, outcome in rows.all())


async def invoke(world: World, command: str, user: int, options: list[dict[str, Any]]) -> None:
    result = await world.emulator.invoke_command(command, user, options=options)
    if result.message is None or result.message.get("flags", 0) & 128:
        await result.wait_for_followups(1)


@pytest.mark.parametrize(
    ("command", "user", "options", "action"),
    [
        # Use cases that audit inside their own transaction.
        (
            "incident",
            CORE_USER,
            sub("open", severity=3, title="Dashboard slow", summary="slow"),
            "incident open",
        ),
        (
            "access",
            CORE_USER,
            sub("grant", member=str(NODE_USER), role="treasury_ops", reason="payouts"),
            "access grant",
        ),
        # Read-only commands: the gate writes the one row.
        ("whoami", NODE_USER, [], "whoami"),
        ("incident", NODE_USER, sub("list"), "incident list"),
    ],
)
async def test_a_command_writes_exactly_one_audit_row(
    world: World,
    app: Application,
    command: str,
    user: int,
    options: list[dict[str, Any]],
    action: str,
) -> None:
    before = await audit_actions(app)
    await invoke(world, command, user, options)
    await app.bot.drain(10)  # the completion hook runs after the reply
    after = await audit_actions(app)
    added = after - before
    assert added[(action, "ok")] == 1, added
    assert sum(added.values()) == 1, f"one row for one command, got {dict(added)}"


# -- the whole permission table ---------------------------------------------------------------

COMMANDS = sorted(a for a in PERMISSIONS if ":" not in a)
NOT_PERSISTENT = {
    "upgrade:rollback": "a permission for /upgrade announce's rollback option, not a component",
    "health:page": "the /health pager lives as long as its answer (an OpsView with a timeout)",
}
BUTTONS = sorted(a for a in PERMISSIONS if ":" in a and a not in NOT_PERSISTENT)
CUSTOM_IDS = {"alerts:silence": "hh:alerts:silence:999999:1h", "alerts:pick": "hh:alerts:pick:0"}
REFUSED_BY_THE_USE_CASE = {"upgrade announce": "upgrade:verify"}
"""A use case that refuses and audits the refusal under its own name (in its own transaction)."""


def option_value(world: World, param: app_commands.Parameter) -> Any:
    """A plausible value for a required option: enough to reach the use case, whatever it says."""
    if param.choices:
        return param.choices[0].value
    kind = param.type
    if kind is discord.AppCommandOptionType.integer:
        return int(param.min_value or 1)
    if kind is discord.AppCommandOptionType.number:
        return float(param.min_value or 1)
    if kind is discord.AppCommandOptionType.boolean:
        return False
    if kind in (discord.AppCommandOptionType.user, discord.AppCommandOptionType.mentionable):
        return str(NODE_USER)
    if kind is discord.AppCommandOptionType.channel:
        return str(world.channels["operations"])
    if kind is discord.AppCommandOptionType.role:
        return str(world.roles["observer"])
    return "x"


def invocation(world: World, command: app_commands.Command[Any, ..., Any]) -> tuple[str, list]:
    options = [
        {"name": p.display_name, "type": p.type.value, "value": option_value(world, p)}
        for p in command.parameters
        if p.required
    ]
    names = command.qualified_name.split()
    for name in reversed(names[1:]):
        options = [{"name": name, "type": 1, "options": options}]
    return names[0], options


async def member_rows(app: Application, user: int) -> Counter[tuple[str, str]]:
    query = select(AuditEntry.action, AuditEntry.outcome).where(AuditEntry.actor_id == user)
    async with app.database.sessions() as session:
        return Counter((a, o) for a, o in (await session.execute(query)).all())


@pytest.mark.parametrize("action", COMMANDS)
async def test_every_command_in_the_table_writes_one_audit_row(
    world: World, app: Application, action: str
) -> None:
    """Run by an owner (past every check) with plausible options: whatever the use case answers
    (ok, invalid, not found), the interaction leaves exactly one audit row, under its action."""
    command = next((c for c in app.bot.tree.walk_commands() if c.qualified_name == action), None)
    assert isinstance(command, app_commands.Command), f"/{action} is not registered"
    name, options = invocation(world, command)
    before = await member_rows(app, OWNER_USER)
    await invoke(world, name, OWNER_USER, options)
    await app.bot.drain(10)
    added = await member_rows(app, OWNER_USER) - before
    assert sum(added.values()) == 1, f"/{action} wrote {dict(added)}"
    ((written, _outcome),) = added
    assert written in {action, REFUSED_BY_THE_USE_CASE.get(action)}


@pytest.mark.parametrize("action", BUTTONS)
async def test_every_button_in_the_table_writes_one_audit_row(
    world: World, app: Application, action: str
) -> None:
    """A press on a button (or select) whose object does not exist (an old message, say): the
    answer is an error, and exactly one audit row says so."""
    area, verb = action.split(":")
    custom_id = CUSTOM_IDS.get(action, f"hh:{area}:{verb}:999999")
    view = discord.ui.View(timeout=None)
    if verb == "pick":
        view.add_item(
            discord.ui.Select(
                custom_id=custom_id, options=[discord.SelectOption(label="a", value="999999")]
            )
        )
    else:
        view.add_item(discord.ui.Button(label=verb, custom_id=custom_id))
    channel = app.bot.get_partial_messageable(world.channels["operations"])
    sent = await channel.send("an old message", view=view)
    message = world.emulator.get_message(sent.id)
    assert message is not None
    before = await member_rows(app, OWNER_USER)
    if verb == "pick":
        await world.emulator.select_menu(custom_id, OWNER_USER, ["999999"], message=message)
    else:
        await world.emulator.click_button(custom_id, OWNER_USER, message=message)
    await app.bot.drain(10)
    added = await member_rows(app, OWNER_USER) - before
    assert sum(added.values()) == 1, f"{action} wrote {dict(added)}"
