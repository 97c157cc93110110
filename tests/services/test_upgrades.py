"""Upgrades over a real database: manifests signed by the real minisign, served on loopback,
verified before anything is recorded or posted; the two-person approval; the rollout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app.services import Services
from bot.config import AccessSettings, UpgradeSettings
from bot.domain.errors import DomainError, InvalidInput, NotFound
from bot.domain.health import Target, TargetKind
from bot.domain.outbox import OutboxItem, OutboxKind
from bot.domain.releases import RolloutState
from bot.domain.roles import Actor
from bot.integrations.probes import ProbeRunner
from bot.integrations.releases import HttpManifestFetcher
from bot.services.health import HealthService
from bot.services.upgrades import AlreadyAnnounced, NotYours
from bot.storage.database import Database
from tests.conftest import FakeClock
from tests.fakes.minisign_tool import KeyPair, generate
from tests.fakes.network import JsonService
from tests.fakes.releases import ReleaseFiles, manifest
from tests.services.conftest import CORE_A, CORE_B, NODE, FakeRoles, audit_actions


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate(tmp_path_factory.mktemp("release-key"))


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate(tmp_path_factory.mktemp("rogue-key"))


@pytest.fixture
async def files(keys: KeyPair) -> AsyncIterator[ReleaseFiles]:
    async with ReleaseFiles() as server:
        yield server


@pytest.fixture
async def agents() -> AsyncIterator[list[JsonService]]:
    started = [
        JsonService({"status": "ok", "version": "1.4.0"}),
        JsonService({"status": "ok", "version": "1.3.2"}),
        JsonService({"status": "error", "version": "1.4.0"}),
        JsonService({"status": "ok", "version": "1.4.0"}),
    ]
    for agent in started:
        await agent.start()
    yield started
    for agent in started:
        await agent.stop()


class World:
    def __init__(
        self, database: Database, clock: FakeClock, keys: KeyPair, nodes: list[Target]
    ) -> None:
        self.database = database
        self.notices: list[dict] = []
        self.prober = ProbeRunner(clock, probe_timeout=1.0, budget=3.0)
        self.health = HealthService(database.uow, clock, self.prober, nodes)
        self.services = Services.build(
            database.uow,
            clock,
            access_settings=AccessSettings(),
            roles=FakeRoles(),
            owner_ids=frozenset(),
            upgrade_settings=UpgradeSettings(trusted_keys=[keys.public_line]),
            # The release files are served on 127.0.0.1: a lab ([health] allow_loopback).
            fetcher=HttpManifestFetcher(timeout=2.0, allow_loopback=True),
            check_nodes=self.health.check,
        )

        async def notice(item: OutboxItem) -> dict:
            self.notices.append(dict(item.payload))
            return {}

        self.services.outbox.register(OutboxKind.NOTICE, notice)

    async def posted(self) -> list[dict]:
        await self.services.outbox.drain_all()
        return self.notices


@pytest.fixture
async def world(database: Database, clock: FakeClock, keys: KeyPair) -> AsyncIterator[World]:
    built = World(database, clock, keys, [])
    yield built
    await built.prober.close()


async def releases(database: Database) -> list[str]:
    async with database.uow() as uow:
        return [r.version for r in await uow.releases.recent(50)]


async def test_verified_manifest_is_recorded_and_noticed_in_dev_log(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    comment = "timestamp:1764331200 file:manifest.json version:1.4.0"
    url = files.publish(keys, "1.4.0/manifest.json", manifest("1.4.0"), comment=comment)
    release = await world.services.upgrades.announce(CORE_A, url)
    assert release.version == "1.4.0" and release.key_id == keys.key_id
    assert release.trusted_comment == comment
    [notice] = await world.posted()
    assert notice["channel"] == "dev_log" and notice["template"] == "upgrade.release"
    assert notice["data"]["key_id"] == keys.key_id
    assert [c["sha256"] for c in notice["data"]["components"]] == ["ab" * 32, "cd" * 32]
    assert ("upgrade:announce", "ok") in await audit_actions(world.database)


async def test_legacy_signatures_are_accepted_too(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    url = files.publish(keys, "m.json", manifest("1.4.1"), legacy=True)
    assert (await world.services.upgrades.announce(CORE_A, url)).version == "1.4.1"


def _tamper(files: ReleaseFiles, name: str) -> None:
    files.files[name] = files.files[name].replace(b"1.4.0", b"1.4.9")


def _truncate(files: ReleaseFiles, name: str) -> None:
    files.files[f"{name}.minisig"] = files.files[f"{name}.minisig"][:-30]


def _edit_comment(files: ReleaseFiles, name: str) -> None:
    sig = files.files[f"{name}.minisig"]
    files.files[f"{name}.minisig"] = sig.replace(b"trusted comment: hh", b"trusted comment: HH")
    assert files.files[f"{name}.minisig"] != sig


def _drop_signature(files: ReleaseFiles, name: str) -> None:
    del files.files[f"{name}.minisig"]


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_tamper, "does not match the manifest"),
        (_truncate, "truncated|malformed"),
        (_edit_comment, "trusted comment"),
        (_drop_signature, r"could not fetch http://127\.0\.0\.1:\d+/manifest\.json\.minisig\."),
    ],
    ids=["tampered", "truncated", "edited-comment", "no-signature"],
)
async def test_every_failure_is_refused_audited_and_posts_nothing(
    world: World, files: ReleaseFiles, keys: KeyPair, spoil: object, reason: str
) -> None:
    url = files.publish(keys, "manifest.json", manifest("1.4.0"), comment="hh version:1.4.0")
    assert callable(spoil)
    spoil(files, "manifest.json")
    with pytest.raises(InvalidInput, match=reason):
        await world.services.upgrades.announce(CORE_A, url)
    assert await world.posted() == []
    assert await releases(world.database) == []
    actions = await audit_actions(world.database)
    assert [a for a, _ in actions] == ["upgrade:verify"]
    assert actions[0][1] in ("refused", "unreachable")


async def test_wrong_key_is_refused(world: World, files: ReleaseFiles, rogue: KeyPair) -> None:
    url = files.publish(rogue, "manifest.json", manifest("1.4.0"))
    with pytest.raises(InvalidInput, match=f"unknown key {rogue.key_id}"):
        await world.services.upgrades.announce(CORE_A, url)
    assert await world.posted() == [] and await releases(world.database) == []


async def test_malformed_manifest_signed_correctly_is_refused(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    url = files.publish(keys, "manifest.json", manifest("1.4.0", channel="nightly"))
    with pytest.raises(InvalidInput, match="channel"):
        await world.services.upgrades.announce(CORE_A, url)
    assert await world.posted() == [] and await releases(world.database) == []


async def test_unreachable_and_non_http_urls_are_refused(world: World) -> None:
    with pytest.raises(InvalidInput, match=r"could not fetch http://127\.0\.0\.1:9/manifest"):
        await world.services.upgrades.announce(CORE_A, "http://127.0.0.1:9/manifest.json")
    with pytest.raises(InvalidInput, match="http"):
        await world.services.upgrades.announce(CORE_A, "file:///etc/passwd")
    assert await world.posted() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/manifest.json",
        "http://0x7f.1:{port}/manifest.json",
        "http://169.254.169.254/latest/user-data",
        "http://[::ffff:169.254.169.254]/latest/user-data",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
async def test_forbidden_addresses_are_refused_with_the_default_config(
    database: Database, clock: FakeClock, files: ReleaseFiles, keys: KeyPair, url: str
) -> None:
    """/upgrade announce under the probes' address rules: nothing asked, audited, not posted."""
    services = Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(),
        roles=FakeRoles(),
        owner_ids=frozenset(),
        upgrade_settings=UpgradeSettings(trusted_keys=[keys.public_line]),
        fetcher=HttpManifestFetcher(timeout=2.0),
    )
    files.publish(keys, "manifest.json", manifest("1.4.0"))
    with pytest.raises(
        InvalidInput, match=r"^Release refused, nothing posted: The manifest URL is"
    ):
        await services.upgrades.announce(CORE_A, url.format(port=files.port))
    assert files.requests == 0
    assert await releases(database) == []
    assert await audit_actions(database) == [("upgrade:verify", "forbidden")]


