"""The manual's baselines (§5, §16) and the judgement of one probe against them: pure rules,
so /health, /status, uptime and the alerts all judge alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.domain.health import (
    ProbeResult,
    State,
    TargetKind,
    Verdict,
)
from bot.domain.units import format_btc, format_duration

TEMPLATE_LATENCY_MS = 50.0

RTT_MS = 250.0

HEIGHT_TOLERANCE = 1

CHANNEL_CAPACITY_SAT = 10_000_000  # 0.1 BTC

DISK_PERCENT = 85.0

HASHRATE_DROP = 0.20

SHARE_STALE_SECONDS = 300.0


def as_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def judge(
    result: ProbeResult,
    *,
    reference_height: int | None = None,
    share_stale_after: float = SHARE_STALE_SECONDS,
) -> Verdict:
    """One probe result against the baselines. Liveness alone is not health for mining."""
    if not result.ok:
        return Verdict(result, State.DOWN, (result.reason or "no answer",))
    notes: list[str] = []
    f = result.figures
    if result.kind in (TargetKind.CORE, TargetKind.NODE):
        status = f.get("agent_status")
        if isinstance(status, str) and status.lower() not in ("ok", "healthy", "up", "running"):
            notes.append(f"reports status {status[:40]!r}")
        rtt = as_number(f.get("rtt_ms"))
        if rtt is None:
            rtt = result.latency_ms
        if rtt is not None and rtt >= RTT_MS:
            notes.append(f"RTT {rtt:.0f} ms ≥ {RTT_MS:.0f} ms")
        disk = as_number(f.get("disk_used_percent"))
        if disk is not None and disk > DISK_PERCENT:
            notes.append(f"disk {disk:.0f} % > {DISK_PERCENT:.0f} %")
        since_share = as_number(f.get("seconds_since_share"))
        if since_share is not None and since_share > share_stale_after:
            notes.append(f"no accepted share for {format_duration(since_share)}")
    if result.kind in (TargetKind.CORE, TargetKind.NODE, TargetKind.PROMETHEUS):
        template = as_number(f.get("template_latency_ms"))
        if template is not None and template >= TEMPLATE_LATENCY_MS:
            notes.append(f"template latency {template:.0f} ms ≥ {TEMPLATE_LATENCY_MS:.0f} ms")
    if result.kind in (TargetKind.NODE, TargetKind.BITCOIND, TargetKind.LND):
        height = as_number(f.get("block_height"))
        if height is not None and reference_height is not None:
            behind = reference_height - int(height)
            if abs(behind) > HEIGHT_TOLERANCE:
                notes.append(f"block {int(height)} vs Core {reference_height}")
    if result.kind is TargetKind.BITCOIND and f.get("initial_block_download") is True:
        notes.append("initial block download in progress")
    if result.kind is TargetKind.LND:
        if f.get("synced_to_chain") is False:
            notes.append("not synced to chain")
        capacity = as_number(f.get("capacity_sat"))
        if capacity is not None and capacity < CHANNEL_CAPACITY_SAT:
            notes.append(f"channel capacity {format_btc(capacity)} < 0.1 BTC")
        active, total = as_number(f.get("active_channels")), as_number(f.get("channels"))
        if active is not None and total is not None and active < total:
            notes.append(f"{int(total - active)} channel(s) inactive")
    if result.kind in (TargetKind.PROMETHEUS, TargetKind.CORE):
        drop = hashrate_drop(f.get("pool_hashrate"), f.get("pool_hashrate_24h_avg"))
        if drop is not None and drop > HASHRATE_DROP:
            notes.append(f"pool hashrate {drop * 100:.0f} % under its 24 h average")
        share_rate = as_number(f.get("share_rate"))
        if share_rate is not None and share_rate <= 0:
            notes.append("no shares accepted")
    return Verdict(result, State.WARN if notes else State.OK, tuple(notes))


def hashrate_drop(current: object, average: object) -> float | None:
    """How far the hashrate is under its 24 h average, as a fraction (0.25 = 25 % under)."""
    now, avg = as_number(current), as_number(average)
    if now is None or avg is None or avg <= 0:
        return None
    return max(0.0, (avg - now) / avg)


def reference_height(results: Iterable[ProbeResult]) -> int | None:
    """The Core's block height, else bitcoind's: what nodes must agree with (within 1 block)."""
    by_kind: dict[TargetKind, int] = {}
    for result in results:
        height = as_number(result.figures.get("block_height"))
        if result.ok and height is not None and result.kind not in by_kind:
            by_kind[result.kind] = int(height)
    return by_kind.get(TargetKind.CORE, by_kind.get(TargetKind.BITCOIND))


def judge_all(
    results: Sequence[ProbeResult], *, share_stale_after: float = SHARE_STALE_SECONDS
) -> list[Verdict]:
    height = reference_height(results)
    return [judge(r, reference_height=height, share_stale_after=share_stale_after) for r in results]
