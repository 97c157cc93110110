"""What /health summarises and what /status may tell miners (no host, address, balance or
error text), and the per-member cooldown of /status: pure rules."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.baselines import SHARE_STALE_SECONDS, as_number, judge_all
from bot.domain.health import (
    ProbeResult,
    State,
    TargetKind,
    Verdict,
)
from bot.domain.ports import Clock
from bot.domain.units import format_hashrate


@dataclass(frozen=True)
class Overview:
    """Everything /health shows: verdicts (worst first) and the figures of the summary line."""

    verdicts: tuple[Verdict, ...]
    at: datetime

    def of_kind(self, kind: TargetKind) -> list[Verdict]:
        return [v for v in self.verdicts if v.result.kind is kind]

    @property
    def worst(self) -> State:
        return max((v.state for v in self.verdicts), key=lambda s: s.rank, default=State.OK)

    def summary_parts(self) -> list[tuple[str, State]]:
        """("Core", state), ("41/43 nodes", worst), ("bitcoind 871234", state), ..."""
        parts: list[tuple[str, State]] = []
        for verdict in self.of_kind(TargetKind.CORE):
            label = "Core" if verdict.target == "core" else verdict.target
            parts.append((label, verdict.state))
        nodes = self.of_kind(TargetKind.NODE)
        if nodes:
            up = sum(1 for v in nodes if v.state is not State.DOWN)
            # The group: ✅ all fine, ❌ none answering, ⚠️ anything between (lines say which).
            if all(v.state is State.OK for v in nodes):
                group = State.OK
            elif up == 0:
                group = State.DOWN
            else:
                group = State.WARN
            parts.append((f"{up}/{len(nodes)} nodes", group))
        for verdict in self.of_kind(TargetKind.BITCOIND):
            height = verdict.result.figures.get("block_height")
            parts.append(
                (f"bitcoind {height}" if height is not None else "bitcoind", verdict.state)
            )
        for verdict in self.of_kind(TargetKind.LND):
            channels = verdict.result.figures.get("channels")
            label = f"lnd {channels} channels" if channels is not None else "lnd"
            parts.append((label, verdict.state))
        for verdict in self.of_kind(TargetKind.PROMETHEUS):
            rate = as_number(verdict.result.figures.get("pool_hashrate"))
            label = f"pool {format_hashrate(rate)}" if rate is not None else "Prometheus"
            parts.append((label, verdict.state))
        return parts

    def summary_line(self) -> str:
        parts = self.summary_parts()
        if not parts:
            return "No targets configured: add [health] targets or /node register a node."
        return " · ".join(f"{label} {state.icon}" for label, state in parts)


def overview(
    results: Sequence[ProbeResult], at: datetime, *, share_stale_after: float = SHARE_STALE_SECONDS
) -> Overview:
    verdicts = judge_all(results, share_stale_after=share_stale_after)
    order = {kind: i for i, kind in enumerate(TargetKind)}
    verdicts.sort(key=lambda v: (-v.state.rank, order[v.result.kind], v.target))
    return Overview(tuple(verdicts), at)


@dataclass(frozen=True)
class PublicStatus:
    """What any member may see. Numbers and a state only: no hostname, address, balance or error.

    Built from verdicts by `public_status`, which copies nothing textual from a probe.
    """

    pool: str  # "up", "degraded", "down" or "unknown"
    nodes_online: int
    nodes_total: int
    pool_hashrate: float | None
    notice: str | None
    updated_at: datetime | None


def public_status(view: Overview | None, *, notice: str | None = None) -> PublicStatus:
    if view is None or not view.verdicts:
        return PublicStatus("unknown", 0, 0, None, notice, view.at if view else None)
    nodes = view.of_kind(TargetKind.NODE)
    online = sum(1 for v in nodes if v.state is not State.DOWN)
    core = view.of_kind(TargetKind.CORE)
    # Without a Core target, the pool is down when every node is.
    core_down = any(v.state is State.DOWN for v in core) if core else bool(nodes) and online == 0
    if core_down:
        pool = "down"
    elif view.worst is not State.OK:
        pool = "degraded"
    else:
        pool = "up"
    hashrate: float | None = None
    for kind in (TargetKind.PROMETHEUS, TargetKind.CORE):
        for verdict in view.of_kind(kind):
            value = as_number(verdict.result.figures.get("pool_hashrate"))
            if verdict.result.ok and value is not None and hashrate is None:
                hashrate = value
    return PublicStatus(pool, online, len(nodes), hashrate, notice, view.at)


def reason_line(status: PublicStatus) -> str | None:
    """Why the figures and the last notice may seem to disagree, in one line (issue 16 §2)."""
    down = status.nodes_total - status.nodes_online
    if down > 0:
        nodes = f"{down} node{'' if down == 1 else 's'} of {status.nodes_total} unreachable"
        # Only a pool measured up is unaffected; a degraded pool says so in the headline.
        return f"{nodes}; mining goes on" if status.pool == "up" else nodes
    if status.notice and status.pool == "up":
        return "The checks see the pool up; the notice is the team's latest word until it closes."
    return None


def board_fingerprint(status: PublicStatus) -> dict[str, object]:
    """What the #miners board says, without what moves every poll (hashrate, time): the board is
    edited only when this changes."""
    return {
        "pool": status.pool,
        "nodes_online": status.nodes_online,
        "nodes_total": status.nodes_total,
        "notice": status.notice,
    }


def status_to_data(status: PublicStatus) -> dict[str, object]:
    """A notice payload (JSON) for the board; `status_from_data` reads it back."""
    return {
        **board_fingerprint(status),
        "pool_hashrate": status.pool_hashrate,
        "updated_at": status.updated_at.isoformat() if status.updated_at else None,
    }


def status_from_data(data: dict[str, object]) -> PublicStatus:
    rate = data.get("pool_hashrate")
    at = data.get("updated_at")
    notice = data.get("notice")
    online, total = data.get("nodes_online", 0), data.get("nodes_total", 0)
    return PublicStatus(
        pool=str(data.get("pool") or "unknown"),
        nodes_online=int(online) if isinstance(online, int) else 0,
        nodes_total=int(total) if isinstance(total, int) else 0,
        pool_hashrate=float(rate) if isinstance(rate, int | float) else None,
        notice=str(notice) if notice else None,
        updated_at=datetime.fromisoformat(at) if isinstance(at, str) else None,
    )


@dataclass(frozen=True)
class NodeAnswer:
    """`/status node:<name>`: the public name and up or not; `known` False is the neutral answer
    (unknown and unapproved names look the same)."""

    name: str
    known: bool
    up: bool = False
    measured: bool = False


def node_answer(view: Overview | None, name: str, public_names: Collection[str]) -> NodeAnswer:
    wanted = name.strip().lower()[:40]
    if wanted not in public_names:
        return NodeAnswer(wanted, known=False)
    if view is None:
        return NodeAnswer(wanted, known=True)
    for verdict in view.of_kind(TargetKind.NODE):
        if verdict.target == wanted:
            return NodeAnswer(wanted, known=True, up=verdict.state is not State.DOWN, measured=True)
    return NodeAnswer(wanted, known=True)


class Cooldown:
    """One request per member per `seconds` (bounded memory: old entries are dropped)."""

    def __init__(self, clock: Clock, seconds: float, *, max_members: int = 10_000) -> None:
        self._clock = clock
        self._seconds = seconds
        self._max = max_members
        self._last: dict[int, datetime] = {}

    def hit(self, member_id: int) -> float:
        """0 when the member may go ahead (and is counted), else the seconds left to wait."""
        now = self._clock.now()
        last = self._last.get(member_id)
        if last is not None:
            left = self._seconds - (now - last).total_seconds()
            if left > 0:
                return left
        if len(self._last) >= self._max:
            horizon = now - timedelta(seconds=self._seconds)
            self._last = {k: v for k, v in self._last.items() if v > horizon}
            if len(self._last) >= self._max:
                self._last.clear()
        self._last[member_id] = now
        return 0.0
