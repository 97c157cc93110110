"""What this machine itself allows: the floor under the alert storm's latency figures.

    .venv/bin/python -m bench.floor            # both measures, about 20 s

1. CPU steadiness: one process repeats a fixed piece of pure-Python work (about 1.5 ms) for
   `--seconds`, sleeping 2 ms between pieces, and reports how long the pieces took. On a quiet,
   dedicated CPU they all take the same time; on a virtual machine whose host lends its CPUs
   elsewhere, some take several times longer, with the process never descheduled by this
   kernel (counted as the process's own CPU time).
2. A webhook server that does nothing: `bench.senders` (the alert storm's senders, same bodies,
   same rate) against an aiohttp server in its own process that reads each body, validates it
   with the bot's own pydantic model and answers 200. No database, no Discord: whatever
   latency it shows, the bot cannot go under.

Loopback only; bounded by time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.world import free_port  # noqa: E402


@dataclass
class Steadiness:
    pieces: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    slow: int
    """Pieces over three times the median."""
    slow_descheduled: int
    """Of those, how many this kernel switched away from (the rest ran slow on the CPU)."""


def _piece() -> int:
    total = 0
    for i in range(20_000):
        total += i * i
    return total


def cpu_steadiness(seconds: float) -> Steadiness:
    durations: list[tuple[float, int]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        switched = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
        start = time.perf_counter()
        _piece()
        took = time.perf_counter() - start
        switched = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switched
        durations.append((took * 1000, switched))
        time.sleep(0.002)
    ordered = sorted(d for d, _ in durations)
    median = ordered[len(ordered) // 2]
    slow = [(d, s) for d, s in durations if d > 3 * median]
    return Steadiness(
        pieces=len(ordered),
        p50_ms=median,
        p99_ms=ordered[int(len(ordered) * 0.99)],
        max_ms=ordered[-1],
        slow=len(slow),
        slow_descheduled=sum(1 for _, s in slow if s),
    )


SERVER = """
import sys
from aiohttp import web
sys.path.insert(0, sys.argv[2])
from bot.domain.alerts import WebhookPayload

async def handle(request):
    payload = WebhookPayload.model_validate_json(await request.read())
    return web.json_response({"status": "accepted", "alerts": len(payload.alerts)})

app = web.Application(client_max_size=2**20)
app.router.add_post("/webhooks/alertmanager", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


@dataclass
class NullServer:
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float


async def null_server(bodies: list[bytes], *, rate: float, senders: int) -> NullServer:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hh-bench-floor-") as tmp:
        bodies_path = Path(tmp) / "bodies.jsonl"
        bodies_path.write_bytes(b"\n".join(bodies) + b"\n")
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SERVER, str(port), str(ROOT)
        )
        try:
            async with asyncio.timeout(30):
                while True:
                    try:
                        _, writer = await asyncio.open_connection("127.0.0.1", port)
                    except OSError:
                        await asyncio.sleep(0.1)
                        continue
                    writer.close()
                    break
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.senders",
                f"http://127.0.0.1:{port}/webhooks/alertmanager", "token", str(bodies_path),
                "--rate", str(rate), "--senders", str(senders),
                stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
            )  # fmt: skip
            out, _ = await proc.communicate()
        finally:
            server.terminate()
            await server.wait()
    latencies = sorted(float(x) for x in json.loads(out)["latencies_ms"])
    return NullServer(
        requests=len(latencies),
        p50_ms=latencies[len(latencies) // 2],
        p99_ms=latencies[min(int(len(latencies) * 0.99), len(latencies) - 1)],
        max_ms=latencies[-1],
    )


def steadiness_row(result: Steadiness) -> str:
    return (
        f"| CPU steadiness: a fixed {result.p50_ms:.1f} ms piece of work, {result.pieces:,} times"
        f" | p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms; {result.slow} pieces over"
        f" 3x the median, {result.slow - result.slow_descheduled} of them never descheduled |"
    )


def null_row(result: NullServer, rate: float) -> str:
    return (
        f"| the storm's senders against a server that only validates and answers "
        f"({result.requests:,} requests at {rate:.0f}/s) | p50 {result.p50_ms:.1f} / "
        f"p99 {result.p99_ms:.1f} / max {result.max_ms:.1f} ms |"
    )


async def main() -> None:
    from bench.alert_storm import storm_payloads

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--groups", type=int, default=1000)
    args = parser.parse_args()
    print(steadiness_row(cpu_steadiness(args.seconds)), flush=True)
    bodies = [json.dumps(p).encode() for p in storm_payloads(args.groups, 10)]
    print(null_row(await null_server(bodies, rate=args.rate, senders=args.senders), args.rate))


if __name__ == "__main__":
    asyncio.run(main())
