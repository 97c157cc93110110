"""The manual's baselines as pure functions over fixed probe results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.baselines import hashrate_drop, judge, reference_height
from bot.domain.health import MinuteAggregate, ProbeResult, State, TargetKind
from bot.domain.public_status import Cooldown, overview, public_status
from bot.domain.units import format_hashrate
from bot.domain.uptime import uptime
from tests.conftest import FakeClock

AT = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def result(
    kind: TargetKind,
    name: str = "t",
    ok: bool = True,
    latency: float | None = 20.0,
    reason: str | None = None,
    **figures: Any,
) -> ProbeResult:
    return ProbeResult(name, kind, ok, latency, AT, reason, figures)


def test_down_keeps_its_reason() -> None:
    verdict = judge(result(TargetKind.NODE, ok=False, latency=None, reason="connection refused"))
    assert verdict.state is State.DOWN
    assert verdict.notes == ("connection refused",)


def test_healthy_node_is_ok() -> None:
    node = result(
        TargetKind.NODE,
        block_height=100,
        template_latency_ms=12,
        disk_used_percent=40,
        seconds_since_share=3,
    )
    assert judge(node, reference_height=101).state is State.OK


@pytest.mark.parametrize(
    ("figures", "latency", "note"),
    [
        ({"template_latency_ms": 50}, 20.0, "template latency 50 ms ≥ 50 ms"),
        ({}, 250.0, "RTT 250 ms ≥ 250 ms"),
        ({"rtt_ms": 300}, 20.0, "RTT 300 ms ≥ 250 ms"),
        ({"disk_used_percent": 85.5}, 20.0, "disk 86 % > 85 %"),
        ({"seconds_since_share": 301}, 20.0, "no accepted share for 5 min"),
        ({"block_height": 98}, 20.0, "block 98 vs Core 100"),
        ({"agent_status": "degraded"}, 20.0, "reports status 'degraded'"),
    ],
)
def test_node_baselines(figures: dict[str, Any], latency: float, note: str) -> None:
    verdict = judge(result(TargetKind.NODE, latency=latency, **figures), reference_height=100)
    assert verdict.state is State.WARN
    assert verdict.notes == (note,)


def test_boundaries_that_are_still_fine() -> None:
    node = result(
        TargetKind.NODE,
        latency=249.9,
        template_latency_ms=49.9,
        disk_used_percent=85,
        seconds_since_share=300,
        block_height=99,
    )
    assert judge(node, reference_height=100).state is State.OK


def test_lnd_capacity_and_inactive_channels() -> None:
    lnd = result(
        TargetKind.LND, channels=3, active_channels=2, capacity_sat=9_999_999, synced_to_chain=True
    )
    verdict = judge(lnd)
    assert verdict.state is State.WARN
    assert verdict.notes == ("channel capacity 0.100 BTC < 0.1 BTC", "1 channel(s) inactive")
    healthy = result(TargetKind.LND, channels=2, active_channels=2, capacity_sat=10_000_000)
    assert judge(healthy).state is State.OK


def test_hashrate_more_than_20_percent_under_its_average() -> None:
    assert hashrate_drop(79, 100) == pytest.approx(0.21)
    assert hashrate_drop(120, 100) == 0.0
    assert hashrate_drop(None, 100) is None and hashrate_drop(5, 0) is None
    prom = result(TargetKind.PROMETHEUS, pool_hashrate=79.0, pool_hashrate_24h_avg=100.0)
    assert judge(prom).notes == ("pool hashrate 21 % under its 24 h average",)
    fine = result(TargetKind.PROMETHEUS, pool_hashrate=80.0, pool_hashrate_24h_avg=100.0)
    assert judge(fine).state is State.OK


def test_bitcoind_ibd_and_height() -> None:
    btc = result(TargetKind.BITCOIND, block_height=90, initial_block_download=True)
    assert judge(btc, reference_height=100).notes == (
        "block 90 vs Core 100",
        "initial block download in progress",
    )


def test_reference_height_prefers_the_core() -> None:
    results = [
        result(TargetKind.BITCOIND, "bitcoind", block_height=7),
        result(TargetKind.CORE, "core", block_height=9),
    ]
    assert reference_height(results) == 9
    assert reference_height(results[:1]) == 7
    assert reference_height([result(TargetKind.CORE, ok=False, block_height=9)]) is None


def sample_network(node_states: list[bool]) -> list[ProbeResult]:
    out = [result(TargetKind.CORE, "core", block_height=871234, pool_hashrate=1.5e15)]
    out += [
        result(
            TargetKind.NODE,
            f"node-{i}",
            ok=ok,
            reason=None if ok else "timeout at 10.0.0.7",
            block_height=871234,
        )
        for i, ok in enumerate(node_states)
    ]
    out.append(result(TargetKind.BITCOIND, "bitcoind", block_height=871234))
    out.append(result(TargetKind.LND, "lnd", channels=12, active_channels=12, capacity_sat=5))
    return out


def test_summary_line() -> None:
    view = overview(sample_network([True, True, False]), AT)
    assert view.summary_line() == ("Core ✅ · 2/3 nodes ⚠️ · bitcoind 871234 ✅ · lnd 12 channels ⚠️")
    assert view.verdicts[0].state is State.DOWN, "worst first"


def test_public_status_counts_and_states() -> None:
    status = public_status(overview(sample_network([True, True]), AT))
    assert (status.pool, status.nodes_online, status.nodes_total) == ("degraded", 2, 2)
    assert status.pool_hashrate == 1.5e15
    down = [result(TargetKind.CORE, "core", ok=False, reason="refused")]
    assert public_status(overview(down, AT)).pool == "down"
    assert public_status(None).pool == "unknown"
    assert public_status(overview([result(TargetKind.CORE, "core")], AT)).pool == "up"


def test_cooldown_one_request_per_member(clock: FakeClock) -> None:
    cooldown = Cooldown(clock, 10)
    assert cooldown.hit(1) == 0
    clock.advance(seconds=4)
    assert cooldown.hit(1) == pytest.approx(6)
    assert cooldown.hit(2) == 0
    clock.advance(seconds=6)
    assert cooldown.hit(1) == 0


def test_uptime_windows() -> None:
    now = AT
    aggs = [
        MinuteAggregate("core", now - timedelta(hours=1), 2, 2, 10.0, 12.0),
        MinuteAggregate("core", now - timedelta(days=2), 1000, 990, 10.0, 12.0),
        MinuteAggregate("core", now - timedelta(days=60), 1000, 1000, 10.0, 12.0),
    ]
    (core, other) = uptime(aggs, now, ["core", "node-1"])
    assert core.windows[0] == ("24 h", 100.0)
    assert core.windows[1][1] == pytest.approx(100 * 992 / 1002)
    assert core.windows[2][1] == pytest.approx(100 * 1992 / 2002)
    assert core.meets("24 h") is True and core.meets("30 d") is False
    assert other.windows[0] == ("24 h", None) and other.meets("24 h") is None


def test_hashrate_units() -> None:
    assert format_hashrate(1.5e15) == "1.50 PH/s"
    assert format_hashrate(999) == "999.00 H/s"
