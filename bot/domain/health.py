"""Health of the network: targets, probe results, verdicts, registered nodes. Pure values."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class TargetKind(enum.StrEnum):
    """What a target is, which decides how it is probed (manual §11)."""

    CORE = "core"  # GET <url>/v1/health on the Core
    NODE = "node"  # GET <endpoint>/v1/status on a Hyper Node agent
    BITCOIND = "bitcoind"  # JSON-RPC getblockchaininfo
    LND = "lnd"  # REST /v1/getinfo + /v1/channels
    PROMETHEUS = "prometheus"  # instant queries: pool hashrate, share rate, template latency


class State(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    DOWN = "down"

    @property
    def icon(self) -> str:
        return {"ok": "✅", "warn": "⚠️", "down": "❌"}[self.value]

    @property
    def rank(self) -> int:
        return {"ok": 0, "warn": 1, "down": 2}[self.value]


@dataclass(frozen=True)
class Target:
    """Something /health probes. `endpoint` is internal: it never reaches /status."""

    name: str
    kind: TargetKind
    endpoint: str
    region: str | None = None
    registered: bool = False
    """Came from `/node register` (a member typed the endpoint): probed under the address
    rules of `bot.domain.addresses`, checked again at every connection. Config targets are
    the operator's own and are not."""


Figure = float | int | str | bool | None


@dataclass(frozen=True)
class ProbeResult:
    """What one probe saw. `ok` means the target answered sensibly; `reason` says why not.

    `figures` hold what the target reported (block height, template latency, channels, ...),
    keyed by the names in `bot.services.health`; a probe never raises, it returns this.
    """

    target: str
    kind: TargetKind
    ok: bool
    latency_ms: float | None
    at: datetime
    reason: str | None = None
    figures: Mapping[str, Figure] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """A probe result judged against the manual's baselines."""

    result: ProbeResult
    state: State
    notes: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        return self.result.target


class NodeStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class RegisteredNode:
    """A Hyper Node registration: pending until a Core Ops member approves it (manual §3).

    `id` names one request: asking again makes a new request with a new id (never reused), so
    an approval binds to exactly the name, endpoint and region its message showed.
    """

    id: int
    name: str
    endpoint: str
    region: str | None
    status: NodeStatus
    requested_by: int
    requested_at: datetime
    decided_by: int | None = None
    decided_at: datetime | None = None
    approval_channel_id: int | None = None
    approval_message_id: int | None = None
    """Where the request's Approve / Reject message is, once posted."""


@dataclass(frozen=True)
class ProbeSample:
    """One stored probe outcome (raw, kept 48 h)."""

    target: str
    at: datetime
    state: State
    latency_ms: float | None
    reason: str | None = None


@dataclass(frozen=True)
class MinuteAggregate:
    """Per-minute roll-up of the raw samples of one target (kept 90 days)."""

    target: str
    minute: datetime
    samples: int
    up_samples: int
    latency_avg_ms: float | None
    latency_max_ms: float | None


@dataclass(frozen=True)
class StatusBoard:
    """The #miners status board: what it last said (`data`, a public status as JSON), when that
    was asked for, and where the message is once posted."""

    data: dict[str, Any]
    changed_at: datetime
    version: int
    channel_id: int | None = None
    message_id: int | None = None


class HealthRepository(Protocol):
    """Node registrations and stored probe results (raw 48 h, per-minute aggregates 90 days)."""

    async def board(self) -> StatusBoard | None: ...

    async def save_board(self, data: dict[str, Any], now: datetime) -> StatusBoard: ...

    async def board_posted(self, channel_id: int, message_id: int) -> None: ...

    async def add_node(
        self, name: str, endpoint: str, region: str | None, requested_by: int, now: datetime
    ) -> RegisteredNode: ...

    async def set_approval_message(
        self, node_id: int, channel_id: int, message_id: int
    ) -> None: ...

    async def node(self, node_id: int) -> RegisteredNode | None: ...

    async def node_named(self, name: str) -> RegisteredNode | None: ...

    async def nodes(self, status: NodeStatus | None = None) -> list[RegisteredNode]: ...

    async def decide(
        self, node_id: int, status: NodeStatus, decided_by: int, now: datetime
    ) -> RegisteredNode: ...

    async def remove_node(self, node_id: int) -> None: ...

    async def add_samples(self, samples: list[ProbeSample]) -> None: ...

    async def recent_samples(self, target: str, since: datetime) -> list[ProbeSample]: ...

    async def rollup(self, before: datetime) -> int:
        """Aggregate complete minutes not aggregated yet (idempotent); returns minutes written."""
        ...

    async def prune(self, raw_before: datetime, aggregates_before: datetime) -> int: ...

    async def minutes(
        self, since: datetime, target: str | None = None
    ) -> list[MinuteAggregate]: ...
