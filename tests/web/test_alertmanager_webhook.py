"""POST /webhooks/alertmanager on Alertmanager 0.25's real payloads, and every bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.domain.outbox import OutboxKind, OutboxStatus
from bot.metrics import Metrics
from bot.services.alerts import AlertService
from bot.storage.database import Database
from bot.storage.models import AlertGroupRow, AlertNotification, OutboxEntry
from bot.web.app import HealthSources, create_app
from tests.alerting import FIXTURES, WEBHOOK_TOKEN, fixture, fixture_bytes, storm, wire

ROUTE = "/webhooks/alertmanager"
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("[01]*.json"))


async def _ready() -> float:
    return 0.001


@pytest.fixture
def service(database: Database, clock) -> AlertService:
    return wire(database, clock)[0]


def webhook_app(ingest) -> web.Application:
    health = HealthSources(lambda: True, _ready)
    return create_app(Metrics(), health, alertmanager_token=WEBHOOK_TOKEN, ingest=ingest)


@pytest.fixture
async def client(service: AlertService) -> AsyncIterator[TestClient]:
    app = webhook_app(service.ingest)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def count(database: Database, model, *where) -> int:
    async with database.sessions() as session:
        query = select(func.count()).select_from(model)
        for clause in where:
            query = query.where(clause)
        return int(await session.scalar(query) or 0)


async def post(client: TestClient, body: bytes, headers: dict[str, str] | None = None):
    return await client.post(ROUTE, data=body, headers=AUTH if headers is None else headers)


# -- authorisation and bad input ------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": f"Basic {WEBHOOK_TOKEN}"},
        {"Authorization": f"Bearer {WEBHOOK_TOKEN}x"},
        {"Authorization": "Bearer "},
    ],
)
async def test_wrong_or_missing_token_is_401(client, database, headers) -> None:
    response = await post(client, fixture_bytes("01_firing_single_nodeoffline.json"), headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"]
    assert await count(database, AlertNotification) == 0


async def raw_post(client: TestClient, authorization: bytes, body: bytes) -> tuple[int, bytes]:
    """A request written byte for byte (an HTTP client would refuse a non-ASCII header)."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            b"POST " + ROUTE.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n"
            b"Authorization: " + authorization + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


NON_ASCII_AUTHORIZATIONS = [
    b"Bearer \xff\xfe",
    b"Bearer " + WEBHOOK_TOKEN.encode() + b"\x80",
    b"Bearer caf\xc3\xa9",  # UTF-8, but no token has it
    b"B\xe9arer " + WEBHOOK_TOKEN.encode(),
]


@pytest.mark.parametrize("authorization", NON_ASCII_AUTHORIZATIONS)
async def test_non_ascii_authorization_is_401(client, database, authorization) -> None:
    """Security item 10: a non-ASCII byte in Authorization answered 500 with a traceback."""
    status, body = await raw_post(
        client, authorization, fixture_bytes("01_firing_single_nodeoffline.json")
    )
    assert status == 401
    assert json.loads(body)["error"] == "missing or wrong bearer token"
    assert await count(database, AlertNotification) == 0


async def test_body_over_one_mib_is_413(client, database) -> None:
    body = json.dumps({**fixture("01_firing_single_nodeoffline.json"), "pad": "x" * 1024**2})
    response = await post(client, body.encode())
    assert response.status == 413
    assert "error" in await response.json()


async def test_chunked_body_over_one_mib_is_413(client) -> None:
    async def chunks():
        for _ in range(20):
            yield b"x" * 64 * 1024

    response = await client.post(ROUTE, data=chunks(), headers=AUTH)
    assert response.status == 413


