"""Upgrades (manual §8): signed release manifests verified before #dev-log hears of them, the
two-person rollout approval, and the rollout tracked node by node.

Nothing is recorded or posted until the manifest's minisign signature (and its trusted comment)
verified against `[upgrades] trusted_keys`, the trusted comment names the manifest's version and
the manifest validated; every refusal says why, is audited (`upgrade:verify`, with the reason),
and changes nothing.

Downgrade and replay: a version is one release (the same signed manifest again is "already
announced"; the same version with another manifest is refused), and a version not newer than the
newest announced one (semantic-version precedence) is refused unless Core Ops asks for a rollback
(`rollback:true`), which is audited and shown as a rollback in #dev-log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.domain.addresses import ForbiddenAddress
from bot.domain.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from bot.domain.health import State, TargetKind
from bot.domain.minisign import PublicKey, SignatureError, Verified
from bot.domain.outbox import NoticeTemplate
from bot.domain.ports import Clock, ManifestFetcher, ReleaseSource
from bot.domain.public_status import Overview
from bot.domain.releases import (
    Release,
    ReleaseAssets,
    ReleaseManifest,
    ReleaseVersion,
    RolloutSnapshot,
    RolloutState,
    display_url,
    require_named_release,
)
from bot.domain.roles import Actor, OpsRole
from bot.integrations.minisign import verify
from bot.services.access import AccessService
from bot.services.audit import AuditService
from bot.services.notices import Notices
from bot.services.outbox import UowFactory

log = logging.getLogger(__name__)

SYSTEM = Actor.system("release-poll")
SIGNATURE_SUFFIX = ".minisig"
ROLLBACK = "upgrade:rollback"
"""The permission-table action a rollback needs (Core Ops), on top of `upgrade announce`."""
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


class ReleaseConflict(InvalidInput):
    """The version is recorded with another manifest, or is not newer without a rollback."""

    outcome = "refused"


def manifest_digest(manifest: str | bytes) -> str:
    data = manifest.encode("utf-8") if isinstance(manifest, str) else manifest
    return hashlib.sha256(data).hexdigest()


def newest_version(versions: Sequence[str]) -> ReleaseVersion | None:
    """The newest by semantic-version precedence; a recorded version that is not a semantic
    version (from before the rule) is not comparable and is left out."""
    parsed = [v for v in (ReleaseVersion.parse_or_none(text) for text in versions) if v]
    return max(parsed, default=None)


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
        "rollback_from": release.rolled_back_from,
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
        access: AccessService | None = None,
        check_nodes: Callable[[], Awaitable[Overview]] | None = None,
        source: ReleaseSource | None = None,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._fetcher = fetcher
        self.trusted_keys = [PublicKey.parse(k) for k in trusted_keys]
        self._notices = notices
        self._audit = audit
        self._access = access or AccessService()
        self._check_nodes = check_nodes
        self._source = source
        self._refused_sources: set[str] = set()
        self._recording = asyncio.Lock()
        """One announce at a time decides "newer than the newest" and records (this process)."""

    # -- announce ------------------------------------------------------------------------------

    async def announce(self, actor: Actor, url: str, *, rollback: bool = False) -> Release:
        """Fetch `url` and `url.minisig`, verify, validate, record and post the notice.
        `rollback`: Core Ops mean to announce a version older than the newest one."""
        if rollback:
            await self._require_rollback_role(actor, url)
        try:
            manifest = await self._fetcher.fetch(url)
            signature = await self._fetcher.fetch(url.strip() + SIGNATURE_SUFFIX)
        except ForbiddenAddress as refused:
            await self._refused(actor, url, refused.user_message, outcome=refused.outcome)
            raise InvalidInput(f"Release refused, nothing posted: {refused.user_message}") from None
        except DomainError as failure:
            await self._refused(actor, url, failure.user_message, outcome="unreachable")
            raise InvalidInput(f"Release refused, nothing posted: {failure.user_message}") from None
        return await self.announce_verified(
            actor, manifest, signature, source=url.strip(), rollback=rollback
        )

    async def announce_verified(
        self,
        actor: Actor,
        manifest_bytes: bytes,
        signature: bytes,
        *,
        source: str,
        rollback: bool = False,
    ) -> Release:
        """Verify the signature, then the manifest, then that it is a new release (or a rollback
        Core Ops asked for); only then record it and post the notice."""
        source = display_url(source)
        if rollback:
            await self._require_rollback_role(actor, source)
        try:
            if not self.trusted_keys:
                raise SignatureError(
                    "no trusted keys are configured ([upgrades] trusted_keys): "
                    "no release can be verified"
                )
            verified = verify(manifest_bytes, signature, self.trusted_keys)
            manifest = ReleaseManifest.parse(manifest_bytes)
            require_named_release(verified.trusted_comment, manifest.version)
        except DomainError as refusal:
            await self._refused(actor, source, refusal.user_message)
            raise InvalidInput(f"Release refused, nothing posted: {refusal.user_message}") from None
        text = manifest_bytes.decode("utf-8")
        async with self._recording:
            try:
                release = await self._record(actor, manifest, text, verified, source, rollback)
            except (AlreadyAnnounced, ReleaseConflict) as refusal:
                await self._refused(actor, source, refusal.user_message, outcome=refusal.outcome)
                raise type(refusal)(
                    f"Release refused, nothing posted: {refusal.user_message}"
                ) from None
        self._notices.wake()
        return release

    async def _record(
        self,
        actor: Actor,
        manifest: ReleaseManifest,
        text: str,
        verified: Verified,
        source: str,
        rollback: bool,
    ) -> Release:
        """Record the release, its audit row and its #dev-log notice in one transaction, or
        raise saying why this manifest is not a new release."""
        version = manifest.version
        async with self._uow() as uow:
            known = await uow.releases.by_version(version)
            if known is not None:
                raise self._already(known, text)
            newest = newest_version(await uow.releases.versions())
            rolled_back_from = _rollback_from(manifest.release_version, newest, rollback)
            release = await uow.releases.add(
                version=version,
                channel=manifest.channel,
                released_at=manifest.released_at,
                manifest=text,
                key_id=verified.key_id,
                trusted_comment=verified.trusted_comment[:1000],
                source=source[:600],
                announced_by=actor.id,
                announced_by_name=actor.name[:100],
                announced_at=self._clock.now(),
                rolled_back_from=rolled_back_from,
            )
            if release is None:  # another process recorded this version in the meantime
                await uow.rollback()
                async with self._uow() as again:
                    known = await again.releases.by_version(version)
                raise self._already(known, text)
            details: dict[str, object] = {
                "release_id": release.id,
                "key_id": release.key_id,
                "source": source[:300],
                "channel": release.channel,
                "manifest_sha256": manifest_digest(text),
            }
            if rolled_back_from is not None:
                details |= {"rollback": True, "rolled_back_from": rolled_back_from}
            await self._audit.record(
                uow,
                actor,
                "upgrade:announce",
                target=(
                    f"release {release.version} (rollback from {rolled_back_from})"
                    if rolled_back_from
                    else f"release {release.version}"
                ),
                details=details,
            )
            await self._notices.notice(
                uow,
                NoticeTemplate.UPGRADE_RELEASE,
                notice_data(release, manifest),
                channel="dev_log",
                mention_roles=[OpsRole.CORE_OPS],
                dedupe_key=f"upgrade:release:{release.id}",
            )
            await uow.commit()
        return release

    @staticmethod
    def _already(known: Release | None, text: str) -> AlreadyAnnounced | ReleaseConflict:
        """The same signed manifest again is one release; another one under its version is not."""
        if known is None:
            return AlreadyAnnounced("this version was being announced at the same time: retry.")
        if known.manifest == text:
            return AlreadyAnnounced(
                f"version {known.version} was already announced (the same signed manifest): it "
                "is one release, see `/upgrade history`."
            )
        return ReleaseConflict(
            f"version {known.version} was already announced with a different manifest "
            f"(sha256 {manifest_digest(known.manifest)[:12]}…, this one "
            f"{manifest_digest(text)[:12]}…): a version is released once; publish a new version."
        )

    async def _require_rollback_role(self, actor: Actor, source: str) -> None:
        try:
            self._access.authorize(actor, ROLLBACK)
        except PermissionDenied as denial:
            await self._refused(actor, source, denial.user_message, outcome="denied")
            raise

    # -- GitHub releases poll ------------------------------------------------------------------

    async def poll_releases(self) -> int:
        """Verify and announce each new release of the source once; returns how many.

        Idempotent across runs and restarts: a release whose manifest URL is recorded is not
        fetched again; the same manifest announced by hand is one release (not posted again);
        an older version than the newest announced is refused (the poll never rolls back);
        a refused one is audited once per process (and again after a restart), never posted.
        """
        if self._source is None:
            return 0
        announced = 0
        for assets in reversed(await self._source.manifests()):
            if await self.announce_assets(assets) == "announced":
                announced += 1
        return announced

    async def announce_assets(self, assets: ReleaseAssets) -> str:
        """One published release handed to the signed-manifest flow (the poll, and GitHub's
        `release` webhook): fetched, verified and announced once, or refused and never posted.
        Returns "announced", "known" (its manifest URL is recorded), "refused" (audited once
        per process) or "unfetched" (try again later: the download may come back)."""
        if assets.manifest_url in self._refused_sources:
            return "refused"
        async with self._uow() as uow:
            if await uow.releases.by_source(display_url(assets.manifest_url)) is not None:
                return "known"
        try:
            # GitHub serves release downloads from its CDN: another host, same rules.
            manifest = await self._fetcher.fetch(assets.manifest_url, cross_host=True)
            signature = await self._fetcher.fetch(assets.signature_url, cross_host=True)
        except DomainError as failure:
            log.info("release %s not fetched: %s", assets.tag[:64], failure.user_message)
            return "unfetched"
        try:
            await self.announce_verified(SYSTEM, manifest, signature, source=assets.manifest_url)
        except DomainError as refusal:
            self._refused_sources.add(assets.manifest_url)
            log.info("release %s not announced: %s", assets.tag[:64], refusal.user_message)
            return "refused"
        return "announced"

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
            if release.rejected_at is not None:
                raise InvalidInput(
                    f"Release {release.version} was rejected by {release.rejected_by_name}: it "
                    "does not roll out. Announce a new version once it is fixed."
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
                details={
                    "release_id": release.id,
                    "announced_by": release.announced_by,
                    "rolled_back_from": release.rolled_back_from,
                },
            )
            await self._notices.notice(
                uow,
                NoticeTemplate.UPGRADE_APPROVED,
                {
                    "version": release.version,
                    "channel": release.channel,
                    "announced_by_name": release.announced_by_name,
                    "approved_by_name": actor.name[:100],
                    "rollback_from": release.rolled_back_from,
                },
                channel="dev_log",
                dedupe_key=f"upgrade:approved:{release.id}",
            )
            await uow.commit()
        self._notices.wake()
        return replace(
            release, approved_by=actor.id, approved_by_name=actor.name[:100], approved_at=now
        )

    async def reject(self, actor: Actor, release_id: int) -> Release:
        """Stop a rollout nobody approved yet (any Core Ops member, the announcer too: it takes
        two to roll out, one to stop). One transaction, one audit row; the release stays
        recorded (its version is used), and it can never be approved."""
        now = self._clock.now()
        async with self._uow() as uow:
            release = await uow.releases.get(release_id, for_update=True)
            if release is None:
                raise NotFound("That release is not recorded any more.")
            if release.approved_at is not None:
                raise InvalidInput(
                    f"Release {release.version} was already approved by "
                    f"{release.approved_by_name}: it is rolling out. Announce a fixed version "
                    "(or a rollback) instead."
                )
            if release.rejected_at is not None:
                raise InvalidInput(
                    f"Release {release.version} was already rejected by {release.rejected_by_name}."
                )
            await uow.releases.reject(release.id, by=actor.id, by_name=actor.name, at=now)
            await self._audit.record(
                uow,
                actor,
                "upgrade:reject",
                target=f"release {release.version}",
                details={"release_id": release.id, "announced_by": release.announced_by},
            )
            await uow.commit()
        return replace(
            release, rejected_by=actor.id, rejected_by_name=actor.name[:100], rejected_at=now
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
                        NoticeTemplate.UPGRADE_UNHEALTHY,
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


def _rollback_from(
    version: ReleaseVersion, newest: ReleaseVersion | None, rollback: bool
) -> str | None:
    """None for a new release; the newest version for a rollback Core Ops asked for. A version
    not newer than the newest needs `rollback:true`; `rollback:true` needs an older version."""
    if newest is None or version > newest:
        if rollback:
            raise ReleaseConflict(
                f"rollback:true, but {version} is newer than {newest}: not a rollback. "
                "Announce it without rollback."
                if newest
                else "rollback:true, but no release was announced yet: nothing to roll back "
                "from. Announce it without rollback."
            )
        return None
    if version == newest:
        raise ReleaseConflict(
            f"version {version} is not newer than {newest} (the same precedence: build metadata "
            "does not count): publish a new version."
        )
    if not rollback:
        raise ReleaseConflict(
            f"version {version} is not newer than {newest}, the newest announced release. "
            "A downgrade must be meant: Core Ops may announce it with rollback:true."
        )
    return str(newest)
