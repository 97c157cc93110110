"""Health rules: probe results judged against the manual's baselines, /status, the node registry.

The judgement functions are pure (a probe result in, a verdict out) so each baseline is a unit
test with fixed inputs. Manual §16: template latency < 50 ms, RTT < 250 ms, uptime >= 99.9 %;
§5: channel capacity < 0.1 BTC, disk > 85 %, hashrate drop > 20 % from the 24 h average.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from bot.domain.addresses import check_url
from bot.domain.baselines import SHARE_STALE_SECONDS
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.health import (
    NodeStatus,
    ProbeSample,
    RegisteredNode,
    State,
    StatusBoard,
    Target,
    TargetKind,
)
from bot.domain.outbox import OutboxKind
from bot.domain.ports import Clock, Prober, UnitOfWork
from bot.domain.public_status import (
    Cooldown,
    NodeAnswer,
    Overview,
    PublicStatus,
    board_fingerprint,
    node_answer,
    overview,
    public_status,
    status_from_data,
    status_to_data,
)
from bot.domain.roles import Actor
from bot.domain.uptime import UPTIME_WINDOWS, ChartSeries, Uptime, uptime
from bot.services.audit import AuditService
from bot.services.outbox import OutboxService

log = logging.getLogger(__name__)

UowFactory = Callable[[], UnitOfWork]

# -- baselines (manual §5, §16) ---------------------------------------------------------------

RAW_RETENTION = timedelta(hours=48)
AGGREGATE_RETENTION = timedelta(days=90)

RESERVED_NAMES = frozenset(kind.value for kind in TargetKind) - {"node"}
_NODE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_REGION = re.compile(r"^[\w .-]{1,32}$")
ENDPOINT_MAX = 200


# -- judgement ---------------------------------------------------------------------------------


# -- formatting helpers shared by /health and /status ----------------------------------------


# -- overview ----------------------------------------------------------------------------------


# -- /status: the public view ------------------------------------------------------------------


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
        board_interval: float = 60.0,
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
        self._audit = AuditService(clock)
        self.notice: str | None = None
        self._board_interval = timedelta(seconds=board_interval)
        self._outbox: OutboxService | None = None

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

    def use_outbox(self, outbox: OutboxService) -> None:
        """The outbox the #miners board is delivered through (built after this service)."""
        self._outbox = outbox

    # -- the #miners status board --------------------------------------------------------------

    async def refresh_board(self) -> bool:
        """After a poll: when what the board says changed, and not within `board_interval` of
        the last change, store what it says and enqueue its edit. True when enqueued."""
        status = self._cache.status
        if self._outbox is None or status.pool == "unknown":
            return False  # nothing measured yet: the board would say nothing
        now = self._clock.now()
        async with self._uow_factory() as uow:
            board = await uow.health.board()
            if board is not None:
                if board_fingerprint(status_from_data(board.data)) == board_fingerprint(status):
                    return False
                if now - board.changed_at < self._board_interval:
                    return False
            saved = await uow.health.save_board(status_to_data(status), now)
            await self._outbox.enqueue(
                uow,
                OutboxKind.STATUS_BOARD,
                {"version": saved.version},
                ordering_key="status:board",
            )
            await uow.commit()
        self._outbox.wake()
        return True

    async def board(self) -> StatusBoard | None:
        async with self._uow_factory() as uow:
            return await uow.health.board()

    async def board_posted(self, *, channel_id: int, message_id: int) -> None:
        """Where the board is, so later edits (and a restart) find it."""
        async with self._uow_factory() as uow:
            await uow.health.board_posted(channel_id, message_id)
            await uow.commit()

    async def node_status_for(self, member_id: int, name: str) -> NodeAnswer:
        """`/status node:<name>`: up or not, by public name; unknown and unapproved names get
        the same neutral answer. Counts against the member's /status cooldown."""
        left = self._cooldown.hit(member_id)
        if left > 0:
            raise TooSoon(f"You just asked: try `/status` again in {max(1, round(left))} s.")
        approved = {t.name for t in await self.targets() if t.kind is TargetKind.NODE}
        return node_answer(self._cache.view, name, approved)

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

    # -- the node registry's use cases: each its own transaction and audit row ------------------

    async def request_node(
        self, actor: Actor, *, name: str, endpoint: str, region: str | None
    ) -> Registration:
        """`/node register`: a pending request for Core Ops to approve, audited."""
        async with self._uow_factory() as uow:
            registration = await self.register_node(
                uow, name=name, endpoint=endpoint, region=region, requested_by=_member(actor)
            )
            node, replaced = registration.node, registration.replaced
            await self._audit.record(
                uow,
                actor,
                "node register",
                target=node.name,
                details={
                    "node": node.name,
                    "endpoint": node.endpoint,
                    "region": node.region,
                    "request": node.id,
                    "replaces": replaced.id if replaced else None,
                },
            )
            await uow.commit()
        return registration

    async def decide_request(
        self, actor: Actor, node_id: int, *, approve: bool
    ) -> tuple[RegisteredNode, bool]:
        """Approve or Reject on a request's message; (node, False) when already decided."""
        async with self._uow_factory() as uow:
            node, changed = await self.decide(
                uow, node_id, approve=approve, decided_by=_member(actor)
            )
            if changed:
                await self._audit.record(
                    uow,
                    actor,
                    "node:approve" if approve else "node:reject",
                    target=node.name,
                    details={"node": node.name, "endpoint": node.endpoint, "request": node.id},
                )
            await uow.commit()
        return node, changed

    async def remove(self, actor: Actor, name: str) -> RegisteredNode:
        """`/node remove`: out of the registry (and of /health), audited."""
        async with self._uow_factory() as uow:
            node = await self.remove_node(uow, name)
            await self._audit.record(
                uow,
                actor,
                "node remove",
                target=node.name,
                details={"node": node.name, "endpoint": node.endpoint, "was": node.status.value},
            )
            await uow.commit()
        return node

    # -- the steps, inside a caller's transaction ------------------------------------------------

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


def _member(actor: Actor) -> int:
    """The member behind a registry decision (the scheduler never makes one)."""
    if actor.id is None:
        raise InvalidInput("Only a member can register or decide on nodes.")
    return actor.id
