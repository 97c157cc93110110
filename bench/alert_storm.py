"""Alert storm benchmark: the bot versus Alertmanager's own Discord receiver, on loopback.

    .venv/bin/python -m bench.alert_storm                # all scenarios, a few minutes at most
    .venv/bin/python -m bench.alert_storm --groups 200   # smaller
    .venv/bin/python -m bench.alert_storm --write docs/benchmarks.md

Scenarios (each against a fresh Discord emulator enforcing Discord's per-channel limit of
5 messages per 5 s as a shared, unadvertised limit, like the real one):

1. `bot`: `--groups` groups of `--alerts` alerts each (default 1,000 x 10 = 10,000 alerts) are
   POSTed by `--senders` concurrent senders at `--rate` requests/s to a real `hh-opsbot run`
   process (SQLite), answered by the bot's own web server (`inline`; the receiver process of
   older versions was retired, and `--receivers process` now says so); with `--ha` every
   notification is sent twice, as an Alertmanager HA pair does.
   Measured: ingest throughput and p50/p99 latency, time until every group is visible in
   #alerts after the last webhook, messages posted and edited, 429s, groups lost, groups shown
   twice, the peak RSS of the bot.
2. `bot-50`: the captured 500-alert / 50-group storm (tests/fixtures) through the bot.
3. `alertmanager-discord`: the same 50-group storm through the real Alertmanager binary with a
   `discord_configs` receiver (default templates) pointed at the emulator's webhook route.

Nothing leaves 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.alertmanager import BINARY, AlertmanagerProcess  # noqa: E402
from tests.harness.databases import is_postgres, reset_postgres  # noqa: E402
from tests.harness.world import GUILD_ID, TOKEN, World, free_port, new_world  # noqa: E402

WEBHOOK_TOKEN = "bench-webhook-token-0123456789"
FIXTURES = ROOT / "tests" / "fixtures" / "alertmanager"
BOT_ENV: dict[str, str] = {}


async def make_world() -> World:
    """A fresh guild with Discord's per-channel limit (5 messages / 5 s), and no members: the
    bot process must spend its start on nothing but the storm."""
    return await new_world(members=False, channel_rate_limit=(5, 5.0))


# -- payloads -----------------------------------------------------------------------------------


def storm_payloads(groups: int, alerts: int) -> list[dict[str, Any]]:
    """Alertmanager webhook bodies shaped like the captured storm, for any number of groups."""
    template = json.loads((FIXTURES / "14_storm_firing_group_10_alerts.json").read_text())
    base_alerts = template["alerts"]
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    payloads = []
    for g in range(groups):
        node = f"hn-b-{g:04d}"
        body = json.loads(json.dumps(template))
        body["groupKey"] = f'{{}}:{{node="{node}"}}'
        body["groupLabels"] = {"node": node}
        body["commonLabels"] = {"instance": f"{node}:9100", "job": "node", "node": node}
        body["commonAnnotations"] = {}
        items = []
        for a in range(alerts):
            alert = json.loads(json.dumps(base_alerts[a % len(base_alerts)]))
            alert["labels"]["node"] = node
            alert["labels"]["instance"] = f"{node}:9100"
            alert["labels"]["shard"] = str(a)
            for key, value in alert["annotations"].items():
                alert["annotations"][key] = re.sub(r"hn-eu-\d+", node, value)
            alert["fingerprint"] = f"{g:08x}{a:08x}"
            alert["startsAt"] = now
            items.append(alert)
        body["alerts"] = items
        payloads.append(body)
    return payloads


def captured_storm() -> list[dict[str, Any]]:
    lines = (FIXTURES / "storm_50_groups_firing.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# -- the bot as a real process -----------------------------------------------------------------


def bot_config(
    world: World, database_url: str, port: int, receiver: str = "", receiver_port: int = 0
) -> str:
    emu = world.emulator
    spool = (
        f'receiver = "process"\nreceiver_port = {receiver_port}\nspool_path = "{receiver}"'
        if receiver
        else ""
    )
    return f"""
