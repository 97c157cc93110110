"""What the grant use cases share: their state, the helpers every one of them uses, and the
rules of wording. `GrantService` (bot/services/grants/__init__.py) is built on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.access import (
    AccessPolicy,
    Grant,
    GrantStatus,
    RoleChangeRefused,
    RoleChangeUnavailable,
)
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.outbox import NoticeTemplate, Reminder, ReminderKind
from bot.domain.ports import Clock, MemberRoles, UnitOfWork
from bot.domain.roles import Actor, OpsRole
from bot.services.audit import AuditService
from bot.services.notices import Notices
from bot.services.outbox import ReminderHandler, ReminderService, UowFactory

log = logging.getLogger(__name__)

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


class GrantBase:
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

    def reminder_handlers(self) -> Mapping[ReminderKind, ReminderHandler]:
        """Registered by the composition root (bot/app/services.py)."""
        return {ReminderKind.GRANT_EXPIRY: self._remind}

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

    async def _remind(self, uow: UnitOfWork, reminder: Reminder) -> None:
        grant = await uow.grants.get(int(reminder.payload["grant_id"]))
        if grant is None or grant.status is not GrantStatus.ACTIVE:
            return  # ended or renewed since: nothing to say
        if _iso(grant.expires_at) != reminder.payload.get("expires_at"):
            return
        await self._notices.direct(
            uow,
            grant.member_id,
            NoticeTemplate.ACCESS_EXPIRY_REMINDER,
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
                ReminderKind.GRANT_EXPIRY,
                _reminder_subject(grant, days),
                due,
                {"grant_id": grant.id, "days": days, "expires_at": _iso(grant.expires_at)},
            )

    async def _cancel_reminders(self, uow: UnitOfWork, grant: Grant) -> None:
        for days in self.policy.reminder_days:
            await self._reminders.cancel(
                uow, ReminderKind.GRANT_EXPIRY, _reminder_subject(grant, days)
            )

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
