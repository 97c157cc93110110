"""The receiver process (`[alertmanager] receiver = "process"`): its app on the real captures
and bad input, and the real child process started, restarted and stopped by the bot's side."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.metrics import Metrics
from bot.receiver import (
    SPOOL_KEY,
    ReceiverError,
    ReceiverOptions,
    ReceiverProcess,
    create_receiver_app,
)
from bot.storage.spool import SpoolReader, SpoolWriter
from tests.alerting import FIXTURES, WEBHOOK_TOKEN, fixture_bytes, storm
from tests.alertmanager_process import free_port
from tests.web.test_alertmanager_webhook import NON_ASCII_AUTHORIZATIONS, raw_post

ROUTE = "/webhooks/alertmanager"
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}


def options(path: Path, port: int = 0) -> ReceiverOptions:
    return ReceiverOptions(
        token=SecretStr(WEBHOOK_TOKEN), host="127.0.0.1", port=port, spool_path=str(path)
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    writer = SpoolWriter(tmp_path / "spool.db")
    app = create_receiver_app(options(tmp_path / "spool.db"), writer, Metrics())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
    writer.close()


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("[01]*.json")))
async def test_every_capture_is_spooled_once(client: TestClient, tmp_path: Path, name) -> None:
    body = fixture_bytes(name)
    first = await client.post(ROUTE, data=body, headers=AUTH)
    assert first.status == 200, await first.text()
    answer = await first.json()
    assert answer["status"] == "accepted" and len(answer["dedupe_key"]) == 64
    again = await client.post(ROUTE, data=body, headers=AUTH)
    assert (await again.json())["status"] == "duplicate"
    (row,) = SpoolReader(tmp_path / "spool.db").read(0, 10)
    assert row.payload == body.decode(), "stored as it arrived"


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b"{}", 401),
        ({"Authorization": "Bearer wrong-token-0123456789"}, b"{}", 401),
        (AUTH, b"{not json", 400),
        (AUTH, b"[]", 400),
        (AUTH, b'{"version": "4"}', 400),
        (
            AUTH,
            fixture_bytes("01_firing_single_nodeoffline.json").replace(
                b'"startsAt":"2026', b'"startsAt":"9999-12-31T23:30:00-01:00","x":"'
            ),
            400,
        ),
        (AUTH, b"x" * (1024 * 1024 + 1), 413),
        ({**AUTH, "Content-Type": "application/xml"}, b"{}", 415),
    ],
)
async def test_bad_input_is_refused_and_spools_nothing(
    client: TestClient, tmp_path: Path, headers, body, status
) -> None:
    response = await client.post(ROUTE, data=body, headers=headers)
    assert response.status == status
    assert "error" in await response.json()
    assert SpoolReader(tmp_path / "spool.db").count() == 0


@pytest.mark.parametrize("authorization", NON_ASCII_AUTHORIZATIONS)
async def test_non_ascii_authorization_is_401(
    client: TestClient, tmp_path: Path, authorization: bytes
) -> None:
    status, _ = await raw_post(
        client, authorization, fixture_bytes("01_firing_single_nodeoffline.json")
    )
    assert status == 401
    assert SpoolReader(tmp_path / "spool.db").count() == 0


async def test_health_and_metrics(client: TestClient) -> None:
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["spool"] == "ok"
    await client.post(ROUTE, data=fixture_bytes("01_firing_single_nodeoffline.json"), headers=AUTH)
    metrics = await (await client.get("/metrics")).text()
    assert 'hh_opsbot_alert_notifications_total{result="accepted"} 1.0' in metrics
    assert WEBHOOK_TOKEN not in metrics


async def test_a_spool_that_fails_answers_503_so_alertmanager_retries(
    client: TestClient, tmp_path: Path
) -> None:
    app = client.app
    assert app is not None
    app[SPOOL_KEY].close()
    body = fixture_bytes("01_firing_single_nodeoffline.json")
    response = await client.post(ROUTE, data=body, headers=AUTH)
    assert response.status == 503
    assert (await client.get("/healthz")).status == 503


# -- the real child process ----------------------------------------------------------------


async def post(port: int, body: bytes) -> dict:
    url = f"http://127.0.0.1:{port}{ROUTE}"
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=AUTH) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def test_the_child_receives_is_restarted_and_stops(tmp_path: Path) -> None:
    port = free_port()
    receiver = ReceiverProcess(options(tmp_path / "spool.db", port))
    assert await receiver.start() == port
    stop = asyncio.Event()
    supervisor = asyncio.create_task(receiver.supervise(stop))
    try:
        lines = storm("firing")
        answers = await asyncio.gather(*(post(port, line) for line in lines[:10]))
        assert {a["status"] for a in answers} == {"accepted"}
        first_pid = receiver.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)  # a crash: the supervisor starts another
        async with asyncio.timeout(20):
            while receiver.pid in (None, first_pid) or receiver.restarts == 0:
                await asyncio.sleep(0.05)
        assert (await post(port, lines[0]))["status"] == "duplicate", "the spool outlived it"
        assert (await post(port, lines[10]))["status"] == "accepted"
    finally:
        stop.set()
        await supervisor
        last_pid = receiver.pid
        await receiver.stop()
    assert SpoolReader(tmp_path / "spool.db").count() == 11
    assert last_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(last_pid, 0)


async def test_a_taken_port_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        receiver = ReceiverProcess(options(tmp_path / "spool.db", port))
        with pytest.raises(ReceiverError, match=f"cannot listen on 127.0.0.1:{port}"):
            await receiver.start()


async def test_the_child_goes_when_its_parent_does(tmp_path: Path) -> None:
    """Its stdin closes whenever the bot dies, SIGKILL included: no orphan keeps the port."""
    port = free_port()
    receiver = ReceiverProcess(options(tmp_path / "spool.db", port))
    await receiver.start()
    proc = receiver._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # what the kernel does when the parent dies
    async with asyncio.timeout(10):
        assert await proc.wait() == 0
    await receiver.stop()


async def test_a_child_stopped_from_outside_is_not_fought(tmp_path: Path) -> None:
    """A service manager that signals every process (systemd's default KillMode) stops it: the
    bot does not start it again behind the manager's back."""
    receiver = ReceiverProcess(options(tmp_path / "spool.db", free_port()))
    await receiver.start()
    stop = asyncio.Event()
    supervisor = asyncio.create_task(receiver.supervise(stop))
    assert receiver.running and receiver.pid is not None
    os.kill(receiver.pid, signal.SIGTERM)
    async with asyncio.timeout(10):
        await supervisor
    assert not receiver.running and receiver.restarts == 0
    await receiver.stop()


def test_the_backoff_grows_for_a_child_that_keeps_dying_and_resets_after_a_steady_run(
    tmp_path: Path,
) -> None:
    receiver = ReceiverProcess(options(tmp_path / "spool.db"), backoff=(1.0, 2.0, 5.0))
    assert [receiver.next_delay(0.5) for _ in range(4)] == [1.0, 2.0, 5.0, 5.0]
    assert receiver.next_delay(None) == 5.0, "a failed start counts as a failure too"
    assert receiver.next_delay(3600.0) == 1.0, "it ran for an hour: start again at once"
    assert receiver.next_delay(1.0) == 2.0


async def test_a_child_that_dies_again_and_again_is_restarted_each_time(tmp_path: Path) -> None:
    receiver = ReceiverProcess(options(tmp_path / "spool.db", free_port()), backoff=(0.05,))
    await receiver.start()
    stop = asyncio.Event()
    supervisor = asyncio.create_task(receiver.supervise(stop))
    try:
        for round_ in range(1, 3):
            pid = receiver.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            async with asyncio.timeout(20):
                while receiver.restarts < round_:
                    await asyncio.sleep(0.05)
            assert receiver.running and receiver.pid != pid
        assert receiver.failures == 2, "two quick deaths in a row"
    finally:
        stop.set()
        await supervisor
        await receiver.stop()


async def test_the_child_gets_none_of_the_bots_secrets_from_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HH_DISCORD__TOKEN", "discord-secret-do-not-pass")
    receiver = ReceiverProcess(options(tmp_path / "spool.db", free_port()))
    await receiver.start()
    try:
        assert receiver.pid is not None
        environ = Path(f"/proc/{receiver.pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{receiver.pid}/cmdline").read_bytes()
        assert b"discord-secret-do-not-pass" not in environ
        assert WEBHOOK_TOKEN.encode() not in environ + cmdline
    finally:
        await receiver.stop()