[discord]
guild_id = {GUILD_ID}
api_base = "{emu.api_base}"
gateway_url = "{emu.gateway_url}"
[channels]
{chr(10).join(f"{k} = {v}" for k, v in world.channels.items())}
[roles]
{chr(10).join(f"{k} = {v}" for k, v in world.roles.items())}
[database]
url = "{database_url}"
auto_migrate = true
[web]
host = "127.0.0.1"
port = {port}
[logging]
level = "WARNING"
[alertmanager]
webhook_token = "{WEBHOOK_TOKEN}"
{spool}
[alerts]
mention_roles = {{ critical = [{world.roles["core_ops"]}] }}
[outbox]
max_backoff = 5
idle_poll = 1
"""


class Bot:
    def __init__(
        self, world: World, workdir: Path, database_url: str | None, receiver: bool = False
    ) -> None:
        self.port = free_port()
        self.receiver_port = free_port() if receiver else None
        self.config = workdir / "config.toml"
        url = database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        spool = str(workdir / "spool.db") if receiver else ""
        self.config.write_text(bot_config(world, url, self.port, spool, self.receiver_port or 0))
        self.proc: asyncio.subprocess.Process | None = None
        self.log = workdir / "bot.log"

    async def start(self, world: World) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HH_")}
        env["HH_DISCORD__TOKEN"] = TOKEN
        env.update(BOT_ENV)
        log = self.log.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(self.config),
            env=env, stdout=log, stderr=log, cwd=str(ROOT),
        )  # fmt: skip
        log.close()
        await world.emulator.wait_ready(timeout=60)
        async with asyncio.timeout(30), aiohttp.ClientSession() as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)

    @property
    def webhook_port(self) -> int:
        """Where Alertmanager would post: the receiver process, or the bot itself."""
        return self.receiver_port or self.port

    def pids(self) -> list[int]:
        """The bot and its children (the receiver process)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError):
            return [self.proc.pid, *(int(p) for p in children.read_text().split())]
        return [self.proc.pid]

    def peak_rss_mb(self) -> dict[int, float]:
        """Peak RSS of each process (VmHWM), by pid."""
        peaks: dict[int, float] = {}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[pid] = int(line.split()[1]) / 1024
        return peaks

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()


async def server_latency(port: int) -> dict[float, float]:
    """Cumulative share of webhook requests under each bucket, from the bot's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "hh_opsbot_web_request_duration_seconds_bucket"
                and sample.labels.get("route") == "/webhooks/alertmanager"
            ):
                counts[float(sample.labels["le"])] = sample.value
    total = counts.get(float("inf"), 0.0)
    return {le: n / total for le, n in sorted(counts.items())} if total else {}


def shown_groups(world: World) -> dict[int, set[str]]:
    shown: dict[int, set[str]] = {}
    for message in world.emulator.messages.get(world.channels["alerts"], []):
        for embed in message["embeds"]:
            if embed.get("title", "").startswith("Alert storm digest"):
                ids = re.findall(r"· #(\d+)$", embed.get("description", ""), re.M)
            else:
                ids = re.findall(r"alert group #(\d+)", (embed.get("footer") or {}).get("text", ""))
            for group_id in ids:
                shown.setdefault(int(group_id), set()).add(message["id"])
    return shown


@dataclass
class BotResult:
    name: str
    groups: int
    alerts: int
    requests: int
    statuses: dict[str, int]
    ingest_seconds: float
    latencies_ms: list[float]
    visible_after_last_webhook: float | None
    messages: int
    edits: int
    rate_limited: int
    lost: int
    duplicates: int
    peak_rss_mb: float
    receiver: bool = False
    receiver_rss_mb: float = 0.0
    digests: int = 0
    embeds_per_message: list[int] = field(default_factory=list)
    server_buckets: dict[float, float] = field(default_factory=dict)
    """The bot's own request-duration histogram for the webhook: le (s) -> share of requests."""

    def p(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(int(q * len(data)), len(data) - 1)] if data else float("nan")


