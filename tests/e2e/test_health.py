"""/node, /health and /status end to end: the real discord.py client against the emulator."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from bot.app import Application
from bot.storage.models import AuditEntry
from tests.fakes.network import BitcoindRPC, JsonService, LndREST, self_signed
from tests.harness.running import running_app
from tests.harness.world import CORE_USER, LAB, MINER_USER, NODE_USER, World, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def config_extra() -> str:
    """The agents here listen on 127.0.0.1: a lab, where loopback endpoints are allowed."""
    return LAB


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


def node_command(sub: str, **values: str) -> list[dict]:
    return [
        {
            "name": sub,
            "type": 1,
            "options": [{"name": k, "value": v} for k, v in values.items()],
        }
    ]


def custom_ids(message: dict) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]


async def register_and_approve(world: World, endpoint: str, name: str = "node-7") -> None:
    ops = world.channels["operations"]
    posted = await world.emulator.invoke_command(
        "node",
        NODE_USER,
        channel_id=ops,
        options=node_command("register", name=name, endpoint=endpoint, region="eu-west"),
    )
    message = posted.sent
    assert not posted.ephemeral, "Core Ops must see the request in #operations"
    assert name in message["content"]
    approve = next(c for c in custom_ids(message) if c.startswith("hh:node:approve:"))
    # A Node Ops member cannot sign registrations: only Core Ops.
    denied = await world.emulator.click_button(approve, NODE_USER, message=message)
    assert denied.ephemeral and "Core Ops" in denied.sent["content"]
    approved = await world.emulator.click_button(approve, CORE_USER, message=message)
    assert "approved" in approved.sent["content"]
    assert approved.sent.get("components", []) == [], "the buttons are gone once decided"


async def test_register_approve_then_health_lists_the_node(
    world: World, app: Application, agent: JsonService
) -> None:
    await register_and_approve(world, agent.url)
    ops = world.channels["operations"]
    result = await world.emulator.invoke_command("health", CORE_USER, channel_id=ops)
    embed = result.sent["embeds"][0]
    assert embed["description"].startswith("1/1 nodes ✅")
    assert embed["description"].endswith("✅ 1 node fine"), "healthy nodes are one line"
    assert result.allowed_mentions == {"parse": []}
    assert agent.requests >= 1

    detail = await world.emulator.invoke_command(
        "health", CORE_USER, channel_id=ops, options=[{"name": "target", "value": "node-7"}]
    )
    fields = {f["name"]: f["value"] for f in detail.sent["embeds"][0]["fields"]}
    assert fields["Endpoint"] == f"`{agent.url}`"
    said = detail.sent["embeds"][0]["description"].splitlines()
    assert said[0] == "✅ **Healthy**", "the verdict first"
    assert "block 871234" in said[1] and "template 10 ms" in said[1], said

    async with app.database.sessions() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    decided = [(r.action, r.outcome, r.actor_id) for r in rows if r.action.startswith("node")]
    assert ("node register", "ok", NODE_USER) in decided
    assert ("node:approve", "denied", NODE_USER) in decided
    assert ("node:approve", "ok", CORE_USER) in decided


async def test_down_node_is_shown_with_its_reason(
    world: World, app: Application, agent: JsonService
) -> None:
    await register_and_approve(world, agent.url)
    agent.mode = "garbage"
    result = await world.emulator.invoke_command(
        "health", CORE_USER, channel_id=world.channels["operations"]
    )
    description = result.sent["embeds"][0]["description"]
    assert "0/1 nodes ❌" in description
    assert "❌ **node-7** · garbage answer: not JSON" in description


async def test_register_outside_operations_is_refused(world: World, app: Application) -> None:
    result = await world.emulator.invoke_command(
        "node",
        NODE_USER,
        channel_id=world.channels["miners"],
        options=node_command("register", name="node-9", endpoint="http://127.0.0.1:1"),
    )
    assert result.ephemeral and "#operations" in result.sent["content"]
    assert await app.health.nodes() == []


async def test_miner_cannot_use_health(world: World, app: Application) -> None:
    result = await world.emulator.invoke_command("health", MINER_USER)
    assert result.ephemeral and "needs the" in result.sent["content"]


async def test_target_names_are_suggested_only_to_ops_roles(
    world: World, app: Application, agent: JsonService
) -> None:
    """The tree's one autocomplete check (security item 5) covers /health's targets too."""
    await register_and_approve(world, agent.url)
    typing = [{"name": "target", "type": 3, "value": "node", "focused": True}]
    core = await world.emulator.autocomplete("health", CORE_USER, options=typing)
    assert core.choices == [{"name": "node-7", "value": "node-7"}]
    miner = await world.emulator.autocomplete("health", MINER_USER, options=typing)
    assert miner.choices == []


async def test_status_for_a_member_without_role_has_no_hostname(
    world: World, app: Application, agent: JsonService
) -> None:
    await register_and_approve(world, agent.url)
    agent.mode = "error"  # the reason ("HTTP 500: agent crashed") must not leak either
    await app.health.poll()
    miners = world.channels["miners"]
    result = await world.emulator.invoke_command("status", MINER_USER, channel_id=miners)
    assert not result.ephemeral, "public in #miners"
    text = json.dumps(result.sent)
    for leak in ("127.0.0.1", str(agent.port), "node-7", "crashed", "HTTP 500", "eu-west"):
        assert leak not in text, leak
    embed = result.sent["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Nodes online"] == "0 / 1"
    assert (
        embed["title"].endswith("🔴 Pool down")
        and embed["description"] == "1 node of 1 unreachable"
    )

    again = await world.emulator.invoke_command("status", MINER_USER, channel_id=miners)
    assert again.ephemeral
    assert "try `/status` again in" in again.sent["content"]


async def test_uptime_and_chart(world: World, app: Application, agent: JsonService) -> None:
    await register_and_approve(world, agent.url)
    await app.health.poll()
    ops = world.channels["operations"]
    uptime = await world.emulator.invoke_command(
        "health", CORE_USER, channel_id=ops, options=[{"name": "view", "value": "uptime"}]
    )
    assert "**node-7**" in uptime.sent["embeds"][0]["description"]

    chart = await world.emulator.invoke_command(
        "health",
        CORE_USER,
        channel_id=ops,
        options=[{"name": "target", "value": "node-7"}, {"name": "view", "value": "chart"}],
    )
    (attachment,) = chart.sent["attachments"]
    assert attachment["filename"] == "health-chart.png"
    data = world.emulator.files[int(attachment["id"])]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 2_000 < len(data) < 500_000
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.size == (960, 420)


async def test_many_nodes_are_paged_with_buttons(
    world: World, app: Application, agent: JsonService
) -> None:
    """Thirty nodes that do not answer: each is a problem with its reason, so /health pages
    (healthy nodes would be one line)."""
    silent = f"http://127.0.0.1:{free_port()}"
    for i in range(30):
        async with app.database.uow() as uow:
            node = (
                await app.health.register_node(
                    uow,
                    name=f"node-{i:02d}",
                    endpoint=silent,
                    region=None,
                    requested_by=NODE_USER,
                )
            ).node
            await app.health.decide(uow, node.id, approve=True, decided_by=CORE_USER)
            await uow.commit()
    ops = world.channels["operations"]
    result = await world.emulator.invoke_command("health", CORE_USER, channel_id=ops)
    first = result.sent
    assert first["embeds"][0]["footer"]["text"].startswith("page 1/2")
    assert first["embeds"][0]["description"].startswith("0/30 nodes ❌")
    assert "hh:health:page:next" in custom_ids(first)
    turned = await world.emulator.click_button("hh:health:page:next", CORE_USER, message=first)
    assert turned.sent["embeds"][0]["footer"]["text"].startswith("page 2/2")
    assert "**node-29**" in turned.sent["embeds"][0]["description"]


async def test_approval_button_still_works_after_a_restart(
    world: World, tmp_path: Path, agent: JsonService
) -> None:
    """The button's custom_id carries the node id; pending nodes' views are re-registered."""
    async with running_app(world, tmp_path, extra=LAB):
        posted = await world.emulator.invoke_command(
            "node",
            NODE_USER,
            channel_id=world.channels["operations"],
            options=node_command("register", name="node-r", endpoint=agent.url),
        )
    async with running_app(world, tmp_path, extra=LAB) as second:  # the same database
        approve = next(c for c in custom_ids(posted.sent) if c.startswith("hh:node:approve:"))
        pressed = await world.emulator.click_button(approve, CORE_USER, message=posted.sent)
        assert "approved" in pressed.sent["content"]
        assert [n.name for n in await second.health.nodes()] == ["node-r"]


async def test_configured_core_bitcoind_and_lnd(world: World, tmp_path: Path) -> None:
    """Static targets from [health]: the summary line names each, /status shows none of them."""
    core = JsonService({"status": "ok", "block_height": 871234, "pool_hashrate": 2.5e15})
    bitcoind = BitcoindRPC()
    macaroon = tmp_path / "readonly.macaroon"
    macaroon.write_bytes(b"\x02\x01macaroon")
    cert, key = self_signed(tmp_path)
    lnd = LndREST(macaroon.read_bytes())
    await core.start()
    await bitcoind.start()
    await lnd.start_tls(cert, key)
    health = f"""
