"""Webhook senders in a process of their own, so their clocks are not the Discord emulator's.

    python -m bench.senders URL TOKEN BODIES.jsonl --rate 200 --senders 20  > results.json

Each line of BODIES is one request body, sent at `index / rate` seconds after the start by one
of `senders` connections; latency is request sent to answer read. Prints one JSON object:
{"latencies_ms": [...], "sent_at_s": [...], "statuses": {...}, "seconds": ...,
"start_monotonic": ...} (the start on the machine's monotonic clock, to line latencies up with
another process's timeline). Loopback only, bounded by count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp


async def send_all(
    url: str, token: str, bodies: list[bytes], *, rate: float, senders: int
) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    sent_at: list[float] = []
    statuses: dict[str, int] = {}
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for index, body in enumerate(bodies):
        queue.put_nowait((index, body))
    start = time.perf_counter()

    async def sender(http: aiohttp.ClientSession) -> None:
        while True:
            try:
                index, body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as response:
                data = await response.json(content_type=None)
            latencies.append((time.perf_counter() - sent) * 1000)
            sent_at.append(sent - start)
            status = str(data.get("status", response.status))
            statuses[status] = statuses.get(status, 0) + 1

    connector = aiohttp.TCPConnector(limit=senders)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(sender(http) for _ in range(senders)))
    return {
        "latencies_ms": latencies,
        "sent_at_s": sent_at,
        "statuses": statuses,
        "seconds": time.perf_counter() - start,
        "start_monotonic": start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("bodies", type=Path)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--senders", type=int, default=20)
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("loopback only")
    bodies = [line for line in args.bodies.read_bytes().splitlines() if line.strip()]
    result = asyncio.run(
        send_all(args.url, args.token, bodies, rate=args.rate, senders=args.senders)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
