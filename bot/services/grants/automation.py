"""Grants without a person waiting: the sweep (expiry, lapsed requests), departures, drift,
and the expiry reminders. A refusal here is told through the outbox, never to a member."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bot.domain.access import (
    DriftFinding,
    Grant,
    GrantStatus,
)
from bot.domain.outbox import NoticeTemplate
from bot.domain.roles import OpsRole
from bot.services.grants.common import (
    OWNER_ACCOUNT,
    SCHEDULER,
    GrantBase,
    MemberRef,
    SweepResult,
    _grant_data,
    _iso,
    _target_of,
)

log = logging.getLogger(__name__)


class GrantAutomation(GrantBase):
    # -- automation --------------------------------------------------------------------------

    async def sweep(self) -> SweepResult:
        """End grants whose time is up and requests nobody approved. Idempotent."""
        now = self._clock.now()
        expired: list[Grant] = []
        kept: list[Grant] = []
        lapsed: list[Grant] = []
        async with self._uow() as uow:
            due = await uow.grants.expired(now)
            core_holders = await uow.grants.active_holders(OpsRole.CORE_OPS)
            for grant in due:
                guard = self._automation_guard(grant.member_id, grant.role, core_holders)
                if guard:
                    kept.append(grant)
                    await self._notices.notice(
                        uow,
                        NoticeTemplate.ACCESS_EXPIRY_KEPT,
                        _grant_data(grant) | {"why": guard},
                        mention_roles=[OpsRole.CORE_OPS],
                        dedupe_key=f"expiry-kept:{grant.id}:{now.date().isoformat()}",
                    )
                    continue
                if not await uow.grants.end(
                    grant.id,
                    GrantStatus.EXPIRED,
                    at=now,
                    by_name=SCHEDULER.name,
                    reason="expired",
                ):
                    continue
                if grant.role is OpsRole.CORE_OPS:
                    core_holders.discard(grant.member_id)
                expired.append(grant)
                await self._notices.remove_role(
                    uow,
                    grant.member_id,
                    grant.role,
                    "grant expired",
                    dedupe_key=f"role-remove:grant:{grant.id}",
                )
                await self._notices.notice(
                    uow,
                    NoticeTemplate.ACCESS_EXPIRED,
                    _grant_data(grant),
                    dedupe_key=f"expired:{grant.id}",
                )
                await self._audit.record(
                    uow,
                    SCHEDULER,
                    "access:expire",
                    target=_target_of(grant),
                    details={"grant_id": grant.id, "expires_at": _iso(grant.expires_at)},
                )
            for grant in await uow.grants.lapsed_requests(now - self.policy.approval_window):
                if await uow.grants.end(
                    grant.id,
                    GrantStatus.LAPSED,
                    at=now,
                    by_name=SCHEDULER.name,
                    reason="not approved in time",
                ):
                    lapsed.append(grant)
                    await self._audit.record(
                        uow,
                        SCHEDULER,
                        "access:lapse",
                        target=_target_of(grant),
                        details={"grant_id": grant.id},
                    )
            await uow.commit()
        if expired or kept:
            self._notices.wake()
        return SweepResult(expired=expired, lapsed=lapsed, kept=kept)

    async def member_left(self, member: MemberRef) -> list[Grant]:
        """A personnel change (manual §18): every grant ends at once."""
        now = self._clock.now()
        ended: list[Grant] = []
        async with self._uow() as uow:
            for grant in await uow.grants.find(member_id=member.id):
                if await uow.grants.end(
                    grant.id,
                    GrantStatus.REVOKED,
                    at=now,
                    by_name=SCHEDULER.name,
                    reason="left the server",
                ):
                    ended.append(grant)
                    await self._cancel_reminders(uow, grant)
                    await self._audit.record(
                        uow,
                        SCHEDULER,
                        "access:member_left",
                        target=_target_of(grant),
                        details={"grant_id": grant.id},
                    )
            if ended:
                await self._notices.notice(
                    uow,
                    NoticeTemplate.ACCESS_MEMBER_LEFT,
                    {
                        "member_id": member.id,
                        "member_name": member.name,
                        "roles": [g.role.value for g in ended],
                    },
                )
            for role in OpsRole:
                await uow.drift.resolve(member.id, role, now)
            await uow.commit()
        if ended:
            self._notices.wake()
        return ended

    async def check_drift(
        self, holdings: Mapping[int, tuple[str, frozenset[OpsRole]]], *, complete: bool
    ) -> list[DriftFinding]:
        """Ops roles held without an active grant. `holdings`: member id -> (name, ops roles).

        `complete` means `holdings` covers every member (start-up), so findings for members not
        in it are resolved; otherwise only the members given are looked at (a member update).
        """
        now = self._clock.now()
        new: list[DriftFinding] = []
        found: list[dict[str, object]] = []
        removed = False
        async with self._uow() as uow:
            granted: dict[OpsRole, set[int]] = {
                role: await uow.grants.active_holders(role) for role in OpsRole
            }
            seen: set[tuple[int, OpsRole]] = set()
            for member_id, (name, roles) in holdings.items():
                for role in OpsRole:
                    held = role in roles
                    if held:
                        seen.add((member_id, role))
                    if (
                        not held
                        or member_id in granted[role]
                        or (member_id, role) in self._in_flight
                    ):
                        await uow.drift.resolve(member_id, role, now)
                        continue
                    finding = DriftFinding(member_id, name, role)
                    if not await uow.drift.record(finding, now):
                        continue
                    new.append(finding)
                    # A hand-given role grants nothing, so removing it locks nobody out; only
                    # owner accounts are left alone (manual §9 safety).
                    guard = OWNER_ACCOUNT if member_id in self._owners else None
                    enforce = self.policy.enforce and not guard
                    if enforce:
                        removed = True
                        await self._notices.remove_role(
                            uow,
                            member_id,
                            role,
                            "held without a grant",
                            dedupe_key=f"role-remove:drift:{member_id}:{role.value}:{_iso(now)}",
                        )
                    found.append(
                        {
                            "member_id": member_id,
                            "member_name": name,
                            "role": role.value,
                            "removed": enforce,
                            "kept_because": guard if self.policy.enforce else None,
                        }
                    )
                    await self._audit.record(
                        uow,
                        SCHEDULER,
                        "access:drift",
                        target=f"{name} ({member_id}) {role.label}",
                        details={"member_id": member_id, "role": role.value, "removed": enforce},
                    )
            if found:
                # One message for what one look found (at start-up: every member at once).
                await self._notices.notice(uow, NoticeTemplate.ACCESS_DRIFT, {"findings": found})
            if complete:
                for finding in await uow.drift.open_findings():
                    if (finding.member_id, finding.role) not in seen:
                        await uow.drift.resolve(finding.member_id, finding.role, now)
            await uow.commit()
        if new or removed:
            self._notices.wake()
        return new

    # -- reminders ---------------------------------------------------------------------------