async def test_malformed_json_is_400(client, database) -> None:
    response = await post(client, b'{"version": "4", "alerts": [')
    assert response.status == 400
    assert (await response.json())["error"].startswith("malformed JSON")
    assert await count(database, AlertNotification) == 0


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("groupKey"), "groupKey"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.update(status="exploded"), "status"),
        (lambda p: p.update(alerts=[]), "alerts"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
        (lambda p: p["alerts"][0].update(labels="node=x"), "alerts.0.labels"),
        (lambda p: p.update(truncatedAlerts=-1), "truncatedAlerts"),
    ],
)
async def test_schema_errors_are_400_naming_the_field(client, database, mutate, field) -> None:
    payload = fixture("01_firing_single_nodeoffline.json")
    mutate(payload)
    response = await post(client, json.dumps(payload).encode())
    assert response.status == 400
    body = await response.json()
    assert body["field"] == field, body
    assert field in body["error"]
    assert await count(database, AlertNotification) == 0


OUT_OF_RANGE_TIMES = [
    ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z"),  # 31 Dec of year 0 in UTC
    ("9999-12-31T23:30:00-01:00", "9999-12-31T23:59:59.999999Z"),  # year 10000 in UTC
    ("2026-11-28T03:00:00", "timezone"),  # no offset: which time is it?
]


@pytest.mark.parametrize("name", ["startsAt", "endsAt"])
@pytest.mark.parametrize(("value", "why"), OUT_OF_RANGE_TIMES)
async def test_a_timestamp_outside_what_is_stored_is_400_naming_it(
    client, database, name, value, why
) -> None:
    """Security item 11: such a timestamp passed validation, then failed the store with 503
    (Alertmanager retries that forever), and took the other bodies of its batch with it."""
    payload = fixture("04_firing_group_4_alerts.json")
    payload["alerts"][1][name] = value
    response = await post(client, json.dumps(payload).encode())
    assert response.status == 400
    body = await response.json()
    assert body["field"] == f"alerts.1.{name}", body
    assert why in body["error"]
    assert await count(database, AlertNotification) == 0


async def test_the_edges_of_what_is_stored_are_accepted(client, database) -> None:
    payload = fixture("01_firing_single_nodeoffline.json")
    payload["alerts"][0].update(
        startsAt="0001-01-01T01:00:00+01:00", endsAt="9999-12-31T22:59:59.999999-01:00"
    )
    response = await post(client, json.dumps(payload).encode())
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.update(groupKey='{}:{alertname="a\u0000"}'), "groupKey"),
        (lambda p: p.update(receiver="discord\u0000"), "receiver"),
        (lambda p: p["alerts"][0].update(fingerprint="f\u0000"), "alerts.0.fingerprint"),
    ],
)
async def test_a_nul_character_is_400_naming_the_field(client, database, mutate, field) -> None:
    """PostgreSQL text cannot hold NUL: refused at the door, not a 503 (or a stuck processor).
    (Labels and annotations are stored as JSON, where it is an escape like any other.)"""
    payload = fixture("01_firing_single_nodeoffline.json")
    mutate(payload)
    response = await post(client, json.dumps(payload).encode())
    assert response.status == 400
    assert (await response.json())["field"] == field
    assert await count(database, AlertNotification) == 0


async def test_a_bad_body_never_fails_a_good_one_sent_with_it(client, database) -> None:
    bad = fixture("04_firing_group_4_alerts.json")
    bad["alerts"][0]["startsAt"] = OUT_OF_RANGE_TIMES[0][0]
    good = fixture("01_firing_single_nodeoffline.json")
    answers = await asyncio.gather(
        *(post(client, json.dumps(body).encode()) for body in (bad, good, bad, good))
    )
    assert [a.status for a in answers] == [400, 200, 400, 200]
    assert await count(database, AlertNotification) == 1


async def test_the_body_is_stored_as_the_text_that_arrived(client, database) -> None:
    """Validated once by pydantic's JSON parser, then stored byte for byte: no second encode."""
    body = json.dumps(fixture("01_firing_single_nodeoffline.json"), indent=1).encode()
    response = await post(client, body)
    assert response.status == 200, await response.text()
    async with database.engine.connect() as conn:
        stored = (await conn.exec_driver_sql("SELECT payload FROM alert_notifications")).scalar()
    if database.engine.dialect.name == "sqlite":
        assert stored == body.decode()
    else:  # a JSON column: the same document
        assert (json.loads(stored) if isinstance(stored, str) else stored) == json.loads(body)