core_url = "{core.url}"
bitcoind_url = "{bitcoind.url}"
bitcoind_user = "rpcuser"
bitcoind_password = "rpc-secret-pw"
lnd_url = "{lnd.url}"
lnd_macaroon_path = "{macaroon}"
lnd_tls_cert = "{cert}"
"""
    try:
        async with running_app(world, tmp_path, extra=LAB + health) as application:
            result = await world.emulator.invoke_command(
                "health", CORE_USER, channel_id=world.channels["operations"]
            )
            description = result.sent["embeds"][0]["description"]
            assert description.startswith("Core ✅ · bitcoind 871234 ✅ · lnd 1 channels ✅"), (
                description
            )
            assert "capacity 0.200 BTC" in description

            await application.health.poll()
            status = await world.emulator.invoke_command(
                "status", MINER_USER, channel_id=world.channels["miners"]
            )
            text = json.dumps(status.sent)
            assert status.sent["embeds"][0]["title"].endswith("🟢 Pool up")
            assert "description" not in status.sent["embeds"][0], "nothing needs a word"
            assert "2.50 PH/s" in text
            for leak in ("127.0.0.1", "bitcoind", "lnd", "BTC", "871234", "rpc"):
                assert leak not in text, leak
    finally:
        for server in (core, bitcoind, lnd):
            await server.stop()


async def test_node_list_and_remove(world: World, app: Application, agent: JsonService) -> None:
    ops = world.channels["operations"]
    await register_and_approve(world, agent.url, name="node-3")
    listed = await world.emulator.invoke_command(
        "node", NODE_USER, channel_id=ops, options=node_command("list")
    )
    assert "✅ **node-3**" in listed.sent["embeds"][0]["description"]
    denied = await world.emulator.invoke_command(
        "node", NODE_USER, channel_id=ops, options=node_command("remove", name="node-3")
    )
    assert denied.ephemeral and "Core Ops" in denied.sent["content"]
    removed = await world.emulator.invoke_command(
        "node", CORE_USER, channel_id=ops, options=node_command("remove", name="node-3")
    )
    assert "removed" in removed.sent["content"]
    assert await app.health.nodes() == []
    # Ops answers never land in #miners for everyone to read.
    elsewhere = await world.emulator.invoke_command(
        "health", CORE_USER, channel_id=world.channels["miners"]
    )
    assert elsewhere.ephemeral