async def run_bot(
    name: str, payloads: list[dict[str, Any]], *, rate: float, senders: int, ha: bool,
    deadline: float, database_url: str | None = None, receiver: bool = False,
) -> BotResult:  # fmt: skip
    world = await make_world()
    if database_url and is_postgres(database_url):
        await reset_postgres(database_url)
    with tempfile.TemporaryDirectory(prefix="hh-bench-") as tmp:
        bot = Bot(world, Path(tmp), database_url, receiver)
        try:
            await bot.start(world)
            bodies = [json.dumps(p).encode() for p in payloads]
            schedule = [b for b in bodies for _ in range(2 if ha else 1)]
            url = f"http://127.0.0.1:{bot.webhook_port}/webhooks/alertmanager"
            # The senders run in a process of their own: the emulator's work in this one
            # must not delay their clocks.
            bodies_path = Path(tmp) / "bodies.jsonl"
            bodies_path.write_bytes(b"\n".join(schedule) + b"\n")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.senders", url, WEBHOOK_TOKEN, str(bodies_path),
                "--rate", str(rate), "--senders", str(senders),
                stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
            )  # fmt: skip
            out, _ = await proc.communicate()
            sent = json.loads(out)
            latencies = [float(x) for x in sent["latencies_ms"]]
            with contextlib.suppress(OSError):
                (Path(tempfile.gettempdir()) / f"hh-bench-{name}-latencies.json").write_text(
                    json.dumps(sent)
                )
            statuses = {str(k): int(v) for k, v in sent["statuses"].items()}
            last_webhook = time.perf_counter()
            ingest_seconds = float(sent["seconds"])
            # The webhook answers once a body is stored (its group is updated just after), so
            # groups are counted by what #alerts shows, against the distinct groupKeys sent.
            expected = len({p["groupKey"] for p in payloads})
            server = await server_latency(bot.webhook_port)
            visible_at: float | None = None
            while time.perf_counter() - last_webhook < deadline:
                if len(shown_groups(world)) >= expected:
                    visible_at = time.perf_counter() - last_webhook
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(2)  # anything late (duplicates) would show now
            shown = shown_groups(world)
            messages = world.emulator.messages.get(world.channels["alerts"], [])
            peaks = bot.peak_rss_mb()
            assert bot.proc is not None
            alerts_path = f"/channels/{world.channels['alerts']}/messages"
            edits = sum(
                1
                for method, path, status in world.emulator.requests
                if method == "PATCH" and path.startswith(alerts_path) and status == 200
            )
            return BotResult(
                name=name,
                groups=len(payloads),
                alerts=sum(len(p["alerts"]) for p in payloads),
                requests=len(schedule),
                statuses=statuses,
                ingest_seconds=ingest_seconds,
                latencies_ms=latencies,
                visible_after_last_webhook=visible_at,
                messages=len(messages),
                edits=edits,
                rate_limited=world.emulator.rate_limited_count,
                lost=max(expected - len(shown), 0),
                duplicates=sum(1 for ids in shown.values() if len(ids) > 1),
                peak_rss_mb=peaks.get(bot.proc.pid, float("nan")),
                receiver=receiver,
                receiver_rss_mb=sum(v for k, v in peaks.items() if k != bot.proc.pid),
                digests=sum(1 for m in messages if len(m["embeds"]) > 1),
                embeds_per_message=[len(m["embeds"]) for m in messages],
                server_buckets=server,
            )
        finally:
            await bot.stop()
            await world.emulator.stop()
            with contextlib.suppress(OSError):
                (Path(tempfile.gettempdir()) / f"hh-bench-{name}.log").write_bytes(
                    bot.log.read_bytes()
                )


