"""#dev-log's service over a real database (SQLite, PostgreSQL when configured) and a fake clock:
each delivery stored once, a failing workflow one post edited to green, a burst of merges one
post, releases through the signed-manifest flow, incident links from pull requests and pushes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app.services import Services
from bot.config import AccessSettings, UpgradeSettings
from bot.domain.devlog import parse_event
from bot.domain.errors import InvalidInput
from bot.domain.incidents import LinkKind, TimelineKind
from bot.domain.outbox import NoticeTemplate, OutboxItem, OutboxKind
from bot.integrations.releases import HttpManifestFetcher
from bot.storage.database import Database
from bot.storage.models import DevLogPostEntry, GitHubDelivery, IncidentLinkEntry
from tests.fakes.minisign_tool import KeyPair, generate
from tests.fakes.releases import ReleaseFiles, manifest
from tests.github_webhooks import fixture, merged_pr, new_delivery, workflow_run
from tests.services.conftest import CORE_A, Delivered, FakeRoles, audit_actions


@dataclass
class DevLog:
    """The #dev-log channel as the fake Discord handler sees it: post once, then edit."""

    messages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    """message id -> every version shown (the first is the post, the rest edits)."""
    next_id: int = 9000


def stored(event: str, body: dict[str, Any]) -> dict[str, Any]:
    """The event as the webhook stores it (validated, unused fields dropped)."""
    parsed: dict[str, Any] = json.loads(parse_event(event, body).model_dump_json(exclude_none=True))
    return parsed


async def send(services: Services, event: str, body: dict[str, Any], delivery: str | None = None):
    result = await services.devlog.receive(delivery or new_delivery(), event, stored(event, body))
    await services.outbox.drain_all()
    return result


def with_devlog(services: Services) -> DevLog:
    channel = DevLog()

    async def deliver(item: OutboxItem) -> dict:
        post = await services.devlog.post(int(item.payload["post_id"]))
        assert post is not None
        shown = {"template": post.template, **post.data}
        if post.message_id is None:
            channel.next_id += 1
            channel.messages[channel.next_id] = [shown]
            await services.devlog.posted(post.id, channel_id=1, message_id=channel.next_id)
        else:
            channel.messages[post.message_id].append(shown)
        return {}

    async def card(item: OutboxItem) -> dict:
        return {}

    services.outbox.register(OutboxKind.DEVLOG_POST, deliver)
    services.outbox.register(OutboxKind.INCIDENT_CARD, card)
    return channel


@pytest.fixture
def devlog(services: Services) -> DevLog:
    return with_devlog(services)


async def count(database: Database, model) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_delivery_is_stored_once(services: Services, devlog: DevLog, database) -> None:
    body = workflow_run("failure", run_id=1, started="2026-11-28T02:00:00Z")
    delivery = new_delivery()
    first = await send(services, "workflow_run", body, delivery)
    again = await send(services, "workflow_run", body, delivery)
    assert (first.outcome, again.outcome) == ("accepted", "duplicate")
    assert await count(database, GitHubDelivery) == 1
    assert len(devlog.messages) == 1 and len(next(iter(devlog.messages.values()))) == 1


async def test_failing_then_passing_is_one_message_edited_to_green(
    services: Services, devlog: DevLog, clock, database
) -> None:
    await send(
        services, "workflow_run", workflow_run("failure", run_id=1, started="2026-11-28T02:00:00Z")
    )
    clock.advance(minutes=20)
    await send(
        services, "workflow_run", workflow_run("failure", run_id=2, started="2026-11-28T02:20:00Z")
    )
    clock.advance(minutes=20)
    await send(
        services, "workflow_run", workflow_run("success", run_id=3, started="2026-11-28T02:40:00Z")
    )
    [(_message_id, versions)] = devlog.messages.items()
    assert [v["state"] for v in versions] == ["failing", "failing", "passed"]
    assert versions[1]["failed_runs"] == 2
    assert versions[-1]["failing_since"] == "2026-11-28T02:00:00+00:00"
    assert versions[-1]["failed_for_seconds"] > 0
    # Green again: the next failure is a new message; later successes post nothing.
    await send(
        services, "workflow_run", workflow_run("success", run_id=4, started="2026-11-28T03:00:00Z")
    )
    assert len(devlog.messages) == 1
    await send(
        services, "workflow_run", workflow_run("failure", run_id=5, started="2026-11-28T03:10:00Z")
    )
    assert len(devlog.messages) == 2
    # Another branch, a cancelled run, an older run delivered late: nothing.
    await send(
        services,
        "workflow_run",
        workflow_run("failure", run_id=6, started="2026-11-28T03:20:00Z", branch="feature"),
    )
    await send(
        services,
        "workflow_run",
        workflow_run("cancelled", run_id=7, started="2026-11-28T03:20:00Z"),
    )
    await send(
        services, "workflow_run", workflow_run("success", run_id=8, started="2026-11-28T01:00:00Z")
    )
    assert len(devlog.messages) == 2 and len(devlog.messages[max(devlog.messages)]) == 1
    assert await count(database, DevLogPostEntry) == 2


async def test_successes_alone_post_nothing(services: Services, devlog: DevLog) -> None:
    for n in range(3):
        await send(
            services,
            "workflow_run",
            workflow_run("success", run_id=n + 1, started="2026-11-28T02:00:00Z"),
        )
    assert devlog.messages == {}


