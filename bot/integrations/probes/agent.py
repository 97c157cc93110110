"""HTTP JSON probes: the Core's `GET /v1/health` and a node agent's `GET /v1/status` (§11)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp

from bot.domain.health import Figure, Target
from bot.integrations.probes.common import ProbeFailure, as_timestamp, get_json, join, pick


async def probe_core(
    session: aiohttp.ClientSession, target: Target, now: datetime
) -> dict[str, Figure]:
    return agent_figures(await get_json(session, join(target.endpoint, "/v1/health")), now)


async def probe_node(
    session: aiohttp.ClientSession, target: Target, now: datetime
) -> dict[str, Figure]:
    return agent_figures(await get_json(session, join(target.endpoint, "/v1/status")), now)


def agent_figures(body: Any, now: datetime) -> dict[str, Figure]:
    """The figures /health judges, from the keys docs/configuration.md names (and aliases)."""
    if not isinstance(body, dict):
        raise ProbeFailure("unexpected answer: not a JSON object")
    figures: dict[str, Figure] = {}
    pick(figures, "agent_status", body, ("status",), str)
    if "agent_status" not in figures and isinstance(body.get("status"), str):
        figures["agent_status"] = "unrecognised"  # free text is not shown, and is not "ok"
    pick(figures, "version", body, ("version", "agent_version"), str)
    pick(figures, "block_height", body, ("block_height", "blocks", "height"), int)
    pick(figures, "template_latency_ms", body, ("template_latency_ms",), float)
    pick(figures, "rtt_ms", body, ("rtt_ms",), float)
    pick(figures, "disk_used_percent", body, ("disk_used_percent", "disk_percent"), float)
    pick(figures, "pool_hashrate", body, ("pool_hashrate", "hashrate"), float)
    pick(figures, "pool_hashrate_24h_avg", body, ("pool_hashrate_24h_avg",), float)
    pick(figures, "share_rate", body, ("share_rate",), float)
    pick(figures, "seconds_since_share", body, ("seconds_since_last_share",), float)
    if "seconds_since_share" not in figures and "last_share_at" in body:
        last = as_timestamp(body["last_share_at"])
        if last is not None:
            figures["seconds_since_share"] = max(0.0, (now - last).total_seconds())
    return figures
