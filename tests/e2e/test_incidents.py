"""Incidents end to end: the real discord.py client against the Discord emulator, and the real
PyGithub against the loopback GitHub API. Open → card, thread, GitHub issue; checklist button;
update; resolve → issue closed; report → incidents/<id>.md committed. And the bad inputs."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy import func, select

from bot.app import Application
from bot.storage.models import AuditEntry, StrikeEntry
from tests.fakes.github_api import GitHubAPI
from tests.harness.clocks import FakeClock
from tests.harness.running import running_app
from tests.harness.waiting import events_handled, eventually, eventually_async, quiesce
from tests.harness.world import CORE_USER, GUILD_ID, MINER_USER, NODE_USER, World

pytestmark = pytest.mark.e2e

GH_TOKEN = "ghp_e2e_token_0123456789abcdef"
REPO = "hyper-hash/operations"
TYPES = {"severity": 4, "level": 4, "member": 6, "enabled": 5}


def sub(name: str, **options: Any) -> list[dict]:
    opts = [{"name": k, "type": TYPES.get(k, 3), "value": v} for k, v in options.items()]
    return [{"name": name, "type": 1, "options": opts}]


@pytest.fixture
async def gh() -> AsyncIterator[GitHubAPI]:
    async with GitHubAPI(token=GH_TOKEN, repo=REPO) as api:
        yield api


@pytest.fixture
def app_clock(request: pytest.FixtureRequest) -> FakeClock | None:
    """The real clock (outbox retries need time to pass); a test may ask for a fake one, built
    for it at the suite's start date: `@pytest.mark.parametrize("app_clock", ["fake"], ...)`."""
    return FakeClock() if getattr(request, "param", None) == "fake" else None


@pytest.fixture
async def app(
    world: World, tmp_path: Path, gh: GitHubAPI, app_clock: FakeClock | None
) -> AsyncIterator[Application]:
    github = f'\n[github]\nrepo = "{REPO}"\napi_url = "{gh.url}"\ntimeout_seconds = 2\n'
    async with running_app(
        world, tmp_path, extra=github, clock=app_clock, environ={"HH_GITHUB__TOKEN": GH_TOKEN}
    ) as application:
        yield application


def channel_messages(world: World, channel_id: int) -> list[dict]:
    return list(world.emulator.messages.get(channel_id, []))


def card_of(world: World, ref: str) -> dict | None:
    for message in channel_messages(world, world.channels["operations"]):
        embeds = message.get("embeds") or []
        if embeds and f"· {ref} ·" in embeds[0].get("title", ""):
            return world.emulator.get_message(int(message["id"]))
    return None


def field(message: dict, name: str) -> str:
    return str(next(f["value"] for f in message["embeds"][0]["fields"] if f["name"] == name))


async def run(world: World, user: int, name: str, **options: Any) -> dict:
    """Invoke `/incident <name>` and return the bot's (first) answer."""
    result = await world.emulator.invoke_command("incident", user, options=sub(name, **options))
    message = result.message
    # An immediate answer, not a "thinking…" placeholder (flag 128) waiting for a followup.
    if message is not None and message.get("content") is not None and not message["flags"] & 128:
        return message
    return (await result.wait_for_followups(1))[0]