async def test_oversized_manifest_is_refused(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    url = files.publish(keys, "big.json", b"{" + b" " * 300_000 + b"}")
    with pytest.raises(InvalidInput, match="too large"):
        await world.services.upgrades.announce(CORE_A, url)


async def test_a_version_is_announced_once(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    url = files.publish(keys, "manifest.json", manifest("1.4.0"))
    await world.services.upgrades.announce(CORE_A, url)
    with pytest.raises(InvalidInput, match="already announced"):
        await world.services.upgrades.announce(CORE_B, url)
    assert len(await world.posted()) == 1
    assert await releases(world.database) == ["1.4.0"]
    assert ("upgrade:verify", "duplicate") in await audit_actions(world.database)


async def test_no_trusted_keys_refuses_everything(
    database: Database, clock: FakeClock, files: ReleaseFiles, keys: KeyPair
) -> None:
    services = Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(),
        roles=FakeRoles(),
        owner_ids=frozenset(),
        fetcher=HttpManifestFetcher(timeout=2.0, allow_loopback=True),
    )
    url = files.publish(keys, "manifest.json", manifest("1.4.0"))
    with pytest.raises(InvalidInput, match="no trusted keys"):
        await services.upgrades.announce(CORE_A, url)


async def test_two_person_rule(world: World, files: ReleaseFiles, keys: KeyPair) -> None:
    url = files.publish(keys, "manifest.json", manifest("1.4.0"))
    release = await world.services.upgrades.announce(CORE_A, url)
    with pytest.raises(NotYours, match="second Core Ops member"):
        await world.services.upgrades.approve(CORE_A, release.id)
    approved = await world.services.upgrades.approve(CORE_B, release.id)
    assert approved.approved_by == CORE_B.id
    with pytest.raises(InvalidInput, match="already approved by core-b"):
        await world.services.upgrades.approve(CORE_B, release.id)
    with pytest.raises(NotFound):
        await world.services.upgrades.approve(CORE_B, 9999)
    templates = [(n["channel"], n["template"]) for n in await world.posted()]
    assert templates == [("dev_log", "upgrade.release"), ("dev_log", "upgrade.approved")]
    assert ("upgrade:approve", "ok") in await audit_actions(world.database)


async def test_reject_stops_a_rollout_once_and_asks_core_ops(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    """Issue 16 §4: Reject beside Approve rollout; the announcer may stop their own release (it
    takes two to roll out, one to stop); a rejected release is never approved; one audit row."""
    url = files.publish(keys, "manifest.json", manifest("1.4.0"))
    release = await world.services.upgrades.announce(CORE_A, url)
    (asked,) = await world.posted()
    assert asked["mention_roles"] == ["core_ops"], "the approval ask mentions Core Ops"
    rejected = await world.services.upgrades.reject(CORE_A, release.id)
    assert rejected.rejected_by == CORE_A.id and rejected.rejected_at is not None
    with pytest.raises(InvalidInput, match="rejected by core-a"):
        await world.services.upgrades.approve(CORE_B, release.id)
    with pytest.raises(InvalidInput, match="already rejected"):
        await world.services.upgrades.reject(CORE_B, release.id)
    with pytest.raises(NotFound):
        await world.services.upgrades.reject(CORE_B, 9999)
    stored = await world.services.upgrades.release("1.4.0")
    assert stored.rejected_by_name == "core-a" and stored.approved_at is None
    assert [a for a in await audit_actions(world.database) if a[0] == "upgrade:reject"] == [
        ("upgrade:reject", "ok")
    ]


async def test_an_approved_rollout_cannot_be_rejected(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    url = files.publish(keys, "manifest.json", manifest("1.4.0"))
    release = await world.services.upgrades.announce(CORE_A, url)
    await world.services.upgrades.approve(CORE_B, release.id)
    with pytest.raises(InvalidInput, match="already approved by core-b"):
        await world.services.upgrades.reject(CORE_A, release.id)


async def test_rollout_node_by_node_with_history(
    database: Database,
    clock: FakeClock,
    files: ReleaseFiles,
    keys: KeyPair,
    agents: list[JsonService],
    tmp_path: Path,
) -> None:
    nodes = [Target(f"node-{i}", TargetKind.NODE, agent.url) for i, agent in enumerate(agents)]
    nodes.append(Target("node-gone", TargetKind.NODE, "http://127.0.0.1:9"))
    world = World(database, clock, keys, nodes)
    try:
        url = files.publish(keys, "manifest.json", manifest("1.4.0"))
        await world.services.upgrades.announce(CORE_A, url)
        rollout = await world.services.upgrades.rollout()
        states = {n.name: n.state for n in rollout.nodes}
        assert states == {
            "node-0": RolloutState.UPGRADED,
            "node-1": RolloutState.PENDING,
            "node-2": RolloutState.UNHEALTHY,
            "node-3": RolloutState.UPGRADED,
            "node-gone": RolloutState.UNREACHABLE,
        }
        assert rollout.nodes[0].name == "node-2"  # what needs eyes first
        assert {n.name: n.version for n in rollout.nodes}["node-1"] == "1.3.2"
        # node-1 upgrades; the unhealthy node is flagged once only.
        agents[1].body = {"status": "ok", "version": "1.4.0"}
        clock.advance(minutes=10)
        second = await world.services.upgrades.rollout("1.4.0")
        assert second.snapshot.upgraded == 3
        flagged = [n for n in await world.posted() if n["template"] == "upgrade.unhealthy"]
        assert len(flagged) == 1 and flagged[0]["channel"] == "operations"
        assert flagged[0]["data"]["node"] == "node-2"
        [history] = await world.services.upgrades.history()
        assert [round(s.percent) for s in history.snapshots] == [40, 60]
        with pytest.raises(NotFound):
            await world.services.upgrades.rollout("9.9.9")
    finally:
        await world.prober.close()


async def test_rollout_without_a_release_says_so(world: World) -> None:
    with pytest.raises(NotFound, match="No release was announced"):
        await world.services.upgrades.rollout()


def test_manifest_fixture_is_valid_json() -> None:
    assert json.loads(json.dumps(manifest()))["channel"] == "stable"


# -- downgrade and replay (security issue, item 7) ---------------------------------------------


async def dev_log(world: World) -> list[tuple[str, dict]]:
    return [(n["template"], n["data"]) for n in await world.posted() if n["channel"] == "dev_log"]


async def audits(database: Database, action: str) -> list[tuple[str, str | None, dict]]:
    async with database.uow() as uow:
        rows = await uow.audit.recent(1000, action=action)
    return [(r.outcome, r.target, dict(r.details)) for r in reversed(rows)]


@pytest.mark.parametrize("older", ["1.0.0", "2.0.0-rc.1", "2.0.0+rebuild.2", "1.99.99"])
async def test_a_version_not_newer_than_the_newest_is_refused_without_rollback(
    world: World, files: ReleaseFiles, keys: KeyPair, older: str
) -> None:
    await world.services.upgrades.announce(
        CORE_A, files.publish(keys, "2.0.0/manifest.json", manifest("2.0.0"))
    )
    url = files.publish(keys, f"{older}/manifest.json", manifest(older))
    with pytest.raises(InvalidInput, match=r"not newer than 2\.0\.0") as refused:
        await world.services.upgrades.announce(CORE_B, url)
    assert "nothing posted" in refused.value.user_message
    if "+" in older:  # the same precedence: a rebuild, not a rollback either
        assert "publish a new version" in refused.value.user_message
    else:
        assert "rollback:true" in refused.value.user_message
    assert await releases(world.database) == ["2.0.0"]
    assert [t for t, _ in await dev_log(world)] == ["upgrade.release"], "one notice: 2.0.0's"
    [(outcome, _, details)] = await audits(world.database, "upgrade:verify")
    assert outcome == "refused" and "not newer than 2.0.0" in details["reason"]


async def test_newer_versions_follow_semantic_version_precedence(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    """2.0.0-rc.1 < 2.0.0-rc.2 < 2.0.0 < 2.0.1 < 2.10.0 (numbers, not text)."""
    for version in ("2.0.0-rc.1", "2.0.0-rc.2", "2.0.0", "2.0.1", "2.10.0"):
        url = files.publish(keys, f"{version}/manifest.json", manifest(version))
        await world.services.upgrades.announce(CORE_A, url)
    with pytest.raises(InvalidInput, match=r"not newer than 2\.10\.0"):
        await world.services.upgrades.announce(
            CORE_A, files.publish(keys, "2.9.0/manifest.json", manifest("2.9.0"))
        )
    assert len(await dev_log(world)) == 5


async def test_a_rollback_needs_core_ops_saying_so_and_is_audited_and_marked(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    upgrades = world.services.upgrades
    await upgrades.announce(CORE_A, files.publish(keys, "2.0.0/manifest.json", manifest("2.0.0")))
    url = files.publish(keys, "1.0.0/manifest.json", manifest("1.0.0"))
    # Only Core Ops may say rollback: not a Node Ops member, not the releases poll.
    for actor in (NODE, Actor.system("release-poll")):
        with pytest.raises(DomainError, match="Core Ops"):
            await upgrades.announce(actor, url, rollback=True)
    assert await releases(world.database) == ["2.0.0"]
    denials = [(o, d["reason"]) for o, _, d in await audits(world.database, "upgrade:verify")]
    assert denials == [("denied", "`/upgrade announce rollback:true` needs the Core Ops role.")] * 2

    release = await upgrades.announce(CORE_A, url, rollback=True)
    assert release.version == "1.0.0" and release.rolled_back_from == "2.0.0"
    [_, (template, data)] = await dev_log(world)
    assert template == "upgrade.release"
    assert data["version"] == "1.0.0" and data["rollback_from"] == "2.0.0"
    [_, (outcome, target, details)] = await audits(world.database, "upgrade:announce")
    assert outcome == "ok" and target is not None and "rollback" in target
    assert details["rollback"] is True and details["rolled_back_from"] == "2.0.0"

    # Its approval says rollback too, and the history marks it.
    approved = await upgrades.approve(CORE_B, release.id)
    assert approved.rolled_back_from == "2.0.0"
    [*_, (template, data)] = await dev_log(world)
    assert template == "upgrade.approved" and data["rollback_from"] == "2.0.0"
    marks = {h.release.version: h.release.rolled_back_from for h in await upgrades.history()}
    assert marks == {"2.0.0": None, "1.0.0": "2.0.0"}
    assert (await upgrades.rollout()).release.version == "1.0.0", "the fleet's target now"

    # The newest announced stays 2.0.0: 1.5.0 is a rollback too, 2.0.1 is an upgrade.
    with pytest.raises(InvalidInput, match=r"not newer than 2\.0\.0"):
        await upgrades.announce(CORE_A, files.publish(keys, "1.5/manifest.json", manifest("1.5.0")))
    newer = await upgrades.announce(
        CORE_A, files.publish(keys, "2.0.1/manifest.json", manifest("2.0.1"))
    )
    assert newer.rolled_back_from is None
    assert (await upgrades.rollout()).release.version == "2.0.1"


async def test_rollback_true_on_a_newer_version_is_refused(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    upgrades = world.services.upgrades
    with pytest.raises(InvalidInput, match="nothing to roll back"):
        await upgrades.announce(
            CORE_A, files.publish(keys, "1/manifest.json", manifest("1.0.0")), rollback=True
        )
    await upgrades.announce(CORE_A, files.publish(keys, "2/manifest.json", manifest("2.0.0")))
    with pytest.raises(InvalidInput, match=r"3\.0\.0 is newer than 2\.0\.0: not a rollback"):
        await upgrades.announce(
            CORE_A, files.publish(keys, "3/manifest.json", manifest("3.0.0")), rollback=True
        )
    with pytest.raises(InvalidInput, match=r"2\.0\.0\+b is not newer than 2\.0\.0 \(the same"):
        await upgrades.announce(
            CORE_A, files.publish(keys, "2b/manifest.json", manifest("2.0.0+b")), rollback=True
        )
    assert await releases(world.database) == ["2.0.0"]


async def test_the_same_signed_manifest_twice_is_one_release(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    """Replayed from another URL (a mirror), and even with rollback:true: one release."""
    body = manifest("2.0.0")
    first = files.publish(keys, "a/manifest.json", body)
    mirror = files.publish(keys, "mirror/manifest.json", body)
    announced = await world.services.upgrades.announce(CORE_A, first)
    for url, rollback in ((mirror, False), (first, True)):
        with pytest.raises(AlreadyAnnounced, match=r"2\.0\.0 was already announced") as again:
            await world.services.upgrades.announce(CORE_B, url, rollback=rollback)
        assert "same signed manifest" in again.value.user_message
        assert "nothing posted" in again.value.user_message
    assert [t for t, _ in await dev_log(world)] == ["upgrade.release"]
    async with world.database.uow() as uow:
        [only] = await uow.releases.recent(10)
    assert only.id == announced.id and only.source.endswith("/a/manifest.json")
    outcomes = [o for o, _, _ in await audits(world.database, "upgrade:verify")]
    assert outcomes == ["duplicate", "duplicate"]


async def test_the_same_version_with_another_manifest_is_refused(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    await world.services.upgrades.announce(
        CORE_A, files.publish(keys, "a/manifest.json", manifest("2.0.0"))
    )
    changed = manifest("2.0.0", notes="## 2.0.0\n- a different build")
    url = files.publish(keys, "b/manifest.json", changed)
    for rollback in (False, True):
        with pytest.raises(InvalidInput, match="with a different manifest") as refused:
            await world.services.upgrades.announce(CORE_B, url, rollback=rollback)
        assert "new version" in refused.value.user_message
    assert [t for t, _ in await dev_log(world)] == ["upgrade.release"]
    async with world.database.uow() as uow:
        [only] = await uow.releases.recent(10)
    assert "a different build" not in only.manifest
    assert [o for o, _, _ in await audits(world.database, "upgrade:verify")] == ["refused"] * 2


async def test_announces_racing_each_other_record_one_release(
    world: World, files: ReleaseFiles, keys: KeyPair
) -> None:
    """Two Core Ops members (or a member and the poll) at once: one release, one notice."""
    url = files.publish(keys, "manifest.json", manifest("2.0.0"))
    results = await asyncio.gather(
        *(world.services.upgrades.announce(actor, url) for actor in (CORE_A, CORE_B, CORE_A)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, AlreadyAnnounced) for r in results if isinstance(r, BaseException))
    assert len(await dev_log(world)) == 1


# -- the trusted comment names the release (security issue, item 13) ---------------------------


@pytest.mark.parametrize(
    ("comment", "reason"),
    [
        ("hh release", r"must name the release: add `version:2\.0\.0`"),
        ("timestamp:1764331200\tfile:manifest.json", r"must name the release"),
        ("hh 2.0.0", r"must name the release"),
        ("version:1.9.0", r"names version 1\.9\.0, the manifest is 2\.0\.0"),
        ("version:2.0.0 version:1.9.0", r"names version 1\.9\.0"),
        ("version:2.0.00", r"names version 2\.0\.00"),
        ("Version:2.0.0", r"must name the release"),
        ("version: 2.0.0", r"must name the release"),
    ],
    ids=["none", "minisign-default", "bare-version", "other", "two", "not-exact", "case", "spaced"],
)
async def test_a_trusted_comment_not_naming_the_release_is_refused(
    world: World, files: ReleaseFiles, keys: KeyPair, comment: str, reason: str
) -> None:
    url = files.publish(keys, "manifest.json", manifest("2.0.0"), comment=comment)
    with pytest.raises(InvalidInput, match=reason) as refused:
        await world.services.upgrades.announce(CORE_A, url)
    assert refused.value.user_message.startswith("Release refused, nothing posted")
    assert await world.posted() == [] and await releases(world.database) == []
    assert [o for o, _, _ in await audits(world.database, "upgrade:verify")] == ["refused"]


@pytest.mark.parametrize(
    "comment",
    [
        "version:2.0.0",
        "timestamp:1764331200\tfile:manifest.json\tversion:2.0.0\thashed",
        "hh release version:2.0.0 stable",
    ],
)
async def test_a_trusted_comment_naming_the_release_is_accepted(
    world: World, files: ReleaseFiles, keys: KeyPair, comment: str
) -> None:
    url = files.publish(keys, "manifest.json", manifest("2.0.0"), comment=comment)
    release = await world.services.upgrades.announce(CORE_A, url)
    assert release.trusted_comment == comment