async def test_a_json_array_is_400(client) -> None:
    response = await post(client, b"[1, 2]")
    assert response.status == 400
    assert (await response.json())["field"] == "(body)"


async def test_not_configured_is_503_with_a_clear_error() -> None:
    app = create_app(Metrics(), HealthSources(lambda: True, _ready))
    async with TestClient(TestServer(app)) as client:
        response = await post(client, fixture_bytes("01_firing_single_nodeoffline.json"))
        assert response.status == 503
        assert "[alertmanager] webhook_token" in (await response.json())["error"]


async def test_database_failure_is_503_so_alertmanager_retries() -> None:
    async def broken(payload, raw):
        raise ConnectionRefusedError("db down")

    app = webhook_app(broken)
    async with TestClient(TestServer(app)) as client:
        response = await post(client, fixture_bytes("01_firing_single_nodeoffline.json"))
        assert response.status == 503
        assert "retry" in (await response.json())["error"]


# -- durable, idempotent ingest -------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FIXTURES)
async def test_every_real_payload_is_accepted_and_stored(client, database, name) -> None:
    response = await post(client, fixture_bytes(name))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["status"] == "accepted"
    assert await count(database, AlertNotification) == 1
    assert await count(database, AlertGroupRow) == 1
    assert await count(database, OutboxEntry, OutboxEntry.kind == OutboxKind.ALERTS_DELIVER) == 1


async def test_retry_repeat_and_ha_twin_are_duplicates(client, database) -> None:
    first = await post(client, fixture_bytes("01_firing_single_nodeoffline.json"))
    assert (await first.json())["status"] == "accepted"
    # 02 is Alertmanager's repeat of the same content; a retry or the HA twin is byte-identical.
    for name in ("02_firing_single_repeat_notification.json", "01_firing_single_nodeoffline.json"):
        again = await post(client, fixture_bytes(name))
        assert again.status == 200
        assert (await again.json())["status"] == "duplicate"
    # Same content in another key order and formatting is the same notification.
    reordered = json.dumps(fixture("01_firing_single_nodeoffline.json"), indent=2, sort_keys=True)
    assert (await (await post(client, reordered.encode())).json())["status"] == "duplicate"
    assert await count(database, AlertNotification) == 1
    assert await count(database, OutboxEntry) == 1


async def test_concurrent_duplicates_store_one(client, database) -> None:
    body = fixture_bytes("04_firing_group_4_alerts.json")
    responses = await asyncio.gather(*(post(client, body) for _ in range(8)))
    statuses = sorted([(await r.json())["status"] for r in responses])
    assert all(r.status == 200 for r in responses)
    assert statuses.count("accepted") == 1 and statuses.count("duplicate") == 7
    assert await count(database, OutboxEntry) == 1


async def test_group_lifecycle_firing_partial_resolved(client, database) -> None:
    names = [
        "04_firing_group_4_alerts.json",
        "05_firing_group_partially_resolved.json",
        "06_resolved_group_4_alerts.json",
    ]
    ids = set()
    for name in names:
        body = await (await post(client, fixture_bytes(name))).json()
        assert body["status"] == "accepted"
        ids.add(body["group_id"])
    assert len(ids) == 1, "one group for one groupKey"
    async with database.sessions() as session:
        row = await session.get(AlertGroupRow, ids.pop())
        assert row is not None
        assert (row.status, row.version, row.episode) == ("resolved", 3, 1)
        assert row.resolved_at is not None
        assert len(row.state["alerts"]) == 4
    items = await count(database, OutboxEntry, OutboxEntry.status == OutboxStatus.PENDING.value)
    assert items == 3


