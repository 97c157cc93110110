"""The GitHub releases poll: the real PyGithub against the loopback GitHub API, manifests signed
by the real minisign; each release verified and announced once, across runs and restarts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.app.services import Services
from bot.config import AccessSettings, GitHubSettings, UpgradeSettings
from bot.domain.outbox import OutboxItem, OutboxKind, RetryLater
from bot.integrations.github import GitHubReleases
from bot.integrations.releases import HttpManifestFetcher
from bot.storage.database import Database
from tests.conftest import FakeClock
from tests.fakes.github_api import GitHubAPI
from tests.fakes.minisign_tool import KeyPair, generate
from tests.fakes.releases import manifest
from tests.services.conftest import CORE_A, FakeRoles, audit_actions

TOKEN = "ghp_release_poll_token_0123456789"
REPO = "hyper-hash/releases"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate(tmp_path_factory.mktemp("poll-key"))


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate(tmp_path_factory.mktemp("poll-rogue"))


@pytest.fixture
async def gh() -> AsyncIterator[GitHubAPI]:
    async with GitHubAPI(token=TOKEN, repo=REPO) as api:
        yield api


def build(
    database: Database, clock: FakeClock, api: GitHubAPI, keys: KeyPair
) -> tuple[Services, list[dict]]:
    settings = GitHubSettings(token=SecretStr(TOKEN), api_url=api.url, timeout_seconds=2)
    services = Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(),
        roles=FakeRoles(),
        owner_ids=frozenset(),
        upgrade_settings=UpgradeSettings(trusted_keys=[keys.public_line], github_repo=REPO),
        fetcher=HttpManifestFetcher(timeout=2.0, allow_loopback=True),  # a loopback GitHub
        release_source=GitHubReleases(settings, REPO, clock),
    )
    posted: list[dict] = []

    async def notice(item: OutboxItem) -> dict:
        posted.append(dict(item.payload))
        return {}

    services.outbox.register(OutboxKind.NOTICE, notice)
    return services, posted


def publish(
    api: GitHubAPI, keys: KeyPair, version: str, *, comment: str | None = None, **extra: bytes
) -> bytes:
    data = json.dumps(manifest(version)).encode()
    assets = {
        "manifest.json": data,
        "manifest.json.minisig": keys.sign(data, comment=comment or f"version:{version}"),
        "hh-node-agent.tar.gz": b"\x1f\x8b binary",
        **extra,
    }
    api.add_release(f"v{version}", assets)
    return data


async def test_each_release_is_announced_once_across_restarts(
    database: Database, clock: FakeClock, gh: GitHubAPI, keys: KeyPair, rogue: KeyPair
) -> None:
    publish(gh, keys, "2.0.0")
    publish(gh, keys, "2.1.0")
    gh.add_release("v2.1.1-notes-only", {"README.md": b"no manifest here"})
    gh.add_release("v9.9.9", {"manifest.json": b"{}", "manifest.json.minisig": b""}, draft=True)
    services, posted = build(database, clock, gh, keys)
    assert await services.upgrades.poll_releases() == 2
    await services.outbox.drain_all()
    versions = [p["data"]["version"] for p in posted if p["template"] == "upgrade.release"]
    assert versions == ["2.0.0", "2.1.0"], "oldest first, once each"
    assert all(p["data"]["key_id"] == keys.key_id for p in posted)

    # The next poll, and a restarted process, announce nothing again and fetch nothing.
    downloads = len([r for r in gh.requests if r.path.startswith("/downloads/")])
    assert await services.upgrades.poll_releases() == 0
    restarted, posted_after = build(database, clock, gh, keys)
    assert await restarted.upgrades.poll_releases() == 0
    assert len([r for r in gh.requests if r.path.startswith("/downloads/")]) == downloads
    await restarted.outbox.drain_all()
    assert posted_after == []

    # A release signed by an unknown key is refused, audited, never posted (and audited once).
    data = json.dumps(manifest("3.0.0")).encode()
    gh.add_release("v3.0.0", {"manifest.json": data, "manifest.json.minisig": rogue.sign(data)})
    assert await restarted.upgrades.poll_releases() == 0
    assert await restarted.upgrades.poll_releases() == 0
    await restarted.outbox.drain_all()
    assert posted_after == []
    refusals = [a for a in await audit_actions(database) if a == ("upgrade:verify", "refused")]
    assert len(refusals) == 1
    announces = [a for a in await audit_actions(database) if a[0] == "upgrade:announce"]
    assert len(announces) == 2


async def test_github_down_is_retried_next_poll(
    database: Database, clock: FakeClock, gh: GitHubAPI, keys: KeyPair
) -> None:
    publish(gh, keys, "2.0.0")
    services, _ = build(database, clock, gh, keys)
    gh.fail_next(502, path_contains="/releases")
    with pytest.raises(RetryLater):
        await services.upgrades.poll_releases()
    assert await services.upgrades.poll_releases() == 1


async def test_the_poll_never_downgrades_nor_replays(
    database: Database, clock: FakeClock, gh: GitHubAPI, keys: KeyPair
) -> None:
    """After 2.0.0, an older signed manifest published later is refused (only Core Ops may
    roll back, by hand); the manifest already announced by hand is the same release, not a
    second one; a trusted comment that does not name the version is refused."""
    services, posted = build(database, clock, gh, keys)
    data = json.dumps(manifest("2.0.0")).encode()
    await services.upgrades.announce_verified(
        CORE_A,
        data,
        keys.sign(data, comment="version:2.0.0"),
        source="https://mirror.invalid/2.0.0/manifest.json",
    )
    publish(gh, keys, "2.0.0")  # the identical manifest, on GitHub
    publish(gh, keys, "1.0.0")  # an older release published after 2.0.0
    publish(gh, keys, "2.1.0", comment="hh release 2.1.0")  # the comment names no version
    assert await services.upgrades.poll_releases() == 0
    assert await services.upgrades.poll_releases() == 0
    await services.outbox.drain_all()
    assert [p["data"]["version"] for p in posted] == ["2.0.0"]
    async with database.uow() as uow:
        assert [r.version for r in await uow.releases.recent(10)] == ["2.0.0"]
    verify = [a for a in await audit_actions(database) if a[0] == "upgrade:verify"]
    assert verify == [
        ("upgrade:verify", "duplicate"),
        ("upgrade:verify", "refused"),
        ("upgrade:verify", "refused"),
    ], "each audited once per process"
