"""Health and status embeds against Discord's limits, and /status against leaks."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from PIL import Image

from bot.discord.sending import DESCRIPTION_MAX, EMBED_TOTAL_MAX
from bot.domain.health import MinuteAggregate, NodeStatus, ProbeResult, RegisteredNode, TargetKind
from bot.domain.health import Target as HealthTarget
from bot.domain.public_status import overview, public_status
from bot.domain.uptime import ChartSeries, uptime
from cogs.health.chart import render_chart
from cogs.health.render import (
    approval_content,
    decision_content,
    nodes_embed,
    overview_pages,
    removed_content,
    replaced_content,
    stale_content,
    target_embed,
    uptime_embed,
)
from cogs.status.render import status_embed

AT = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
HOSTILE = "@everyone 10.0.0.7 node-secret.example:8442 " + "x" * 300


def network(nodes: int, down_every: int = 10) -> list[ProbeResult]:
    results = [
        ProbeResult("core", TargetKind.CORE, True, 5.0, AT, None, {"block_height": 871234}),
        ProbeResult(
            "lnd",
            TargetKind.LND,
            True,
            8.0,
            AT,
            None,
            {
                "channels": 12,
                "active_channels": 12,
                "capacity_sat": 5_000_000_000,
                "local_balance_sat": 123_456_789,
            },
        ),
    ]
    for i in range(nodes):
        ok = i % down_every != 0
        results.append(
            ProbeResult(
                f"node-{i:04d}",
                TargetKind.NODE,
                ok,
                20.0 if ok else None,
                AT,
                None if ok else f"timeout talking to {HOSTILE}",
                {"block_height": 871234, "template_latency_ms": 60.0} if ok else {},
            )
        )
    return results


def within_limits(embed: object) -> bool:
    import discord

    assert isinstance(embed, discord.Embed)
    return len(embed) <= EMBED_TOTAL_MAX and len(embed.description or "") <= DESCRIPTION_MAX


def test_overview_of_a_thousand_nodes_is_paged_within_limits() -> None:
    pages = overview_pages(overview(network(1000), AT))
    assert len(pages) > 1
    assert all(within_limits(p) for p in pages)
    first = pages[0].description or ""
    assert first.startswith("Core ✅ · 900/1000 nodes ⚠️ · lnd 12 channels ✅")
    assert pages[0].footer.text is not None and pages[0].footer.text.startswith("page 1/")
    listed = sum((p.description or "").count("**node-") for p in pages)
    assert listed == 1000, "every target is on some page"


def test_small_overview_is_one_page() -> None:
    (page,) = overview_pages(overview(network(3), AT))
    assert "page" not in (page.footer.text or "")
    assert "template 60 ms" in (page.description or "")
    assert "template latency 60 ms ≥ 50 ms" in (page.description or "")


def test_target_detail_and_lists_within_limits() -> None:
    view = overview(network(1), AT)
    for verdict in view.verdicts:
        target = HealthTarget(verdict.target, verdict.result.kind, HOSTILE * 5, HOSTILE)
        assert within_limits(target_embed(verdict, target))
    rows = uptime([], AT, [f"node-{i}" for i in range(2000)])
    assert within_limits(uptime_embed(rows))
    nodes = [
        RegisteredNode(i, f"node-{i}", HOSTILE, "eu", NodeStatus.PENDING, 1, AT) for i in range(500)
    ]
    assert within_limits(nodes_embed(nodes, []))


def test_status_never_shows_hostnames_addresses_balances_or_errors() -> None:
    status = public_status(overview(network(50), AT), notice="Scheduled maintenance at 12:00 UTC")
    text = json.dumps(status_embed(status).to_dict()) + repr(status)
    for leak in (
        "10.0.0.7",
        "example",
        "8442",
        "timeout",
        "node-0",
        "lnd",
        "123456789",
        "5000000000",
        "50.000",
    ):
        assert leak not in text, leak
    assert "45 / 50" in text
    assert "Scheduled maintenance" in text


def test_chart_is_a_png_of_sensible_size() -> None:
    points = tuple(
        (AT + timedelta(minutes=m), 20.0 + m % 40, 1.0 if m % 100 else 0.0) for m in range(1440)
    )
    png = render_chart(ChartSeries("node-1", AT, AT + timedelta(hours=24), points))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 2_000 < len(png) < 500_000
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (960, 420)
    empty = render_chart(ChartSeries("node-1", AT, AT + timedelta(hours=24), ()))
    assert empty[:8] == b"\x89PNG\r\n\x1a\n"


def test_uptime_embed_marks_the_target() -> None:
    aggs = [MinuteAggregate("core", AT - timedelta(minutes=5), 1000, 999, 5.0, 9.0)]
    embed = uptime_embed(uptime(aggs, AT, ["core"]))
    assert "24 h 99.900 % ✅" in (embed.description or "")


def test_retired_request_messages_say_so_within_limits() -> None:
    def request(node_id: int) -> RegisteredNode:
        endpoint = "https://" + "n" * 190 + ".example"
        return RegisteredNode(node_id, "hn-new", endpoint, None, NodeStatus.PENDING, 1, AT)

    replaced = replaced_content(request(7), request(8))
    assert replaced.startswith("⛔ Node registration **hn-new** request #7")
    assert "replaced by request #8" in replaced and len(replaced) <= 2000
    assert "was removed" in removed_content(request(7))
    stale = stale_content(7, "📝 " + HOSTILE * 10)
    assert stale.startswith("⛔ Request #7 was replaced") and len(stale) <= 2000
    assert stale_content(7, stale) == stale, "pressing twice does not stack the mark"


def test_a_registration_request_and_its_decision_name_their_state_first() -> None:
    """Issue 16 §1: the request's text line (all it has) says the state it is in now."""
    pending = RegisteredNode(
        7, "hn-eu-1", "https://hn-eu-1.example", "eu", NodeStatus.PENDING, 1, AT
    )
    asked = approval_content(pending, 200)
    assert asked.startswith("⏳ **AWAITING APPROVAL** · Node registration **hn-eu-1**")
    approved = RegisteredNode(
        7, "hn-eu-1", "https://hn-eu-1.example", "eu", NodeStatus.APPROVED, 1, AT
    )
    line = decision_content(approved, 300).splitlines()[0]
    assert line.startswith("✅ **APPROVED** · Node registration **hn-eu-1**")
    assert "<@300>" in line
    rejected = RegisteredNode(7, "hn-eu-1", "https://x.example", None, NodeStatus.REJECTED, 1, AT)
    assert decision_content(rejected, 300).startswith("⛔ **REJECTED** · Node registration")
    huge = RegisteredNode(7, "n" * 500, "https://" + "x" * 3000, None, NodeStatus.APPROVED, 1, AT)
    assert len(decision_content(huge, 300)) <= 2000 and len(approval_content(huge, 3)) <= 2000