async def test_a_burst_of_merges_is_one_message(services: Services, devlog: DevLog, clock) -> None:
    await send(services, "pull_request", merged_pr(1, "Add share window"))
    clock.advance(minutes=3)
    await send(services, "pull_request", merged_pr(2, "Tidy config"))
    await send(services, "pull_request", merged_pr(2, "Tidy config"))  # the same PR again
    await send(services, "pull_request", merged_pr(3, "Backport", base="release/1.x"))
    [(_message_id, versions)] = devlog.messages.items()
    assert [m["number"] for m in versions[-1]["merges"]] == [1, 2]
    assert versions[-1]["template"] == NoticeTemplate.DEVLOG_MERGES
    clock.advance(minutes=30)
    await send(services, "pull_request", merged_pr(4, "Later"))
    assert len(devlog.messages) == 2


async def test_a_merged_pr_naming_an_incident_links_it(
    services: Services, devlog: DevLog, delivered: Delivered, database
) -> None:
    incident = await services.incidents.open(CORE_A, severity=2, title="Payout rounding")
    body = merged_pr(
        57, f"Fix payout rounding ({incident.ref}) @everyone", body="Also INC-1999-0001"
    )
    received = await send(services, "pull_request", body)
    found = await services.incidents.get(incident.ref)
    [link] = found.links
    assert (link.kind, link.url, link.author) == (
        LinkKind.PR,
        "https://github.com/hyper-hash/hyper-node/pull/57",
        "alice-dev",
    )
    timeline = await services.incidents.timeline(incident.id)
    assert timeline[-1].kind is TimelineKind.LINKED
    assert "@everyone" not in timeline[-1].text
    thread = [n for n in delivered.notices if n["template"] == NoticeTemplate.INCIDENT_THREAD]
    assert thread and "pull/57" in thread[-1]["data"]["text"]
    assert ("incident link", "ok") in await audit_actions(database)
    # The outbox item applied again (a crash before it was marked done): no second link.
    [apply] = services.devlog.outbox_handlers().values()
    again = await apply(
        OutboxItem(
            1,
            OutboxKind.DEVLOG_APPLY,
            {"delivery_row": received.delivery_row},
            None,
            0,
            incident.opened_at,
            incident.opened_at,
        )
    )
    assert again is not None and again["linked"] == 0
    assert await count(database, IncidentLinkEntry) == 1


async def test_a_push_links_the_commits_naming_an_incident(
    services: Services, devlog: DevLog
) -> None:
    incident = await services.incidents.open(CORE_A, severity=3, title="Stale shares")
    body = fixture("push")
    body["commits"][1]["message"] = f"Restart the proxy\n\nFollow-up to {incident.ref.lower()}."
    await send(services, "push", body)
    [link] = (await services.incidents.get(incident.ref)).links
    assert link.kind is LinkKind.COMMIT and link.url.endswith("/commit/" + body["commits"][1]["id"])
    assert link.title == "Restart the proxy" and link.author == "bob-ci"
    assert devlog.messages == {}  # a push posts nothing in #dev-log


async def test_incident_link_by_hand_once(services: Services, devlog: DevLog, database) -> None:
    incident = await services.incidents.open(CORE_A, severity=3, title="Stale shares")
    url = "https://github.com/hyper-hash/hyper-node/commit/de9f2c7fd25e1b3afad3e85a0bd17d9b100db4b3"
    linked, added = await services.incidents.link(CORE_A, incident.ref, url)
    assert added and linked.links[0].title == "commit de9f2c7"
    assert linked.links[0].author == CORE_A.name
    _, again = await services.incidents.link(CORE_A, incident.ref, url)
    assert not again
    with pytest.raises(InvalidInput):
        await services.incidents.link(CORE_A, incident.ref, "https://example.org/not-a-pr")
    actions = await audit_actions(database)
    assert actions.count(("incident link", "ok")) == 1


# -- releases ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate(tmp_path_factory.mktemp("devlog-release-key"))


@pytest.fixture
async def files() -> AsyncIterator[ReleaseFiles]:
    async with ReleaseFiles() as server:
        yield server


async def test_a_published_release_goes_through_the_signed_manifest_flow(
    database: Database, clock, keys: KeyPair, files: ReleaseFiles
) -> None:
    services = Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(),
        roles=FakeRoles(),
        owner_ids=frozenset(),
        upgrade_settings=UpgradeSettings(trusted_keys=[keys.public_line]),
        fetcher=HttpManifestFetcher(timeout=2.0, allow_loopback=True),
    )
    notices: list[dict] = []

    async def notice(item: OutboxItem) -> dict:
        notices.append(dict(item.payload))
        return {}

    services.outbox.register(OutboxKind.NOTICE, notice)
    with_devlog(services)
    good = files.publish(keys, "v2.1.0/manifest.json", manifest("2.1.0"))
    body = fixture("release_published")
    assets = body["release"]["assets"]
    assets[0]["browser_download_url"] = good
    assets[1]["browser_download_url"] = good + ".minisig"
    await send(services, "release", body)
    await send(services, "release", body)  # another delivery of the same release
    releases = [n for n in notices if n["template"] == NoticeTemplate.UPGRADE_RELEASE]
    assert len(releases) == 1 and releases[0]["data"]["version"] == "2.1.0"

    # Tampered, or without a signature: nothing announced.
    bad = files.publish(keys, "v2.2.0/manifest.json", manifest("2.2.0"))
    files.files["v2.2.0/manifest.json"] = files.files["v2.2.0/manifest.json"].replace(
        b"2.2.0", b"2.3.0"
    )
    tampered = fixture("release_published")
    tampered["release"]["assets"][0]["browser_download_url"] = bad
    tampered["release"]["assets"][1]["browser_download_url"] = bad + ".minisig"
    await send(services, "release", tampered)
    unsigned = fixture("release_published")
    unsigned["release"]["assets"] = unsigned["release"]["assets"][:1]
    await send(services, "release", unsigned)
    assert len([n for n in notices if n["template"] == NoticeTemplate.UPGRADE_RELEASE]) == 1
    assert ("upgrade:verify", "refused") in await audit_actions(database)
