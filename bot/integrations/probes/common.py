"""What every probe shares: the failure type, credentials, body parsing and figure picking."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp

from bot.domain.health import Figure

BODY_MAX = 1_000_000
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
"""The only text a target's body may put in a figure (a version, a status word, a chain name):
no spaces, no URLs, nothing that reads as an instruction in #operations."""


class ProbeFailure(Exception):
    """A probe's own way of saying ❌; the message is the operator-facing reason."""


@dataclass(frozen=True)
class Credentials:
    """What the probes need besides URLs; read from the config, files read at probe time."""

    bitcoind_user: str | None = None
    bitcoind_password: str | None = None
    bitcoind_cookie_file: Path | None = None
    lnd_macaroon_hex: str | None = None
    lnd_macaroon_path: Path | None = None
    lnd_tls_cert: Path | None = None


@dataclass(frozen=True)
class PrometheusQueries:
    pool_hashrate: str = "sum(hh_pool_hashrate)"
    pool_hashrate_24h_avg: str = "avg_over_time(sum(hh_pool_hashrate)[24h:5m])"
    share_rate: str = "sum(rate(hh_pool_shares_accepted_total[5m]))"
    template_latency: str = "max(hh_template_latency_seconds)"


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    ssl: Any = True,
) -> Any:
    """GET a JSON body (at most BODY_MAX bytes); a non-200 answer is a ProbeFailure."""
    async with session.get(url, headers=headers, ssl=ssl, allow_redirects=False) as resp:
        check_status(resp.status)
        body = await resp.content.read(BODY_MAX + 1)
    return parse_json(body)


def status_text(status: int) -> str:
    """`HTTP 502 Bad Gateway`: the code and the standard's phrase, never the server's text."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def check_status(status: int) -> None:
    """Anything but 200 is a ProbeFailure with a fixed reason; redirects are not followed."""
    if status == 200:
        return
    if 300 <= status < 400:
        raise ProbeFailure(f"{status_text(status)}: redirect not followed")
    if status == 401:
        raise ProbeFailure("authentication refused (HTTP 401)")
    raise ProbeFailure(status_text(status))


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def join(base: str, path: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(path) else base + path


def parse_json(body: bytes) -> Any:
    if len(body) > BODY_MAX:
        raise ProbeFailure("answer too large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ProbeFailure("garbage answer: not JSON") from None


def pick(
    out: dict[str, Figure],
    name: str,
    body: Mapping[str, Any],
    keys: tuple[str, ...],
    kind: type[int] | type[float] | type[str],
) -> None:
    for key in keys:
        value = body.get(key)
        if value is None or isinstance(value, bool):
            continue
        if kind is str:
            if isinstance(value, str) and TOKEN.match(value):
                out[name] = value
                return
            continue
        if isinstance(value, int | float) or (isinstance(value, str) and is_numeric(value)):
            number = float(value)
            out[name] = int(number) if kind is int else number
            return


def is_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_int(value: object) -> int:
    """lnd's REST gateway sends int64 fields as strings."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0


def as_timestamp(value: object) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
