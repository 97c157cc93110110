"""The Prometheus probe against a real Prometheus (Debian package `prometheus`) on loopback,
scraping a loopback exporter (prometheus-client) that plays the pool."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from bot.domain.baselines import judge
from bot.domain.health import ProbeResult, State, Target, TargetKind
from bot.integrations.probes import ProbeRunner, PrometheusQueries
from tests.harness.binaries import require_binary
from tests.harness.clocks import FakeClock
from tests.harness.waiting import eventually_async
from tests.harness.world import free_port


@pytest.fixture(scope="module", autouse=True)
def prometheus_binary() -> str:
    return require_binary("prometheus", package="prometheus")


@pytest.fixture(scope="module")
def exporter() -> Iterator[int]:
    registry = CollectorRegistry()
    Gauge("hh_pool_hashrate", "pool hashrate (H/s)", registry=registry).set(1.5e15)
    Gauge("hh_template_latency_seconds", "template latency", registry=registry).set(0.012)
    shares = Counter("hh_pool_shares_accepted", "accepted shares", registry=registry)
    shares.inc(1000)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus(
    exporter: int, prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("prometheus")
    config = root / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: pool\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter}']\n"
    )
    port = free_port()
    log = (root / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


QUERIES = PrometheusQueries(
    pool_hashrate="sum(hh_pool_hashrate)",
    pool_hashrate_24h_avg="avg_over_time(hh_pool_hashrate[24h])",
    share_rate="sum(rate(hh_pool_shares_accepted_total[1m]))",
    template_latency="max(hh_template_latency_seconds)",
)


@pytest.fixture
async def runner(clock: FakeClock) -> AsyncIterator[ProbeRunner]:
    probes = ProbeRunner(clock, queries=QUERIES, probe_timeout=2.0)
    yield probes
    await probes.close()


async def test_instant_queries_against_real_prometheus(
    runner: ProbeRunner, prometheus: str
) -> None:
    target = Target("prometheus", TargetKind.PROMETHEUS, prometheus)

    async def scraped() -> ProbeResult | None:
        """Prometheus is up and has scraped the exporter."""
        result = await runner.probe(target)
        return (
            result
            if result.ok and {"pool_hashrate", "share_rate"} <= result.figures.keys()
            else None
        )

    result = await eventually_async(scraped, 30, "Prometheus to scrape the exporter", poll=0.1)
    assert result.figures["pool_hashrate"] == 1.5e15
    assert result.figures["template_latency_ms"] == pytest.approx(12.0)
    assert result.figures["pool_hashrate_24h_avg"] == 1.5e15
    # The counter never moves here: no share accepted in the last minute is worth a ⚠️.
    assert result.figures["share_rate"] == 0.0
    verdict = judge(result)
    assert verdict.state is State.WARN
    assert verdict.notes == ("no shares accepted",)


async def test_bad_query_is_down_with_a_reason(clock: FakeClock, prometheus: str) -> None:
    probes = ProbeRunner(clock, queries=PrometheusQueries(pool_hashrate="sum(("), probe_timeout=2.0)
    try:
        target = Target("prometheus", TargetKind.PROMETHEUS, prometheus)

        async def answered() -> ProbeResult | None:
            result = await probes.probe(target)
            return result if result.reason != "connection refused" else None

        result = await eventually_async(answered, 30, "Prometheus to listen", poll=0.1)
    finally:
        await probes.close()
    assert not result.ok
    assert result.reason == "query failed (HTTP 400, bad_data)"