async def test_incident_from_open_to_report(world: World, app: Application, gh: GitHubAPI) -> None:
    emu = world.emulator
    gh.slow_next(3, method="POST")  # GitHub is slow: the reply must not wait for it
    reply = await run(
        world,
        CORE_USER,
        "open",
        severity=1,
        title="Payouts halted",
        summary="Payout job stuck on pool-db-2.hyperhash.net (10.0.4.2)",
    )
    assert reply["flags"] & 64, "ephemeral"
    (incident,) = await app.services.incidents.find(open_only=True)
    ref = incident.ref
    assert ref in reply["content"]

    # The card in #operations pings Core Ops (Sev 1), and a thread carries the checklist.
    card = await eventually(lambda: card_of(world, ref))
    assert f"<@&{world.roles['core_ops']}>" in card["content"]
    assert card["mention_roles"] == [str(world.roles["core_ops"])]
    assert f"🔎 **INVESTIGATING** · {ref} · Sev 1" in card["content"].splitlines()[0]
    incident = await app.services.incidents.get(ref)
    assert incident.thread_id is not None
    thread = emu.channels[incident.thread_id]
    assert thread["parent_id"] == str(world.channels["operations"])
    panel = channel_messages(world, incident.thread_id)[0]
    custom_ids = [c["custom_id"] for row in panel["components"] for c in row["components"]]
    assert custom_ids == [
        f"hh:incident:{verb}:{incident.id}"
        for verb in ("isolate", "snapshot", "rotate", "notify", "report")
    ]

    # GitHub: one issue, labelled, and the card shows its link once it exists.
    await eventually(lambda: gh.issues.get(1), timeout=20)
    issue = gh.issues[1]
    assert issue["label_names"] == ["incident", "sev-1"]
    assert "**Reporter:** core-alice" in issue["body"]
    await eventually(lambda: "Issue #1" in field(card_of(world, ref) or card, "GitHub"), 20)
    # ... and the issue links back to the card (linked both ways).
    card_url = (
        f"https://discord.com/channels/{GUILD_ID}/{world.channels['operations']}/{card['id']}"
    )
    await eventually(lambda: card_url in gh.issues[1]["body"], 20)

    # The #miners notice says what miners need, never hostnames or addresses.
    notice = await eventually(lambda: channel_messages(world, world.channels["miners"]))
    assert ref in notice[0]["content"]
    assert "10.0.4.2" not in notice[0]["content"] and "hyperhash.net" not in notice[0]["content"]

    # A checklist button: who and when, the button greys out, GitHub's checklist follows.
    pressed = await emu.click_button(f"hh:incident:isolate:{incident.id}", NODE_USER, message=panel)
    edited = await pressed.wait_for_edit(1)
    isolate = edited["components"][0]["components"][0]
    assert isolate["disabled"] and "node-bob" in isolate["label"]
    await eventually(lambda: "- [x] Isolate affected systems (by node-bob" in gh.issues[1]["body"])
    # A member without a responder role cannot tick anything.
    denied = await emu.click_button(
        f"hh:incident:snapshot:{incident.id}", MINER_USER, message=panel
    )
    answer = denied.message if denied.message else (await denied.wait_for_followups(1))[0]
    assert "needs the" in answer["content"] and answer["flags"] & 64
    assert "snapshot" not in (await app.services.incidents.get(ref)).checklist

    # An update: timeline, a thread post, a GitHub comment.
    posted_update = await run(
        world, NODE_USER, "update", id=ref, text="Payout job restarted", status="monitoring"
    )
    # Issue 16 §2: the private confirmation is one line with a link to the card, not a copy.
    assert posted_update["flags"] & 64 and not posted_update["embeds"]
    assert posted_update["content"] == f"Update posted to **{ref}**. → [card]({card_url})"
    await eventually(
        lambda: any(
            "Payout job restarted" in (m.get("content") or "")
            for m in channel_messages(world, incident.thread_id or 0)
        )
    )
    await eventually(lambda: any("Payout job restarted" in c["body"] for c in gh.comments[1]))
    # The card shows the latest update (text, who, when) and when the next one is due.
    worked: Any = await eventually(
        lambda: (
            (c := card_of(world, ref)) and "Payout job restarted" in field(c, "Latest update") and c
        )
    )
    assert "node-bob" in field(worked, "Latest update")
    assert field(worked, "Next update due").startswith("<t:")
    assert field(worked, "Commander") == "not assigned"

    # A 📌 on a thread message puts it on the timeline (the bot reads it back over REST).
    posted = next(
        m
        for m in channel_messages(world, incident.thread_id or 0)
        if "Payout job restarted" in (m.get("content") or "")
    )
    reaction = {
        "user_id": str(NODE_USER),
        "channel_id": str(incident.thread_id),
        "message_id": posted["id"],
        "guild_id": str(GUILD_ID),
        "emoji": {"id": None, "name": "📌"},
        "type": 0,
        "burst": False,
    }
    for _ in range(2):  # twice: it joins the timeline once
        await emu.dispatch("MESSAGE_REACTION_ADD", reaction)

    async def pinned() -> list[Any]:
        entries = await app.services.incidents.timeline(incident.id)
        return [e for e in entries if e.kind.value == "pinned"]

    await eventually_async(pinned, 10, "the pin on the timeline")
    await events_handled(app, emu)  # the second 📌 too
    (pin,) = await pinned()
    assert "Payout job restarted" in pin.text
    # A pin of the same message does not add it again; a pin of another one does.
    await emu.pin_message(incident.thread_id or 0, int(posted["id"]))
    await emu.pin_message(incident.thread_id or 0, int(panel["id"]))

    async def two_pinned() -> bool:
        return len(await pinned()) >= 2

    await eventually_async(two_pinned, 10, "the second pin on the timeline")
    await events_handled(app, emu)  # both pins updates read
    assert len(await pinned()) == 2

    # Resolve: the issue is closed, the report is due in 48 h.
    done = await run(world, NODE_USER, "resolve", id=ref, cause="Stuck job", resolution="Restart")
    assert "is resolved" in done["content"] and not done["embeds"] and done["flags"] & 64
    assert "\n" not in done["content"] and done["content"].endswith(f"→ [card]({card_url})")
    await eventually(lambda: gh.issues[1]["state"] == "closed")
    # The card says so (issue 16 §1): RESOLVED leads its title and its text line (what the
    # channel preview shows), in green, read back from the emulator after the outbox's edit.
    resolved: Any = await eventually(
        lambda: (c := card_of(world, ref)) and "RESOLVED" in c["embeds"][0]["title"] and c
    )
    assert resolved["embeds"][0]["title"].startswith(f"✅ RESOLVED · {ref} · Sev 1")
    first_line = resolved["content"].splitlines()[0]
    assert first_line.startswith(f"✅ **RESOLVED** · {ref} · Sev 1"), first_line
    assert "<@&" not in first_line, "the page is not repeated once resolved"
    assert resolved["embeds"][0]["color"] == 0x2ECC71

    # The report: a Markdown file in the thread, committed as incidents/<id>.md.
    await run(world, NODE_USER, "report", id=ref)
    attached = await eventually(
        lambda: next(
            (m for m in channel_messages(world, incident.thread_id or 0) if m.get("attachments")),
            None,
        )
    )
    assert attached["attachments"][0]["filename"] == f"{ref}.md"
    path = f"incidents/{ref}.md"
    text = await eventually(lambda: gh.file_text(path), 20)
    assert text.startswith(f"# {ref}: Payouts halted") and "## Timeline (UTC)" in text
    await eventually(lambda: any("Postmortem:" in c["body"] for c in gh.comments[1]))
    assert len(gh.issues) == 1, "no duplicate issue"
    stored = await app.services.incidents.get(ref)
    assert "report" in stored.checklist

    # /incident show and list and stats answer.
    shown = await run(world, CORE_USER, "show", id=ref)
    assert f"RESOLVED · {ref}" in shown["embeds"][0]["title"]
    recent = await run(world, NODE_USER, "list", scope="recent")
    assert ref in recent["embeds"][0]["fields"][0]["name"]
    stats = await run(world, NODE_USER, "stats")
    assert "Time to resolve" in stats["embeds"][0]["fields"][0]["value"]
    metrics = generate_latest(app.metrics.registry).decode()
    assert 'hh_opsbot_incident_time_to_acknowledge_seconds_count{severity="1"} 1.0' in metrics
    assert 'hh_opsbot_incident_time_to_resolve_seconds_count{severity="1"} 1.0' in metrics


