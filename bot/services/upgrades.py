"""Upgrades (manual §8): signed release manifests verified before #dev-log hears of them, the
two-person rollout approval, and the rollout tracked node by node.

Nothing is recorded or posted until the manifest's minisign signature (and its trusted comment)
verified against `[upgrades] trusted_keys` and the manifest validated; every refusal says why,
is audited (`upgrade:verify`, with the reason), and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.domain.addresses import ForbiddenAddress
from bot.domain.errors import DomainError, InvalidInput, NotFound
from bot.domain.health import State, TargetKind
from bot.domain.minisign import PublicKey, SignatureError, verify
from bot.domain.ports import Clock, ManifestFetcher, ReleaseSource
from bot.domain.releases import (
    Release,
    ReleaseManifest,
    RolloutSnapshot,
    RolloutState,
    display_url,
)
from bot.domain.roles import Actor
from bot.services.audit import AuditService
from bot.services.health import Overview
from bot.services.notices import Notices
from bot.services.outbox import UowFactory

log = logging.getLogger(__name__)

SYSTEM = Actor.system("release-poll")
SIGNATURE_SUFFIX = ".minisig"
SHOW_ORDER = {
    RolloutState.UNHEALTHY: 0,
    RolloutState.UNREACHABLE: 1,
    RolloutState.PENDING: 2,
    RolloutState.UPGRADED: 3,
}
"""What needs eyes first."""


class AlreadyAnnounced(InvalidInput):
    outcome = "duplicate"


class NotYours(DomainError):
    outcome = "denied"


@dataclass(frozen=True)
class NodeRollout:
    name: str
    version: str | None
    state: RolloutState
    reason: str | None = None


@dataclass(frozen=True)
class Rollout:
    release: Release
    nodes: tuple[NodeRollout, ...]
    at: datetime

    def count(self, state: RolloutState) -> int:
        return sum(1 for n in self.nodes if n.state is state)

    @property
    def snapshot(self) -> RolloutSnapshot:
        return RolloutSnapshot(
            release_id=self.release.id,
            at=self.at,
            total=len(self.nodes),
            upgraded=self.count(RolloutState.UPGRADED),
            pending=self.count(RolloutState.PENDING),
            unhealthy=self.count(RolloutState.UNHEALTHY),
            unreachable=self.count(RolloutState.UNREACHABLE),
        )


@dataclass(frozen=True)
class ReleaseHistory:
    release: Release
    snapshots: tuple[RolloutSnapshot, ...]


HEALTHY_STATUSES = frozenset({"ok", "healthy", "up", "running"})


def classify(
    version: str,
    verdict_state: State,
    ok: bool,
    running: str | None,
    agent_status: str | None = None,
) -> RolloutState:
    """A node against a release: not answering → unreachable; running it → upgraded, or
    unhealthy after upgrade when its verdict is ❌ or its agent reports a status other than ok
    (the agent's own health check failed: rollback expected, manual §8); else → pending."""
    if not ok:
        return RolloutState.UNREACHABLE
    if running == version:
        failing = agent_status is not None and agent_status.lower() not in HEALTHY_STATUSES
        if verdict_state is State.DOWN or failing:
            return RolloutState.UNHEALTHY
        return RolloutState.UPGRADED
    return RolloutState.PENDING


def notice_data(release: Release, manifest: ReleaseManifest) -> dict[str, object]:
    return {
        "release_id": release.id,
        "version": release.version,
        "channel": release.channel,
        "released_at": release.released_at.isoformat(),
        "key_id": release.key_id,
        "trusted_comment": release.trusted_comment,
        "source": release.source,
        "announced_by_name": release.announced_by_name,
        "components": [c.model_dump() for c in manifest.components],
        "notes": manifest.notes,
    }


class UpgradeService:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        *,
        fetcher: ManifestFetcher,
        trusted_keys: Sequence[str],
        notices: Notices,
        audit: AuditService,
        check_nodes: Callable[[], Awaitable[Overview]] | None = None,
        source: ReleaseSource | None = None,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._fetcher = fetcher
        self.trusted_keys = [PublicKey.parse(k) for k in trusted_keys]
        self._notices = notices
        self._audit = audit
        self._check_nodes = check_nodes
        self._source = source
        self._refused_sources: set[str] = set()

    # -- announce ------------------------------------------------------------------------------

    async def announce(self, actor: Actor, url: str) -> Release:
        """Fetch `url` and `url.minisig`, verify, validate, record and post the notice."""
        try:
            manifest = await self._fetcher.fetch(url)
            signature = await self._fetcher.fetch(url.strip() + SIGNATURE_SUFFIX)
        except ForbiddenAddress as refused:
            await self._refused(actor, url, refused.user_message, outcome=refused.outcome)
            raise InvalidInput(f"Release refused, nothing posted: {refused.user_message}") from None
        except DomainError as failure:
            await self._refused(actor, url, failure.user_message, outcome="unreachable")
            raise InvalidInput(f"Release refused, nothing posted: {failure.user_message}") from None
        return await self.announce_verified(actor, manifest, signature, source=url.strip())

    async def announce_verified(
        self, actor: Actor, manifest_bytes: bytes, signature: bytes, *, source: str
    ) -> Release:
        """Verify the signature, then the manifest; only then record it and post the notice."""
        source = display_url(source)
        try:
            if not self.trusted_keys:
                raise SignatureError(
                    "no trusted keys are configured ([upgrades] trusted_keys): "
                    "no release can be verified"
                )
            verified = verify(manifest_bytes, signature, self.trusted_keys)
            manifest = ReleaseManifest.parse(manifest_bytes)
        except DomainError as refusal:
            await self._refused(actor, source, refusal.user_message)
            raise InvalidInput(f"Release refused, nothing posted: {refusal.user_message}") from None
        now = self._clock.now()
        async with self._uow() as uow:
            release = await uow.releases.add(
                version=manifest.version,
                channel=manifest.channel,
                released_at=manifest.released_at,
                manifest=manifest_bytes.decode("utf-8"),
                key_id=verified.key_id,
                trusted_comment=verified.trusted_comment[:1000],
                source=source[:600],
                announced_by=actor.id,
                announced_by_name=actor.name[:100],
                announced_at=now,
            )
            if release is None:
                await uow.rollback()
                message = f"version {manifest.version} was already announced"
                await self._refused(actor, source, message, outcome="duplicate")
                raise AlreadyAnnounced(f"Release refused, nothing posted: {message}.")
            await self._audit.record(
                uow,
                actor,
                "upgrade:announce",
                target=f"release {release.version}",
                details={
                    "release_id": release.id,
                    "key_id": release.key_id,
                    "source": source[:300],
                    "channel": release.channel,
                },
            )
            await self._notices.notice(
                uow,
                "upgrade.release",
                notice_data(release, manifest),
                channel="dev_log",
                dedupe_key=f"upgrade:release:{release.id}",
            )
            await uow.commit()
        self._notices.wake()
        return release

    # -- GitHub releases poll ------------------------------------------------------------------

    async def poll_releases(self) -> int:
        """Verify and announce each new release of the source once; returns how many.

        Idempotent across runs and restarts: a release whose manifest URL is recorded is not
        fetched again; one whose version was announced by hand is skipped; a refused one is
        audited once per process (and again after a restart), never posted.
        """
        if self._source is None:
            return 0
        announced = 0
        for assets in reversed(await self._source.manifests()):
            if assets.manifest_url in self._refused_sources:
                continue
            async with self._uow() as uow:
                if await uow.releases.by_source(display_url(assets.manifest_url)) is not None:
                    continue
            try:
                # GitHub serves release downloads from its CDN: another host, same rules.
                manifest = await self._fetcher.fetch(assets.manifest_url, cross_host=True)
                signature = await self._fetcher.fetch(assets.signature_url, cross_host=True)
            except DomainError as failure:
                log.info("release %s not fetched: %s", assets.tag[:64], failure.user_message)
                continue  # try again next poll: the download may come back
            try:
                await self.announce_verified(
                    SYSTEM, manifest, signature, source=assets.manifest_url
                )
            except DomainError as refusal:
                self._refused_sources.add(assets.manifest_url)
                log.info("release %s not announced: %s", assets.tag[:64], refusal.user_message)
                continue
            announced += 1
        return announced

    async def _refused(
        self, actor: Actor, source: str, reason: str, *, outcome: str = "refused"
    ) -> None:
        source = display_url(source, 300)
        log.info("release from %s refused: %s", source, reason)
        async with self._uow() as uow:
            await self._audit.record(
                uow,
                actor,
                "upgrade:verify",
                outcome=outcome,
                target=source[:200],
                details={"reason": reason[:500]},
            )
            await uow.commit()

    # -- approval (two-person rule) ------------------------------------------------------------

    async def approve(self, actor: Actor, release_id: int) -> Release:
        now = self._clock.now()
        async with self._uow() as uow:
            release = await uow.releases.get(release_id, for_update=True)
            if release is None:
                raise NotFound("That release is not recorded any more.")
            if release.approved_at is not None:
                raise InvalidInput(
                    f"Release {release.version} was already approved by {release.approved_by_name}."
                )
            if actor.id is not None and actor.id == release.announced_by:
                raise NotYours(
                    "A second Core Ops member must approve the rollout: not the one who "
                    "announced it (two-person rule)."
                )
            await uow.releases.approve(release.id, by=actor.id, by_name=actor.name, at=now)
            await self._audit.record(
                uow,
                actor,
                "upgrade:approve",
                target=f"release {release.version}",
                details={"release_id": release.id, "announced_by": release.announced_by},
            )
            await self._notices.notice(
                uow,
                "upgrade.approved",
                {
                    "version": release.version,
                    "channel": release.channel,
                    "announced_by_name": release.announced_by_name,
                    "approved_by_name": actor.name[:100],
                },
                channel="dev_log",
                dedupe_key=f"upgrade:approved:{release.id}",
            )
            await uow.commit()
        self._notices.wake()
        return replace(
            release, approved_by=actor.id, approved_by_name=actor.name[:100], approved_at=now
        )

    # -- rollout -------------------------------------------------------------------------------

    async def release(self, version: str | None) -> Release:
        async with self._uow() as uow:
            found = (
                await uow.releases.by_version(version.strip())
                if version
                else await uow.releases.latest()
            )
        if found is None:
            raise NotFound(
                f"No release {version[:40]} was announced."
                if version
                else "No release was announced yet: `/upgrade announce` one first."
            )
        return found

    async def rollout(self, version: str | None = None) -> Rollout:
        """Every node's running version and health against a release (the newest by default);
        stores a snapshot for the history and flags nodes unhealthy after upgrading, once."""
        release = await self.release(version)
        if self._check_nodes is None:
            raise InvalidInput("Node health is not available in this process.")
        view = await self._check_nodes()
        nodes = []
        for verdict in view.of_kind(TargetKind.NODE):
            running = verdict.result.figures.get("version")
            running_text = str(running) if running is not None else None
            status = verdict.result.figures.get("agent_status")
            state = classify(
                release.version,
                verdict.state,
                verdict.result.ok,
                running_text,
                str(status) if status is not None else None,
            )
            reason = verdict.result.reason or (", ".join(verdict.notes) or None)
            nodes.append(NodeRollout(verdict.target, running_text, state, reason))
        nodes.sort(key=lambda n: (SHOW_ORDER[n.state], n.name))
        rollout = Rollout(release, tuple(nodes), self._clock.now())
        async with self._uow() as uow:
            await uow.releases.add_snapshot(rollout.snapshot)
            for node in rollout.nodes:
                if node.state is RolloutState.UNHEALTHY:
                    await self._notices.notice(
                        uow,
                        "upgrade.unhealthy",
                        {
                            "version": release.version,
                            "node": node.name,
                            "reason": (node.reason or "")[:300],
                        },
                        channel="operations",
                        dedupe_key=f"upgrade:unhealthy:{release.id}:{node.name}",
                    )
            await uow.commit()
        self._notices.wake()
        return rollout

    async def history(self, limit: int = 10) -> list[ReleaseHistory]:
        async with self._uow() as uow:
            releases = await uow.releases.recent(limit)
            return [
                ReleaseHistory(r, tuple(await uow.releases.snapshots(r.id, limit=20)))
                for r in releases
            ]
