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

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.access import (
    AccessPolicy,
    DriftFinding,
    Grant,
    GrantStatus,
    RoleChangeRefused,
    RoleChangeUnavailable,
)
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.outbox import Reminder
from bot.domain.ports import Clock, MemberRoles, UnitOfWork
from bot.domain.roles import Actor, OpsRole
from bot.services.audit import AuditService
from bot.services.notices import Notices
from bot.services.outbox import ReminderService, UowFactory

log = logging.getLogger(__name__)

REMINDER_KIND = "grant-expiry"
SCHEDULER = Actor.system("scheduler")
MAX_REASON = 500
OWNER_ACCOUNT = "break-glass owner account"


@dataclass(frozen=True)
class MemberRef:
    id: int
    name: str


@dataclass(frozen=True)
class GrantResult:
    grant: Grant
    pending_approval: bool = False
    queued_removal: bool = False


@dataclass(frozen=True)
class SweepResult:
    expired: list[Grant]
    lapsed: list[Grant]
    kept: list[Grant]
    """Due grants automation must not end (owner accounts, the last Core Ops member)."""


class GrantService:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        policy: AccessPolicy,
        *,
        roles: MemberRoles,
        notices: Notices,
        reminders: ReminderService,
        audit: AuditService,
        owner_ids: Iterable[int] = (),
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self.policy = policy
        self._roles = roles
        self._notices = notices
        self._reminders = reminders
        self._audit = audit
        self._owners = frozenset(owner_ids)
        self._in_flight: set[tuple[int, OpsRole]] = set()
        self._deciders: dict[int, tuple[asyncio.Lock, int]] = {}
        """Per request: the lock its decisions take, and how many decisions hold or await it."""
        reminders.register(REMINDER_KIND, self._remind)

    # -- who is acting -----------------------------------------------------------------------

    async def actor(self, member_id: int, name: str) -> Actor:
        """The member as the permission check sees them: the ops roles their active grants give
        (never their Discord roles, which only mirror grants) and whether they are an owner."""
        return Actor(
            id=member_id,
            name=name,
            roles=await self.roles_of(member_id),
            is_owner=member_id in self._owners,
        )

    async def roles_of(self, member_id: int) -> frozenset[OpsRole]:
        """Ops roles held through active grants. A grant past its expiry no longer counts, unless
        the sweep keeps it (the last Core Ops member, an owner account)."""
        now = self._clock.now()
        roles: set[OpsRole] = set()
        async with self._uow() as uow:
            for grant in await uow.grants.find(statuses=(GrantStatus.ACTIVE,), member_id=member_id):
                if grant.expires_at is None or grant.expires_at > now:
                    roles.add(grant.role)
                    continue
                core_holders = await uow.grants.active_holders(OpsRole.CORE_OPS)
                if self._automation_guard(member_id, grant.role, core_holders):
                    roles.add(grant.role)
        return frozenset(roles)

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
                    "access.approval_request",
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
                        "access.expiry_kept",
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
                    "access.expired",
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
                    "access.member_left",
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
                    await self._notices.notice(
                        uow,
                        "access.drift",
                        {
                            "member_id": member_id,
                            "member_name": name,
                            "role": role.value,
                            "removed": enforce,
                            "kept_because": guard if self.policy.enforce else None,
                        },
                    )
                    await self._audit.record(
                        uow,
                        SCHEDULER,
                        "access:drift",
                        target=f"{name} ({member_id}) {role.label}",
                        details={"member_id": member_id, "role": role.value, "removed": enforce},
                    )
            if complete:
                for finding in await uow.drift.open_findings():
                    if (finding.member_id, finding.role) not in seen:
                        await uow.drift.resolve(finding.member_id, finding.role, now)
            await uow.commit()
        if new or removed:
            self._notices.wake()
        return new

    # -- reminders ---------------------------------------------------------------------------

    async def _remind(self, uow: UnitOfWork, reminder: Reminder) -> None:
        grant = await uow.grants.get(int(reminder.payload["grant_id"]))
        if grant is None or grant.status is not GrantStatus.ACTIVE:
            return  # ended or renewed since: nothing to say
        if _iso(grant.expires_at) != reminder.payload.get("expires_at"):
            return
        await self._notices.direct(
            uow,
            grant.member_id,
            "access.expiry_reminder",
            _grant_data(grant) | {"days_left": reminder.payload["days"]},
            dedupe_key=f"reminder:{reminder.id}",
        )
        await self._audit.record(
            uow,
            SCHEDULER,
            "access:reminder",
            target=_target_of(grant),
            details={"grant_id": grant.id, "days_left": reminder.payload["days"]},
        )

    async def _schedule_reminders(self, uow: UnitOfWork, grant: Grant) -> None:
        assert grant.expires_at is not None
        now = self._clock.now()
        for days in self.policy.reminder_days:
            due = grant.expires_at - timedelta(days=days)
            if due <= now:
                continue  # a 3-day grant gets no 7-day reminder
            await self._reminders.schedule(
                uow,
                REMINDER_KIND,
                _reminder_subject(grant, days),
                due,
                {"grant_id": grant.id, "days": days, "expires_at": _iso(grant.expires_at)},
            )

    async def _cancel_reminders(self, uow: UnitOfWork, grant: Grant) -> None:
        for days in self.policy.reminder_days:
            await self._reminders.cancel(uow, REMINDER_KIND, _reminder_subject(grant, days))

    # -- helpers -----------------------------------------------------------------------------

    async def _record(
        self,
        uow: UnitOfWork,
        actor: Actor,
        member: MemberRef,
        role: OpsRole,
        reason: str,
        days: int,
        *,
        active: bool,
    ) -> Grant:
        """A new grant row: active from now, or pending a second Core Ops approval."""
        now = self._clock.now()
        return await uow.grants.add(
            member_id=member.id,
            member_name=member.name,
            role=role,
            status=GrantStatus.ACTIVE if active else GrantStatus.PENDING,
            reason=reason,
            granted_by_id=actor.id,
            granted_by_name=actor.name,
            requested_at=now,
            days=days,
            granted_at=now if active else None,
            expires_at=now + timedelta(days=days) if active else None,
        )

    @contextlib.asynccontextmanager
    async def _deciding(self, grant_id: int) -> AsyncIterator[None]:
        """One decision at a time on a request in this process; across instances the database
        settles it (a request is activated or ended only while it is still pending)."""
        lock, users = self._deciders.get(grant_id, (asyncio.Lock(), 0))
        self._deciders[grant_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._deciders[grant_id]
            if users <= 1:
                del self._deciders[grant_id]
            else:
                self._deciders[grant_id] = (lock, users - 1)

    async def _void_if_requester_gone(self, actor: Actor, grant: Grant) -> None:
        """A Core Ops request does not outlive its requester: one who left the server or no
        longer holds Core Ops (no active grant; owners need none) voids it."""
        why = await self._requester_gone(grant)
        if why is None:
            return
        async with self._uow() as uow:
            if await uow.grants.end(
                grant.id,
                GrantStatus.VOID,
                at=self._clock.now(),
                by_name=SCHEDULER.name,
                reason=why,
                only=(GrantStatus.PENDING,),
            ):
                await self._audit.record(
                    uow,
                    SCHEDULER,
                    "access:void",
                    target=_target_of(grant),
                    details={"grant_id": grant.id, "why": why, "noticed_by": actor.name},
                )
                await uow.commit()
        raise InvalidInput(
            f"This request is void: {why}. A current Core Ops member may ask again with "
            "/access grant."
        )

    async def _requester_gone(self, grant: Grant) -> str | None:
        requester = grant.granted_by_id
        if requester is None:
            return "it has no requester"
        if not await self._roles.is_member(requester):
            return f"its requester, {grant.granted_by_name}, left the server"
        if requester not in self._owners and OpsRole.CORE_OPS not in await self.roles_of(requester):
            return f"its requester, {grant.granted_by_name}, no longer holds Core Ops"
        return None

    def _automation_guard(
        self, member_id: int, role: OpsRole, core_holders: set[int]
    ) -> str | None:
        """Why automation must leave this member's role alone, if it must (manual §9 safety)."""
        if member_id in self._owners:
            return OWNER_ACCOUNT
        if role is OpsRole.CORE_OPS and not (core_holders - {member_id}):
            return "last active Core Ops member"
        return None

    async def _add_role(self, member_id: int, role: OpsRole, reason: str) -> None:
        self._in_flight.add((member_id, role))
        try:
            await self._roles.add(member_id, role, reason)
        except BaseException:
            self._in_flight.discard((member_id, role))
            raise

    async def _compensate(self, member_id: int, role: OpsRole) -> None:
        """Take back the role this decision added, unless an active grant holds it now: then
        another decision (here or in another instance) won, and its role stays."""
        try:
            async with self._uow() as uow:
                live = await uow.grants.live_for(member_id, role)
        except Exception:
            log.exception(
                "could not check the grants of member %s: role %s left in place (drift check "
                "will report it if no grant holds it)",
                member_id,
                role.value,
            )
            return
        if live is not None and live.status is GrantStatus.ACTIVE:
            log.info("role %s of member %s kept: grant %s holds it", role.value, member_id, live.id)
            return
        try:
            await self._roles.remove(member_id, role, "grant could not be recorded")
        except (RoleChangeRefused, RoleChangeUnavailable):
            log.error(
                "role %s left on member %s without a grant: drift check will report it",
                role.value,
                member_id,
            )

    async def _pending(self, uow: UnitOfWork, grant_id: int) -> Grant:
        grant = await uow.grants.get(grant_id, for_update=True)
        if grant is None:
            raise NotFound("That grant request does not exist.")
        if grant.status is GrantStatus.VOID:
            raise InvalidInput(f"This request is void: {grant.end_reason}.")
        if grant.status is not GrantStatus.PENDING:
            by = f" by {grant.ended_by_name}" if grant.ended_by_name else ""
            raise InvalidInput(f"This request was already decided ({grant.status.value}{by}).")
        return grant

    def _days(self, days: int | None) -> int:
        days = self.policy.max_days if days is None else days
        if not 1 <= days <= self.policy.max_days:
            raise InvalidInput(
                f"`days` must be between 1 and {self.policy.max_days} (manual §18: credentials "
                f"expire after {self.policy.max_days} days)."
            )
        return days

    @staticmethod
    def _reason(reason: str) -> str:
        reason = " ".join(reason.split())
        if len(reason) < 3:
            raise InvalidInput("Give a reason (it goes into the audit log).")
        return reason[:MAX_REASON]


def _not_yourself(verb: str, message: str | None = None) -> InvalidInput:
    return InvalidInput(
        message or f"Nobody may {verb} their own access: ask another Core Ops member."
    )


def _already(grant: Grant) -> str:
    if grant.status is GrantStatus.PENDING:
        return f"{grant.member_name} already has a {grant.role.label} request waiting for approval."
    return (
        f"{grant.member_name} already holds {grant.role.label} until "
        f"{_iso(grant.expires_at)}: use /access renew."
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _hours(delta: timedelta) -> int:
    return int(delta.total_seconds() // 3600)


def _reminder_subject(grant: Grant, days: int) -> str:
    # The expiry is part of the subject: a renewed grant gets fresh reminders.
    return f"grant:{grant.id}:{days}d:{_iso(grant.expires_at)}"


def _target(member: MemberRef, role: OpsRole) -> str:
    return f"{member.name} ({member.id}) {role.label}"


def _target_of(grant: Grant) -> str:
    return f"{grant.member_name} ({grant.member_id}) {grant.role.label}"


def _grant_data(grant: Grant) -> dict[str, object]:
    return {
        "grant_id": grant.id,
        "member_id": grant.member_id,
        "member_name": grant.member_name,
        "role": grant.role.value,
        "reason": grant.reason,
        "granted_by_name": grant.granted_by_name,
        "days": grant.days,
        "expires_at": _iso(grant.expires_at),
    }
