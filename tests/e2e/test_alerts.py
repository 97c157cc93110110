"""The alert relay end to end: webhook -> database -> outbox -> Discord emulator, and back.

In-process Application (bot, web server, outbox worker, scheduler) against the Discord emulator;
payloads are Alertmanager 0.25's real captures, posted over HTTP to the bot's web port.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from sqlalchemy import func, select

from bot.app import Application
from bot.config import load_settings
from bot.domain.outbox import OutboxStatus
from bot.storage import migrations
from bot.storage.models import AuditEntry, OutboxEntry
from tests.alerting import WEBHOOK_TOKEN, fixture, fixture_bytes, storm
from tests.e2e.conftest import (
    CORE_USER,
    GUILD_ID,
    MINER_USER,
    NODE_USER,
    TOKEN,
    World,
    config_text,
    free_port,
)

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = float(os.environ.get("HH_TEST_OUTAGE_SECONDS", "30"))

StartApp = Callable[..., Awaitable[Application]]


def alert_sections(world: World, **alerts: Any) -> str:
    settings = {
        "mention_roles": f"{{ critical = [{world.roles['core_ops']}] }}",
        "batch_wait": "0.3",
        "check_interval": "0.3",
        **{k: (json.dumps(v) if isinstance(v, str) else str(v)) for k, v in alerts.items()},
    }
    lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
    return f"""
[alertmanager]
webhook_token = "{WEBHOOK_TOKEN}"

[alerts]
{lines}

