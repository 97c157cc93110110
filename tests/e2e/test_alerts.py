"""The alert relay end to end: webhook -> database -> outbox -> Discord emulator, and back.

In-process Application (bot, web server, outbox worker, scheduler) against the Discord emulator;
payloads are Alertmanager 0.25's real captures, posted over HTTP to the bot's web port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy import select as select_

from bot.app import Application
from bot.discord.outbound.notices import message_payload
from bot.domain.outbox import OutboxKind, OutboxStatus
from bot.domain.ports import Clock
from bot.storage.models import AuditEntry, OutboxEntry
from tests.alerting import WEBHOOK_TOKEN, fixture, fixture_bytes, storm
from tests.harness.alertmanager import AlertmanagerProcess, webhook_config
from tests.harness.alerts import alert_sections, alerts_in, outbox_counts, send, shown_groups
from tests.harness.binaries import require_binary
from tests.harness.clocks import FakeClock, RunningClock
from tests.harness.mail import Inbox, smtp_section
from tests.harness.running import running_app
from tests.harness.waiting import eventually_async, quiesce, until, until_async
from tests.harness.world import CORE_USER, GUILD_ID, MINER_USER, NODE_USER, World, free_port

pytestmark = pytest.mark.e2e

OUTAGE_ATTEMPTS = int(os.environ.get("HH_TEST_OUTAGE_ATTEMPTS", "3"))
"""How many refused tries a post has had before the emulated Discord outage ends."""

StartApp = Callable[..., Awaitable[Application]]


@pytest.fixture
async def start_app(world: World, tmp_path: Path) -> AsyncIterator[StartApp]:
    """Start (and at the end stop) Applications on one database and one web port."""
    port = free_port()
    database = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    async with contextlib.AsyncExitStack() as apps:

        async def start(
            extra: str = "",
            alertmanager_api: str | None = None,
            alertmanager_extra: str = "",
            clock: Clock | None = None,
            discord_extra: str = "",
            **alerts: Any,
        ) -> Application:
            body = alert_sections(world, alertmanager_api, alertmanager_extra, **alerts) + extra
            return await apps.enter_async_context(
                running_app(world, tmp_path, extra=body, clock=clock, database_url=database,
                            web_port=port, discord_extra=discord_extra)
            )  # fmt: skip

        yield start


async def retried_pending(app: Application, attempts: int) -> bool:
    """Has a pending outbox item been tried (and refused) at least `attempts` times."""
    async with app.database.sessions() as session:
        most = await session.scalar(
            select(func.max(OutboxEntry.attempts)).where(
                OutboxEntry.status == OutboxStatus.PENDING.value
            )
        )
    return most is not None and most >= attempts


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
        f"hh:alerts:incident:{group_id}",
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
    # The button by its label, not `alerts:ack`; a miner is pointed to /status (issue 16 §5).
    assert denied.sent["content"].startswith("**Acknowledge** needs the Core Ops or Node Ops role.")
    assert "alerts:ack" not in denied.sent["content"] and "`/status`" in denied.sent["content"]
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


async def test_open_incident_from_an_alert_group_once(world, start_app) -> None:
    """The Open incident button opens a pre-filled incident, links it, and never opens two."""
    app = await start_app()
    body = await send(app, fixture_bytes("04_firing_group_4_alerts.json"))
    (message,) = await world.emulator.wait_for_messages(world.channels["alerts"], 1)
    custom_id = f"hh:alerts:incident:{body['group_id']}"
    buttons = [c["custom_id"] for row in message["components"] for c in row["components"]]
    assert custom_id in buttons
    denied = await world.emulator.click_button(custom_id, MINER_USER, message=message)
    assert "needs the Core Ops or Node Ops role" in denied.sent["content"]

    pressed = await world.emulator.click_button(custom_id, NODE_USER, message=message)
    (reply,) = await pressed.wait_for_followups(1)
    match = re.search(r"Incident (INC-\d{4}-\d{4}) is open", reply["content"])
    assert match, reply["content"]
    ref = match.group(1)
    incidents = await app.services.incidents.find(open_only=True)
    assert [i.ref for i in incidents] == [ref]
    assert incidents[0].severity.value in (2, 3)
    # The card is in #operations, and the group's message shows the link.
    await until(
        lambda: any(
            ref in str(m.get("embeds"))
            for m in world.emulator.messages.get(world.channels["operations"], [])
        ),
        10,
        "incident card",
    )
    group = await app.alerts.get_group(body["group_id"])
    assert group.incident_ref == ref
    # A second press (an old copy of the message) links the same incident.
    again = await world.emulator.click_button(custom_id, CORE_USER, message=message)
    (second,) = await again.wait_for_followups(1)
    assert ref in second["content"]
    assert len(await app.services.incidents.find(open_only=True)) == 1


async def test_storm_is_coalesced_into_digests_without_429(world, start_app) -> None:
    app = await start_app()
    lines = storm("firing")
    results = await asyncio.gather(*(send(app, line) for line in lines))
    group_ids = {r["group_id"] for r in results}
    assert len(group_ids) == 50
    await until(lambda: set(shown_groups(world)) >= group_ids, 30, "all 50 groups visible")
    messages = alerts_in(world)
    # About 5 digests of 10 embeds (a slow machine may post the first arrivals on their own).
    assert len(messages) <= 8, [len(m["embeds"]) for m in messages]
    assert sum(1 for m in messages if len(m["embeds"]) == 10) >= 4
    assert world.emulator.rate_limited_count == 0
    assert all(len(ids) == 1 for ids in shown_groups(world).values()), "each group shown once"
    # The resolved storm edits the digests in place: no new message, no 429.
    await asyncio.gather(*(send(app, line) for line in storm("resolved")))

    def all_resolved() -> bool:
        return all("[RESOLVED]" in e["title"] for m in alerts_in(world) for e in m["embeds"])

    await until(all_resolved, 30, "every group resolved in place")
    assert len(alerts_in(world)) == len(messages)
    assert world.emulator.rate_limited_count == 0
    counts = await outbox_counts(app)
    assert counts.get(OutboxStatus.FAILED.value, 0) == 0


async def test_a_digests_groups_are_picked_then_acted_on(world, start_app) -> None:
    """A digest has no room for each group's buttons: a select menu names its firing groups,
    and picking one answers privately with that group's embed and buttons. Node/Core Ops only;
    a forged choice (a group of another message) changes nothing; it works after a restart."""
    app = await start_app()
    results = await asyncio.gather(*(send(app, line) for line in storm("firing")))
    group_ids = {r["group_id"] for r in results}
    await until(lambda: set(shown_groups(world)) >= group_ids, 30, "all 50 groups visible")
    digests = [m for m in alerts_in(world) if len(m["embeds"]) > 1]
    assert len(digests) >= 2
    digest, other = digests[0], digests[1]
    (row,) = digest["components"]
    select = row["components"][0]
    assert select["type"] == 3 and select["custom_id"] == "hh:alerts:pick:0"
    values = [o["value"] for o in select["options"]]
    assert len(values) == len(digest["embeds"])
    assert {int(v) for v in values} == {i for i, ids in shown_groups(world).items()
                                       if digest["id"] in ids}  # fmt: skip
    picked = values[0]

    denied = await world.emulator.select_menu(
        select["custom_id"], MINER_USER, [picked], message=digest
    )
    assert denied.ephemeral
    assert "needs the Core Ops or Node Ops role" in denied.sent["content"]

    answer = await world.emulator.select_menu(
        select["custom_id"], NODE_USER, [picked], message=digest
    )
    assert answer.ephemeral
    assert answer.sent["embeds"][0]["footer"]["text"].startswith(f"alert group #{picked} ")
    buttons = [c["custom_id"] for r in answer.sent["components"] for c in r["components"]]
    assert f"hh:alerts:ack:{picked}" in buttons
    assert f"hh:alerts:silence:{picked}:4h" in buttons
    assert answer.allowed_mentions == {"parse": []}

    foreign = other["components"][0]["components"][0]["options"][0]["value"]
    forged = await world.emulator.select_menu(
        select["custom_id"], NODE_USER, [foreign], message=digest
    )
    assert forged.ephemeral and "not on this message" in forged.sent["content"]

    await app.shutdown()
    restarted = await start_app()
    again = await world.emulator.select_menu(
        select["custom_id"], CORE_USER, [picked], message=digest
    )
    assert again.ephemeral and f"hh:alerts:ack:{picked}" in json.dumps(again.sent["components"])
    async with restarted.database.sessions() as session:
        rows = (await session.scalars(select_(AuditEntry).order_by(AuditEntry.id))).all()
    outcomes = [(r.actor_id, r.action, r.outcome) for r in rows]
    assert (MINER_USER, "alerts:pick", "denied") in outcomes
    assert (NODE_USER, "alerts:pick", "ok") in outcomes
    picked_rows = [r for r in rows if r.action == "alerts:pick" and r.outcome == "ok"]
    assert picked_rows[0].target == f"alert-group:{picked}"
    assert (NODE_USER, "alerts:pick", "invalid") in outcomes, "the forged choice"


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
    # Posts have been tried and refused a few times, with backoff, before Discord returns.
    await until_async(
        lambda: retried_pending(app, OUTAGE_ATTEMPTS), 60, "retries during the outage"
    )
    assert alerts_in(world) == []
    attempts = await outbox_counts(app)
    assert attempts.get(OutboxStatus.PENDING.value, 0) > 0
    emulator.set_gateway_outage(None)
    emulator.set_rest_outage(None)
    await until(lambda: set(shown_groups(world)) >= group_ids, 30, "every group after the outage")

    async def drained() -> bool:
        return (await outbox_counts(app)).get(OutboxStatus.PENDING.value, 0) == 0

    await until_async(drained, 30, "the outbox drained")
    shown = shown_groups(world)
    assert all(len(ids) == 1 for ids in shown.values()), shown
    # The latest state won: 01 arrived resolved, 05 shows the partial resolve.
    titles = [e["title"] for m in alerts_in(world) for e in m["embeds"]]
    assert any("[RESOLVED] NodeOffline" in t for t in titles), titles
    assert (await outbox_counts(app)).get(OutboxStatus.FAILED.value, 0) == 0


# -- the real Alertmanager: webhook in, silences out ------------------------------------------


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[AlertmanagerProcess]:
    require_binary("prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager")
    process = AlertmanagerProcess("", tmp_path / "alertmanager")
    try:
        yield process
    finally:
        await process.stop()


async def _start_with_alertmanager(
    world: World, start_app: StartApp, alertmanager: AlertmanagerProcess
) -> Application:
    app = await start_app(alertmanager_api=alertmanager.url)
    bot_url = f"http://127.0.0.1:{app.settings.web.port}/webhooks/alertmanager"
    alertmanager.config = webhook_config(bot_url, WEBHOOK_TOKEN)
    await alertmanager.start()
    return app


async def test_alertmanager_binary_posts_and_silence_button_creates_a_real_silence(
    world, start_app, alertmanager: AlertmanagerProcess
) -> None:
    app = await _start_with_alertmanager(world, start_app, alertmanager)
    now = time.time()
    alert = {
        "labels": {"alertname": "NodeOffline", "node": "hn-us-7", "severity": "critical"},
        "annotations": {"summary": "Node hn-us-7 is offline", "description": "no heartbeat"},
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
    }
    await alertmanager.post_alerts([alert])
    (message,) = await world.emulator.wait_for_messages(world.channels["alerts"], 1, timeout=20)
    assert "[FIRING:1] NodeOffline" in message["embeds"][0]["title"]
    silence_4h = next(
        c["custom_id"]
        for row in message["components"]
        for c in row["components"]
        if c["custom_id"].endswith(":4h")
    )
    denied = await world.emulator.click_button(silence_4h, MINER_USER, message=message)
    assert "needs the Core Ops or Node Ops role" in denied.sent["content"]
    assert await alertmanager.silences() == []

    pressed = await world.emulator.click_button(silence_4h, NODE_USER, message=message)
    assert pressed.type == 6, "deferred: Alertmanager is a network call"
    followups = await pressed.wait_for_followups(1)
    assert "Silenced for 4 h" in followups[0]["content"]
    (silence,) = [s for s in await alertmanager.silences() if s["status"]["state"] == "active"]
    matchers = {m["name"]: m["value"] for m in silence["matchers"]}
    assert matchers == {"alertname": "NodeOffline", "node": "hn-us-7", "severity": "critical"}
    assert all(m["isEqual"] and not m["isRegex"] for m in silence["matchers"])
    assert "node-bob" in silence["createdBy"] and str(NODE_USER) in silence["createdBy"]
    assert f"/channels/{GUILD_ID}/{world.channels['alerts']}/{message['id']}" in silence["comment"]
    hours = (
        datetime_of(silence["endsAt"]) - datetime_of(silence["startsAt"])
    ).total_seconds() / 3600
    assert 3.9 < hours < 4.1
    edited = world.emulator.get_message(int(message["id"]))
    assert edited is not None
    labels = [c["label"] for row in edited["components"] for c in row["components"]]
    assert labels == ["Acknowledge", "Expire silence", "Open incident"]
    assert any(f["name"] == "Silenced" for f in edited["embeds"][0]["fields"])

    expire = edited["components"][0]["components"][1]["custom_id"]
    expired = await world.emulator.click_button(expire, CORE_USER, message=edited)
    await expired.wait_for_followups(1)
    states = {s["id"]: s["status"]["state"] for s in await alertmanager.silences()}
    assert states[silence["id"]] == "expired"
    async with app.database.sessions() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    actions = [(r.actor_id, r.action, r.outcome) for r in rows]
    assert (NODE_USER, "alerts:silence", "ok") in actions
    assert (CORE_USER, "alerts:expire", "ok") in actions
    silence_row = next(r for r in rows if r.action == "alerts:silence" and r.outcome == "ok")
    assert silence_row.details["silence_id"] == silence["id"]

    # Resolve in Alertmanager: the same message turns green, buttons gone.
    await alertmanager.post_alerts([{**alert, "endsAt": iso(now - 1)}])
    await until(
        lambda: "[RESOLVED]" in alerts_in(world)[0]["embeds"][0]["title"], 20, "the resolve"
    )
    assert len(alerts_in(world)) == 1
    assert alerts_in(world)[0]["components"] == []


async def test_silence_when_alertmanager_is_down_says_so(world, start_app) -> None:
    app = await start_app(alertmanager_api=f"http://127.0.0.1:{free_port()}")
    body = await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))
    (message,) = await world.emulator.wait_for_messages(world.channels["alerts"], 1)
    custom_id = f"hh:alerts:silence:{body['group_id']}:1h"
    pressed = await world.emulator.click_button(custom_id, NODE_USER, message=message)
    (reply,) = await pressed.wait_for_followups(1)
    assert reply["flags"] & 64, "ephemeral"
    assert "Alertmanager did not answer" in reply["content"]


# -- email fallback and the dead man's switch -------------------------------------------------


async def test_critical_alert_not_on_discord_is_emailed_once(
    world, start_app, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    app = await start_app(extra=smtp_section(port), email_fallback_after=1)
    world.emulator.set_rest_outage(503)
    await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))
    await send(app, fixture_bytes("04_firing_group_4_alerts.json"))  # critical too
    await until(lambda: len(inbox.messages) >= 2, 15, "two fallback emails")
    await quiesce(app)
    assert len(inbox.messages) == 2, "once per group"
    texts = [m.content.decode() for m in inbox.messages]
    assert any("Subject: [hh-opsbot] CRITICAL NodeOffline" in t for t in texts)
    assert all(m.rcpt_tos == ["core-ops@hyperhash.invalid"] for m in inbox.messages)
    world.emulator.set_rest_outage(None)
    await world.emulator.wait_for_messages(world.channels["alerts"], 2, timeout=20)
    await quiesce(app)
    assert len(inbox.messages) == 2


async def test_posted_in_time_means_no_email(world, start_app, smtp) -> None:
    inbox, port = smtp
    clock = FakeClock()
    app = await start_app(extra=smtp_section(port), email_fallback_after=1, clock=clock)
    await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))
    clock.advance(seconds=0.5)  # past the batch wait (0.3 s), not the fallback (1 s)
    await world.emulator.wait_for_messages(world.channels["alerts"], 1)
    clock.advance(seconds=30)  # long past the fallback's due time
    await quiesce(app)
    assert inbox.messages == []


# -- one slow Discord call holds nothing else ------------------------------------------------


async def outbox_item(app: Application, item_id: int) -> Any:
    async with app.database.uow() as uow:
        return await uow.outbox.get(item_id)


async def outbox_done(app: Application, item_id: int, timeout: float = 15) -> Any:
    async def done() -> Any:
        item = await outbox_item(app, item_id)
        return item if item.status is OutboxStatus.DONE else None

    return await eventually_async(done, timeout, f"outbox item {item_id} done")


async def enqueue_post(app: Application, channel_id: int, content: str) -> int:
    async with app.database.uow() as uow:
        item = await app.outbox.enqueue(
            uow, OutboxKind.DISCORD_MESSAGE, message_payload(channel_id, content=content)
        )
        await uow.commit()
    assert item is not None
    app.outbox.wake()
    return item.id


NOTE = "Maintenance window starts at 04:00 UTC"


def carries(content: str) -> Callable[[Any], bool]:
    """The one post a test holds back (start-up notices share #operations)."""
    return lambda body: isinstance(body, dict) and body.get("content") == content


def contents(world: World, channel_id: int) -> list[str]:
    return [m["content"] for m in world.emulator.messages.get(channel_id, [])]


def posts_of(world: World, path: str, content: str) -> list[int]:
    """Statuses of the POSTs to `path` that carried `content` (other notices share the
    channel: start-up drift findings, for one)."""
    return [
        r.status
        for r in world.emulator.request_log
        if (r.method, r.path) == ("POST", path) and (r.body or {}).get("content") == content
    ]


async def test_a_long_429_on_one_post_holds_neither_the_email_nor_alerts(
    world, start_app, smtp: tuple[Inbox, int]
) -> None:
    """One #operations post answered 429 with Retry-After 120 s: the fallback email and the
    #alerts posts still arrive at once (bounds far below 120 s: held behind the 429 they would
    not), and the post itself goes out, once, after its 120 s (on the app's clock)."""
    inbox, port = smtp
    clock = RunningClock()
    app = await start_app(extra=smtp_section(port), clock=clock, email_fallback_after=1)
    emu, ops, alerts = world.emulator, world.channels["operations"], world.channels["alerts"]
    path = f"/channels/{ops}/messages"
    emu.rate_limit("POST", path, retry_after=120, when=carries(NOTE))
    held = await enqueue_post(app, ops, NOTE)
    await until(lambda: posts_of(world, path, NOTE) == [429], 10, "the 429")
    # A critical alert #alerts cannot show for now (Discord answers 503 a while): its fallback
    # email is due after 1 s, and Discord must not hold it.
    emu.set_rest_outage(503)
    await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))
    await until(lambda: len(inbox.messages) >= 1, 20, "the fallback email")
    assert "Subject: [hh-opsbot] CRITICAL NodeOffline" in inbox.messages[0].content.decode()
    emu.set_rest_outage(None)
    await send(app, fixture_bytes("09_firing_markdown_in_labels_and_annotations.json"))
    await emu.wait_for_messages(alerts, 2, timeout=20)
    item = await outbox_item(app, held)
    assert item.status is OutboxStatus.PENDING and item.attempts == 1
    assert item.last_error == "rate limited"
    wait = (item.available_at - clock.now()).total_seconds()
    assert 60 < wait <= 120, "retried after Discord's Retry-After, not before"
    assert NOTE not in contents(world, ops)
    # Its 120 s pass: delivered, exactly once.
    clock.advance(seconds=121)
    app.outbox.wake()
    done = await outbox_done(app, held)
    assert done.attempts == 2
    assert contents(world, ops).count(NOTE) == 1
    assert posts_of(world, path, NOTE) == [429, 200]
    assert len(inbox.messages) == 1, "the warning is posted in time: no email for it"