# -- Alertmanager's own Discord receiver --------------------------------------------------------


@dataclass
class NativeResult:
    groups: int
    alerts: int
    arrived_groups: int
    messages: int
    requests: int
    rate_limited: int
    rejected_400: int
    last_arrival: float | None
    window: float


COMPACT_MESSAGE = (
    '{{ range .Alerts }}{{ if eq .Status "firing" }}🔥{{ else }}✅{{ end }} '
    "{{ .Labels.alertname }} [{{ .Labels.severity }}] {{ .Annotations.summary }}\n{{ end }}"
)


def discord_config(webhook_url: str, compact: bool = False) -> str:
    message = f"\n        message: '{COMPACT_MESSAGE}'" if compact else ""
    return f"""
route:
  receiver: discord
  group_by: ['node']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: discord
    discord_configs:
      - webhook_url: {webhook_url}
        send_resolved: true{message}
"""


async def run_alertmanager_discord(
    payloads: list[dict[str, Any]], window: float, *, compact: bool = False
) -> NativeResult:
    if BINARY is None:
        raise RuntimeError("prometheus-alertmanager is not installed")
    world = await make_world()
    with tempfile.TemporaryDirectory(prefix="hh-bench-am-") as tmp:
        url = world.emulator.add_webhook(world.channels["alerts"])
        am = AlertmanagerProcess(discord_config(url, compact), Path(tmp))
        try:
            await am.start()
            alerts = [
                {
                    "labels": a["labels"],
                    "annotations": a["annotations"],
                    "generatorURL": a["generatorURL"],
                }
                for p in payloads
                for a in p["alerts"]
            ]
            start = time.perf_counter()
            await am.post_alerts(alerts)
            last: float | None = None
            seen = 0
            while time.perf_counter() - start < window:
                count = len(world.emulator.messages.get(world.channels["alerts"], []))
                if count != seen:
                    seen, last = count, time.perf_counter() - start
                if count >= len(payloads):
                    break
                await asyncio.sleep(0.1)
            messages = world.emulator.messages.get(world.channels["alerts"], [])
            titles = {m["embeds"][0].get("title", "") for m in messages if m["embeds"]}
            hook = [r for r in world.emulator.requests if r[1].startswith("/webhooks/")]
            return NativeResult(
                groups=len(payloads),
                alerts=len(alerts),
                arrived_groups=len(titles),
                messages=len(messages),
                requests=len(hook),
                rate_limited=sum(1 for r in hook if r[2] == 429),
                rejected_400=sum(1 for r in hook if r[2] == 400),
                last_arrival=last,
                window=window,
            )
        finally:
            await am.stop()
            await world.emulator.stop()


# -- report -------------------------------------------------------------------------------------


def bot_rows(result: BotResult) -> list[str]:
    visible = (
        f"{result.visible_after_last_webhook:.1f} s"
        if result.visible_after_last_webhook is not None
        else "not all (deadline)"
    )
    per_message = result.embeds_per_message
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(result.statuses.items()))
    return [
        f"| alerts / groups / webhook requests | {result.alerts:,} / {result.groups:,} / "
        f"{result.requests:,} ({statuses}) |",
        f"| ingest: throughput | {result.requests / result.ingest_seconds:.0f} requests/s "
        f"({result.ingest_seconds:.1f} s) |",
        f"| ingest latency p50 / p99 / max | {result.p(0.5):.1f} / {result.p(0.99):.1f} / "
        f"{max(result.latencies_ms):.1f} ms |",
        "| ingest, measured where it is answered (the receiver's or the bot's request-duration "
        "histogram) | "
        + ", ".join(
            f"{share * 100:.1f} % under {le * 1000:.0f} ms"
            for le, share in result.server_buckets.items()
            if le in (0.005, 0.01, 0.02, 0.05)
        )
        + " |",
        f"| every group visible in #alerts, after the last webhook | {visible} |",
        f"| messages posted (digests) / edits | {result.messages} ({result.digests}) / "
        f"{result.edits} |",
        f"| embeds per message (min / median / max) | {min(per_message, default=0)} / "
        f"{statistics.median(per_message) if per_message else 0:.0f} / "
        f"{max(per_message, default=0)} |",
        f"| 429s received | {result.rate_limited} |",
        f"| groups lost / shown twice | {result.lost} / {result.duplicates} |",
        f"| peak RSS | {rss(result)} |",
    ]


