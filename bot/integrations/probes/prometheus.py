"""Prometheus instant queries (`GET /api/v1/query`): pool hashrate, share rate, template latency."""

from __future__ import annotations

import asyncio

import aiohttp

from bot.domain.health import Figure, Target
from bot.integrations.probes.common import (
    BODY_MAX,
    ProbeFailure,
    PrometheusQueries,
    check_status,
    join,
    parse_json,
)


async def instant(session: aiohttp.ClientSession, base: str, query: str) -> float | None:
    """The first sample's value; None when the query matches nothing."""
    async with session.get(
        join(base, "/api/v1/query"), params={"query": query}, allow_redirects=False
    ) as resp:
        body = await resp.content.read(BODY_MAX + 1)
        status = resp.status
    if 300 <= status < 400:
        check_status(status)
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ProbeFailure("unexpected answer: not a JSON object")
    if data.get("status") != "success":
        raise ProbeFailure(f"query failed (HTTP {status}, {str(data.get('errorType'))[:40]})")
    result = data.get("data")
    if not isinstance(result, dict):
        raise ProbeFailure("unexpected answer: no data")
    kind, value = result.get("resultType"), result.get("result")
    if kind == "vector" and isinstance(value, list):
        if not value:
            return None
        sample = value[0].get("value") if isinstance(value[0], dict) else None
    elif kind == "scalar":
        sample = value
    else:
        raise ProbeFailure(f"unexpected query result type {str(kind)[:20]}")
    if not isinstance(sample, list) or len(sample) != 2:
        raise ProbeFailure("unexpected answer: malformed sample")
    try:
        return float(sample[1])
    except (TypeError, ValueError):
        raise ProbeFailure("unexpected answer: sample is not a number") from None


async def probe_prometheus(
    session: aiohttp.ClientSession, target: Target, queries: PrometheusQueries
) -> dict[str, Figure]:
    named = {
        "pool_hashrate": queries.pool_hashrate,
        "pool_hashrate_24h_avg": queries.pool_hashrate_24h_avg,
        "share_rate": queries.share_rate,
        "template_latency_ms": queries.template_latency,
    }
    values = await asyncio.gather(*(instant(session, target.endpoint, q) for q in named.values()))
    figures: dict[str, Figure] = {}
    for name, value in zip(named, values, strict=True):
        if value is not None:
            figures[name] = value * 1000 if name == "template_latency_ms" else value
    return figures