async def test_bad_input_is_a_clear_ephemeral_error_and_changes_nothing(
    world: World, app: Application, gh: GitHubAPI
) -> None:
    unknown = await run(world, CORE_USER, "update", id="INC-2026-0999", text="hello there")
    assert "There is no incident INC-2026-0999" in unknown["content"] and unknown["flags"] & 64

    too_long = await run(world, CORE_USER, "open", severity=2, title="x" * 300)
    assert "at most 200" in too_long["content"] and too_long["flags"] & 64
    out_of_range = await run(world, CORE_USER, "open", severity=7, title="Something broke")
    assert "Severity 7 does not exist" in out_of_range["content"]

    denied = await run(world, MINER_USER, "open", severity=1, title="Let me in")
    assert "needs the" in denied["content"] and denied["flags"] & 64
    assert await app.services.incidents.find(open_only=False) == []

    await run(world, CORE_USER, "open", severity=3, title="Chart glitch")
    (incident,) = await app.services.incidents.find(open_only=True)
    bad_level = await run(world, CORE_USER, "severity", id=incident.ref, level=0)
    assert "Severity 0 does not exist" in bad_level["content"]
    await run(world, CORE_USER, "resolve", id=incident.ref, cause="Cache", resolution="Purged")
    twice = await run(
        world, CORE_USER, "resolve", id=incident.ref, cause="Again", resolution="Again"
    )
    assert "already resolved" in twice["content"] and twice["flags"] & 64
    stored = await app.services.incidents.get(incident.ref)
    assert stored.cause == "Cache"
    await eventually(lambda: gh.issues.get(1) and gh.issues[1]["state"] == "closed", 20)
    assert len(gh.issues) == 1