def test_problems_first_with_their_reason_and_fine_nodes_in_one_line() -> None:
    """Issue 16 §4: an operator reads what is wrong first, why, then the figures."""
    results = network(40)
    for index, result in enumerate(results):
        if result.ok and result.kind is TargetKind.NODE and index % 3:
            results[index] = ProbeResult(
                result.target, result.kind, True, 20.0, AT, None, {"block_height": 871234}
            )
    (page,) = overview_pages(overview(results, AT))
    body = (page.description or "").split("\n\n", 1)[1].splitlines()
    down = [line for line in body if line.startswith("❌")]
    assert len(down) == 4 and body[: len(down)] == down, "the down nodes lead"
    assert down[0].startswith("❌ **node-0000** · timeout talking to"), down[0]
    warn = body[len(down)]
    assert warn.startswith("⚠️ **node-") and "· template latency 60 ms ≥ 50 ms · 20 ms" in warn
    fine = sum(
        1
        for r in results
        if r.kind is TargetKind.NODE and r.ok and not r.figures.get("template_latency_ms")
    )
    assert body[-1] == f"✅ {fine} nodes fine"
    assert not [line for line in body if line.startswith("✅ **node-")]


def test_target_detail_leads_with_the_verdict() -> None:
    view = overview(network(10), AT)
    down = next(v for v in view.verdicts if not v.result.ok)
    embed = target_embed(down, None)
    assert (embed.description or "").startswith("❌ **Down**: timeout talking to")
    lnd = next(v for v in view.verdicts if v.result.kind is TargetKind.LND)
    said = target_embed(lnd, None)
    assert (said.description or "").startswith("✅ **Healthy**\n12/12 channels active")
    assert {f.name for f in said.fields} == {"Latency", "Other figures"}
    assert "local balance sat: 123456789" in str(said.fields[-1].value)
