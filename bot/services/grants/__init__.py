"""Expiring grants of ops roles (manual §18), the two-person rule, expiry, reminders and drift.

The database is the truth: a role is held through an active grant, and the permission check
reads grants (`GrantService.actor`), never Discord roles; the Discord role is the grant's visible
mirror, and one held without a grant is drift. A sweep ends grants whose time is up (also those
that expired while the bot was down) and queues the role removal in the same transaction;
reminders are database rows fired once. Decisions on one request (approve, reject) run one at a
time, and a decision that loses a race never undoes what the winner did. Discord is told
synchronously when a person is waiting for the answer (grant, approve, revoke), so a refusal is
reported at once and leaves nothing half-made; it is told through the outbox when nobody is
(expiry, review, drift).
"""

from __future__ import annotations

from datetime import timedelta

from bot.domain.access import Grant, GrantStatus, RoleChangeUnavailable
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.outbox import NoticeTemplate
from bot.domain.roles import Actor, OpsRole
from bot.services.grants.automation import GrantAutomation
from bot.services.grants.common import (
    SCHEDULER,
    GrantResult,
    MemberRef,
    SweepResult,
    _already,
    _grant_data,
    _hours,
    _iso,
    _not_yourself,
    _target,
    _target_of,
)

__all__ = ["REMINDER_KIND", "SCHEDULER", "GrantResult", "GrantService", "MemberRef", "SweepResult"]