async def test_a_hung_post_holds_neither_the_email_nor_alerts(
    world, start_app, smtp: tuple[Inbox, int]
) -> None:
    """One #operations post gets no answer at all: everything else goes out meanwhile; the
    post is cut at [discord] send_timeout, retried, and shown once even when the hung request
    is handled late (the retry carries the same nonce)."""
    inbox, port = smtp
    app = await start_app(
        extra=smtp_section(port), discord_extra="send_timeout = 1", email_fallback_after=1
    )
    emu, ops, alerts = world.emulator, world.channels["operations"], world.channels["alerts"]
    path = f"/channels/{ops}/messages"
    emu.stall("POST", path, when=carries(NOTE))
    held = await enqueue_post(app, ops, NOTE)
    await emu.wait_stalled(1)
    emu.set_rest_outage(503)
    await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))
    await until(lambda: len(inbox.messages) >= 1, 20, "the fallback email")
    emu.set_rest_outage(None)
    await send(app, fixture_bytes("09_firing_markdown_in_labels_and_annotations.json"))
    await emu.wait_for_messages(alerts, 2, timeout=20)
    done = await outbox_done(app, held, timeout=20)
    assert done.attempts >= 2, "cut, then retried"
    tries = len(posts_of(world, path, NOTE))
    emu.release_stalled()
    await until(
        lambda: len(posts_of(world, path, NOTE)) > tries,
        10,
        "the hung request, answered late",
    )
    assert set(posts_of(world, path, NOTE)) == {200}
    assert contents(world, ops).count(NOTE) == 1


