"""Webhook ingest while a storm is being delivered, in the one bot process, beside a server that
does nothing, measured in the same run.

    .venv/bin/python -m bench.ingest_during_storm                 # about a minute
    .venv/bin/python -m bench.ingest_during_storm --write docs/benchmarks.md

1. A real `hh-opsbot run` process (SQLite, the webhook answered by the bot itself) against the
   Discord emulator, which enforces Discord's 5 messages per 5 s per channel as a shared,
   unadvertised limit. `--groups` firing groups of `--alerts` alerts are POSTed at `--rate`
   requests/s (the storm); its delivery to #alerts takes far longer than its ingest.
2. Right after, while that storm is being delivered (checked: #alerts does not show every group
   yet when the second wave ends), a second wave of `--groups` webhooks (each group gains one
   alert, so nothing is a duplicate) is POSTed at the same rate. Its latency, measured at the
   senders (a process of their own), is the figure: nothing may queue behind the storm.
3. The same second-wave bodies, at the same rate, against an aiohttp server in its own process
   that validates each body with the bot's pydantic model and answers (`bench/floor.py`): the
   floor this machine allows, measured just before and just after the bot.

Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.alert_storm import (  # noqa: E402
    WEBHOOK_TOKEN,
    Bot,
    make_world,
    shown_groups,
    storm_payloads,
)
from bench.floor import null_server  # noqa: E402

SECTION = "## Webhook ingest during a storm (`bench/ingest_during_storm.py`)"


@dataclass
class Latencies:
    requests: int
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, sent: dict[str, Any]) -> Latencies:
        data = sorted(float(x) for x in sent["latencies_ms"])
        return cls(
            requests=len(data),
            statuses={str(k): int(v) for k, v in sent.get("statuses", {}).items()},
            p50_ms=data[len(data) // 2],
            p99_ms=data[min(int(len(data) * 0.99), len(data) - 1)],
            max_ms=data[-1],
        )


@dataclass
class Run:
    storm: Latencies
    during: Latencies
    shown_when_wave_ended: int
    groups: int
    visible_after_s: float | None
    rate_limited: int
    peak_rss_mb: float


def second_wave(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group again with one more alert: new content, so each is applied, none a duplicate."""
    wave = []
    for body in payloads:
        again = json.loads(json.dumps(body))
        extra = json.loads(json.dumps(again["alerts"][0]))
        extra["labels"]["shard"] = "extra"
        extra["fingerprint"] = "f" + extra["fingerprint"][1:]
        again["alerts"].append(extra)
        wave.append(again)
    return wave


async def send(url: str, bodies: list[bytes], rate: float, senders: int, tmp: Path) -> Any:
    path = tmp / f"bodies-{time.monotonic_ns()}.jsonl"
    path.write_bytes(b"\n".join(bodies) + b"\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.senders", url, WEBHOOK_TOKEN, str(path),
        "--rate", str(rate), "--senders", str(senders),
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )  # fmt: skip
    out, _ = await proc.communicate()
    return json.loads(out)


async def run_bot(args: argparse.Namespace) -> Run:
    world = await make_world()
    payloads = storm_payloads(args.groups, args.alerts)
    storm = [json.dumps(p).encode() for p in payloads]
    wave = [json.dumps(p).encode() for p in second_wave(payloads)]
    with tempfile.TemporaryDirectory(prefix="hh-bench-ingest-") as name:
        tmp = Path(name)
        bot = Bot(world, tmp, None)
        try:
            await bot.start(world)
            url = f"http://127.0.0.1:{bot.port}/webhooks/alertmanager"
            first = await send(url, storm, args.rate, args.senders, tmp)
            during = await send(url, wave, args.rate, args.senders, tmp)
            shown_then = len(shown_groups(world))
            ended = time.perf_counter()
            visible: float | None = None
            while time.perf_counter() - ended < args.deadline:
                if len(shown_groups(world)) >= args.groups:
                    visible = time.perf_counter() - ended
                    break
                await asyncio.sleep(0.1)
            assert bot.proc is not None
            return Run(
                storm=Latencies.of(first),
                during=Latencies.of(during),
                shown_when_wave_ended=shown_then,
                groups=args.groups,
                visible_after_s=visible,
                rate_limited=world.emulator.rate_limited_count,
                peak_rss_mb=bot.peak_rss_mb().get(bot.proc.pid, float("nan")),
            )
        finally:
            await bot.stop()
            await world.emulator.stop()


def row(name: str, lat: Latencies) -> str:
    ok = sum(n for status, n in lat.statuses.items() if status in {"accepted", "duplicate"})
    answered = f"{ok} of {lat.requests} accepted" if lat.statuses else f"{lat.requests} answered"
    return (
        f"| {name} | {answered} | {lat.p50_ms:.1f} ms | **{lat.p99_ms:.1f} ms** "
        f"| {lat.max_ms:.1f} ms |"
    )


def report(run: Run, floors: list[Latencies], args: argparse.Namespace) -> str:
    visible = (
        f"{run.visible_after_s:.1f} s after the second wave ended"
        if run.visible_after_s is not None
        else f"not within {args.deadline:.0f} s"
    )
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} on this machine ({os.cpu_count()} cores), "
            f"loopback only. A real `hh-opsbot run` process (SQLite, one process: the bot answers "
            f"the webhook and stores it in its own database); {args.groups:,} groups of "
            f"{args.alerts} alerts POSTed at {args.rate:.0f} requests/s by {args.senders} "
            "connections in a process of their own; then a second wave of the same size and rate "
            "while the first is being delivered to #alerts (the emulator allows 5 messages per "
            "5 s per channel). Latency is request sent to answer read, at the senders.",
            "",
            "| what | answers | p50 | p99 | max |",
            "| --- | --- | --- | --- | --- |",
            row("do-nothing aiohttp server, before", floors[0]),
            row("the bot: the storm's own ingest", run.storm),
            row("the bot: the second wave, during the storm's delivery", run.during),
            row("do-nothing aiohttp server, after", floors[1]),
            "",
            f"When the second wave ended, #alerts showed {run.shown_when_wave_ended} of "
            f"{run.groups} groups (the storm was still being delivered); all were visible "
            f"{visible}. 429s from the emulator: {run.rate_limited}. Peak RSS of the bot: "
            f"{run.peak_rss_mb:.0f} MB. Target: p99 under 50 ms during the storm.",
            "",
        ]
    )


def write_section(path: Path, text: str) -> None:
    """Replace this benchmark's section of a markdown file (or append it)."""
    doc = path.read_text() if path.exists() else ""
    start = doc.find(SECTION)
    if start < 0:
        doc = doc.rstrip() + "\n\n" + text
    else:
        end = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text + ("" if end < 0 else doc[end + 1 :])
    path.write_text(doc)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=180.0)
    parser.add_argument("--write", type=Path, help="replace this section of a markdown file")
    args = parser.parse_args()
    wave = [json.dumps(p).encode() for p in second_wave(storm_payloads(args.groups, args.alerts))]
    floors = [await null_server(wave, rate=args.rate, senders=args.senders)]
    run = await run_bot(args)
    floors.append(await null_server(wave, rate=args.rate, senders=args.senders))
    text = report(
        run,
        [
            Latencies(f.requests, {}, f.p50_ms, f.p99_ms, f.max_ms)
            for f in floors  # the floor reports no statuses
        ],
        args,
    )
    print(text)
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
