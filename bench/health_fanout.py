"""Benchmark: /health over 1,000 loopback node agents, 10 % of which never answer.

The target (issue 6): the whole fan-out finishes within the probe timeout + 0.5 s. Measures the
service path /health runs (targets from the database, concurrent probes, judgement, paged
embeds) and writes p50/p99 total time and peak memory to docs/benchmarks.md.

    .venv/bin/python bench/health_fanout.py [--nodes 1000] [--silent 0.1] [--rounds 10]

Bounded: a fixed number of rounds, each bounded by the probe budget. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.domain.clock import SystemClock  # noqa: E402
from bot.domain.health import Target, TargetKind  # noqa: E402
from bot.integrations.probes import ProbeRunner  # noqa: E402
from bot.services.health import HealthService  # noqa: E402
from bot.storage import migrations  # noqa: E402
from bot.storage.database import Database  # noqa: E402
from cogs.health.render import overview_pages  # noqa: E402

SECTION = "## health_fanout: /health over 1,000 nodes, 10 % silent"
BODY = {
    "status": "ok",
    "block_height": 871234,
    "template_latency_ms": 11.0,
    "disk_used_percent": 40,
    "seconds_since_last_share": 3,
}


async def start_agents(count: int) -> tuple[web.AppRunner, list[int]]:
    async def status(_request: web.Request) -> web.Response:
        return web.json_response(BODY)

    app = web.Application()
    app.router.add_get("/v1/status", status)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    ports = []
    for _ in range(count):
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=128)
        await site.start()
        server = site._server
        assert server is not None
        ports.append(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    return runner, ports


async def start_silent(count: int) -> tuple[list[asyncio.Server], list[int]]:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        except ConnectionError:
            pass
        finally:
            writer.close()

    servers, ports = [], []
    for _ in range(count):
        server = await asyncio.start_server(hang, "127.0.0.1", 0)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    return servers, ports


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))


def serve_network(answering: int, silent: int, conn: Connection, stop: Event) -> None:
    """The network, in its own process (the nodes are not in the bot's event loop)."""
    raise_fd_limit()

    async def run() -> None:
        agents, agent_ports = await start_agents(answering)
        silent_servers, silent_ports = await start_silent(silent)
        conn.send((agent_ports, silent_ports))
        await asyncio.to_thread(stop.wait, 3600)  # bounded: an hour at most
        for server in silent_servers:
            server.close()
        await agents.cleanup()

    asyncio.run(run())


async def main(nodes: int, silent_share: float, rounds: int, probe_timeout: float) -> str:
    raise_fd_limit()
    silent = int(nodes * silent_share)
    parent, child = multiprocessing.Pipe()
    stop = multiprocessing.Event()
    network = multiprocessing.Process(
        target=serve_network, args=(nodes - silent, silent, child, stop), daemon=True
    )
    network.start()
    if not parent.poll(120):
        network.kill()
        raise SystemExit("the loopback network did not start within 120 s")
    agent_ports, silent_ports = parent.recv()
    targets = [
        Target(f"node-{i:04d}", TargetKind.NODE, f"http://127.0.0.1:{port}")
        for i, port in enumerate(agent_ports + silent_ports)
    ]
    database = Database.from_url("sqlite+aiosqlite:///:memory:")
    await migrations.upgrade(database.engine)
    clock = SystemClock()
    timeout = probe_timeout
    prober = ProbeRunner(clock, probe_timeout=timeout, budget=timeout + 3, max_connections=nodes)
    service = HealthService(database.uow, clock, prober, targets)
    durations: list[float] = []
    peaks: list[int] = []
    pages = 0
    down = 0
    try:
        await service.check()  # warm-up (imports, connector), not counted
        for _ in range(rounds):
            start = time.perf_counter()
            view = await service.check()
            embeds = overview_pages(view)
            durations.append(time.perf_counter() - start)
            pages = len(embeds)
            down = sum(1 for v in view.verdicts if not v.result.ok)
        # Memory in separate rounds: tracemalloc slows allocation, so it is not timed.
        for _ in range(min(rounds, 3)):
            tracemalloc.start()
            overview_pages(await service.check())
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    finally:
        await prober.close()
        await database.close()
        stop.set()
        network.join(timeout=10)
        if network.is_alive():
            network.kill()
    median_mb, max_mb = statistics.median(peaks) / 1e6, max(peaks) / 1e6
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50, p99 = percentile(durations, 0.50), percentile(durations, 0.99)
    limit = timeout + 0.5
    verdict = "✅ within" if max(durations) <= limit else "❌ over"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{SECTION}

`bench/health_fanout.py --nodes {nodes} --silent {silent_share} --rounds {rounds}`, measured {now}
on {platform.machine()} / Python {platform.python_version()} (2 shared cores).
{nodes - silent} node agents answer `/v1/status` (aiohttp, one listening socket each) and {silent}
accept the connection and never answer, all in a second process on 127.0.0.1; probe timeout
{timeout:g} s. Each round is what
`/health` runs: targets, {nodes} concurrent probes over one shared session, judgement, paged
embeds ({pages} pages).

| figure | value |
| --- | --- |
| total time p50 | {p50:.3f} s |
| total time p99 | {p99:.3f} s |
| slowest round | {max(durations):.3f} s ({verdict} the target: timeout + 0.5 s = {limit:g} s) |
| targets ❌ per round | {down} (the silent ones, "no answer within {timeout:g} s") |
| peak Python memory per round (tracemalloc) | {median_mb:.1f} MB (median), {max_mb:.1f} MB (max) |
| bot process max RSS | {maxrss_mb:.0f} MB |
"""


def write_section(text: str, path: Path) -> None:
    """Replace this benchmark's section, keep the others."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if SECTION in existing:
        before, _, after = existing.partition(SECTION)
        rest = after.split("\n## ", 1)
        tail = "\n## " + rest[1] if len(rest) > 1 else ""
        existing = before.rstrip() + "\n\n" + text.rstrip() + "\n" + tail
    else:
        existing = existing.rstrip() + "\n\n" + text
    path.write_text(existing.rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--silent", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    report = asyncio.run(main(args.nodes, args.silent, min(args.rounds, 100), args.timeout))
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_section(report, args.out)