@pytest.mark.parametrize("app_clock", ["fake"], indirect=True)
async def test_nudges_in_the_thread_and_report_reminders_by_dm(
    world: World, app: Application, app_clock: FakeClock
) -> None:
    await run(world, CORE_USER, "open", severity=1, title="Payouts halted")
    (incident,) = await app.services.incidents.find(open_only=True)
    await run(world, CORE_USER, "assign", id=incident.ref, member=str(NODE_USER))
    thread = incident.thread_id or (await app.services.incidents.get(incident.ref)).thread_id
    assert thread is not None

    def nudges() -> list[dict]:
        return [
            m
            for m in channel_messages(world, thread)
            if "has had no update for 30 minutes" in (m.get("content") or "")
        ]

    app_clock.advance(minutes=31)
    await app.jobs.fire_reminders()
    (nudge,) = await eventually(nudges)
    assert f"<@{NODE_USER}>" in nudge["content"], "the commander is mentioned"
    await app.jobs.fire_reminders()  # once only
    await quiesce(app)
    assert len(nudges()) == 1

    await run(world, NODE_USER, "resolve", id=incident.ref, cause="Stuck job", resolution="Restart")
    app_clock.advance(hours=25)
    await app.jobs.fire_reminders()
    dm = await eventually(lambda: emu_dms(world, NODE_USER))
    assert "is due" in dm[0]["content"] and incident.ref in dm[0]["content"]
    app_clock.advance(hours=24)
    await app.jobs.fire_reminders()
    await eventually(lambda: len(emu_dms(world, NODE_USER)) == 2)
    assert "overdue" in emu_dms(world, NODE_USER)[1]["content"]


def emu_dms(world: World, user_id: int) -> list[dict]:
    return world.emulator.dm_messages(user_id)


def typing_id(command: str, typed: str) -> list[dict]:
    """`/incident <command> id:<typed>` as Discord sends it while the member types."""
    return [
        {
            "name": command,
            "type": 1,
            "options": [{"name": "id", "type": 3, "value": typed, "focused": True}],
        }
    ]


