"""Health rules: probe results judged against the manual's baselines, /status, the node registry.

The judgement functions are pure (a probe result in, a verdict out) so each baseline is a unit
test with fixed inputs. Manual §16: template latency < 50 ms, RTT < 250 ms, uptime >= 99.9 %;
§5: channel capacity < 0.1 BTC, disk > 85 %, hashrate drop > 20 % from the 24 h average.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from bot.domain.addresses import check_url
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.health import (
    MinuteAggregate,
    NodeStatus,
    ProbeResult,
    ProbeSample,
    RegisteredNode,
    State,
    Target,
    TargetKind,
    Verdict,
)
from bot.domain.ports import Clock, Prober, UnitOfWork

log = logging.getLogger(__name__)

UowFactory = Callable[[], UnitOfWork]

# -- baselines (manual §5, §16) ---------------------------------------------------------------
TEMPLATE_LATENCY_MS = 50.0
RTT_MS = 250.0
HEIGHT_TOLERANCE = 1
CHANNEL_CAPACITY_SAT = 10_000_000  # 0.1 BTC
DISK_PERCENT = 85.0
HASHRATE_DROP = 0.20
SHARE_STALE_SECONDS = 300.0
UPTIME_TARGET = 99.9

RAW_RETENTION = timedelta(hours=48)
AGGREGATE_RETENTION = timedelta(days=90)
UPTIME_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("24 h", timedelta(hours=24)),
    ("30 d", timedelta(days=30)),
    ("quarter", timedelta(days=90)),
)

RESERVED_NAMES = frozenset(kind.value for kind in TargetKind) - {"node"}
_NODE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_REGION = re.compile(r"^[\w .-]{1,32}$")
ENDPOINT_MAX = 200


# -- judgement ---------------------------------------------------------------------------------


def _number(value: object) -> float | None:
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
        rtt = _number(f.get("rtt_ms"))
        if rtt is None:
            rtt = result.latency_ms
        if rtt is not None and rtt >= RTT_MS:
            notes.append(f"RTT {rtt:.0f} ms ≥ {RTT_MS:.0f} ms")
        disk = _number(f.get("disk_used_percent"))
        if disk is not None and disk > DISK_PERCENT:
            notes.append(f"disk {disk:.0f} % > {DISK_PERCENT:.0f} %")
        since_share = _number(f.get("seconds_since_share"))
        if since_share is not None and since_share > share_stale_after:
            notes.append(f"no accepted share for {format_duration(since_share)}")
    if result.kind in (TargetKind.CORE, TargetKind.NODE, TargetKind.PROMETHEUS):
        template = _number(f.get("template_latency_ms"))
        if template is not None and template >= TEMPLATE_LATENCY_MS:
            notes.append(f"template latency {template:.0f} ms ≥ {TEMPLATE_LATENCY_MS:.0f} ms")
    if result.kind in (TargetKind.NODE, TargetKind.BITCOIND, TargetKind.LND):
        height = _number(f.get("block_height"))
        if height is not None and reference_height is not None:
            behind = reference_height - int(height)
            if abs(behind) > HEIGHT_TOLERANCE:
                notes.append(f"block {int(height)} vs Core {reference_height}")
    if result.kind is TargetKind.BITCOIND and f.get("initial_block_download") is True:
        notes.append("initial block download in progress")
    if result.kind is TargetKind.LND:
        if f.get("synced_to_chain") is False:
            notes.append("not synced to chain")
        capacity = _number(f.get("capacity_sat"))
        if capacity is not None and capacity < CHANNEL_CAPACITY_SAT:
            notes.append(f"channel capacity {format_btc(capacity)} < 0.1 BTC")
        active, total = _number(f.get("active_channels")), _number(f.get("channels"))
        if active is not None and total is not None and active < total:
            notes.append(f"{int(total - active)} channel(s) inactive")
    if result.kind in (TargetKind.PROMETHEUS, TargetKind.CORE):
        drop = hashrate_drop(f.get("pool_hashrate"), f.get("pool_hashrate_24h_avg"))
        if drop is not None and drop > HASHRATE_DROP:
            notes.append(f"pool hashrate {drop * 100:.0f} % under its 24 h average")
        share_rate = _number(f.get("share_rate"))
        if share_rate is not None and share_rate <= 0:
            notes.append("no shares accepted")
    return Verdict(result, State.WARN if notes else State.OK, tuple(notes))


def hashrate_drop(current: object, average: object) -> float | None:
    """How far the hashrate is under its 24 h average, as a fraction (0.25 = 25 % under)."""
    now, avg = _number(current), _number(average)
    if now is None or avg is None or avg <= 0:
        return None
    return max(0.0, (avg - now) / avg)


def reference_height(results: Iterable[ProbeResult]) -> int | None:
    """The Core's block height, else bitcoind's: what nodes must agree with (within 1 block)."""
    by_kind: dict[TargetKind, int] = {}
    for result in results:
        height = _number(result.figures.get("block_height"))
        if result.ok and height is not None and result.kind not in by_kind:
            by_kind[result.kind] = int(height)
    return by_kind.get(TargetKind.CORE, by_kind.get(TargetKind.BITCOIND))


def judge_all(
    results: Sequence[ProbeResult], *, share_stale_after: float = SHARE_STALE_SECONDS
) -> list[Verdict]:
    height = reference_height(results)
    return [judge(r, reference_height=height, share_stale_after=share_stale_after) for r in results]


# -- formatting helpers shared by /health and /status ----------------------------------------


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def format_btc(sat: float) -> str:
    return f"{sat / 100_000_000:.3f} BTC"


def format_hashrate(hashes_per_second: float) -> str:
    value = float(hashes_per_second)
    for unit in ("H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"):
        if abs(value) < 1000 or unit == "EH/s":
            return f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


# -- overview ----------------------------------------------------------------------------------


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
            rate = _number(verdict.result.figures.get("pool_hashrate"))
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


# -- /status: the public view ------------------------------------------------------------------


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
            value = _number(verdict.result.figures.get("pool_hashrate"))
            if verdict.result.ok and value is not None and hashrate is None:
                hashrate = value
    return PublicStatus(pool, online, len(nodes), hashrate, notice, view.at)


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


class TooSoon(InvalidInput):
    outcome = "cooldown"


class StaleRequest(InvalidInput):
    """A decision on a request that was replaced by a newer one, or removed: nothing changes."""

    outcome = "stale"


@dataclass(frozen=True)
class Registration:
    """A new pending request, and the request it replaced (whose message must stop acting)."""

    node: RegisteredNode
    replaced: RegisteredNode | None = None


# -- uptime ------------------------------------------------------------------------------------


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


# -- the service -------------------------------------------------------------------------------


@dataclass
class _Cache:
    view: Overview | None = None
    status: PublicStatus = field(
        default_factory=lambda: PublicStatus("unknown", 0, 0, None, None, None)
    )


class HealthService:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        prober: Prober,
        static_targets: Sequence[Target] = (),
        *,
        share_stale_after: float = SHARE_STALE_SECONDS,
        status_cooldown: float = 10.0,
        allow_loopback: bool = False,
    ) -> None:
        self._uow_factory = uow_factory
        self._allow_loopback = allow_loopback
        self._clock = clock
        self._prober = prober
        self._static = list(static_targets)
        self._share_stale_after = share_stale_after
        self._cache = _Cache()
        self._cooldown = Cooldown(clock, status_cooldown)
        self._poll_lock = asyncio.Lock()
        self.notice: str | None = None

    @property
    def static_targets(self) -> list[Target]:
        return list(self._static)

    async def targets(self) -> list[Target]:
        """Config targets, then approved nodes (a config name wins over a registration)."""
        async with self._uow_factory() as uow:
            approved = await uow.health.nodes(NodeStatus.APPROVED)
        names = {t.name for t in self._static}
        nodes = [
            Target(n.name, TargetKind.NODE, n.endpoint, n.region, registered=True)
            for n in approved
            if n.name not in names
        ]
        return [*self._static, *nodes]

    async def check(self, target: str | None = None) -> Overview:
        """Probe every target (or one, with the Core for reference height) concurrently."""
        targets = await self.targets()
        if target is not None:
            chosen = [t for t in targets if t.name == target]
            if not chosen:
                raise NotFound(f"No target named `{target[:40]}`: see `/node list`.")
            refs = [t for t in targets if t.kind is TargetKind.CORE and t.name != target]
            results = await self._prober.probe_all([*chosen, *refs[:1]])
            view = overview(results, self._clock.now(), share_stale_after=self._share_stale_after)
            return Overview(tuple(v for v in view.verdicts if v.target == target), view.at)
        results = await self._prober.probe_all(targets)
        return overview(results, self._clock.now(), share_stale_after=self._share_stale_after)

    async def poll(self) -> Overview:
        """The scheduled probe (every 30 s): store the samples and refresh the /status cache."""
        async with self._poll_lock:
            view = await self.check()
            # The cache first: /status stays fresh even if storing the samples fails.
            self._cache.view = view
            self._cache.status = public_status(view, notice=self.notice)
            samples = [
                ProbeSample(v.target, v.result.at, v.state, v.result.latency_ms, v.result.reason)
                for v in view.verdicts
            ]
            async with self._uow_factory() as uow:
                await uow.health.add_samples(samples)
                await uow.commit()
            return view

    def set_notice(self, notice: str | None) -> None:
        """The current public incident notice (set by the incident flow), shown on /status."""
        self.notice = notice[:300] if notice else None
        self._cache.status = public_status(self._cache.view, notice=self.notice)

    def cached_status(self) -> PublicStatus:
        return self._cache.status

    def status_for(self, member_id: int) -> PublicStatus:
        """The cached public status; one request per member per cooldown."""
        left = self._cooldown.hit(member_id)
        if left > 0:
            raise TooSoon(f"You just asked: try `/status` again in {max(1, round(left))} s.")
        return self._cache.status

    async def maintain(self) -> int:
        """Roll complete minutes up, then drop raw rows older than 48 h, aggregates than 90 d."""
        now = self._clock.now()
        minute = now.replace(second=0, microsecond=0)
        async with self._uow_factory() as uow:
            # The last complete minute is left one more minute for a late poll to land in it.
            written = await uow.health.rollup(minute - timedelta(minutes=1))
            await uow.health.prune(now - RAW_RETENTION, now - AGGREGATE_RETENTION)
            await uow.commit()
        return written

    async def maintain_job(self) -> None:
        await self.maintain()

    async def uptime(self, target: str | None = None) -> list[Uptime]:
        now = self._clock.now()
        names = [t.name for t in await self.targets()]
        if target is not None:
            if target not in names:
                raise NotFound(f"No target named `{target[:40]}`: see `/node list`.")
            names = [target]
        longest = max(span for _label, span in UPTIME_WINDOWS)
        async with self._uow_factory() as uow:
            aggregates = await uow.health.minutes(now - longest, target)
        return uptime(aggregates, now, names)

    async def chart_series(self, target: str) -> ChartSeries:
        now = self._clock.now()
        if target not in {t.name for t in await self.targets()}:
            raise NotFound(f"No target named `{target[:40]}`: see `/node list`.")
        start = now - timedelta(hours=24)
        async with self._uow_factory() as uow:
            aggregates = await uow.health.minutes(start, target)
            raw = await uow.health.recent_samples(target, now.replace(second=0, microsecond=0))
        points = [
            (a.minute, a.latency_avg_ms, a.up_samples / a.samples if a.samples else 0.0)
            for a in aggregates
        ]
        if raw:  # the minute in progress, not rolled up yet
            up = sum(1 for s in raw if s.state is not State.DOWN)
            lat = [s.latency_ms for s in raw if s.latency_ms is not None]
            points.append((raw[0].at, sum(lat) / len(lat) if lat else None, up / len(raw)))
        return ChartSeries(target, start, now, tuple(points))

    # -- the node registry (manual §3: "Core signs node registrations") ----------------------

    def _validate(
        self, name: str, endpoint: str, region: str | None
    ) -> tuple[str, str, str | None]:
        name = name.strip().lower()
        if not _NODE_NAME.match(name):
            raise InvalidInput(
                "A node name is 1–32 characters: lowercase letters, digits and `-`, "
                "starting and ending with a letter or digit."
            )
        if name in RESERVED_NAMES or name in {t.name for t in self._static}:
            raise InvalidInput(f"`{name}` is taken by a configured target: pick another name.")
        endpoint = endpoint.strip().rstrip("/")
        parts = urlsplit(endpoint)
        try:
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not port_ok
            or parts.username
            or parts.password
            or parts.query
            or parts.fragment
            or len(endpoint) > ENDPOINT_MAX
            or any(c.isspace() for c in endpoint)
        ):
            raise InvalidInput(
                "The endpoint is the node agent's base URL, e.g. `https://node7.example:8442` "
                f"(http or https, no credentials, at most {ENDPOINT_MAX} characters)."
            )
        check_url(endpoint, allow_loopback=self._allow_loopback, what="The endpoint")
        if region is not None:
            region = region.strip() or None
            if region is not None and not _REGION.match(region):
                raise InvalidInput("A region is at most 32 letters, digits, spaces, `.` or `-`.")
        return name, endpoint, region

    async def register_node(
        self, uow: UnitOfWork, *, name: str, endpoint: str, region: str | None, requested_by: int
    ) -> Registration:
        """A pending request. Asking again while pending (or after a rejection) makes a new
        request with a new id and drops the old one: a decision binds to what its message showed.
        """
        name, endpoint, region = self._validate(name, endpoint, region)
        now = self._clock.now()
        existing = await uow.health.node_named(name)
        if existing is not None:
            if existing.status is NodeStatus.APPROVED:
                raise InvalidInput(
                    f"`{name}` is already registered and approved: "
                    "`/node remove` it first to change it."
                )
            await uow.health.remove_node(existing.id)
        node = await uow.health.add_node(name, endpoint, region, requested_by, now)
        return Registration(node, existing)

    async def remember_approval_message(
        self, node_id: int, *, channel_id: int, message_id: int
    ) -> None:
        """Where a request's Approve / Reject message is (a newer request disables it)."""
        async with self._uow_factory() as uow:
            await uow.health.set_approval_message(node_id, channel_id, message_id)
            await uow.commit()

    async def decide(
        self, uow: UnitOfWork, node_id: int, *, approve: bool, decided_by: int
    ) -> tuple[RegisteredNode, bool]:
        """Approve or reject pending request `node_id`; (node, False) when already decided.

        A request that was replaced (or removed) is refused: its message showed something else.
        """
        node = await uow.health.node(node_id)
        if node is None:
            raise StaleRequest(
                f"Nothing was {'approved' if approve else 'rejected'}: request #{node_id} was "
                "replaced by a newer registration or removed, so its message no longer shows "
                "what would be decided. Check the newest request for this node and decide there."
            )
        if node.status is not NodeStatus.PENDING:
            return node, False
        status = NodeStatus.APPROVED if approve else NodeStatus.REJECTED
        return await uow.health.decide(node_id, status, decided_by, self._clock.now()), True

    async def remove_node(self, uow: UnitOfWork, name: str) -> RegisteredNode:
        node = await uow.health.node_named(name.strip().lower())
        if node is None:
            if name in {t.name for t in self._static}:
                raise InvalidInput(f"`{name}` comes from the config file: remove it there.")
            raise NotFound(f"No registered node named `{name[:40]}`.")
        await uow.health.remove_node(node.id)
        return node

    async def nodes(self) -> list[RegisteredNode]:
        async with self._uow_factory() as uow:
            nodes = await uow.health.nodes()
        return [n for n in nodes if n.status is not NodeStatus.REJECTED]

    async def pending(self) -> list[RegisteredNode]:
        async with self._uow_factory() as uow:
            return await uow.health.nodes(NodeStatus.PENDING)
