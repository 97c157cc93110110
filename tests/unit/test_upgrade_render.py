"""Upgrade embeds stay within Discord's limits, whatever manifests and node agents send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import discord

from bot.discord.sending import DESCRIPTION_MAX, EMBED_TOTAL_MAX, FIELD_VALUE_MAX, FIELDS_MAX
from bot.domain.releases import Release, RolloutSnapshot, RolloutState
from bot.services.upgrades import NodeRollout, ReleaseHistory, Rollout
from cogs.upgrades import render

AT = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def within_limits(embed: discord.Embed) -> None:
    assert len(embed) <= EMBED_TOTAL_MAX
    assert len(embed.title or "") <= 256
    assert len(embed.description or "") <= DESCRIPTION_MAX
    assert len(embed.fields) <= FIELDS_MAX
    assert all(len(f.value or "") <= FIELD_VALUE_MAX for f in embed.fields)


def release(**changes: object) -> Release:
    values: dict[str, object] = {
        "id": 3,
        "version": "2.0.0",
        "channel": "stable",
        "released_at": AT,
        "manifest": "{}",
        "key_id": "51341D745384183D",
        "trusted_comment": "hh 2.0.0",
        "source": "http://127.0.0.1/manifest.json",
        "announced_by": 1,
        "announced_by_name": "core-alice",
        "announced_at": AT,
    }
    values.update(changes)
    return Release(**values)  # type: ignore[arg-type]


def notice_data(components: int = 2, notes: str = "## Notes") -> dict[str, object]:
    return {
        "release_id": 3,
        "version": "2.0.0",
        "channel": "stable",
        "released_at": AT.isoformat(),
        "key_id": "51341D745384183D",
        "trusted_comment": "t" * 2000,
        "source": "http://127.0.0.1/" + "x" * 700,
        "announced_by_name": "core-alice",
        "components": [
            {"name": f"c{i}" * 30, "version": "v" * 64, "url": "https://x", "sha256": "ab" * 32}
            for i in range(components)
        ],
        "notes": notes,
    }


def test_release_notice_shows_components_key_and_a_button() -> None:
    rendered = render.release_notice(notice_data())
    [embed] = rendered.embeds
    text = str(embed.to_dict())
    content = rendered.content or ""
    assert "signature verified, key `51341D745384183D`" in content
    everything = content + text
    assert everything.count("signature verified") == 1, "said once (issue 16 §4)"
    assert "`51341D745384183D`" in text, "the key is in the embed too"
    assert "ab" * 32 in text
    assert [i.custom_id for i in rendered.items] == [  # type: ignore[attr-defined]
        "hh:upgrade:approve:3",
        "hh:upgrade:reject:3",
    ]
    assert [i.item.label for i in rendered.items] == ["Approve rollout", "Reject"]  # type: ignore[attr-defined]
    assert (embed.title or "").startswith("⏳ AWAITING APPROVAL · Release 2.0.0")
    assert content.splitlines()[0].startswith("⏳ **AWAITING APPROVAL** · Release 2.0.0")
    within_limits(embed)
    assert len(rendered.content or "") <= 2000


def test_huge_release_notice_is_truncated_within_limits() -> None:
    rendered = render.release_notice(notice_data(components=50, notes="n" * 20000))
    [embed] = rendered.embeds
    within_limits(embed)
    assert "notes truncated" in (embed.description or "")
    fields = {f.name for f in embed.fields}
    assert "Signature" in fields or embed.footer.text, "the key stays or the cut is said"


def test_backticks_in_outside_text_cannot_break_code_spans() -> None:
    data = notice_data()
    data["components"] = [{"name": "a`b", "version": "1`", "url": "https://x", "sha256": "ab" * 32}]
    text = str(render.release_notice(data).embeds[0].to_dict())
    assert "a`b" not in text


def test_progress_bar() -> None:
    assert render.progress_bar(0, 0).endswith("0 %")
    assert render.progress_bar(1, 3) == "███████" + "░" * 13 + " 33 %"
    assert render.progress_bar(4, 4).startswith("█" * 20)


def test_rollout_of_thousands_of_nodes_is_cut_with_a_note() -> None:
    nodes = tuple(
        NodeRollout(f"node-{i:05d}", "1.9.9-some-long-build" * 3, RolloutState.PENDING)
        for i in range(5000)
    )
    embed = render.rollout_embed(Rollout(release(), nodes, AT))
    within_limits(embed)
    assert "more nodes not shown" in (embed.description or "")
    assert "0 %" in (embed.description or "")


def test_rollout_shows_each_state() -> None:
    nodes = (
        NodeRollout("node-a", "2.0.0", RolloutState.UNHEALTHY, "status 'error'"),
        NodeRollout("node-b", None, RolloutState.UNREACHABLE),
        NodeRollout("node-c", "1.9.0", RolloutState.PENDING),
        NodeRollout("node-d", "2.0.0", RolloutState.UPGRADED),
    )
    embed = render.rollout_embed(
        Rollout(release(approved_at=AT, approved_by_name="erin"), nodes, AT)
    )
    text = embed.description or ""
    for label in ("upgraded", "pending", "unhealthy after upgrade", "unreachable"):
        assert label in text
    assert "approved by erin" in (embed.footer.text or "")
    empty = render.rollout_embed(Rollout(release(), (), AT))
    assert "No registered nodes" in (empty.description or "")


def test_history_within_limits() -> None:
    snaps = tuple(
        RolloutSnapshot(3, AT + timedelta(hours=i), 10, i, 10 - i, 0, 0) for i in range(11)
    )
    history = [ReleaseHistory(release(version=f"2.0.{i}"), snaps) for i in range(30)]
    embed = render.history_embed(history)
    within_limits(embed)
    assert "→" in str(embed.to_dict())
    assert "No release" in (render.history_embed([]).description or "")


def test_notices_for_approval_and_unhealthy_nodes() -> None:
    approved = render.approved_notice(
        {"version": "2.0.0", "announced_by_name": "a", "approved_by_name": "b"}
    )
    assert "may upgrade" in (approved.embeds[0].description or "")
    unhealthy = render.unhealthy_notice({"version": "2.0.0", "node": "n" * 500, "reason": "x"})
    within_limits(unhealthy.embeds[0])
    assert "Rollback expected" in (unhealthy.embeds[0].description or "")


def test_a_rollback_notice_says_rollback_in_title_text_and_colour() -> None:
    data = {**notice_data(), "version": "1.0.0", "rollback_from": "2.0.0"}
    rendered = render.release_notice(data)
    [embed] = rendered.embeds
    assert (embed.title or "").startswith("⏳ AWAITING APPROVAL · ⏪ Rollback to 1.0.0")
    assert "rollback" in (rendered.content or "").lower() and "2.0.0" in (rendered.content or "")
    assert embed.colour != render.COLOUR_RELEASE, "a rollback is never blurple"
    assert any(f.name == "Rolls back" and "2.0.0" in (f.value or "") for f in embed.fields)
    assert rendered.items[0].custom_id == "hh:upgrade:approve:3"  # type: ignore[attr-defined]
    within_limits(embed)
    plain = render.release_notice(notice_data())
    assert "Rollback" not in (plain.embeds[0].title or "") + (plain.content or "")


def test_a_rollback_approval_says_the_fleet_rolls_back() -> None:
    approved = render.approved_notice(
        {
            "version": "1.0.0",
            "announced_by_name": "a",
            "approved_by_name": "b",
            "rollback_from": "2.0.0",
        }
    )
    [embed] = approved.embeds
    assert (embed.title or "").startswith("Rollback approved: 1.0.0")
    assert "may roll back" in (embed.description or "") and "2.0.0" in (embed.description or "")
    assert embed.colour == render.COLOUR_ROLLBACK


def test_history_and_status_mark_a_rollback() -> None:
    embed = render.history_embed(
        [ReleaseHistory(release(version="1.0.0", rolled_back_from="2.0.0"), ())]
    )
    assert "rollback from 2.0.0" in (embed.fields[0].name or "")
    rolled_back = release(version="1.0.0", rolled_back_from="2.0.0")
    status = render.rollout_embed(Rollout(rolled_back, (), AT))
    assert "Rollback" in (status.title or "")


def test_a_decided_release_notice_says_approved_or_rejected_first() -> None:
    """Issue 16 §1: an approved rollout no longer says it needs a second member's approval."""
    from bot.discord.state import MessageState
    from cogs.upgrades.texts import release_text

    asked = render.release_notice(notice_data())
    approved = release_text(notice_data(), state=MessageState.APPROVED, decided_by="core-erin")
    [embed] = approved.embeds
    assert (embed.title or "").startswith("✅ APPROVED · Release 2.0.0 (stable)")
    first = (approved.content or "").splitlines()[0]
    assert first.startswith(
        "✅ **APPROVED** · Release 2.0.0 (stable): rollout approved by core-erin"
    )
    assert "needs" not in (approved.content or "")
    assert embed.colour != asked.embeds[0].colour
    rejected = release_text(notice_data(), state=MessageState.REJECTED, decided_by="core-erin")
    assert (rejected.embeds[0].title or "").startswith("⛔ REJECTED · Release 2.0.0")
    assert (rejected.content or "").startswith("⛔ **REJECTED** · Release 2.0.0 (stable): rejected")
    for shown in (approved, rejected):
        within_limits(shown.embeds[0])
        assert len(shown.content or "") <= 2000
        assert (shown.content or "").count("signature verified") == 1
