"""Issue 15 §4, the bot down is not silence: the shipped Prometheus rules and Alertmanager config,
run by the real binaries (Debian `prometheus`, `prometheus-alertmanager`) on loopback, email a
critical alert to Core Ops straight from Alertmanager when hh-opsbot is gone or cut off from
Discord, and send nothing while it is healthy.

A tiny aiohttp server plays the bot: its `/metrics` (what Prometheus scrapes for OpsBotHealthy) and
its Alertmanager webhook. An aiosmtpd server is Core Ops' inbox. The test's copies of the configs
differ from deploy/ only in their intervals (seconds instead of minutes) and loopback addresses.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from tests.harness.alertmanager import AlertmanagerProcess
from tests.harness.binaries import require_binary
from tests.harness.mail import Inbox, smtp_server
from tests.harness.waiting import eventually, eventually_async
from tests.harness.world import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "hyperhash-alerts.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
CORE_OPS = "core-ops@hyperhash.invalid"
EMAIL_BOUND = 45.0
"""Seconds from the bot's loss to the email, at the test's 1-second intervals (the shipped
intervals bound it at about 2.5 minutes: the 1-minute window, one evaluation, group_interval)."""


@dataclass
class StandInBot:
    """hh-opsbot's /metrics and Alertmanager webhook, and nothing else."""

    discord_connected: int = 1
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    runner: web.AppRunner | None = None

    async def metrics(self, request: web.Request) -> web.Response:
        body = (
            "# TYPE hh_opsbot_discord_connected gauge\n"
            f"hh_opsbot_discord_connected {self.discord_connected}\n"
        )
        return web.Response(text=body, content_type="text/plain")

    async def webhook(self, request: web.Request) -> web.Response:
        self.webhooks.append(await request.json())
        return web.json_response({"status": "accepted"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/webhooks/alertmanager", self.webhook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def kill(self) -> None:
        """Gone: the port refuses connections, as when the process is down."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def alertnames(self) -> set[str]:
        return {a["labels"]["alertname"] for body in self.webhooks for a in body["alerts"]}


def prometheus_rules() -> str:
    """The shipped hyperhash-opsbot group, its 1-minute windows at 3 s, and one critical alert."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    (opsbot,) = (group for group in groups if group["name"] == "hyperhash-opsbot")
    for rule in opsbot["rules"]:
        rule["expr"] = rule["expr"].replace("[1m]", "[3s]")
    critical = {
        "name": "test-critical",
        "rules": [
            {
                "alert": "TestCritical",
                "expr": "vector(1)",
                # The bot is scraped (OpsBotHealthy fires) before the critical alert does.
                "for": "5s",
                "labels": {"severity": "critical", "team": "node", "node": "hn-test-1"},
                "annotations": {"summary": "hn-test-1 is on fire"},
            }
        ],
    }
    return yaml.safe_dump({"groups": [opsbot, critical]})


def alertmanager_config(bot_url: str, smtp_port: int) -> str:
    """The shipped alertmanager.yml at 1-second intervals, mailing and posting on loopback."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    config["global"].update(smtp_smarthost=f"127.0.0.1:{smtp_port}", smtp_require_tls=False)
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = bot_url
            webhook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials": "test-token"}
            }
    return yaml.safe_dump(config)


@dataclass
class Prometheus:
    binary: str
    workdir: Path
    bot_port: int
    alertmanager_port: int
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "rules.yml").write_text(prometheus_rules())
        config = self.workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": ["rules.yml"],
                    "alerting": {
                        "alertmanagers": [
                            {
                                "static_configs": [
                                    {"targets": [f"127.0.0.1:{self.alertmanager_port}"]}
                                ]
                            }
                        ]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "hh-opsbot",
                            "metrics_path": "/metrics",
                            "static_configs": [{"targets": [f"127.0.0.1:{self.bot_port}"]}],
                        }
                    ],
                }
            )
        )
        log = (self.workdir / "prometheus.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
            stdout=log,
            stderr=log,
            env={k: v for k, v in os.environ.items() if not k.startswith("HH_")},
        )
        log.close()

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise RuntimeError((self.workdir / "prometheus.log").read_text())
            try:
                url = f"http://127.0.0.1:{self.port}/-/ready"
                async with aiohttp.ClientSession() as http, http.get(url) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually_async(ready, timeout, "Prometheus to be ready", poll=0.1)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class Pipeline:
    bot: StandInBot
    inbox: Inbox
    alertmanager: AlertmanagerProcess

    async def fallback_alerts(self) -> list[dict[str, Any]]:
        url = f"{self.alertmanager.url}/api/v2/alerts"
        params = {"filter": 'alertname="CriticalAlertFallback"'}
        async with aiohttp.ClientSession() as http, http.get(url, params=params) as response:
            response.raise_for_status()
            alerts: list[dict[str, Any]] = await response.json()
            return alerts


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    prometheus_binary = require_binary("prometheus", package="prometheus")
    require_binary("prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager")
    with smtp_server() as (inbox, smtp_port):
        bot = StandInBot()
        await bot.start()
        alertmanager = AlertmanagerProcess(
            alertmanager_config(f"http://127.0.0.1:{bot.port}/webhooks/alertmanager", smtp_port),
            tmp_path / "alertmanager",
        )
        prometheus = Prometheus(
            prometheus_binary, tmp_path / "prometheus", bot.port, alertmanager.port
        )
        try:
            await alertmanager.start()
            await prometheus.start()
            yield Pipeline(bot, inbox, alertmanager)
        finally:
            await prometheus.stop()
            await alertmanager.stop()
            await bot.kill()


async def healthy_and_quiet(pipeline: Pipeline) -> None:
    """The critical alert reaches the bot; its email twin is in Alertmanager, inhibited; no mail."""
    await eventually(lambda: "TestCritical" in pipeline.bot.alertnames(), 30, "the bot's webhook")

    async def inhibited() -> bool:
        alerts = await pipeline.fallback_alerts()
        return any(alert["status"]["inhibitedBy"] for alert in alerts)

    await eventually_async(inhibited, 30, "the email twin, inhibited by OpsBotHealthy", poll=0.2)
    # Several of the email route's group intervals (1 s) and evaluations go by: still no mail.
    await asyncio.sleep(4)
    assert pipeline.inbox.messages == []
    assert "CriticalAlertFallback" not in pipeline.bot.alertnames()
    assert "OpsBotHealthy" not in pipeline.bot.alertnames()


async def emailed_within_bound(pipeline: Pipeline, since: float) -> float:
    await eventually(
        lambda: pipeline.inbox.messages, EMAIL_BOUND, "Alertmanager's email", poll=0.05
    )
    elapsed = time.monotonic() - since
    envelope = pipeline.inbox.messages[0]
    assert envelope.rcpt_tos == [CORE_OPS]
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    subject = str(message["subject"])
    assert "FIRING" in subject and "TestCritical" in subject and "hn-test-1" in subject, subject
    print(f"email fallback: {elapsed:.1f} s from the bot's loss to Core Ops' inbox")
    return elapsed


@pytest.mark.timeout(90)
async def test_bot_killed_critical_alert_is_emailed_by_alertmanager(
    pipeline: Pipeline, record_property: Any
) -> None:
    await healthy_and_quiet(pipeline)
    await pipeline.bot.kill()
    elapsed = await emailed_within_bound(pipeline, time.monotonic())
    record_property("seconds_to_email", round(elapsed, 1))


@pytest.mark.timeout(90)
async def test_bot_up_but_discord_unreachable_critical_alert_is_emailed(
    pipeline: Pipeline, record_property: Any
) -> None:
    await healthy_and_quiet(pipeline)
    pipeline.bot.discord_connected = 0
    elapsed = await emailed_within_bound(pipeline, time.monotonic())
    record_property("seconds_to_email", round(elapsed, 1))
