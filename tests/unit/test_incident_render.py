"""Incident embeds and notices stay within Discord's limits and ping nobody they should not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import discord

from bot.discord.sending import EMBED_TOTAL_MAX
from bot.domain.incidents import (
    ChecklistItem,
    Incident,
    IncidentPolicy,
    IncidentStatus,
    Severity,
    SeverityStats,
    Tick,
    TimelineEntry,
    TimelineKind,
)
from bot.domain.outbox import NoticeTemplate
from bot.domain.roles import OpsRole
from cogs.incidents import render
from cogs.incidents.views import checklist_view

AT = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def incident(**changes: object) -> Incident:
    base = Incident(
        id=7,
        ref="INC-2026-0007",
        severity=Severity.SEV1,
        status=IncidentStatus.INVESTIGATING,
        title="Payouts halted",
        summary="Payout job stuck",
        nodes="node-1",
        reporter_id=1,
        reporter_name="core-alice",
        opened_at=AT,
        last_update_at=AT,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def within_limits(embed: discord.Embed) -> None:
    assert len(embed) <= EMBED_TOTAL_MAX
    assert len(embed.title or "") <= 256
    assert len(embed.description or "") <= 4096
    assert len(embed.fields) <= 25
    for f in embed.fields:
        assert len(f.name or "") <= 256 and len(f.value or "") <= 1024


def test_card_of_a_huge_incident_fits() -> None:
    ticks = {item: Tick(1, "x" * 100, AT) for item in ChecklistItem}
    huge = incident(
        title="t" * 200,
        summary="s" * 1500,
        nodes="n" * 300,
        checklist=ticks,
        status=IncidentStatus.RESOLVED,
        cause="c" * 1500,
        resolution="r" * 1500,
        resolved_at=AT + timedelta(hours=1),
        report_due_at=AT + timedelta(hours=49),
        github_error="e" * 300,
        thread_id=9,
        commander_id=2,
    )
    embed = render.card(huge, github_configured=True)
    within_limits(embed)
    timeline = [TimelineEntry(AT, TimelineKind.UPDATE, "y" * 100, "z" * 2000)] * 40
    within_limits(render.detail(huge, timeline, github_configured=True))


def test_card_shows_checklist_github_state_and_report_deadline() -> None:
    fresh = incident()
    assert "not configured" in render.github_text(fresh, configured=False)
    assert "being created" in render.github_text(fresh, configured=True)
    linked = incident(github_number=3, github_url="https://github.invalid/i/3")
    assert render.github_text(linked, configured=True) == "[Issue #3](https://github.invalid/i/3)"
    ticked = incident(checklist={ChecklistItem.ISOLATE: Tick(2, "node-bob", AT)})
    text = render.checklist_text(ticked)
    assert "✅ Isolate affected systems: node-bob" in text and "⬜ Rotate credentials" in text
    resolved = incident(
        status=IncidentStatus.RESOLVED, resolved_at=AT, report_due_at=AT + timedelta(hours=48)
    )
    fields = {f.name: f.value or "" for f in render.card(resolved, github_configured=False).fields}
    assert f"<t:{int((AT + timedelta(hours=48)).timestamp())}:f>" in fields["Report"]


def test_only_sev1_pings_core_ops() -> None:
    policy = IncidentPolicy()
    assert policy.page_roles(Severity.SEV1) == (OpsRole.CORE_OPS,)
    assert policy.page_roles(Severity.SEV2) == policy.page_roles(Severity.SEV3) == ()
    paged = render.card_content(incident(), [55])
    assert paged.startswith("<@&55> 🔎 **INVESTIGATING** · INC-2026-0007 · Sev 1 · Payouts halted")
    quiet = render.card_content(incident(severity=Severity.SEV2), [])
    assert quiet.startswith("🔎 **INVESTIGATING** · INC-2026-0007 · Sev 2"), "nobody paged"
    assert "<@&" not in quiet


def test_a_resolved_card_says_resolved_in_its_title_text_line_and_colour() -> None:
    """Issue 16 §1: the card's state, not just its colour, follows the incident."""
    open_card = render.card(incident(), github_configured=False)
    assert (open_card.title or "").startswith("🔎 INVESTIGATING · INC-2026-0007 · Sev 1")
    assert open_card.colour == render.COLOURS[Severity.SEV1]
    done = incident(
        status=IncidentStatus.RESOLVED,
        resolved_at=AT + timedelta(hours=2),
        cause="a stuck job",
        resolution="restarted",
    )
    resolved = render.card(done, github_configured=False)
    assert (resolved.title or "").startswith("✅ RESOLVED · INC-2026-0007 · Sev 1 · Payouts halted")
    assert resolved.colour == render.RESOLVED_COLOUR
    line = render.card_content(done, [55]).splitlines()[0]
    assert line.startswith("✅ **RESOLVED** · INC-2026-0007"), "the preview starts with the state"
    assert "<@&55>" not in line, "a resolved card's text line pages nobody"
    assert f"<t:{int((AT + timedelta(hours=2)).timestamp())}:R>" in line
    within_limits(resolved)


def test_thread_name_and_buttons_fit() -> None:
    long = incident(title="t" * 200)
    assert len(render.thread_name(long)) <= 100
    view = checklist_view(incident(checklist={ChecklistItem.ISOLATE: Tick(1, "n" * 200, AT)}))
    buttons: list[Any] = [getattr(c, "item", c) for c in view.children]
    assert len(buttons) == 5 and all(len(b.label or "") <= 80 for b in buttons)
    assert buttons[0].disabled and not buttons[1].disabled
    assert buttons[0].custom_id == "hh:incident:isolate:7"


