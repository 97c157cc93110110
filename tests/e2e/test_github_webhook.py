"""GitHub's webhook end to end: signed captured bodies posted over HTTP to the bot's web port,
the real discord.py client against the Discord emulator. A failing then passing workflow is one
#dev-log message edited to green; a replayed delivery posts once; a merged pull request naming
an incident appears on its card and in its thread."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Application
from tests.github_webhooks import (
    ROUTE,
    SECRET,
    merged_pr,
    new_delivery,
    request,
    workflow_run,
)
from tests.harness.clocks import default_start
from tests.harness.running import running_app
from tests.harness.waiting import eventually, quiesce
from tests.harness.world import CORE_USER, World

pytestmark = pytest.mark.e2e

RED = 0xE74C3C
GREEN = 0x2ECC71


class ShiftedClock:
    """Time passes as usual, from where the test suite's clocks start (HH_TEST_CLOCK_START):
    the app never reads the wall clock, so the whole flow runs years ahead too."""

    def __init__(self) -> None:
        self.start = default_start()
        self.origin = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.origin)


@pytest.fixture
async def app(world: World, tmp_path: Path, database_url: str) -> AsyncIterator[Application]:
    extra = "\n[outbox]\nmax_backoff = 2\nidle_poll = 1\n"
    async with running_app(
        world,
        tmp_path,
        extra=extra,
        clock=ShiftedClock(),
        database_url=database_url,
        environ={"HH_GITHUB__WEBHOOK_SECRET": SECRET},  # the secret from the environment
    ) as application:
        await application.outbox.drain_all()
        yield application


async def deliver(
    app: Application, event: str, payload: dict[str, Any], delivery: str | None = None
) -> tuple[int, dict[str, Any]]:
    body, headers = request(event, payload, delivery=delivery)
    url = f"http://127.0.0.1:{app.settings.web.port}{ROUTE}"
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        answer = await r.json() if r.status != 204 else {}
        return r.status, answer


def messages(world: World, channel: int) -> list[dict]:
    return list(world.emulator.messages.get(channel, []))


def dev_log(world: World) -> list[dict]:
    return messages(world, world.channels["dev_log"])


def shown(world: World, message: dict) -> dict:
    return world.emulator.get_message(int(message["id"])) or message


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_failing_workflow_is_one_message_edited_to_green(
    world: World, app: Application
) -> None:
    emu = world.emulator
    start = app.clock.now()
    status, answer = await deliver(
        app, "workflow_run", workflow_run("failure", run_id=101, started=iso(start))
    )
    assert (status, answer["status"]) == (202, "accepted")
    [posted] = await eventually(lambda: dev_log(world), what="the failing workflow in #dev-log")
    assert "CI failing" in posted["content"] and posted["embeds"][0]["color"] == RED

    # Still failing: the same message, two failed runs.
    await deliver(
        app,
        "workflow_run",
        workflow_run("failure", run_id=102, started=iso(start + timedelta(seconds=1))),
    )
    await eventually(
        lambda: "2 failed runs" in shown(world, posted)["embeds"][0]["description"],
        what="the second failure",
    )

    # Green: the same message, edited.
    green = new_delivery()
    status, _ = await deliver(
        app,
        "workflow_run",
        workflow_run("success", run_id=103, started=iso(start + timedelta(seconds=2))),
        delivery=green,
    )
    assert status == 202
    edited = await eventually(
        lambda: (m := shown(world, posted))["embeds"][0]["color"] == GREEN and m,
        what="the message edited to green",
    )
    assert "CI green again" in edited["content"]
    assert "Passing again" in edited["embeds"][0]["title"]
    await quiesce(app)
    assert len(dev_log(world)) == 1
    edits = len(emu.message_payloads(int(posted["id"])))

    # GitHub redelivers the green one: stored already, nothing posted or edited again.
    status, answer = await deliver(
        app,
        "workflow_run",
        workflow_run("success", run_id=103, started=iso(start + timedelta(seconds=2))),
        delivery=green,
    )
    assert (status, answer["status"]) == (200, "duplicate")
    await quiesce(app)
    assert len(dev_log(world)) == 1
    assert len(emu.message_payloads(int(posted["id"]))) == edits
    # Nothing from GitHub may ping: every send and edit says so.
    for payload in emu.message_payloads(int(posted["id"])):
        assert payload["allowed_mentions"] == {"parse": []} or not payload["allowed_mentions"].get(
            "parse"
        )


async def test_a_merged_pr_naming_an_incident_is_on_its_card_and_in_its_thread(
    world: World, app: Application
) -> None:
    emu = world.emulator
    result = await emu.invoke_command(
        "incident",
        CORE_USER,
        options=[
            {
                "name": "open",
                "type": 1,
                "options": [
                    {"name": "severity", "type": 4, "value": 2},
                    {"name": "title", "type": 3, "value": "Payouts rounding wrong"},
                ],
            }
        ],
    )
    await result.wait_for_followups(1)
    (incident,) = await app.services.incidents.find(open_only=True)
    ref = incident.ref

    def card() -> dict | None:
        for message in messages(world, world.channels["operations"]):
            embeds = message.get("embeds") or []
            if embeds and f"{ref} · " in embeds[0].get("title", ""):
                return shown(world, message)
        return None

    await eventually(card, what="the incident card")
    incident = await app.services.incidents.get(ref)
    assert incident.thread_id is not None

    pr = merged_pr(
        57,
        f"Fix payout rounding ({ref}) @everyone <@&{world.roles['core_ops']}>",
        body=f"Resolves {ref}.",
    )
    delivery = new_delivery()
    status, _ = await deliver(app, "pull_request", pr, delivery=delivery)
    assert status == 202
    url = "https://github.com/hyper-hash/hyper-node/pull/57"

    def linked() -> str:
        current = card() or {}
        fields = (current.get("embeds") or [{}])[0].get("fields", [])
        return next((f["value"] for f in fields if f["name"] == "Linked changes"), "")

    value = await eventually(linked, what="the link on the card")
    assert url in value and "@everyone" not in value

    def thread_note() -> dict[str, Any] | None:
        notes = [m for m in messages(world, incident.thread_id or 0) if url in (m["content"] or "")]
        return notes[0] if notes else None

    note = await eventually(thread_note, what="the note in the incident's thread")
    assert note is not None
    assert "Linked" in note["content"] and not note["mention_everyone"]
    assert note["mention_roles"] == []
    merges = await eventually(lambda: dev_log(world), what="the merge in #dev-log")
    assert "#57" in merges[0]["embeds"][0]["description"]
    assert not merges[0]["mention_everyone"] and merges[0]["mention_roles"] == []

    # Replayed: posted once, linked once.
    status, answer = await deliver(app, "pull_request", pr, delivery=delivery)
    assert (status, answer["status"]) == (200, "duplicate")
    await quiesce(app)
    assert len(dev_log(world)) == 1
    notes = [m for m in messages(world, incident.thread_id or 0) if url in (m["content"] or "")]
    assert len(notes) == 1
    assert len((await app.services.incidents.get(ref)).links) == 1

    # /incident link by hand: the same use case, on the card too.
    commit = (
        "https://github.com/hyper-hash/hyper-node/commit/de9f2c7fd25e1b3afad3e85a0bd17d9b100db4b3"
    )
    by_hand = await emu.invoke_command(
        "incident",
        CORE_USER,
        options=[
            {
                "name": "link",
                "type": 1,
                "options": [
                    {"name": "id", "type": 3, "value": ref},
                    {"name": "url", "type": 3, "value": commit},
                ],
            }
        ],
    )
    reply = by_hand.message or (await by_hand.wait_for_followups(1))[0]
    assert "Linked" in reply["content"] and reply["flags"] & 64
    await eventually(lambda: commit in linked(), what="the commit on the card")