def rss(result: BotResult) -> str:
    if not result.receiver:
        return f"{result.peak_rss_mb:.0f} MB"
    return (
        f"bot {result.peak_rss_mb:.0f} MB + receiver {result.receiver_rss_mb:.0f} MB = "
        f"{result.peak_rss_mb + result.receiver_rss_mb:.0f} MB"
    )


def mode(result: BotResult) -> str:
    return "receiver process" if result.receiver else "inline (the bot's own web server)"


def bot_table(results: list[BotResult]) -> list[str]:
    """One column per run; rows as `bot_rows` gives them."""
    columns = [bot_rows(r) for r in results]
    lines = [
        "| measure | " + " | ".join(mode(r) for r in results) + " |",
        "| --- |" + " --- |" * len(results),
    ]
    for cells in zip(*columns, strict=True):
        label = cells[0].split(" | ")[0].lstrip("| ")
        values = [c.split(" | ", 1)[1].rstrip(" |") for c in cells]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return lines


def native_cells(native: NativeResult | None, skipped: bool = False) -> tuple[str, str, str, str]:
    if native is None:
        missing = (
            "not run (--skip-native)" if skipped else "not run (prometheus-alertmanager missing)"
        )
        return missing, missing, "-", missing
    arrived = f"{native.arrived_groups} of {native.groups}"
    when = (
        f"last at {native.last_arrival:.1f} s (watched {native.window:.0f} s)"
        if native.last_arrival is not None
        else f"none in {native.window:.0f} s"
    )
    requests = (
        f"{native.requests} ({native.rate_limited} answered 429, "
        f"{native.rejected_400} answered 400)"
    )
    return arrived, when, str(native.messages), requests


