"""The one error policy and the one permission check, in-process against the emulator."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import Application
from bot.storage.models import AuditEntry
from tests.e2e.policy_cog import LEAKY
from tests.harness.running import running_app
from tests.harness.world import CORE_USER, MINER_USER, NODE_USER, World

pytestmark = pytest.mark.e2e


async def audit_rows(app: Application) -> list[AuditEntry]:
    """The rows members caused (the start-up access sweep writes its own, as the scheduler)."""
    query = select(AuditEntry).where(AuditEntry.actor_id.is_not(None)).order_by(AuditEntry.id)
    async with app.database.sessions() as session:
        return list((await session.scalars(query)).all())


async def test_unexpected_error_gets_a_correlation_id_and_no_details(
    world: World, app: Application, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bot.tree")
    result = await world.emulator.invoke_command("boom", MINER_USER)
    assert result.ephemeral
    content = result.sent["content"]
    match = re.search(r"reference `([0-9a-f]{8})`", content)
    assert match, content
    assert "hunter2" not in content and "Traceback" not in content and "RuntimeError" not in content
    # The log has the traceback and the same reference.
    record = next(r for r in caplog.records if getattr(r, "correlation_id", None))
    assert record.correlation_id == match.group(1)  # type: ignore[attr-defined]
    assert record.exc_info is not None
    (row,) = await audit_rows(app)
    assert (row.action, row.outcome) == ("boom", "error")
    assert row.details["correlation_id"] == match.group(1)
    assert LEAKY not in str(row.details)


async def test_domain_error_is_its_own_message(world: World, app: Application) -> None:
    options = [{"name": "node", "type": 3, "value": "@everyone"}]
    result = await world.emulator.invoke_command("reject", NODE_USER, options=options)
    assert result.ephemeral
    assert result.sent["content"] == "No node named `@everyone` is registered."
    assert result.allowed_mentions == {"parse": []}
    (row,) = await audit_rows(app)
    assert (row.actor_id, row.action, row.outcome) == (NODE_USER, "reject", "invalid")


async def test_a_long_rate_limit_is_said_not_waited_out(world: World, app: Application) -> None:
    """A 120 s Retry-After inside a command: a clear ephemeral answer now, not silence for two
    minutes (discord.py raises instead of sleeping past [discord] max_ratelimit_timeout)."""
    path = f"/channels/{world.channels['operations']}/messages"
    world.emulator.rate_limit("POST", path, retry_after=120)
    result = await world.emulator.invoke_command("shout", NODE_USER)
    (answer,) = await result.wait_for_followups(1, timeout=10)
    assert answer["flags"] & 64, "ephemeral"
    assert answer["content"] == "Discord is rate-limiting the bot: try again in about 120 s."
    (row,) = await audit_rows(app)
    assert (row.action, row.outcome) == ("shout", "unavailable")


async def test_buttons_go_through_the_same_permission_check(world: World, app: Application) -> None:
    posted = await world.emulator.invoke_command("buttons", CORE_USER)
    message = posted.sent
    custom_id = message["components"][0]["components"][0]["custom_id"]
    assert custom_id == "hh:test:press:42"

    denied = await world.emulator.click_button(custom_id, MINER_USER, message=message)
    assert denied.ephemeral
    # Named by the label the member saw, never the action id; a miner is pointed to /status.
    assert denied.sent["content"] == (
        "**Press** needs the Core Ops role. You hold no ops role: `/status` shows the pool's "
        "state, and `/whoami` what you may use."
    )

    pressed = await world.emulator.click_button(custom_id, CORE_USER, message=message)
    assert pressed.type == 7
    assert pressed.sent["content"] == f"pressed by {CORE_USER}"

    outcomes = [(r.action, r.outcome) for r in await audit_rows(app)]
    assert ("test:press", "denied") in outcomes


async def test_persistent_button_survives_a_restart(
    world: World, tmp_path: Path, app: Application, policy_options: dict[str, Any]
) -> None:
    """A button posted before a restart is handled by the new process (custom_id is stable)."""
    posted = await world.emulator.invoke_command("buttons", CORE_USER)
    await app.shutdown()
    async with running_app(world, tmp_path, **policy_options):  # the same database
        custom_id = posted.sent["components"][0]["components"][0]["custom_id"]
        pressed = await world.emulator.click_button(custom_id, CORE_USER, message=posted.sent)
        assert pressed.sent["content"] == f"pressed by {CORE_USER}"
