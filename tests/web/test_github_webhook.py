"""POST /webhooks/github on GitHub's captured bodies, signed with a test secret, and every bad
input: nothing is stored unless the signature, the size and the body are right."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app.services import Services
from bot.config import AccessSettings
from bot.domain.outbox import OutboxKind
from bot.metrics import Metrics
from bot.storage.database import Database
from bot.storage.models import GitHubDelivery, OutboxEntry
from bot.web.app import HealthSources, create_app
from tests.github_webhooks import ROUTE, SECRET, fixture, request, sign
from tests.services.conftest import FakeRoles


async def _ready() -> float:
    return 0.001


@pytest.fixture
def services(database: Database, clock) -> Services:
    return Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(),
        roles=FakeRoles(),
        owner_ids=frozenset(),
    )


def github_app(services: Services, secret: str | None = SECRET) -> web.Application:
    return create_app(
        Metrics(),
        HealthSources(lambda: True, _ready),
        github_secret=secret,
        github_receive=services.devlog.receive,
    )


@pytest.fixture
async def client(services: Services) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(github_app(services))) as test_client:
        yield test_client


async def count(database: Database, model, *where) -> int:
    async with database.sessions() as session:
        query = select(func.count()).select_from(model)
        for clause in where:
            query = query.where(clause)
        return int(await session.scalar(query) or 0)


async def test_a_signed_delivery_is_stored_once(client, database) -> None:
    body, headers = request("workflow_run", fixture("workflow_run_failure"))
    first = await client.post(ROUTE, data=body, headers=headers)
    assert first.status == 202
    assert (await first.json())["status"] == "accepted"
    again = await client.post(ROUTE, data=body, headers=headers)  # GitHub's "Redeliver"
    assert again.status == 200 and (await again.json())["status"] == "duplicate"
    assert await count(database, GitHubDelivery) == 1
    assert await count(database, OutboxEntry, OutboxEntry.kind == OutboxKind.DEVLOG_APPLY) == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        "sha256=" + "0" * 64,
        sign(b"another body"),
        sign(b"x", "the-wrong-secret-0123456789"),
        "sha1=0123456789abcdef0123456789abcdef01234567",
        "sha256=ÿ",
    ],
)
async def test_missing_or_wrong_signature_is_401_and_stores_nothing(
    client, database, signature, caplog
) -> None:
    body, headers = request("pull_request", fixture("pull_request_merged"))
    if signature is None:
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = signature
    with caplog.at_level(logging.DEBUG):
        response = await client.post(ROUTE, data=body, headers=headers)
    assert response.status == 401
    text = await response.text()
    assert "X-Hub-Signature-256" in text and SECRET not in text
    assert SECRET not in caplog.text
    assert await count(database, GitHubDelivery) == 0


async def test_over_one_mib_is_413(client, database) -> None:
    payload = fixture("push")
    payload["padding"] = "x" * (1024 * 1024)
    body, headers = request("push", payload)
    response = await client.post(ROUTE, data=body, headers=headers)
    assert response.status == 413

    async def chunks():  # no Content-Length: found while reading
        for _ in range(20):
            yield b" " * (64 * 1024)

    headers.pop("Content-Length", None)
    response = await client.post(ROUTE, data=chunks(), headers=headers)
    assert response.status == 413
    assert await count(database, GitHubDelivery) == 0


async def test_a_body_that_is_not_the_event_is_400_naming_the_field(client, database) -> None:
    payload = fixture("pull_request_merged")
    del payload["pull_request"]["base"]
    body, headers = request("pull_request", payload)
    response = await client.post(ROUTE, data=body, headers=headers)
    assert response.status == 400
    answer = await response.json()
    assert answer["field"] == "pull_request.base" and "pull_request.base" in answer["error"]

    wrong_type = fixture("workflow_run_failure")
    wrong_type["workflow_run"]["workflow_id"] = "CI"
    body, headers = request("workflow_run", wrong_type)
    answer = await (await client.post(ROUTE, data=body, headers=headers)).json()
    assert answer["field"] == "workflow_run.workflow_id"

    # A pull_request body sent as a release: release is the missing field.
    body, headers = request("release", fixture("pull_request_merged"))
    answer = await (await client.post(ROUTE, data=body, headers=headers)).json()
    assert answer["field"] == "release"

    body, headers = request("push", b"{not json")
    response = await client.post(ROUTE, data=body, headers=headers)
    assert response.status == 400 and "malformed JSON" in (await response.json())["error"]

    body, headers = request("push", fixture("push"))
    del headers["X-GitHub-Delivery"]
    response = await client.post(ROUTE, data=body, headers=headers)
    assert response.status == 400 and (await response.json())["field"] == "X-GitHub-Delivery"
    assert await count(database, GitHubDelivery) == 0


async def test_ping_and_unused_events_are_204(client, database) -> None:
    body, headers = request("ping", fixture("ping"))
    response = await client.post(ROUTE, data=body, headers=headers)
    assert response.status == 204
    body, headers = request("issues", {"action": "opened", "issue": {"number": 1}})
    assert (await client.post(ROUTE, data=body, headers=headers)).status == 204
    # ... but only once signed: an unsigned ping is refused like anything else.
    body, headers = request("ping", fixture("ping"), signature="sha256=nope")
    assert (await client.post(ROUTE, data=body, headers=headers)).status == 401
    assert await count(database, GitHubDelivery) == 0


async def test_form_encoded_is_415(client) -> None:
    body, headers = request("push", fixture("push"))
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await client.post(ROUTE, data=body, headers=headers)
    assert response.status == 415


async def test_without_a_secret_the_route_is_503(services, database) -> None:
    async with TestClient(TestServer(github_app(services, secret=None))) as plain:
        body, headers = request("push", fixture("push"))
        response = await plain.post(ROUTE, data=body, headers=headers)
        assert response.status == 503
        assert "webhook_secret" in (await response.json())["error"]
    assert await count(database, GitHubDelivery) == 0


async def test_what_is_stored_is_the_event_the_bot_uses(client, database) -> None:
    body, headers = request("pull_request", fixture("pull_request_merged"))
    assert (await client.post(ROUTE, data=body, headers=headers)).status == 202
    async with database.sessions() as session:
        row = await session.scalar(select(GitHubDelivery))
    assert row is not None and row.event == "pull_request"
    assert row.delivery_id == headers["X-GitHub-Delivery"]
    assert row.payload["pull_request"]["number"] == 57
    assert "diff_url" not in json.dumps(row.payload)  # unused fields are not kept
