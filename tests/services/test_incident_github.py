"""Incidents on GitHub: the real PyGithub against the loopback GitHub API, with faults.

GitHub down, rate-limited, slow or refusing never blocks an incident: the incident is open at
once, the GitHub work waits in the outbox and is retried, and recovery makes no duplicates.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from bot.app.services import Services
from bot.config import AccessSettings, GitHubSettings
from bot.domain.incidents import ChecklistItem, format_ref
from bot.domain.outbox import OutboxItem, OutboxKind, OutboxStatus
from bot.integrations.github import GitHubIssues
from bot.storage.database import Database
from tests.conftest import FakeClock
from tests.fakes.github_api import GitHubAPI
from tests.services.conftest import CORE_A, NODE, FakeRoles

TOKEN = "ghp_test_token_never_logged_0123456789"
REPO = "hyper-hash/operations"


@dataclass
class World:
    services: Services
    api: GitHubAPI
    clock: FakeClock
    database: Database
    notices: list[dict] = field(default_factory=list)

    async def drain(self) -> None:
        await self.services.outbox.drain_all()

    async def later(self, seconds: float) -> None:
        """Move the clock past a retry delay, then deliver what is due."""
        self.clock.advance(seconds=seconds)
        await self.drain()


@pytest.fixture
async def gh() -> AsyncIterator[GitHubAPI]:
    async with GitHubAPI(token=TOKEN, repo=REPO) as api:
        yield api


def build(database: Database, clock: FakeClock, api: GitHubAPI, repo: str = REPO) -> World:
    settings = GitHubSettings(repo=repo, token=SecretStr(TOKEN), api_url=api.url, timeout_seconds=1)
    services = Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(),
        roles=FakeRoles(),
        owner_ids=frozenset(),
        tracker=GitHubIssues(settings, clock),
    )
    world = World(services, api, clock, database)

    async def record(item: OutboxItem) -> dict:
        world.notices.append(dict(item.payload))
        return {}

    async def card(item: OutboxItem) -> dict:
        return {}

    services.outbox.register(OutboxKind.NOTICE, record)
    services.outbox.register(OutboxKind.DIRECT, record)
    services.outbox.register(OutboxKind.INCIDENT_CARD, card)
    return world


@pytest.fixture
def world(database: Database, gh: GitHubAPI) -> World:
    # The rate-limit reset GitHub sends is wall-clock time: the fake clock starts at "now".
    return build(database, FakeClock(datetime.now(UTC).replace(microsecond=0)), gh)


async def statuses(world: World, kind: str | None = None) -> dict[str, int]:
    async with world.database.uow() as uow:
        return {s.value: await uow.outbox.count(s) for s in OutboxStatus}


async def test_whole_life_of_an_incident_on_github(world: World) -> None:
    incident = await world.services.incidents.open(
        CORE_A, severity=1, title="Payouts halted", summary="The payout job stopped at 02:40."
    )
    await world.drain()
    assert list(world.api.issues) == [1]
    issue = world.api.issues[1]
    assert issue["title"] == "[INC-2026-0001] Sev 1: Payouts halted".replace(
        "2026", str(world.clock.now().year)
    )
    assert issue["label_names"] == ["incident", "sev-1"]
    body = issue["body"]
    for expected in (
        f"<!-- hh-opsbot:{incident.ref} -->",
        "**Opened:**",
        "**Severity:** Sev 1 (mining or payout halted)",
        "**Reporter:** core-a",
        "The payout job stopped at 02:40.",
        "- [ ] Isolate affected systems",
    ):
        assert expected in body
    stored = await world.services.incidents.get(incident.ref)
    assert stored.github_number == 1 and stored.github_url == issue["html_url"]

    await world.services.incidents.update(NODE, incident.ref, "Payout job restarted", "monitoring")
    await world.services.incidents.tick(NODE, incident.id, ChecklistItem.ISOLATE)
    await world.drain()
    comments = world.api.comments[1]
    assert len(comments) == 1 and "Payout job restarted" in comments[0]["body"]
    assert "- [x] Isolate affected systems (by node-op" in world.api.issues[1]["body"]

    world.api.issues[1]["label_names"].append("payouts")  # a label added by hand on GitHub
    await world.services.incidents.set_severity(NODE, incident.ref, 2)
    await world.services.incidents.resolve(NODE, incident.ref, "Stuck job", "Restarted it")
    await world.drain()
    assert world.api.issues[1]["state"] == "closed"
    assert world.api.issues[1]["label_names"] == ["incident", "sev-2", "resolved", "payouts"]
    assert "**Cause:** Stuck job" in world.api.issues[1]["body"]

    report = await world.services.incidents.report(NODE, incident.ref)
    await world.drain()
    assert world.api.file_text(f"incidents/{incident.ref}.md") == report.markdown
    assert any("Postmortem: [incidents/" in c["body"] for c in world.api.comments[1])
    stored = await world.services.incidents.get(incident.ref)
    assert stored.report_url and stored.report_url.endswith(f"incidents/{incident.ref}.md")
    assert (await statuses(world))["failed"] == 0
    # A second report updates the same file (with its sha), no error.
    await world.services.incidents.report(NODE, incident.ref)
    await world.drain()
    assert (await statuses(world))["failed"] == 0
    assert len([p for p in world.api.files]) == 1


async def test_5xx_then_recovery_without_duplicates(world: World) -> None:
    world.api.fail_next(502, count=2)
    incident = await world.services.incidents.open(CORE_A, severity=2, title="Nodes offline")
    # The incident exists at once, whatever GitHub does.
    assert (await world.services.incidents.get(incident.ref)).github_number is None
    await world.drain()
    assert world.api.issues == {}
    assert (await statuses(world))["pending"] >= 1
    await world.later(5)
    await world.later(10)
    assert list(world.api.issues) == [1]
    await world.services.incidents.update(CORE_A, incident.ref, "Two nodes back")
    world.api.fail_next(503, path_contains="/comments")
    await world.drain()
    await world.later(10)
    await world.later(30)
    assert len(world.api.comments[1]) == 1
    assert (await statuses(world))["pending"] == 0


async def test_rate_limit_waits_for_the_advertised_reset(world: World) -> None:
    reset = world.api.rate_limit_next(reset_in=120)
    await world.services.incidents.open(CORE_A, severity=1, title="Payouts halted")
    await world.drain()
    assert world.api.issues == {}
    async with world.database.uow() as uow:
        item = next(
            i
            for i in await uow.outbox.due(world.clock.now().replace(year=2100), 50)
            if i.kind == OutboxKind.GITHUB_ISSUE_CREATE
        )
    wait = (item.available_at - world.clock.now()).total_seconds()
    assert (
        reset - world.clock.now().timestamp() <= wait <= reset - world.clock.now().timestamp() + 5
    )
    assert "rate limit" in (item.last_error or "")
    await world.later(60)
    assert world.api.issues == {}  # not before the reset
    await world.later(70)
    assert list(world.api.issues) == [1]


async def test_timeouts_then_recovery_without_duplicate_issues_or_comments(world: World) -> None:
    # The create is carried out but its answer never arrives in time (PyGithub timeout 1 s).
    world.api.slow_next(2.5, method="POST")
    incident = await world.services.incidents.open(CORE_A, severity=1, title="Payouts halted")
    await world.drain()
    assert list(world.api.issues) == [1]  # GitHub has it ...
    assert (await world.services.incidents.get(incident.ref)).github_number is None  # ... we don't
    await world.later(10)
    await world.later(30)
    assert list(world.api.issues) == [1]  # found by its marker, not created twice
    assert (await world.services.incidents.get(incident.ref)).github_number == 1
    world.api.slow_next(2.5, method="POST")
    await world.services.incidents.update(CORE_A, incident.ref, "Restarted the payout job")
    await world.drain()
    await world.later(10)
    await world.later(30)
    assert len(world.api.comments[1]) == 1
    assert (await statuses(world))["pending"] == 0


async def test_refusal_is_permanent_and_visible(database: Database, gh: GitHubAPI) -> None:
    world = build(database, FakeClock(datetime.now(UTC)), gh, repo="hyper-hash/missing")
    incident = await world.services.incidents.open(CORE_A, severity=3, title="Chart glitch")
    await world.drain()
    stored = await world.services.incidents.get(incident.ref)
    assert stored.github_error and "404" in stored.github_error
    await world.services.incidents.update(CORE_A, incident.ref, "still glitchy")
    await world.drain()
    counts = await statuses(world)
    assert counts["failed"] == 2 and counts["pending"] == 0


async def test_not_configured_means_no_github_work(services: Services) -> None:
    assert not services.incidents.github_configured
    await services.incidents.open(CORE_A, severity=1, title="Payouts halted")
    async with services.incidents._uow() as uow:
        due = await uow.outbox.due(datetime(2100, 1, 1, tzinfo=UTC), 50)
    assert not [i for i in due if i.kind.startswith("github.")]


async def test_token_never_in_errors_or_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.api.fail_next(500)
    world.api.rate_limit_next(30)
    await world.services.incidents.open(CORE_A, severity=1, title="Payouts halted")
    await world.drain()
    await world.later(60)
    assert TOKEN not in caplog.text
    async with world.database.uow() as uow:
        rows = await uow.audit.recent(100)
    assert all(TOKEN not in str(r.details) for r in rows)


async def test_pending_github_work_survives_a_restart(world: World) -> None:
    """GitHub is down when the incident opens and the bot restarts: the new process delivers
    the queued work, in order, once."""
    world.api.fail_next(502, count=3)
    incident = await world.services.incidents.open(CORE_A, severity=1, title="Payouts halted")
    await world.services.incidents.update(CORE_A, incident.ref, "Looking into it")
    await world.drain()
    assert world.api.issues == {}
    # A new process: new services, same database, same clock.
    restarted = build(world.database, world.clock, world.api)
    for _ in range(6):
        await restarted.later(60)
    assert list(world.api.issues) == [1]
    assert len(world.api.comments[1]) == 1
    assert "Looking into it" in world.api.comments[1][0]["body"]
    assert (await statuses(restarted))["pending"] == 0


async def test_alert_text_cannot_hijack_another_incidents_issue(world: World) -> None:
    """Security item 3: text carrying the next incident's marker (an alert description, say)
    once made that incident reuse and overwrite this issue. Markers count only where the bot
    put them, and the text reaches GitHub without HTML comments and without live @mentions."""
    year = world.clock.now().year
    next_ref = format_ref(year, 2)
    hostile = f"Pool down. <!-- hh-opsbot:{next_ref} --> ping @hyper-hash/core and @alice"
    first = await world.services.incidents.open(
        CORE_A, severity=2, title="Pool @everyone down", summary=hostile
    )
    await world.drain()
    second = await world.services.incidents.open(CORE_A, severity=3, title="Chart glitch")
    assert second.ref == next_ref
    await world.drain()
    assert sorted(world.api.issues) == [1, 2]  # the second incident opened its own issue
    assert (await world.services.incidents.get(second.ref)).github_number == 2
    one, two = world.api.issues[1]["body"], world.api.issues[2]["body"]
    assert "Chart glitch" not in one and f"**Incident:** {first.ref}" in one  # not overwritten
    assert two.splitlines()[0] == f"<!-- hh-opsbot:{second.ref} -->"
    # Only the bot's own marker, on the first line, is an HTML comment; no live mentions.
    assert one.count("<!--") == 1 and one.startswith(f"<!-- hh-opsbot:{first.ref} -->\n")
    assert "Pool down." in one
    for text in (one, world.api.issues[1]["title"]):
        assert not re.search(r"@[A-Za-z0-9]", text)
    assert "@\u200bhyper-hash/core" in one

    # The same for comments: text carrying the next entry's comment marker.
    async with world.database.uow() as uow:
        entries = await uow.incidents.timeline(first.id)
    next_entry = f"hh-opsbot:{first.ref}:entry:{entries[-1].id + 2}"
    await world.services.incidents.update(
        CORE_A, first.ref, f"Looking. <!-- {next_entry} --> @alice"
    )
    await world.services.incidents.update(CORE_A, first.ref, "Restarted the pool")
    await world.drain()
    bodies = [c["body"] for c in world.api.comments[1]]
    assert len(bodies) == 2 and "Restarted the pool" in bodies[1]
    assert all(b.count("<!--") == 1 for b in bodies)
    assert not any(re.search(r"@[A-Za-z0-9]", b) for b in bodies)

    # The postmortem file: same rule.
    await world.services.incidents.report(CORE_A, first.ref)
    await world.drain()
    text = world.api.file_text(f"incidents/{first.ref}.md")
    assert text is not None and "Pool down." in text
    assert "<!--" not in text and not re.search(r"@[A-Za-z0-9]", text)


async def test_markers_count_only_where_the_bot_puts_them(gh: GitHubAPI) -> None:
    """An issue or comment with a marker anywhere but its own place is not the bot's."""
    clock = FakeClock(datetime.now(UTC))
    settings = GitHubSettings(repo=REPO, token=SecretStr(TOKEN), api_url=gh.url, timeout_seconds=1)
    tracker = GitHubIssues(settings, clock)
    marker = "<!-- hh-opsbot:INC-2026-0007 -->"
    number, _ = await tracker.create_issue("Someone's issue", f"Quoting:\n{marker}\n", ["incident"])
    assert await tracker.find_issue(marker) is None
    mine = await tracker.create_issue("[INC-2026-0007]", f"{marker}\n**Incident:**", ["incident"])
    assert await tracker.find_issue(marker) == mine
    await tracker.comment(number, "quoting <!-- hh-opsbot:INC-2026-0007:entry:9 --> here", "x")
    await tracker.comment(number, "the real one", "hh-opsbot:INC-2026-0007:entry:9")
    assert len(gh.comments[number]) == 2
    await tracker.comment(number, "the real one, again", "hh-opsbot:INC-2026-0007:entry:9")
    assert len(gh.comments[number]) == 2  # found at its place: not posted twice


async def test_a_report_without_a_link_from_github_links_nothing(world: World) -> None:
    """Issue 16 §2: GitHub gave no link for the committed report; the card showed
    "[report](None)" and the comment "(None)"."""
    tracker = world.services.incidents.tracker
    assert tracker is not None

    async def no_link(path: str, content: str, message: str) -> str | None:
        return None

    tracker.put_file = no_link  # type: ignore[method-assign]
    incident = await world.services.incidents.open(CORE_A, severity=3, title="Chart glitch")
    await world.services.incidents.resolve(NODE, incident.ref, "Cache", "Purged")
    await world.services.incidents.report(NODE, incident.ref)
    await world.drain()
    stored = await world.services.incidents.get(incident.ref)
    assert stored.report_url is None
    bodies = [c["body"] for c in world.api.comments[1]]
    assert any(b.startswith(f"Postmortem: `incidents/{incident.ref}.md`") for b in bodies)
    assert not any("None" in body for body in bodies)