def test_listing_and_stats_fit() -> None:
    many = [incident(id=i, ref=f"INC-2026-{i:04d}", title="t" * 200) for i in range(40)]
    within_limits(render.listing(many, title="Open incidents"))
    assert render.listing([], title="Open").description == "No incidents."
    rows = [SeverityStats(s, 3, 2, timedelta(minutes=5), timedelta(hours=2)) for s in Severity]
    embed = render.stats(rows)
    within_limits(embed)
    assert "Time to resolve: 2 h 00 min" in (embed.fields[0].value or "")


def test_notices_fit_and_carry_no_mentions() -> None:
    data = {
        "ref": "INC-2026-0001",
        "kind": "update",
        "actor": "a" * 500,
        "text": "@everyone " + "x" * 5000,
        "at": AT.isoformat(),
        "minutes": 30,
        "severity": 1,
        "last_update_at": AT.isoformat(),
        "title": "t" * 500,
        "due_at": AT.isoformat(),
        "resolved": False,
    }
    for template in render.TEMPLATES.values():
        rendered = template(data)
        assert rendered.content is not None and len(rendered.content) <= 2000


def test_every_command_taking_an_id_autocompletes_it() -> None:
    from discord import app_commands

    from cogs.incidents import IncidentCog

    with_id = [
        c
        for c in vars(IncidentCog).values()
        if isinstance(c, app_commands.Command) and "id" in c._params
    ]
    assert {c.name for c in with_id} == {
        "update",
        "severity",
        "assign",
        "resolve",
        "report",
        "miners",
        "show",
        "link",
    }
    assert all(c._params["id"].autocomplete is not None for c in with_id)


def test_no_report_link_when_github_gave_none() -> None:
    """Issue 16 §2: a card showed "[report](None)" when GitHub gave no link."""
    for missing in (None, "None", ""):
        shown = render.github_text(
            incident(
                github_number=3, github_url="https://github.com/o/r/issues/3", report_url=missing
            ),
            configured=True,
        )
        assert shown == "[Issue #3](https://github.com/o/r/issues/3)"
        assert "None" not in shown
    linked = render.github_text(
        incident(
            github_number=3,
            github_url="https://github.com/o/r/issues/3",
            report_url="https://github.com/o/r/blob/main/incidents/INC-2026-0007.md",
        ),
        configured=True,
    )
    assert "[report](https://github.com/o/r/blob/main/incidents/INC-2026-0007.md)" in linked


def test_thread_posts_do_not_repeat_their_heading() -> None:
    """Issue 16 §2: "Checklist: Checklist:" and "Resolved: Resolved." in the thread."""
    thread = render.TEMPLATES[NoticeTemplate.INCIDENT_THREAD]
    ticked = thread(
        {
            "kind": "checklist",
            "actor": "bob",
            "at": AT.isoformat(),
            "text": "Isolate affected systems ✔",
        }
    ).content
    assert ticked is not None
    assert ticked.startswith("**Checklist** (bob, ") and ticked.endswith(
        "): Isolate affected systems ✔"
    )
    assert ticked.count("Checklist") == 1


def test_a_confirmation_is_one_line_with_a_link_to_the_card_or_thread() -> None:
    """Issue 16 §2: never a second copy of the card, privately."""
    on_card = incident(card_channel_id=20, card_message_id=30, thread_id=40)
    assert (
        render.confirmation("Update posted to\n**INC-2026-0007**.", on_card, 10)
        == "Update posted to **INC-2026-0007**. → [card](https://discord.com/channels/10/20/30)"
    )
    assert render.confirmation("Done.", incident(thread_id=40), 10) == "Done. → <#40>"
    assert render.confirmation("Done.", incident(), None) == "Done."
    assert len(render.confirmation("x" * 3000, on_card, 10)) <= 2000


def test_card_shows_latest_update_next_update_due_and_commander() -> None:
    """Issue 16 §2: the incident is worked from its card."""
    policy = IncidentPolicy()
    fresh = incident()
    embed = render.card(
        fresh, github_configured=False, next_update_due=policy.next_update_due(fresh)
    )
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Commander"] == "not assigned"
    assert "none yet" in str(fields["Latest update"])
    due = AT + timedelta(minutes=30)
    assert (
        fields["Next update due"] == f"<t:{int(due.timestamp())}:t> (<t:{int(due.timestamp())}:R>)"
    )

    later = AT + timedelta(minutes=20)
    worked = incident(
        commander_id=42,
        commander_name="node-bob",
        severity=Severity.SEV2,
        last_update_at=later,
        latest_update=TimelineEntry(
            at=later, kind=TimelineKind.UPDATE, actor_name="node-bob", text="Pool restarted"
        ),
    )
    embed = render.card(
        worked, github_configured=False, next_update_due=policy.next_update_due(worked)
    )
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Commander"] == "<@42>"
    assert fields["Latest update"] == f"Pool restarted\n— node-bob, <t:{int(later.timestamp())}:R>"
    due = later + timedelta(minutes=60)
    assert str(int(due.timestamp())) in str(fields["Next update due"])
    within_limits(embed)

    # Sev 3 is never nudged, and a resolved incident has no next update.
    assert policy.next_update_due(incident(severity=Severity.SEV3)) is None
    assert policy.next_update_due(incident(status=IncidentStatus.RESOLVED)) is None
    done = render.card(incident(status=IncidentStatus.RESOLVED), github_configured=False)
    assert "Next update due" not in {f.name for f in done.fields}