async def test_late_firing_after_resolve_is_stale(client) -> None:
    await post(client, fixture_bytes("01_firing_single_nodeoffline.json"))
    await post(client, fixture_bytes("03_resolved_single_nodeoffline.json"))
    # The same firing alerts arriving after the resolve, e.g. from the HA peer's other
    # receiver name: not a duplicate, but nothing new either.
    late = fixture("01_firing_single_nodeoffline.json")
    late["receiver"] = "bot-webhook-peer"
    body = await (await post(client, json.dumps(late).encode())).json()
    assert body["status"] == "stale"


async def test_firing_again_after_resolve_is_a_new_episode(client, database) -> None:
    await post(client, fixture_bytes("01_firing_single_nodeoffline.json"))
    await post(client, fixture_bytes("03_resolved_single_nodeoffline.json"))
    again = fixture("01_firing_single_nodeoffline.json")
    again["alerts"][0]["startsAt"] = "2026-11-28T05:30:00.000Z"
    body = await (await post(client, json.dumps(again).encode())).json()
    assert body["status"] == "accepted"
    async with database.sessions() as session:
        row = await session.get(AlertGroupRow, body["group_id"])
        assert row is not None and (row.status, row.episode) == ("firing", 2)
        assert row.message_ref is None


async def test_watchdog_is_recorded_not_posted(client, database) -> None:
    watchdog = fixture("01_firing_single_nodeoffline.json")
    watchdog["groupKey"] = '{}:{alertname="Watchdog"}'
    watchdog["alerts"][0]["labels"] = {"alertname": "Watchdog", "severity": "none"}
    watchdog["alerts"][0]["fingerprint"] = "00000000000000aa"
    body = await (await post(client, json.dumps(watchdog).encode())).json()
    assert body["status"] == "watchdog"
    assert await count(database, AlertGroupRow) == 0
    assert await count(database, OutboxEntry) == 0


async def test_the_storm_is_fifty_groups(client, database) -> None:
    responses = await asyncio.gather(*(post(client, line) for line in storm("firing")))
    assert [r.status for r in responses] == [200] * 50
    assert await count(database, AlertGroupRow) == 50
    assert await count(database, OutboxEntry) == 50


async def test_a_new_episode_forgets_the_old_incident(client, service, database) -> None:
    """A group that fires again after resolving offers Open incident again."""
    first = await (await post(client, fixture_bytes("01_firing_single_nodeoffline.json"))).json()
    async with database.uow() as uow:
        group = await uow.alerts.get_group(first["group_id"])
        assert group is not None
        await uow.alerts.save_group(replace(group, incident_ref="INC-2026-0001"))
        await uow.commit()
    await post(client, fixture_bytes("03_resolved_single_nodeoffline.json"))
    again = fixture("01_firing_single_nodeoffline.json")
    again["alerts"][0]["startsAt"] = "2026-11-28T05:30:00.000Z"
    body = await (await post(client, json.dumps(again).encode())).json()
    assert body["group_id"] == first["group_id"]
    async with database.sessions() as session:
        row = await session.get(AlertGroupRow, body["group_id"])
        assert row is not None and row.episode == 2
        assert row.incident_ref is None


# -- as the bot wires it: the answer comes once the body is stored ----------------------------


async def test_the_bots_webhook_answers_once_stored_and_the_group_follows(
    service, database
) -> None:
    app = webhook_app(service.receive)
    async with TestClient(TestServer(app)) as client:
        response = await post(client, fixture_bytes("04_firing_group_4_alerts.json"))
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "accepted" and body["notification_id"] >= 1
        assert "group_id" not in body
        assert await count(database, AlertNotification) == 1
        assert await count(database, AlertGroupRow) == 0, "not applied yet"
        again = await (await post(client, fixture_bytes("04_firing_group_4_alerts.json"))).json()
        assert again["status"] == "duplicate" and "notification_id" not in again
    assert await service.process_pending() == 1
    assert await count(database, AlertGroupRow) == 1
    assert await count(database, OutboxEntry, OutboxEntry.kind == OutboxKind.ALERTS_DELIVER) == 1