def watchdog_payload(started: datetime) -> bytes:
    """Alertmanager's Watchdog (always firing since `started`), as every repeat carries it."""
    starts_at = started.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = fixture("01_firing_single_nodeoffline.json")
    payload["groupKey"] = '{}:{alertname="Watchdog"}'
    payload["groupLabels"] = {"alertname": "Watchdog"}
    payload["commonLabels"] = {"alertname": "Watchdog", "severity": "none"}
    payload["alerts"][0].update(
        labels={"alertname": "Watchdog", "severity": "none"},
        fingerprint="00000000000000aa",
        startsAt=starts_at,
    )
    return json.dumps(payload).encode()


def pipeline_notices(world) -> list[str]:
    """Titles of the dead man's switch notices in #operations (other areas post there too)."""
    titles = [
        (m.get("embeds") or [{}])[0].get("title", "")
        for m in world.emulator.messages.get(world.channels["operations"], [])
    ]
    return [t for t in titles if t.startswith("Alert pipeline")]


async def wait_pipeline_notices(world, count: int, timeout: float = 10) -> list[str]:
    await until(lambda: len(pipeline_notices(world)) >= count, timeout, f"{count} notices")
    return pipeline_notices(world)


async def test_dead_mans_switch(world, start_app) -> None:
    """Driven by the app's clock: the watchdog's deadline is checked at chosen instants."""
    clock = FakeClock()
    app = await start_app(watchdog_timeout=60, clock=clock)
    started = clock.now()
    assert (await send(app, watchdog_payload(started)))["status"] == "watchdog"
    clock.advance(seconds=40)
    assert (await send(app, watchdog_payload(started)))["status"] == "duplicate"  # repeats
    await quiesce(app)  # the repeat is applied at t = 40 s
    clock.advance(seconds=40)  # 80 s after the first, 40 s after the repeat: not overdue
    await quiesce(app)
    assert pipeline_notices(world) == []
    clock.advance(seconds=30)  # 70 s after the repeat
    await quiesce(app)
    assert await wait_pipeline_notices(world, 1) == ["Alert pipeline broken"]
    clock.advance(minutes=10)
    await quiesce(app)
    assert pipeline_notices(world) == ["Alert pipeline broken"], "once per outage"
    assert alerts_in(world) == [], "the Watchdog itself is never posted"
    await send(app, watchdog_payload(started))
    notices = await wait_pipeline_notices(world, 2)
    assert notices == ["Alert pipeline broken", "Alert pipeline recovered"]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def datetime_of(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_the_backlog_of_stored_bodies_is_a_metric(world, start_app) -> None:
    """Operators see whether the processor keeps up: stored but not applied bodies."""
    app = await start_app()
    app.metrics.alert_backlog.set(99)
    await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))  # waits until applied
    await app.jobs.check_alerts()
    url = f"http://127.0.0.1:{app.settings.web.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    assert "hh_opsbot_alert_backlog 0.0" in text