async def audit_and_strikes(app: Application) -> tuple[int, int]:
    async with app.database.sessions() as session:
        audits = await session.scalar(select(func.count()).select_from(AuditEntry))
        strikes = await session.scalar(select(func.count()).select_from(StrikeEntry))
    return int(audits or 0), int(strikes or 0)


async def test_autocomplete_answers_only_those_the_command_would(
    world: World, app: Application
) -> None:
    """Security item 5: incident ids and titles were suggested to anyone. Every autocomplete
    now goes through its command's permission and lockout check, and a refusal is an empty
    list: no strike, no audit row, however many keystrokes."""
    emu = world.emulator
    await run(world, CORE_USER, "open", severity=2, title="Hot wallet key exposed")
    (incident,) = await app.services.incidents.find(open_only=True)

    allowed = await emu.autocomplete("incident", NODE_USER, options=typing_id("update", ""))
    assert allowed.choices == [
        {"name": f"{incident.ref} Hot wallet key exposed", "value": incident.ref}
    ]

    before = await audit_and_strikes(app)
    for typed in ("", "I", "IN", "INC", "hot"):
        for command in ("update", "show", "resolve"):
            refused = await emu.autocomplete(
                "incident", MINER_USER, options=typing_id(command, typed)
            )
            assert refused.choices == []
    assert await audit_and_strikes(app) == before

    # Locked out (three denied attempts): Node Ops' own commands suggest nothing either.
    for _ in range(3):
        await emu.invoke_command(
            "access",
            NODE_USER,
            options=[
                {
                    "name": "grant",
                    "type": 1,
                    "options": [
                        {"name": "member", "type": 6, "value": str(MINER_USER)},
                        {"name": "role", "type": 3, "value": "observer"},
                        {"name": "reason", "type": 3, "value": "try"},
                    ],
                }
            ],
        )
    locked = await audit_and_strikes(app)
    for command in ("update", "show"):
        refused = await emu.autocomplete("incident", NODE_USER, options=typing_id(command, "INC"))
        assert refused.choices == []
    assert await audit_and_strikes(app) == locked
    # Core Ops still get their suggestions.
    core = await emu.autocomplete("incident", CORE_USER, options=typing_id("show", "hot"))
    assert core.choices and core.choices[0]["value"] == incident.ref


def card_when(world: World, ref: str, ok: Callable[[dict], bool]) -> dict | None:
    card = card_of(world, ref)
    return card if card is not None and ok(card) else None


def buttons(message: dict) -> dict[str, dict]:
    return {
        c["custom_id"].split(":")[2]: c for row in message["components"] for c in row["components"]
    }


async def answer(result: Any) -> dict:
    if result.message is not None and not result.message["flags"] & 128:
        return dict(result.message)
    return dict((await result.wait_for_followups(1))[0])