class GrantService(GrantAutomation):
    """The use cases a member asks for: grant, approve, reject, renew, revoke, look up. Who is
    acting and the shared helpers are in `common.py`; what runs with nobody waiting (the sweep,
    departures, drift) in `automation.py`."""

    # -- commands ----------------------------------------------------------------------------

    async def grant(
        self, actor: Actor, member: MemberRef, role: OpsRole, days: int | None, reason: str
    ) -> GrantResult:
        days = self._days(days)
        reason = self._reason(reason)
        if member.id == actor.id:
            raise _not_yourself("grant")
        now = self._clock.now()
        bootstrap = False
        async with self._uow() as uow:
            live = await uow.grants.live_for(member.id, role)
            if live is not None:
                raise InvalidInput(_already(live))
            if role is OpsRole.CORE_OPS:
                # Nobody holds Core Ops, so nobody could approve: an owner grants the first
                # members at once (the bootstrap); from then on the two-person rule applies.
                bootstrap = actor.is_owner and not await uow.grants.active_holders(role)
            if role is OpsRole.CORE_OPS and not bootstrap:
                grant = await self._record(uow, actor, member, role, reason, days, active=False)
                await self._audit.record(
                    uow,
                    actor,
                    "access grant",
                    outcome="requested",
                    target=_target(member, role),
                    details={"grant_id": grant.id, "days": days, "reason": reason},
                )
                await self._notices.notice(
                    uow,
                    NoticeTemplate.ACCESS_APPROVAL_REQUEST,
                    _grant_data(grant)
                    | {"approval_expires_at": _iso(now + self.policy.approval_window)},
                    mention_roles=[OpsRole.CORE_OPS],
                    dedupe_key=f"approval-request:{grant.id}",
                )
                await uow.commit()
                self._notices.wake()
                return GrantResult(grant, pending_approval=True)

        expires = now + timedelta(days=days)
        await self._add_role(member.id, role, f"grant by {actor.name}: {reason}")
        try:
            async with self._uow() as uow:
                grant = await self._record(uow, actor, member, role, reason, days, active=True)
                await self._schedule_reminders(uow, grant)
                await self._audit.record(
                    uow,
                    actor,
                    "access grant",
                    target=_target(member, role),
                    details={
                        "grant_id": grant.id,
                        "days": days,
                        "reason": reason,
                        "expires_at": _iso(expires),
                    }
                    | ({"bootstrap": True} if bootstrap else {}),
                )
                await uow.commit()
        except Exception:
            # The role is on the member but the grant was not recorded: take it back off.
            await self._compensate(member.id, role)
            raise
        finally:
            self._in_flight.discard((member.id, role))
        return GrantResult(grant)

    async def approve(self, actor: Actor, grant_id: int) -> Grant:
        async with self._deciding(grant_id):
            return await self._approve(actor, grant_id)

    async def _approve(self, actor: Actor, grant_id: int) -> Grant:
        now = self._clock.now()
        async with self._uow() as uow:
            grant = await self._pending(uow, grant_id)
            if actor.id in (grant.granted_by_id, grant.member_id):
                raise _not_yourself(
                    "approve",
                    "A second Core Ops member must approve: not the requester, "
                    "not the member receiving the role.",
                )
            if grant.requested_at + self.policy.approval_window <= now:
                await uow.grants.end(
                    grant.id,
                    GrantStatus.LAPSED,
                    at=now,
                    by_name=SCHEDULER.name,
                    reason="not approved in time",
                )
                await self._audit.record(
                    uow,
                    SCHEDULER,
                    "access:lapse",
                    target=_target_of(grant),
                    details={"grant_id": grant.id},
                )
                await uow.commit()
                raise InvalidInput(
                    "This request expired (not approved within "
                    f"{_hours(self.policy.approval_window)} h); ask for a new /access grant."
                )
        await self._void_if_requester_gone(actor, grant)
        await self._add_role(grant.member_id, grant.role, f"grant approved by {actor.name}")
        try:
            async with self._uow() as uow:
                expires = now + timedelta(days=grant.days)
                if not await uow.grants.activate(
                    grant.id, granted_at=now, expires_at=expires, approved_by_id=actor.id or 0
                ):
                    raise InvalidInput("Someone else decided this request a moment ago.")
                active = await uow.grants.get(grant.id)
                assert active is not None
                await self._schedule_reminders(uow, active)
                await self._audit.record(
                    uow,
                    actor,
                    "access:approve",
                    target=_target_of(grant),
                    details={
                        "grant_id": grant.id,
                        "requested_by": grant.granted_by_name,
                        "expires_at": _iso(expires),
                    },
                )
                await uow.commit()
        except Exception:
            await self._compensate(grant.member_id, grant.role)
            raise
        finally:
            self._in_flight.discard((grant.member_id, grant.role))
        return active

    async def reject(self, actor: Actor, grant_id: int) -> Grant:
        async with self._deciding(grant_id):
            now = self._clock.now()
            async with self._uow() as uow:
                grant = await self._pending(uow, grant_id)
                if actor.id == grant.member_id:
                    raise _not_yourself("reject")
                if not await uow.grants.end(
                    grant.id,
                    GrantStatus.REJECTED,
                    at=now,
                    by_name=actor.name,
                    reason="rejected",
                    only=(GrantStatus.PENDING,),
                ):
                    raise InvalidInput("Someone else decided this request a moment ago.")
                await self._audit.record(
                    uow,
                    actor,
                    "access:reject",
                    target=_target_of(grant),
                    details={"grant_id": grant.id},
                )
                await uow.commit()
            return grant

    async def renew(
        self, actor: Actor, member: MemberRef, role: OpsRole, days: int | None
    ) -> Grant:
        days = self._days(days)
        if member.id == actor.id:
            raise _not_yourself("renew")
        now = self._clock.now()
        async with self._uow() as uow:
            grant = await uow.grants.live_for(member.id, role)
            if grant is None or grant.status is not GrantStatus.ACTIVE:
                raise NotFound(
                    f"{member.name} has no active {role.label} grant to renew; use /access grant."
                )
            expires = now + timedelta(days=days)
            await self._cancel_reminders(uow, grant)
            await uow.grants.extend(grant.id, expires, days)
            renewed = await uow.grants.get(grant.id)
            assert renewed is not None
            await self._schedule_reminders(uow, renewed)
            await self._audit.record(
                uow,
                actor,
                "access renew",
                target=_target(member, role),
                details={
                    "grant_id": grant.id,
                    "days": days,
                    "previous_expires_at": _iso(grant.expires_at),
                    "expires_at": _iso(expires),
                },
            )
            await uow.commit()
        return renewed

    async def revoke(
        self, actor: Actor, member: MemberRef, role: OpsRole, reason: str
    ) -> GrantResult:
        reason = self._reason(reason)
        now = self._clock.now()
        async with self._uow() as uow:
            grant = await uow.grants.live_for(member.id, role)
        if grant is None:
            raise NotFound(f"{member.name} holds no {role.label} grant to revoke.")
        queued = False
        if grant.status is GrantStatus.ACTIVE:
            try:
                await self._roles.remove(member.id, role, f"revoked by {actor.name}: {reason}")
            except RoleChangeUnavailable:
                queued = True  # recorded now, removed by the outbox when Discord answers
        async with self._uow() as uow:
            if not await uow.grants.end(
                grant.id, GrantStatus.REVOKED, at=now, by_name=actor.name, reason=reason
            ):
                raise InvalidInput("That grant ended a moment ago.")
            await self._cancel_reminders(uow, grant)
            if queued:
                await self._notices.remove_role(
                    uow,
                    member.id,
                    role,
                    f"revoked by {actor.name}",
                    dedupe_key=f"role-remove:grant:{grant.id}",
                )
            await self._audit.record(
                uow,
                actor,
                "access revoke",
                target=_target(member, role),
                details={"grant_id": grant.id, "reason": reason, "removal_queued": queued},
            )
            await uow.commit()
        if queued:
            self._notices.wake()
        return GrantResult(grant, queued_removal=queued)

    async def find(
        self,
        *,
        member_id: int | None = None,
        role: OpsRole | None = None,
        statuses: tuple[GrantStatus, ...] = (GrantStatus.PENDING, GrantStatus.ACTIVE),
        limit: int = 100,
    ) -> list[Grant]:
        async with self._uow() as uow:
            return await uow.grants.find(
                statuses=statuses, member_id=member_id, role=role, limit=limit
            )

    async def get(self, grant_id: int) -> Grant | None:
        async with self._uow() as uow:
            return await uow.grants.get(grant_id)