# -- the retired receiver process --------------------------------------------------------


async def test_a_spool_left_by_the_retired_receiver_is_applied_once(
    world, start_app, tmp_path: Path
) -> None:
    """The receiver process was retired: bodies its spool had accepted are applied once by
    the bot (read at start), and its old keys only earn a warning."""
    from bot.domain.alerts import WebhookPayload
    from bot.storage.spool import SpoolWriter, spool_row

    raw = fixture_bytes("04_firing_group_4_alerts.json")
    row = spool_row(WebhookPayload.model_validate_json(raw), raw.decode())
    SpoolWriter(tmp_path / "spool.db").write([row], datetime.now(UTC))
    extra = f'receiver = "process"\nreceiver_port = 8086\nspool_path = "{tmp_path / "spool.db"}"\n'
    app = await start_app(alertmanager_extra=extra)
    assert app.spool is not None
    (message,) = await world.emulator.wait_for_messages(world.channels["alerts"], 1, timeout=20)
    assert "[FIRING:4]" in message["embeds"][0]["title"]
    url = f"http://127.0.0.1:{app.settings.web.port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert "receiver" not in await response.json()
    await app.shutdown()
    again = await start_app(alertmanager_extra=extra)  # read again: nothing shown twice
    await quiesce(again)
    assert len(world.emulator.messages[world.channels["alerts"]]) == 1
