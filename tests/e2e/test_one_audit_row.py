"""Every command writes exactly one audit row, whoever writes it: the use case (inside its own
transaction) or, for read-only commands, the gate when the command ends well.

Before the audit scope, a cog had to set a flag after a service had audited; forgetting it wrote a
second "ok" row that no test noticed (the incident and upgrade commands could lose theirs).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import Application
from bot.storage.models import AuditEntry
from tests.e2e.conftest import CORE_USER, NODE_USER, World

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
