"""Probes of the network (manual §11): HTTP JSON, bitcoind JSON-RPC, lnd REST, Prometheus.

One shared aiohttp session, a timeout per probe (one deadline for a whole fan-out) and a total
budget. A probe never raises: timeouts, refused connections, TLS mismatches, 401s and garbage
bodies all become a `ProbeResult(ok=False, reason=...)`. Reasons are for operators; they never
carry a secret, nor text from the target's body (a status code and a fixed phrase), and no
redirect is followed. One module per protocol: agent (Core, node agents), bitcoind, lnd,
prometheus.

Registered nodes (a member typed their endpoint) go through a second session whose connector
refuses forbidden addresses at connect time (`bot.integrations.outbound`), after their host was
judged as written; config targets are the operator's own and use the first.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from datetime import datetime

import aiohttp

from bot.domain.addresses import host_refusal, url_host
from bot.domain.health import Figure, ProbeResult, Target, TargetKind
from bot.domain.ports import Clock
from bot.integrations.outbound import guarded_socket_factory, refusal_of
from bot.integrations.probes.agent import probe_core, probe_node
from bot.integrations.probes.bitcoind import probe_bitcoind
from bot.integrations.probes.common import Credentials, ProbeFailure, PrometheusQueries
from bot.integrations.probes.lnd import LndProbe
from bot.integrations.probes.prometheus import probe_prometheus

log = logging.getLogger(__name__)

__all__ = ["Credentials", "ProbeRunner", "PrometheusQueries"]


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
        allow_loopback: bool = False,
    ) -> None:
        self._clock = clock
        self.allow_loopback = allow_loopback
        self._credentials = credentials or Credentials()
        self._queries = queries or PrometheusQueries()
        self.probe_timeout = probe_timeout
        self.budget = budget
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None
        self._lnd = LndProbe(self._credentials)

    def _http(self, *, guarded: bool = False) -> aiohttp.ClientSession:
        """The config targets' session, or (`guarded`) the registered nodes' one."""
        session = self._guarded if guarded else self._session
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    ttl_dns_cache=300,
                    socket_factory=guarded_socket_factory(allow_loopback=self.allow_loopback)
                    if guarded
                    else None,
                ),
                timeout=aiohttp.ClientTimeout(total=None),  # per probe: asyncio.timeout below
                headers={"User-Agent": "hh-opsbot"},
                raise_for_status=False,
            )
            if guarded:
                self._guarded = session
            else:
                self._session = session
        return session

    async def close(self) -> None:
        for session in (self._session, self._guarded):
            if session is not None:
                await session.close()
        self._session = self._guarded = None

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
        start = time.perf_counter()
        at = self._clock.now()
        try:
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.probe_timeout
            async with asyncio.timeout_at(deadline):
                figures = await self._figures(target, at)
        except TimeoutError:
            return self._down(target, f"no answer within {self.probe_timeout:g} s", None, at)
        except ProbeFailure as exc:
            return self._down(target, str(exc), _elapsed_ms(start), at)
        except aiohttp.ServerFingerprintMismatch:
            return self._down(target, "TLS certificate does not match the pinned one", None, at)
        except aiohttp.ClientConnectorCertificateError:
            return self._down(target, "TLS certificate not trusted", None, at)
        except aiohttp.ClientSSLError as exc:
            return self._down(target, f"TLS error ({_ssl_reason(exc)})", None, at)
        except aiohttp.ClientConnectorError as exc:
            refused = refusal_of(exc)
            if refused is not None:
                return self._down(target, f"address not allowed ({refused})", None, at)
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
        return ProbeResult(target.name, target.kind, True, _elapsed_ms(start), at, None, figures)

    def _down(
        self, target: Target, reason: str, latency: float | None, at: datetime | None = None
    ) -> ProbeResult:
        return ProbeResult(
            target.name, target.kind, False, latency, at or self._clock.now(), reason[:200]
        )

    async def _figures(self, target: Target, at: datetime) -> dict[str, Figure]:
        if target.registered:
            try:
                refused = host_refusal(
                    url_host(target.endpoint), allow_loopback=self.allow_loopback
                )
            except ValueError:
                refused = None  # no host: aiohttp says so
            if refused is not None:
                raise ProbeFailure(f"address not allowed ({refused})")
        session = self._http(guarded=target.registered)
        match target.kind:
            case TargetKind.CORE:
                return await probe_core(session, target, at)
            case TargetKind.NODE:
                return await probe_node(session, target, at)
            case TargetKind.BITCOIND:
                return await probe_bitcoind(session, target, self._credentials)
            case TargetKind.LND:
                return await self._lnd.probe(session, target)
            case TargetKind.PROMETHEUS:
                return await probe_prometheus(session, target, self._queries)
        raise ProbeFailure(f"no probe for {target.kind}")


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


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
