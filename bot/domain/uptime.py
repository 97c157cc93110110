"""Availability per target and window (manual §16: 99.9 %), and the per-minute series the
/health chart draws: pure maths over stored aggregates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.health import (
    MinuteAggregate,
)

UPTIME_TARGET = 99.9

UPTIME_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("24 h", timedelta(hours=24)),
    ("30 d", timedelta(days=30)),
    ("quarter", timedelta(days=90)),
)


@dataclass(frozen=True)
class Uptime:
    target: str
    windows: tuple[tuple[str, float | None], ...]  # (label, percent or None: no data)

    def meets(self, label: str) -> bool | None:
        for name, percent in self.windows:
            if name == label:
                return None if percent is None else percent >= UPTIME_TARGET
        return None


def uptime(
    aggregates: Iterable[MinuteAggregate],
    now: datetime,
    targets: Iterable[str],
    windows: Sequence[tuple[str, timedelta]] = UPTIME_WINDOWS,
) -> list[Uptime]:
    """Availability per target and window: up samples / samples (a ⚠️ is up, a ❌ is not)."""
    sums: dict[tuple[str, str], list[int]] = {}
    for agg in aggregates:
        for label, span in windows:
            if agg.minute >= now - span:
                acc = sums.setdefault((agg.target, label), [0, 0])
                acc[0] += agg.up_samples
                acc[1] += agg.samples
    out = []
    for name in targets:
        values: list[tuple[str, float | None]] = []
        for label, _span in windows:
            up, total = sums.get((name, label), [0, 0])
            values.append((label, 100.0 * up / total if total else None))
        out.append(Uptime(name, tuple(values)))
    return out


@dataclass(frozen=True)
class ChartSeries:
    """Per-minute latency and availability of one target over 24 h, for the PNG chart."""

    target: str
    start: datetime
    end: datetime
    points: tuple[tuple[datetime, float | None, float], ...]  # minute, latency ms, availability
