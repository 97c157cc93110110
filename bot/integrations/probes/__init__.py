"""Probes of the network (manual §11): HTTP JSON, bitcoind JSON-RPC, lnd REST, Prometheus.

One shared aiohttp session, a timeout per probe and a total budget for a fan-out. A probe never
raises: timeouts, refused connections, TLS mismatches, 401s and garbage bodies all become a
`ProbeResult(ok=False, reason=...)`. Reasons are for operators; they never carry a secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import HealthSettings, PrometheusSettings
from bot.domain.health import Figure, ProbeResult, Target, TargetKind
from bot.domain.ports import Clock

log = logging.getLogger(__name__)

BODY_MAX = 1_000_000


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

    @classmethod
    def from_settings(cls, health: HealthSettings) -> Credentials:
        return cls(
            bitcoind_user=health.bitcoind_user,
            bitcoind_password=(
                health.bitcoind_password.get_secret_value() if health.bitcoind_password else None
            ),
            bitcoind_cookie_file=health.bitcoind_cookie_file,
            lnd_macaroon_hex=(
                health.lnd_macaroon.get_secret_value() if health.lnd_macaroon else None
            ),
            lnd_macaroon_path=health.lnd_macaroon_path,
            lnd_tls_cert=health.lnd_tls_cert,
        )


@dataclass(frozen=True)
class PrometheusQueries:
    pool_hashrate: str = "sum(hh_pool_hashrate)"
    pool_hashrate_24h_avg: str = "avg_over_time(sum(hh_pool_hashrate)[24h:5m])"
    share_rate: str = "sum(rate(hh_pool_shares_accepted_total[5m]))"
    template_latency: str = "max(hh_template_latency_seconds)"

    @classmethod
    def from_settings(cls, settings: PrometheusSettings) -> PrometheusQueries:
        return cls(
            settings.pool_hashrate,
            settings.pool_hashrate_24h_avg,
            settings.share_rate,
            settings.template_latency,
        )


def static_targets(health: HealthSettings, prometheus: PrometheusSettings) -> list[Target]:
    """The targets named in the config file."""
    targets = []
    if health.core_url:
        targets.append(Target("core", TargetKind.CORE, health.core_url))
    if health.bitcoind_url:
        targets.append(Target("bitcoind", TargetKind.BITCOIND, health.bitcoind_url))
    if health.lnd_url:
        targets.append(Target("lnd", TargetKind.LND, health.lnd_url))
    if prometheus.url:
        targets.append(Target("prometheus", TargetKind.PROMETHEUS, prometheus.url))
    for node in health.nodes:
        targets.append(Target(node.name, TargetKind.NODE, node.endpoint, node.region))
    return targets


class ProbeRunner:
    """Implements the `Prober` port. Create once; `close()` at shutdown."""

    def __init__(
        self,
        clock: Clock,
        *,
        credentials: Credentials | None = None,
        queries: PrometheusQueries | None = None,
        probe_timeout: float = 2.0,
        budget: float = 5.0,
        max_connections: int = 1000,
    ) -> None:
        self._clock = clock
        self._credentials = credentials or Credentials()
        self._queries = queries or PrometheusQueries()
        self.probe_timeout = probe_timeout
        self.budget = budget
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._pins: dict[Path, aiohttp.Fingerprint] = {}

    @classmethod
    def from_settings(
        cls, clock: Clock, health: HealthSettings, prometheus: PrometheusSettings
    ) -> ProbeRunner:
        return cls(
            clock,
            credentials=Credentials.from_settings(health),
            queries=PrometheusQueries.from_settings(prometheus),
            probe_timeout=health.probe_timeout,
            budget=health.budget,
            max_connections=health.max_connections,
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None),  # per probe: asyncio.timeout below
                headers={"User-Agent": "hh-opsbot"},
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- fan-out ------------------------------------------------------------------------------

    async def probe_all(self, targets: list[Target]) -> list[ProbeResult]:
        """Every target concurrently; whatever has not answered when the budget ends is ❌."""
        if not targets:
            return []
        # One deadline for the whole fan-out: a probe started late (1,000 connections take a
        # while to open) does not push the end past `probe_timeout` after the start.
        deadline = asyncio.get_running_loop().time() + self.probe_timeout
        tasks = [
            asyncio.create_task(self.probe(t, deadline=deadline), name=f"probe {t.name}")
            for t in targets
        ]
        done, pending = await asyncio.wait(tasks, timeout=self.budget)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        results = []
        for target, task in zip(targets, tasks, strict=True):
            if task in done and not task.cancelled() and task.exception() is None:
                results.append(task.result())
            else:
                results.append(
                    self._down(target, f"no answer within the {self.budget:g} s budget", None)
                )
        return results

    async def probe(self, target: Target, *, deadline: float | None = None) -> ProbeResult:
        """One target within `probe_timeout` (or by `deadline`); never raises but cancellation."""
        probes: dict[TargetKind, Callable[[Target], Awaitable[dict[str, Figure]]]] = {
            TargetKind.CORE: self._core,
            TargetKind.NODE: self._node,
            TargetKind.BITCOIND: self._bitcoind,
            TargetKind.LND: self._lnd,
            TargetKind.PROMETHEUS: self._prometheus,
        }
        start = time.perf_counter()
        at = self._clock.now()
        try:
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.probe_timeout
            async with asyncio.timeout_at(deadline):
                figures = await probes[target.kind](target)
        except TimeoutError:
            return self._down(target, f"no answer within {self.probe_timeout:g} s", None, at)
        except ProbeFailure as exc:
            return self._down(target, str(exc), _ms(start), at)
        except aiohttp.ServerFingerprintMismatch:
            return self._down(target, "TLS certificate does not match the pinned one", None, at)
        except aiohttp.ClientConnectorCertificateError:
            return self._down(target, "TLS certificate not trusted", None, at)
        except aiohttp.ClientSSLError as exc:
            return self._down(target, f"TLS error ({_ssl_reason(exc)})", None, at)
        except aiohttp.ClientConnectorError as exc:
            return self._down(target, _connect_reason(exc), None, at)
        except aiohttp.ServerDisconnectedError:
            return self._down(target, "connection closed without an answer", None, at)
        except aiohttp.ClientPayloadError:
            return self._down(target, "broken answer (payload error)", None, at)
        except aiohttp.ClientError as exc:
            return self._down(target, f"HTTP client error ({type(exc).__name__})", None, at)
        except OSError as exc:
            return self._down(
                target, f"network error ({exc.strerror or type(exc).__name__})", None, at
            )
        except Exception as exc:  # a probe must never take /health down with it
            log.warning("probe of %s failed unexpectedly (%s)", target.name, type(exc).__name__)
            return self._down(target, f"probe failed ({type(exc).__name__})", None, at)
        return ProbeResult(target.name, target.kind, True, _ms(start), at, None, figures)

    def _down(
        self, target: Target, reason: str, latency: float | None, at: datetime | None = None
    ) -> ProbeResult:
        return ProbeResult(
            target.name, target.kind, False, latency, at or self._clock.now(), reason[:200]
        )

    # -- HTTP JSON: Core /v1/health, node agent /v1/status ------------------------------------

    async def _get_json(
        self, url: str, *, headers: Mapping[str, str] | None = None, ssl_: Any = True
    ) -> Any:
        async with self._http().get(url, headers=headers, ssl=ssl_) as resp:
            body = await resp.content.read(BODY_MAX + 1)
            if resp.status == 401:
                raise ProbeFailure("authentication refused (HTTP 401)")
            if resp.status != 200:
                raise ProbeFailure(f"HTTP {resp.status}{_error_hint(body)}")
        return _json(body)

    async def _core(self, target: Target) -> dict[str, Figure]:
        return self._agent_figures(await self._get_json(_path(target.endpoint, "/v1/health")))

    async def _node(self, target: Target) -> dict[str, Figure]:
        return self._agent_figures(await self._get_json(_path(target.endpoint, "/v1/status")))

    def _agent_figures(self, body: Any) -> dict[str, Figure]:
        if not isinstance(body, dict):
            raise ProbeFailure("unexpected answer: not a JSON object")
        figures: dict[str, Figure] = {}
        _pick(figures, "agent_status", body, ("status",), str)
        _pick(figures, "block_height", body, ("block_height", "blocks", "height"), int)
        _pick(figures, "template_latency_ms", body, ("template_latency_ms",), float)
        _pick(figures, "rtt_ms", body, ("rtt_ms",), float)
        _pick(figures, "disk_used_percent", body, ("disk_used_percent", "disk_percent"), float)
        _pick(figures, "pool_hashrate", body, ("pool_hashrate", "hashrate"), float)
        _pick(figures, "pool_hashrate_24h_avg", body, ("pool_hashrate_24h_avg",), float)
        _pick(figures, "share_rate", body, ("share_rate",), float)
        _pick(figures, "seconds_since_share", body, ("seconds_since_last_share",), float)
        if "seconds_since_share" not in figures and "last_share_at" in body:
            last = _timestamp(body["last_share_at"])
            if last is not None:
                figures["seconds_since_share"] = max(
                    0.0, (self._clock.now() - last).total_seconds()
                )
        return figures

    # -- bitcoind JSON-RPC 1.0 ----------------------------------------------------------------

    async def _bitcoind_auth(self) -> str:
        creds = self._credentials
        if creds.bitcoind_cookie_file is not None:
            try:
                cookie = await asyncio.to_thread(
                    creds.bitcoind_cookie_file.read_text, encoding="utf-8"
                )
            except (OSError, UnicodeDecodeError):
                raise ProbeFailure("cannot read the bitcoind cookie file") from None
            user, sep, password = cookie.strip().partition(":")
            if not sep:
                raise ProbeFailure("the bitcoind cookie file is not user:password")
            return _basic(user, password)
        if creds.bitcoind_user is None or creds.bitcoind_password is None:
            raise ProbeFailure("no bitcoind credentials configured")
        return _basic(creds.bitcoind_user, creds.bitcoind_password)

    async def _bitcoind(self, target: Target) -> dict[str, Figure]:
        headers = {"Authorization": await self._bitcoind_auth()}
        payload = {"jsonrpc": "1.0", "id": "hh-opsbot", "method": "getblockchaininfo", "params": []}
        async with self._http().post(target.endpoint, json=payload, headers=headers) as resp:
            body = await resp.content.read(BODY_MAX + 1)
            if resp.status == 401:
                raise ProbeFailure("authentication refused (HTTP 401)")
            if resp.status == 403:
                raise ProbeFailure("RPC forbidden (HTTP 403): check rpcallowip")
        # bitcoind answers RPC errors with HTTP 500/404 and a JSON body: read the error object.
        data = _json(body)
        if not isinstance(data, dict) or "result" not in data or "error" not in data:
            raise ProbeFailure(f"unexpected answer: not a JSON-RPC reply (HTTP {resp.status})")
        error = data.get("error")
        if error is not None:
            if isinstance(error, dict):
                code, message = error.get("code"), str(error.get("message", ""))[:100]
                raise ProbeFailure(f"RPC error {code}: {message}")
            raise ProbeFailure("RPC error")
        result = data["result"]
        if not isinstance(result, dict):
            raise ProbeFailure("unexpected answer: getblockchaininfo result is not an object")
        figures: dict[str, Figure] = {}
        _pick(figures, "block_height", result, ("blocks",), int)
        _pick(figures, "headers", result, ("headers",), int)
        _pick(figures, "chain", result, ("chain",), str)
        _pick(figures, "verification_progress", result, ("verificationprogress",), float)
        if isinstance(result.get("initialblockdownload"), bool):
            figures["initial_block_download"] = result["initialblockdownload"]
        if "block_height" not in figures:
            raise ProbeFailure("unexpected answer: no block count")
        return figures

    # -- lnd REST -----------------------------------------------------------------------------

    async def _macaroon(self) -> str:
        creds = self._credentials
        if creds.lnd_macaroon_path is not None:
            try:
                raw = await asyncio.to_thread(creds.lnd_macaroon_path.read_bytes)
            except OSError:
                raise ProbeFailure("cannot read the lnd macaroon file") from None
            return binascii.hexlify(raw).decode()
        if creds.lnd_macaroon_hex:
            return creds.lnd_macaroon_hex
        raise ProbeFailure("no lnd macaroon configured")

    async def _pin(self) -> Any:
        path = self._credentials.lnd_tls_cert
        if path is None:
            return True  # plain http (tests, or lnd behind a local proxy) or system trust
        if path not in self._pins:
            try:
                pem = await asyncio.to_thread(path.read_text, encoding="ascii")
                der = ssl.PEM_cert_to_DER_cert(pem)
            except (OSError, ValueError, UnicodeDecodeError):
                raise ProbeFailure("cannot read the pinned lnd TLS certificate") from None
            self._pins[path] = aiohttp.Fingerprint(hashlib.sha256(der).digest())
        return self._pins[path]

    async def _lnd(self, target: Target) -> dict[str, Figure]:
        headers = {"Grpc-Metadata-macaroon": await self._macaroon()}
        pin = await self._pin() if target.endpoint.startswith("https") else True
        info, channels = await asyncio.gather(
            self._get_json(_path(target.endpoint, "/v1/getinfo"), headers=headers, ssl_=pin),
            self._get_json(_path(target.endpoint, "/v1/channels"), headers=headers, ssl_=pin),
        )
        if not isinstance(info, dict) or not isinstance(channels, dict):
            raise ProbeFailure("unexpected answer: not a JSON object")
        figures: dict[str, Figure] = {}
        _pick(figures, "block_height", info, ("block_height",), int)
        _pick(figures, "active_channels", info, ("num_active_channels",), int)
        if isinstance(info.get("synced_to_chain"), bool):
            figures["synced_to_chain"] = info["synced_to_chain"]
        items = channels.get("channels", [])
        if not isinstance(items, list):
            raise ProbeFailure("unexpected answer: channels is not a list")
        capacity = local = 0
        for channel in items:
            if isinstance(channel, dict):
                capacity += _int(channel.get("capacity"))
                local += _int(channel.get("local_balance"))
        figures["channels"] = len(items)
        figures["capacity_sat"] = capacity
        figures["local_balance_sat"] = local
        return figures

    # -- Prometheus instant queries -----------------------------------------------------------

    async def _query(self, base: str, query: str) -> float | None:
        url = _path(base, "/api/v1/query")
        async with self._http().get(url, params={"query": query}) as resp:
            body = await resp.content.read(BODY_MAX + 1)
            status = resp.status
        data = _json(body)
        if not isinstance(data, dict):
            raise ProbeFailure("unexpected answer: not a JSON object")
        if data.get("status") != "success":
            raise ProbeFailure(f"query failed (HTTP {status}, {str(data.get('errorType'))[:40]})")
        result = data.get("data", {})
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

    async def _prometheus(self, target: Target) -> dict[str, Figure]:
        q = self._queries
        named = {
            "pool_hashrate": q.pool_hashrate,
            "pool_hashrate_24h_avg": q.pool_hashrate_24h_avg,
            "share_rate": q.share_rate,
            "template_latency_ms": q.template_latency,
        }
        values = await asyncio.gather(*(self._query(target.endpoint, v) for v in named.values()))
        figures: dict[str, Figure] = {}
        for name, value in zip(named, values, strict=True):
            if value is not None:
                figures[name] = value * 1000 if name == "template_latency_ms" else value
        return figures


# -- helpers -----------------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _path(base: str, path: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(path) else base + path


def _json(body: bytes) -> Any:
    if len(body) > BODY_MAX:
        raise ProbeFailure("answer too large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ProbeFailure("garbage answer: not JSON") from None


def _error_hint(body: bytes) -> str:
    """A bitcoind/lnd error message if the body has one (short, operator-facing)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(data, dict):
        for key in ("message", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return f": {value[:80]}"
    return ""


def _pick(
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
            if isinstance(value, str):
                out[name] = value[:64]
                return
            continue
        if isinstance(value, int | float) or (isinstance(value, str) and _numeric(value)):
            number = float(value)
            out[name] = int(number) if kind is int else number
            return


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _int(value: object) -> int:
    """lnd's REST gateway sends int64 fields as strings."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0


def _timestamp(value: object) -> datetime | None:
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


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect ({os_error.strerror or type(os_error).__name__})"


def _ssl_reason(exc: aiohttp.ClientSSLError) -> str:
    inner = getattr(exc, "os_error", None)
    if isinstance(inner, ssl.SSLError) and inner.reason:
        return str(inner.reason)[:60]
    return type(exc).__name__


__all__ = [
    "Credentials",
    "ProbeRunner",
    "PrometheusQueries",
    "static_targets",
]
