from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot import __version__
from bot.metrics import Metrics
from bot.web.app import HealthSources, create_app


class Switches:
    def __init__(self) -> None:
        self.discord = True
        self.database = True

    def discord_ready(self) -> bool:
        return self.discord

    async def database_ping(self) -> float:
        if not self.database:
            raise ConnectionRefusedError("secret-host:5432 refused")
        return 0.003


@pytest.fixture
def switches() -> Switches:
    return Switches()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(switches: Switches, metrics: Metrics) -> AsyncIterator[TestClient]:
    app = create_app(metrics, HealthSources(switches.discord_ready, switches.database_ping))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def sample(metrics_text: str, name: str, match: Callable[[dict[str, str]], bool]) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and match(s.labels):
                return float(s.value)
    raise AssertionError(f"{name} not found")


async def test_healthz_ok(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = await response.json()
    assert body == {"status": "ok", "discord": "ready", "database": "ok", "version": __version__}


async def test_healthz_names_discord_when_gateway_is_down(client, switches) -> None:
    switches.discord = False
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "fail" and body["failing"] == "discord"
    assert body["discord"] == "not ready" and body["database"] == "ok"


async def test_healthz_names_database_without_leaking_the_error(client, switches) -> None:
    switches.database = False
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["failing"] == "database" and body["database"] == "unreachable"
    assert "secret-host" not in await response.text()


async def test_healthz_says_where_the_gateway_is_when_not_ready() -> None:
    sources = HealthSources(
        lambda: False, Switches().database_ping, discord_state=lambda: "login failing (HTTP 503)"
    )
    async with TestClient(TestServer(create_app(Metrics(), sources))) as client:
        response = await client.get("/healthz")
        assert response.status == 503
        body = await response.json()
        assert body["failing"] == "discord" and body["discord"] == "login failing (HTTP 503)"
        assert "receiver" not in body


async def test_healthz_both_down(client, switches) -> None:
    switches.discord = switches.database = False
    body = await (await client.get("/healthz")).json()
    assert body["failing"] == "discord, database"


async def test_metrics_exposition(client: TestClient, metrics: Metrics) -> None:
    metrics.commands.labels("whoami", "ok").inc()
    metrics.track_gateway(lambda: 0.042, lambda: True)
    await client.get("/healthz")
    await client.get("/no/such/page/12345")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert sample(text, "hh_opsbot_discord_gateway_latency_seconds", lambda _: True) == 0.042
    assert sample(text, "hh_opsbot_discord_connected", lambda _: True) == 1
    assert (
        sample(
            text,
            "hh_opsbot_commands_total",
            lambda lb: lb == {"command": "whoami", "outcome": "ok"},
        )
        == 1
    )
    assert (
        sample(
            text,
            "hh_opsbot_web_requests_total",
            lambda lb: lb["route"] == "/healthz" and lb["status"] == "200",
        )
        == 1
    )
    # Unknown paths share one label, so a scanner cannot blow up the series count.
    assert (
        sample(
            text,
            "hh_opsbot_web_requests_total",
            lambda lb: lb["route"] == "unmatched" and lb["status"] == "404",
        )
        == 1
    )
    assert "/no/such/page" not in text
    assert sample(text, "hh_opsbot_database_up", lambda _: True) == 1
    assert sample(text, "hh_opsbot_build_info", lambda lb: lb["version"] == __version__) == 1


async def test_database_gauge_follows_health(client, switches) -> None:
    switches.database = False
    await client.get("/healthz")
    text = await (await client.get("/metrics")).text()
    assert sample(text, "hh_opsbot_database_up", lambda _: True) == 0


async def test_only_get_is_allowed(client: TestClient) -> None:
    assert (await client.post("/healthz")).status == 405
    assert (await client.head("/healthz")).status == 200


async def test_health_poll_metrics(client: TestClient, metrics: Metrics) -> None:
    metrics.record_health_poll({"ok": 41, "down": 2}, 2.1)
    text = await (await client.get("/metrics")).text()
    assert sample(text, "hh_opsbot_health_targets", lambda labels: labels["state"] == "ok") == 41
    assert sample(text, "hh_opsbot_health_targets", lambda labels: labels["state"] == "warn") == 0
    assert sample(text, "hh_opsbot_health_targets", lambda labels: labels["state"] == "down") == 2
    assert sample(text, "hh_opsbot_health_poll_seconds", lambda labels: True) == 2.1