async def test_the_incident_is_worked_from_its_card(
    world: World, app: Application, gh: GitHubAPI
) -> None:
    """Issue 16 §2: Update (form), Take command, Resolve (form) and Report on the card; nobody
    types an incident id; each calls the slash command's use case, one audit row each."""
    emu = world.emulator
    operations = world.channels["operations"]
    await run(world, CORE_USER, "open", severity=2, title="Nodes offline")
    (incident,) = await app.services.incidents.find(open_only=True)
    ref, rid = incident.ref, incident.id
    card = await eventually(lambda: card_of(world, ref))
    assert list(buttons(card)) == ["update", "command", "resolve", "report"]
    assert buttons(card)["command"]["label"] == "Take command"
    card_url = f"https://discord.com/channels/{GUILD_ID}/{operations}/{card['id']}"
    before = await audit_counts(app)

    # Take command: the presser commands it; one private line; the card follows.
    took = await answer(
        await emu.click_button(f"hh:incident:command:{rid}", NODE_USER, message=card)
    )
    assert took["flags"] & 64 and not took["embeds"]
    assert took["content"] == f"You command **{ref}** now. → [card]({card_url})"
    card = await eventually(
        lambda: card_when(world, ref, lambda c: field(c, "Commander") == f"<@{NODE_USER}>")
    )
    assert buttons(card)["command"]["label"] == "Take over command"

    # Update: a form (text, status); the submit posts it, the card shows it.
    pressed = await emu.click_button(f"hh:incident:update:{rid}", NODE_USER, message=card)
    assert pressed.type == 9 and pressed.modal is not None
    form = pressed.modal
    assert form["title"] == f"Update {ref}"
    inputs = [c["custom_id"] for row in form["components"] for c in row["components"]]
    assert inputs == ["text", "status"]
    submitted = await answer(
        await emu.submit_modal(
            form["custom_id"],
            NODE_USER,
            {"text": "Two nodes back, one to go", "status": "identified"},
            channel_id=operations,
        )
    )
    assert submitted["flags"] & 64 and not submitted["embeds"]
    assert submitted["content"] == f"Update posted to **{ref}**. → [card]({card_url})"
    card = await eventually(
        lambda: card_when(
            world,
            ref,
            lambda c: (
                "Two nodes back" in field(c, "Latest update")
                and c["embeds"][0]["title"].startswith(f"🎯 IDENTIFIED · {ref}")
            ),
        )
    )
    assert "node-bob" in field(card, "Latest update")

    # A bad status in the form: a clear private error, nothing changes.
    pressed = await emu.click_button(f"hh:incident:update:{rid}", NODE_USER, message=card)
    assert pressed.modal is not None
    refused = await answer(
        await emu.submit_modal(
            pressed.modal["custom_id"],
            NODE_USER,
            {"text": "whatever", "status": "done"},
            channel_id=operations,
        )
    )
    assert refused["flags"] & 64 and "Status must be" in refused["content"]

    # Resolve: a form (cause, resolution); the card turns RESOLVED and keeps only Report.
    pressed = await emu.click_button(f"hh:incident:resolve:{rid}", NODE_USER, message=card)
    assert pressed.modal is not None and pressed.modal["title"] == f"Resolve {ref}"
    done = await answer(
        await emu.submit_modal(
            pressed.modal["custom_id"],
            NODE_USER,
            {"cause": "Switch failure", "resolution": "Replaced the switch"},
            channel_id=operations,
        )
    )
    assert done["content"].startswith(f"**{ref}** is resolved.") and "\n" not in done["content"]
    card = await eventually(
        lambda: card_when(world, ref, lambda c: "RESOLVED" in c["embeds"][0]["title"])
    )
    assert list(buttons(card)) == ["report"]
    assert field(card, "Cause") == "Switch failure"

    # Report: written from the timeline, attached in the thread, the card's button says so.
    pressed = await emu.click_button(f"hh:incident:report:{rid}", NODE_USER, message=card)
    edited = await pressed.wait_for_edit(1)
    assert [c["label"] for row in edited["components"] for c in row["components"]] == [
        "Report ✔ (update it)"
    ]
    thread = (await app.services.incidents.get(ref)).thread_id or 0
    await eventually(lambda: any(m.get("attachments") for m in channel_messages(world, thread)))

    # One use case, one audit row: the presses that open a form write none.
    await app.bot.drain(10)
    added = await audit_counts(app) - before
    assert added == Counter(
        {
            "incident assign": 1,
            "incident update": 1,
            "incident:update": 1,  # the refused form: one row, under the form's action
            "incident resolve": 1,
            "incident report": 1,
        }
    ), added
    stored = await app.services.incidents.get(ref)
    assert stored.commander_id == NODE_USER and stored.cause == "Switch failure"


async def audit_counts(app: Application) -> Counter[str]:
    async with app.database.sessions() as session:
        rows = await session.execute(select(AuditEntry.action))
        return Counter(action for (action,) in rows.all())
