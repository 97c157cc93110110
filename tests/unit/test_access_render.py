"""Access notices and replies stay within Discord's limits whatever the data (long names...)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.discord.sending import Rendered
from bot.domain.access import Grant, GrantStatus
from bot.domain.audit import AuditRecord
from bot.domain.roles import OpsRole
from cogs.access import render
from tests.unit.test_render import within_limits

LONG = "@everyone " + "x" * 3000
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def grant(**kwargs) -> Grant:
    base = dict(
        id=7,
        member_id=10,
        member_name=LONG,
        role=OpsRole.CORE_OPS,
        status=GrantStatus.ACTIVE,
        reason=LONG,
        granted_by_id=1,
        granted_by_name=LONG,
        requested_at=NOW,
        days=90,
        granted_at=NOW,
        expires_at=NOW + timedelta(days=90),
    )
    base.update(kwargs)
    return Grant(**base)  # type: ignore[arg-type]


DATA = {
    "grant_id": 7,
    "member_id": 10,
    "member_name": LONG,
    "role": "core_ops",
    "reason": LONG,
    "granted_by_name": LONG,
    "days": 90,
    "expires_at": NOW.isoformat(),
    "approval_expires_at": NOW.isoformat(),
    "why": "last active Core Ops member",
    "days_left": 7,
    "roles": ["core_ops", "observer"],
    "removed": False,
    "kept_because": None,
    "strikes": 3,
    "until": NOW.isoformat(),
    "last_action": LONG,
    "by": LONG,
    "review_id": 3,
    "deadline": NOW.isoformat(),
    "page": 1,
    "pages": 1,
    "total": 5,
    "started_by": LONG,
    "kept": 2,
    "revoked": 1,
    "auto_revoked": 1,
    "spared": 1,
    "items": [
        {
            "item_id": i,
            "member_id": i,
            "member_name": LONG,
            "role": "observer",
            "expires_at": NOW.isoformat(),
        }
        for i in range(5)
    ],
}


@pytest.mark.parametrize("template", sorted(render.TEMPLATES))
def test_every_notice_fits(template: str) -> None:
    rendered = render.TEMPLATES[template](DATA)
    assert isinstance(rendered, Rendered)
    assert rendered.embeds and all(within_limits(e) for e in rendered.embeds)
    assert rendered.content is None or len(rendered.content) <= 2000
    view = rendered.view()
    if view is not None:
        rows = view.to_components()
        assert len(rows) <= 5
        for row in rows:
            assert len(row["components"]) <= 5
            for button in row["components"]:
                assert len(button["custom_id"]) <= 100 and len(button["label"]) <= 80


def test_approval_request_has_approve_and_reject_for_the_grant() -> None:
    rendered = render.TEMPLATES["access.approval_request"](DATA)
    view = rendered.view()
    assert view is not None
    ids = [c["custom_id"] for row in view.to_components() for c in row["components"]]
    assert ids == ["hh:access:approve:7", "hh:access:reject:7"]


def test_review_page_has_keep_and_revoke_per_grant_in_five_rows() -> None:
    view = render.TEMPLATES["access.review"](DATA).view()
    assert view is not None
    ids = [c["custom_id"] for row in view.to_components() for c in row["components"]]
    assert ids[:2] == ["hh:access:keep:0", "hh:access:revoke:0"]
    assert len(ids) == 10
    rows = view.to_components()
    assert [len(r["components"]) for r in rows] == [2, 2, 2, 2, 2], "one grant per row"


@pytest.mark.parametrize("status", list(GrantStatus))
def test_replies_fit(status: GrantStatus) -> None:
    g = grant(status=status, ended_at=NOW)
    for embed in (
        render.grant_reply(g, pending=status is GrantStatus.PENDING),
        render.renew_reply(g),
        render.revoke_reply(g, queued=True),
        render.grants_list([g] * 40, title=LONG),
    ):
        assert within_limits(embed)


def test_grants_list_says_how_many_are_hidden() -> None:
    embed = render.grants_list([grant()] * 40, title="Grants")
    assert embed.footer.text is not None and "more not shown" in embed.footer.text


def test_audit_embed_fits() -> None:
    records = [
        AuditRecord(
            at=NOW,
            actor_id=1,
            actor_name=LONG,
            action="access grant",
            outcome="ok",
            target=LONG,
            id=i,
        )
        for i in range(50)
    ]
    assert within_limits(render.audit_embed(records, title=LONG))


def test_a_decided_grant_request_says_its_new_state_in_title_text_line_and_colour() -> None:
    """Issue 16 §1: an approved Core Ops grant no longer reads "awaiting approval" in orange."""
    asked = render.TEMPLATES["access.approval_request"](DATA)
    assert (asked.embeds[0].title or "").startswith("⏳ AWAITING APPROVAL · Core Ops grant")
    assert (asked.content or "").startswith("⏳ **AWAITING APPROVAL** · Core Ops grant")
    short = grant(member_name="dana", granted_by_name="alice", reason="joins the rota")
    approved = render.grant_decision(short, approved=True, by_name="erin")
    [embed] = approved.embeds
    assert (embed.title or "").startswith("✅ APPROVED · Core Ops grant for dana")
    first = (approved.content or "").splitlines()[0]
    assert first.startswith("✅ **APPROVED** · Core Ops grant for dana: approved by erin")
    assert embed.colour != asked.embeds[0].colour
    assert "awaiting" not in str(embed.to_dict()).lower() + (approved.content or "").lower()
    assert approved.items == [], "nothing left to decide"
    rejected = render.grant_decision(short, approved=False, by_name="erin")
    assert (rejected.embeds[0].title or "").startswith("⛔ REJECTED · Core Ops grant for dana")
    assert (rejected.content or "").startswith("⛔ **REJECTED** · Core Ops grant for dana")
    for long in (
        render.grant_decision(grant(), approved=True, by_name=LONG),
        render.grant_decision(grant(), approved=False, by_name=LONG),
    ):
        within_limits(long.embeds[0])
        assert len(long.content or "") <= 2000