[outbox]
max_backoff = 2
idle_poll = 1
"""


@pytest.fixture
async def start_app(world: World, tmp_path: Path) -> AsyncIterator[StartApp]:
    """Start (and at the end stop) Applications on one database and one web port."""
    apps: list[Application] = []
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    port = free_port()
    database = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"

    async def start(extra: str = "", **alerts: Any) -> Application:
        path = tmp_path / "config.toml"
        body = alert_sections(world, **alerts) + extra
        path.write_text(config_text(world, database_url=database, web_port=port, extra=body))
        settings = load_settings(path, environ={"HH_DISCORD__TOKEN": TOKEN}).settings
        app = Application(settings)
        await migrations.upgrade(app.database.engine)
        await app.start()
        apps.append(app)
        await world.emulator.wait_ready(timeout=30)
        return app

    try:
        yield start
    finally:
        for app in apps:
            await app.shutdown()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


async def send(app: Application, body: bytes) -> dict[str, Any]:
    url = f"http://127.0.0.1:{app.settings.web.port}/webhooks/alertmanager"
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        data: dict[str, Any] = await r.json()
        return data


def alerts_in(world: World) -> list[dict[str, Any]]:
    return list(world.emulator.messages.get(world.channels["alerts"], []))


def shown_groups(world: World) -> dict[int, list[str]]:
    """Group id -> ids of the messages that show it (a group must appear in exactly one)."""
    shown: dict[int, list[str]] = {}
    for message in alerts_in(world):
        for embed in message["embeds"]:
            if embed["title"].startswith("Alert storm digest"):
                ids = [int(i) for i in re.findall(r"· #(\d+)$", embed["description"], re.M)]
            else:
                footer = (embed.get("footer") or {}).get("text", "")
                ids = [int(i) for i in re.findall(r"alert group #(\d+)", footer)]
            for group_id in ids:
                shown.setdefault(group_id, []).append(message["id"])
    return shown


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def outbox_counts(app: Application) -> dict[str, int]:
    async with app.database.sessions() as session:
        rows = await session.execute(
            select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)
        )
        return {status: n for status, n in rows.all()}


async def test_one_message_per_group_edited_on_repeat_and_resolve(world, start_app) -> None:
    app = await start_app()
    first = await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))
    await world.emulator.wait_for_messages(world.channels["alerts"], 1)
    (message,) = alerts_in(world)
    embed = message["embeds"][0]
    assert "[FIRING:1] NodeOffline" in embed["title"]
    assert message["content"].startswith(f"<@&{world.roles['core_ops']}> critical")
    assert message["mention_roles"] == [str(world.roles["core_ops"])]
    assert message["mention_everyone"] is False
    custom_ids = [c["custom_id"] for row in message["components"] for c in row["components"]]
    group_id = first["group_id"]
    assert custom_ids == [
        f"hh:alerts:ack:{group_id}",
        f"hh:alerts:silence:{group_id}:1h",
        f"hh:alerts:silence:{group_id}:4h",
        f"hh:alerts:silence:{group_id}:24h",
    ]
    # The repeat (byte-identical) changes nothing; the resolve edits the same message.
    assert (await send(app, fixture_bytes("02_firing_single_repeat_notification.json")))[
        "status"
    ] == "duplicate"
    await send(app, fixture_bytes("03_resolved_single_nodeoffline.json"))
    await until(
        lambda: "[RESOLVED]" in alerts_in(world)[0]["embeds"][0]["title"], 10, "the resolve edit"
    )
    (resolved,) = alerts_in(world)
    assert resolved["id"] == message["id"]
    assert resolved["components"] == []
    assert resolved["embeds"][0]["color"] == 0x2ECC71
    assert any(f["name"] == "Resolved" for f in resolved["embeds"][0]["fields"])
    # No edit ever asked Discord to ping anyone again.
    for payload in world.emulator.message_payloads(int(message["id"]))[1:]:
        assert payload["allowed_mentions"].get("parse") == []


async def test_a_changed_repeat_edits_the_message(world, start_app) -> None:
    app = await start_app()
    await send(app, fixture_bytes("04_firing_group_4_alerts.json"))
    await world.emulator.wait_for_messages(world.channels["alerts"], 1)
    await send(app, fixture_bytes("05_firing_group_partially_resolved.json"))
    await until(lambda: "[FIRING:2]" in alerts_in(world)[0]["embeds"][0]["title"], 10, "edit")
    assert len(alerts_in(world)) == 1


async def test_group_messages_survive_a_restart(world, start_app) -> None:
    app = await start_app()
    await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))
    (message,) = await world.emulator.wait_for_messages(world.channels["alerts"], 1)
    await app.shutdown()
    again = await start_app()
    # The message id is in the database: the resolve edits it, the buttons still work.
    pressed = await world.emulator.click_button(
        message["components"][0]["components"][0]["custom_id"], NODE_USER, message=message
    )
    assert pressed.type == 7
    assert "Acknowledged" in json.dumps(pressed.sent["embeds"][0]["fields"])
    await send(again, fixture_bytes("03_resolved_single_nodeoffline.json"))
    await until(lambda: "[RESOLVED]" in alerts_in(world)[0]["embeds"][0]["title"], 10, "edit")
    assert len(alerts_in(world)) == 1


async def test_acknowledge_is_for_node_and_core_ops_and_audited(world, start_app) -> None:
    app = await start_app()
    body = await send(app, fixture_bytes("04_firing_group_4_alerts.json"))
    (message,) = await world.emulator.wait_for_messages(world.channels["alerts"], 1)
    ack = f"hh:alerts:ack:{body['group_id']}"
    denied = await world.emulator.click_button(ack, MINER_USER, message=message)
    assert denied.ephemeral
    assert denied.sent["content"] == "`alerts:ack` needs the Core Ops or Node Ops role."
    pressed = await world.emulator.click_button(ack, CORE_USER, message=message)
    assert pressed.type == 7
    fields = {f["name"]: f["value"] for f in pressed.sent["embeds"][0]["fields"]}
    assert "core" in fields["Acknowledged"] and "<t:" in fields["Acknowledged"]
    button = pressed.sent["components"][0]["components"][0]
    assert button["disabled"] is True and button["label"].startswith("Acknowledged by")
    async with app.database.sessions() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    outcomes = [(r.actor_id, r.action, r.outcome, r.target) for r in rows]
    assert (MINER_USER, "alerts:ack", "denied", None) in outcomes
    assert (CORE_USER, "alerts:ack", "ok", f"alert-group:{body['group_id']}") in outcomes


async def test_storm_is_coalesced_into_digests_without_429(world, start_app) -> None:
    app = await start_app()
    lines = storm("firing")
    started = time.monotonic()
    results = await asyncio.gather(*(send(app, line) for line in lines))
    group_ids = {r["group_id"] for r in results}
    assert len(group_ids) == 50
    await until(lambda: set(shown_groups(world)) >= group_ids, 20, "all 50 groups visible")
    elapsed = time.monotonic() - started
    messages = alerts_in(world)
    assert len(messages) <= 6, [len(m["embeds"]) for m in messages]
    assert world.emulator.rate_limited_count == 0
    assert all(len(ids) == 1 for ids in shown_groups(world).values()), "each group shown once"
    assert elapsed < 10, elapsed
    # The resolved storm edits the digests in place: no new message, no 429.
    await asyncio.gather(*(send(app, line) for line in storm("resolved")))

    def all_resolved() -> bool:
        return all("[RESOLVED]" in e["title"] for m in alerts_in(world) for e in m["embeds"])

    await until(all_resolved, 30, "every group resolved in place")
    assert len(alerts_in(world)) == len(messages)
    assert world.emulator.rate_limited_count == 0
    counts = await outbox_counts(app)
    assert counts.get(OutboxStatus.FAILED.value, 0) == 0


async def test_discord_outage_then_everything_delivered_once(world, start_app) -> None:
    """Discord answers 503 and the gateway is down for OUTAGE_SECONDS; nothing is lost."""
    app = await start_app()
    emulator = world.emulator
    emulator.set_rest_outage(503)
    emulator.set_gateway_outage(503)
    await emulator.close_gateway()
    sent = []
    for name in (
        "01_firing_single_nodeoffline.json",
        "04_firing_group_4_alerts.json",
        "07_firing_max_alerts_truncated.json",
        "10_firing_mentions_everyone_here_html.json",
        "05_firing_group_partially_resolved.json",
        "03_resolved_single_nodeoffline.json",
    ):
        sent.append(await send(app, fixture_bytes(name)))
    for line in storm("firing")[:12]:
        sent.append(await send(app, line))
    group_ids = {s["group_id"] for s in sent}
    await asyncio.sleep(OUTAGE_SECONDS)
    assert alerts_in(world) == []
    attempts = await outbox_counts(app)
    assert attempts.get(OutboxStatus.PENDING.value, 0) > 0
    emulator.set_gateway_outage(None)
    emulator.set_rest_outage(None)
    await until(lambda: set(shown_groups(world)) >= group_ids, 30, "every group after the outage")

    async def drained() -> bool:
        return (await outbox_counts(app)).get(OutboxStatus.PENDING.value, 0) == 0

    async with asyncio.timeout(30):
        while not await drained():
            await asyncio.sleep(0.1)
    shown = shown_groups(world)
    assert all(len(ids) == 1 for ids in shown.values()), shown
    # The latest state won: 01 arrived resolved, 05 shows the partial resolve.
    titles = [e["title"] for m in alerts_in(world) for e in m["embeds"]]
    assert any("[RESOLVED] NodeOffline" in t for t in titles), titles
    assert (await outbox_counts(app)).get(OutboxStatus.FAILED.value, 0) == 0
