"""Incident rules over a real database (SQLite, PostgreSQL when configured) and a fake clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.app.services import Services
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.incidents import (
    ChecklistItem,
    IncidentStatus,
    Severity,
    TimelineKind,
    miners_safe,
)
from bot.domain.outbox import OutboxItem, OutboxKind
from bot.domain.roles import Actor, OpsRole
from bot.services.incidents import github_text, postmortem
from bot.storage.database import Database
from tests.services.conftest import CORE_A, NODE, Delivered, audit_actions

OBSERVER = Actor(id=5, name="observer", roles=frozenset({OpsRole.OBSERVER}))


@pytest.fixture
def cards(services: Services) -> list[int]:
    refreshed: list[int] = []

    async def card(item: OutboxItem) -> dict:
        refreshed.append(int(item.payload["incident_id"]))
        return {}

    services.outbox.register(OutboxKind.INCIDENT_CARD, card)
    return refreshed


async def open_one(services: Services, severity: int = 1, title: str = "Payouts halted"):
    return await services.incidents.open(
        CORE_A, severity=severity, title=title, summary="pool stopped paying"
    )


async def test_ids_are_readable_sequential_and_per_year(services: Services, clock) -> None:
    year = clock.now().year
    first = await open_one(services)
    second = await open_one(services, 3, "Dashboard slow")
    assert (first.ref, second.ref) == (f"INC-{year}-0001", f"INC-{year}-0002")
    clock.current = clock.current.replace(year=year + 1, month=1, day=1)
    assert (await open_one(services)).ref == f"INC-{year + 1}-0001"


async def test_ids_are_unique_when_opened_at_once(services: Services, clock) -> None:
    incidents = await asyncio.gather(*(open_one(services, 3, f"glitch {n}") for n in range(6)))
    year = clock.now().year
    assert sorted(i.ref for i in incidents) == [f"INC-{year}-{n:04d}" for n in range(1, 7)]


async def test_open_records_timeline_audit_and_checklist_is_empty(
    services: Services, database: Database, cards
) -> None:
    incident = await open_one(services)
    assert incident.status is IncidentStatus.INVESTIGATING
    assert incident.severity is Severity.SEV1
    assert incident.checklist == {}
    timeline = await services.incidents.timeline(incident.id)
    assert [e.kind for e in timeline] == [TimelineKind.OPENED]
    assert ("incident open", "ok") in await audit_actions(database)


async def test_update_severity_assign_resolve_flow(
    services: Services, clock, delivered: Delivered, cards
) -> None:
    incident = await open_one(services, 2)
    clock.advance(minutes=5)
    updated = await services.incidents.update(
        NODE, incident.ref, "Looking at the pool", "identified"
    )
    assert updated.status is IncidentStatus.IDENTIFIED
    assert updated.acknowledged_at == clock.now()
    clock.advance(minutes=5)
    raised = await services.incidents.set_severity(NODE, incident.ref, 1)
    assert raised.severity is Severity.SEV1
    assigned = await services.incidents.assign(CORE_A, incident.ref, NODE.id or 0, NODE.name)
    assert assigned.commander_name == NODE.name
    clock.advance(minutes=20)
    resolved = await services.incidents.resolve(NODE, incident.ref, "disk full", "cleaned up")
    assert resolved.status is IncidentStatus.RESOLVED
    assert resolved.report_due_at == clock.now() + timedelta(hours=48)
    kinds = [e.kind for e in await services.incidents.timeline(incident.id)]
    assert kinds == [
        TimelineKind.OPENED,
        TimelineKind.UPDATE,
        TimelineKind.SEVERITY,
        TimelineKind.ASSIGNED,
        TimelineKind.RESOLVED,
    ]
    await services.outbox.drain_all()
    thread_posts = [n for n in delivered.notices if n["template"] == "incident.thread"]
    assert [n["data"]["kind"] for n in thread_posts] == [
        "update",
        "severity",
        "assigned",
        "resolved",
    ]
    assert cards  # the card is refreshed after changes


async def test_bad_input_changes_nothing(services: Services, database: Database, cards) -> None:
    with pytest.raises(InvalidInput, match="Severity 4"):
        await services.incidents.open(CORE_A, severity=4, title="nope")
    with pytest.raises(InvalidInput, match="at most 200"):
        await services.incidents.open(CORE_A, severity=1, title="x" * 201)
    with pytest.raises(InvalidInput, match="at least 3"):
        await services.incidents.open(CORE_A, severity=1, title="  ")
    assert await services.incidents.find(open_only=False) == []
    with pytest.raises(NotFound, match="INC-2026-0042"):
        await services.incidents.update(CORE_A, "INC-2026-0042", "hello")
    with pytest.raises(NotFound, match="not an incident id"):
        await services.incidents.get("42")
    incident = await open_one(services)
    with pytest.raises(InvalidInput, match="Status must be"):
        await services.incidents.update(CORE_A, incident.ref, "text", "resolved")
    with pytest.raises(InvalidInput, match="Severity 0"):
        await services.incidents.set_severity(CORE_A, incident.ref, 0)
    await services.incidents.resolve(CORE_A, incident.ref, "cause", "fixed it")
    before = await services.incidents.timeline(incident.id)
    with pytest.raises(InvalidInput, match="already resolved"):
        await services.incidents.resolve(CORE_A, incident.ref, "again", "again")
    with pytest.raises(InvalidInput, match="already resolved"):
        await services.incidents.resolve(CORE_A, incident.ref, "x", "y")
    with pytest.raises(InvalidInput, match="resolved"):
        await services.incidents.update(CORE_A, incident.ref, "late update")
    assert await services.incidents.timeline(incident.id) == before
    again = await services.incidents.get(incident.ref)
    assert again.cause == "cause"


async def test_checklist_records_who_and_when_once(services: Services, clock, cards) -> None:
    incident = await open_one(services)
    clock.advance(minutes=3)
    ticked = await services.incidents.tick(NODE, incident.id, ChecklistItem.ISOLATE)
    tick = ticked.checklist[ChecklistItem.ISOLATE]
    assert (tick.by_name, tick.at) == (NODE.name, clock.now())
    with pytest.raises(InvalidInput, match="already ticked by node-op"):
        await services.incidents.tick(CORE_A, incident.id, ChecklistItem.ISOLATE)
    stored = await services.incidents.get(incident.ref)
    assert set(stored.checklist) == {ChecklistItem.ISOLATE}


async def test_nudge_after_30_minutes_on_sev1_once_and_rescheduled_by_updates(
    services: Services, clock, delivered: Delivered, cards
) -> None:
    incident = await open_one(services, 1)
    clock.advance(minutes=29)
    assert await services.reminders.fire_due() == 0
    clock.advance(minutes=2)
    assert await services.reminders.fire_due() == 1
    assert await services.reminders.fire_due() == 0
    await services.outbox.drain_all()
    nudges = [n for n in delivered.notices if n["template"] == "incident.nudge"]
    assert len(nudges) == 1 and nudges[0]["data"]["ref"] == incident.ref
    # An update restarts the clock: the next nudge comes 30 min after it, not before.
    await services.incidents.update(CORE_A, incident.ref, "still on it")
    clock.advance(minutes=20)
    assert await services.reminders.fire_due() == 0
    clock.advance(minutes=11)
    assert await services.reminders.fire_due() == 1


async def test_sev2_nudges_after_an_hour_sev3_never_resolved_never(
    services: Services, clock, cards
) -> None:
    await open_one(services, 2)
    sev3 = await open_one(services, 3, "Telemetry late")
    del sev3
    clock.advance(minutes=45)
    assert await services.reminders.fire_due() == 0
    clock.advance(minutes=20)
    assert await services.reminders.fire_due() == 1
    clock.advance(hours=10)
    assert await services.reminders.fire_due() == 0
    sev1 = await open_one(services, 1)
    await services.incidents.resolve(CORE_A, sev1.ref, "cause", "fix")
    clock.advance(minutes=31)
    assert await services.reminders.fire_due() == 0


async def test_report_reminders_at_24h_left_and_overdue_unless_written(
    services: Services, clock, delivered: Delivered, cards
) -> None:
    incident = await open_one(services, 1)
    await services.incidents.assign(CORE_A, incident.ref, NODE.id or 0, NODE.name)
    await services.incidents.resolve(CORE_A, incident.ref, "cause", "fix")
    clock.advance(hours=23)
    assert await services.reminders.fire_due() == 0
    clock.advance(hours=2)
    assert await services.reminders.fire_due() == 1
    clock.advance(hours=24)
    assert await services.reminders.fire_due() == 1
    await services.outbox.drain_all()
    assert [(d["user_id"], d["template"]) for d in delivered.directs] == [
        (NODE.id, "incident.report_due"),
        (NODE.id, "incident.report_overdue"),
    ]
    # Written in time: no reminder at all.
    other = await open_one(services, 2)
    await services.incidents.resolve(CORE_A, other.ref, "cause", "fix")
    report = await services.incidents.report(CORE_A, other.ref)
    assert ChecklistItem.REPORT in report.incident.checklist
    clock.advance(hours=49)
    assert await services.reminders.fire_due() == 0


async def test_report_is_a_markdown_postmortem_from_the_timeline(
    services: Services, clock, cards
) -> None:
    incident = await open_one(services, 1)
    ref = f"INC-{clock.now().year}-0001"
    updated_at = clock.advance(minutes=4)
    await services.incidents.update(NODE, incident.ref, "Found the stuck payout job")
    await services.incidents.tick(NODE, incident.id, ChecklistItem.SNAPSHOT)
    clock.advance(minutes=30)
    await services.incidents.resolve(NODE, incident.ref, "Stuck job", "Restarted payouts")
    report = await services.incidents.report(NODE, incident.ref)
    text = report.markdown
    assert report.path == f"incidents/{ref}.md"
    for heading in ("## Summary", "## Impact", "## Timeline (UTC)", "## Cause", "## Resolution"):
        assert heading in text
    assert "Time to acknowledge:** 4 min" in text
    assert "Time to resolve:** 34 min" in text
    assert f"{updated_at:%Y-%m-%d %H:%M}: update: Found the stuck payout job (node-op)" in text
    assert "- [x] Snapshot logs and state (by node-op" in text
    assert "- [x] Publish the report" in text
    timeline = await services.incidents.timeline(incident.id)
    assert postmortem(report.incident, timeline, now=clock.now()).startswith(f"# {ref}")


async def test_miners_notice_never_carries_hosts_addresses_or_balances(
    services: Services, delivered: Delivered, cards
) -> None:
    incident = await services.incidents.open(
        CORE_A,
        severity=1,
        title="Payouts halted on node-07.pool.hyperhash.net (10.2.3.4)",
        summary=(
            "bitcoind at 192.168.1.20:8332 stuck, "
            "hot wallet bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh 3.2 BTC"
        ),
        nodes="node-07, 10.2.3.4",
    )
    await services.incidents.resolve(CORE_A, incident.ref, "database", "fixed on 10.2.3.4")
    await services.outbox.drain_all()
    miners = [n for n in delivered.notices if n["channel"] == "miners"]
    assert len(miners) == 2
    for notice in miners:
        text = notice["data"]["text"]
        for secret in ("10.2.3.4", "192.168", "hyperhash.net", "node-07", "bc1q", "BTC", "8332"):
            assert secret not in text
        assert incident.ref in text
    # Sev 3: miners are not told.
    await services.incidents.open(CORE_A, severity=3, title="Chart glitch")
    await services.outbox.drain_all()
    assert len([n for n in delivered.notices if n["channel"] == "miners"]) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain words", "plain words"),
        ("a <!-- hh-opsbot:INC-2026-0002 --> b", "a  b"),
        ("multi <!-- line\ncomment --> end", "multi  end"),
        ("<!<!-- x -->-- assembled -->!", " assembled -->!"),
        ("unclosed <!-- hides the rest", "unclosed  hides the rest"),
        ("<!--> <!---> empty", " empty"),
        ("@alice and @hyper-hash/core, ops@example.org", None),
    ],
)
def test_github_text_strips_comments_and_neutralises_mentions(
    text: str, expected: str | None
) -> None:
    cleaned = github_text(text)
    assert "<!--" not in cleaned
    assert "@" not in cleaned.replace("@\u200b", "")
    if expected is not None:
        assert cleaned == expected


def test_miners_safe_keeps_plain_words() -> None:
    assert miners_safe("Payouts delayed") == "Payouts delayed"
    assert "1.2.3.4" not in miners_safe("down 1.2.3.4 now")
    assert "@everyone" not in miners_safe("@everyone down")


async def test_miners_notice_only_commander_or_core_may_change(
    services: Services, delivered: Delivered, cards
) -> None:
    incident = await open_one(services, 2)
    with pytest.raises(InvalidInput, match="commander"):
        await services.incidents.miners(NODE, incident.ref, enabled=False)
    await services.incidents.assign(CORE_A, incident.ref, NODE.id or 0, NODE.name)
    await services.incidents.miners(NODE, incident.ref, enabled=False)
    await services.incidents.resolve(NODE, incident.ref, "cause", "fix")
    await services.outbox.drain_all()
    miners = [n for n in delivered.notices if n["channel"] == "miners"]
    assert len(miners) == 1  # the opening notice went out; the resolve notice was turned off


async def test_pinned_messages_join_the_timeline_once(services: Services, cards) -> None:
    incident = await open_one(services)
    await services.incidents.attach_discord(incident.id, channel_id=1, message_id=2, thread_id=300)
    args: dict[str, Any] = {
        "thread_id": 300,
        "message_id": 77,
        "author_id": 5,
        "author_name": "bob",
    }
    assert await services.incidents.pinned(**args, text="root cause is the disk")
    assert not await services.incidents.pinned(**args, text="root cause is the disk")
    assert not await services.incidents.pinned(**{**args, "thread_id": 999}, text="x")
    kinds = [e.kind for e in await services.incidents.timeline(incident.id)]
    assert kinds.count(TimelineKind.PINNED) == 1


async def test_stats_per_severity(services: Services, clock, cards) -> None:
    first = await open_one(services, 1)
    clock.advance(minutes=10)
    await services.incidents.update(CORE_A, first.ref, "on it")
    clock.advance(minutes=50)
    await services.incidents.resolve(CORE_A, first.ref, "cause", "fix")
    await open_one(services, 3, "Chart glitch")
    stats = {s.severity: s for s in await services.incidents.stats()}
    assert stats[Severity.SEV1].count == 1
    assert stats[Severity.SEV1].mean_acknowledge == timedelta(minutes=10)
    assert stats[Severity.SEV1].mean_resolve == timedelta(minutes=60)
    assert stats[Severity.SEV3].resolved == 0
    assert stats[Severity.SEV2].mean_resolve is None


async def test_observer_sees_time_to_acknowledge_and_resolve(
    services: Services, clock, cards
) -> None:
    seen: list[tuple[str, int, float]] = []

    class Observer:
        def acknowledged(self, severity: Severity, seconds: float) -> None:
            seen.append(("ack", int(severity), seconds))

        def resolved(self, severity: Severity, seconds: float) -> None:
            seen.append(("resolve", int(severity), seconds))

    services.incidents.observer = Observer()
    incident = await open_one(services, 2)
    clock.advance(minutes=2)
    await services.incidents.assign(CORE_A, incident.ref, NODE.id or 0, NODE.name)
    clock.advance(minutes=3)
    await services.incidents.update(CORE_A, incident.ref, "second update")
    await services.incidents.resolve(CORE_A, incident.ref, "cause", "fix")
    assert seen == [("ack", 2, 120.0), ("resolve", 2, 300.0)]


async def test_autocomplete_offers_latest_ids(services: Services, cards, clock) -> None:
    for n in range(3):
        await open_one(services, 3, f"glitch {n}")
    year = clock.now().year
    assert [ref for ref, _ in await services.incidents.autocomplete("")] == [
        f"INC-{year}-0003",
        f"INC-{year}-0002",
        f"INC-{year}-0001",
    ]
    assert await services.incidents.autocomplete(f"inc-{year}-0002") == [
        (f"INC-{year}-0002", "glitch 1")
    ]
    assert len(await services.incidents.autocomplete("glitch")) == 3


async def test_public_notice_for_status_follows_open_sev1_and_sev2(
    services: Services, cards
) -> None:
    """/status shows the notice of the newest open incident miners are told about."""
    assert await services.incidents.public_notice() is None
    minor = await open_one(services, 3, "Dashboard slow")
    assert await services.incidents.public_notice() is None, "Sev 3 is not for miners"
    major = await open_one(services, 1, "Payouts halted on 10.0.0.7")
    notice = await services.incidents.public_notice()
    assert notice is not None and "We are working on an incident" in notice
    assert "10.0.0.7" not in notice and major.ref in notice
    await services.incidents.resolve(CORE_A, major.ref, "disk full", "cleaned up")
    assert await services.incidents.public_notice() is None
    del minor


async def test_timeline_texts_do_not_repeat_their_kind(services: Services, cards) -> None:
    """Issue 16 §2: the thread read "Checklist: Checklist: …" and "Resolved: Resolved. …", and
    the report "checklist: Checklist: …" (its line is `<kind>: <text>`)."""
    incident = await open_one(services)
    await services.incidents.tick(NODE, incident.id, ChecklistItem.ISOLATE)
    await services.incidents.resolve(NODE, incident.ref, "Stuck job", "Restarted it")
    texts = {e.kind: e.text for e in await services.incidents.timeline(incident.id)}
    assert texts[TimelineKind.CHECKLIST] == "Isolate affected systems ✔"
    assert texts[TimelineKind.RESOLVED] == "Cause: Stuck job. Resolution: Restarted it"
    report = await services.incidents.report(NODE, incident.ref)
    assert "checklist: Checklist" not in report.markdown
    assert "resolved: Resolved." not in report.markdown
    assert "resolved: Cause: Stuck job. Resolution: Restarted it" in report.markdown


async def test_the_latest_update_is_loaded_with_the_incident(
    services: Services, clock, cards
) -> None:
    incident = await open_one(services)
    assert (await services.incidents.get(incident.ref)).latest_update is None
    await services.incidents.update(NODE, incident.ref, "Looking at the pool")
    clock.advance(minutes=3)
    await services.incidents.update(NODE, incident.ref, "Pool restarted", "monitoring")
    await services.incidents.tick(NODE, incident.id, ChecklistItem.ISOLATE)  # not an update
    latest = (await services.incidents.get_by_id(incident.id)).latest_update
    assert latest is not None
    assert latest.text == "[monitoring] Pool restarted" and latest.actor_name == NODE.name
    assert latest.at == clock.now()