def report(
    bigs: list[BotResult],
    small: BotResult,
    native: NativeResult | None,
    compact: NativeResult | None,
    args: Any,
    floor_rows: list[str] | None = None,
) -> str:
    lines = [
        "## Alert storm (`bench/alert_storm.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on this machine ({os.cpu_count()} cores), "
        "everything on loopback: a real `hh-opsbot run` process (SQLite), the Discord emulator "
        "enforcing 5 messages per 5 s per channel as a shared, unadvertised limit, senders at "
        f"{args.rate:.0f} requests/s with {args.senders} connections"
        f"{', every notification sent twice (HA pair)' if args.ha else ''}. "
        'Webhooks go to the receiver process (`[alertmanager] receiver = "process"`) or to '
        "the bot's own web server (`inline`), one run each.",
        "",
        f"### {bigs[0].groups:,} groups x {args.alerts} alerts through the bot",
        "",
        *bot_table(bigs),
        "",
        *(
            [
                "### This machine's floor (`bench/floor.py`, run just before)",
                "",
                "| measure | result |",
                "| --- | --- |",
                *floor_rows,
                "",
            ]
            if floor_rows
            else []
        ),
        "### The captured 500-alert / 50-group storm",
        "",
        f"hh-opsbot: {mode(small)}.",
        "",
        "| | hh-opsbot | Alertmanager 0.25 `discord_configs`, default templates "
        "| the same, one line per alert (`message:` template) |",
        "| --- | --- | --- | --- |",
    ]
    visible = (
        f"{small.visible_after_last_webhook:.1f} s after the last webhook"
        if small.visible_after_last_webhook is not None
        else "not all"
    )
    a = native_cells(native, args.skip_native)
    b = native_cells(compact, args.skip_native)
    lines += [
        f"| groups visible in #alerts | {small.groups - small.lost} of {small.groups} "
        f"| {a[0]} | {b[0]} |",
        f"| time | {visible} | {a[1]} | {b[1]} |",
        f"| messages | {small.messages} ({small.digests} digests of 10 embeds) | {a[2]} | {b[2]} |",
        f"| Discord requests | {small.messages + small.edits}, {small.rate_limited} answered 429 "
        f"| {a[3]} | {b[3]} |",
        "| a resolve | edits the group's message | posts another message | posts another message |",
        "",
    ]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--ha", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--native-window", type=float, default=60.0)
    parser.add_argument("--skip-native", action="store_true")
    parser.add_argument(
        "--receivers",
        default="inline",
        help="inline (the bot's web server); the receiver process was retired",
    )
    parser.add_argument(
        "--skip-floor", action="store_true", help="skip bench/floor.py's machine measures"
    )
    parser.add_argument("--write", type=Path, help="replace this section of a markdown file")
    parser.add_argument(
        "--database-url", help="postgresql+asyncpg://... (emptied first); default SQLite"
    )
    parser.add_argument(
        "--bot-env", action="append", default=[], help="HH_SECTION__KEY=value for the bot"
    )
    args = parser.parse_args()
    BOT_ENV.update(item.split("=", 1) for item in args.bot_env)

    floor_rows: list[str] = []
    if not args.skip_floor:
        from bench import floor

        floor_rows.append(floor.steadiness_row(floor.cpu_steadiness(10.0)))
        bodies = [json.dumps(p).encode() for p in storm_payloads(args.groups, args.alerts)]
        floor_rows.append(
            floor.null_row(
                await floor.null_server(bodies, rate=args.rate, senders=args.senders), args.rate
            )
        )
        print("\n".join(floor_rows), flush=True)

    modes = [m.strip() for m in args.receivers.split(",") if m.strip()]
    if "process" in modes:
        parser.error("the webhook receiver process was retired: use --receivers inline")
    if not modes or set(modes) - {"process", "inline"}:
        parser.error("--receivers: process, inline or both")
    bigs = []
    for receiver_mode in modes:
        big = await run_bot(
            f"bot-{receiver_mode}", storm_payloads(args.groups, args.alerts),
            rate=args.rate, senders=args.senders, ha=args.ha, deadline=args.deadline,
            database_url=args.database_url, receiver=receiver_mode == "process",
        )  # fmt: skip
        print("\n".join(bot_rows(big)), flush=True)
        bigs.append(big)
    small = await run_bot(
        "bot-50", captured_storm(), rate=1000.0, senders=50, ha=False, deadline=60.0,
        database_url=args.database_url, receiver=modes[0] == "process",
    )  # fmt: skip
    print("\n".join(bot_rows(small)), flush=True)
    native = compact = None
    if not args.skip_native and BINARY is not None:
        native = await run_alertmanager_discord(captured_storm(), args.native_window)
        print(native, flush=True)
        compact = await run_alertmanager_discord(captured_storm(), args.native_window, compact=True)
        print(compact, flush=True)
    text = report(bigs, small, native, compact, args, floor_rows)
    print(text)
    if args.write:
        existing = args.write.read_text() if args.write.exists() else "# Benchmarks\n\n"
        marker = "## Alert storm (`bench/alert_storm.py`)"
        head, _, rest = existing.partition(marker)
        # Keep the sections after this one (the next "## " heading on).
        tail = rest[rest.find("\n## ") + 1 :] if "\n## " in rest else ""
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(
            head.rstrip() + "\n\n" + text.rstrip() + "\n" + ("\n" + tail if tail else "")
        )


if __name__ == "__main__":
    asyncio.run(main())
