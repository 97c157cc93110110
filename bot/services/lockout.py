"""The 3-strike lockout (manual §9): denied privileged attempts lock a member out for a while."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.access import AccessPolicy, LockedOut, Lockout
from bot.domain.errors import InvalidInput
from bot.domain.outbox import NoticeTemplate
from bot.domain.ports import Clock
from bot.domain.roles import Actor, OpsRole
from bot.services.audit import AuditService
from bot.services.notices import Notices
from bot.services.outbox import UowFactory

SYSTEM = Actor.system("lockout")


@dataclass(frozen=True)
class StrikeResult:
    strikes: int
    lockout: Lockout | None = None
    spared: str | None = None
    """Why a member who reached the limit was not locked out (owner, last Core Ops)."""
    already: Lockout | None = None
    """The lockout the member was already under (the attempt counted nothing)."""
    next_would_lock_until: datetime | None = None
    """One attempt short of the limit: until when the next denial would lock them out."""


class LockoutService:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        policy: AccessPolicy,
        *,
        audit: AuditService,
        notices: Notices,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self.policy = policy
        self._audit = audit
        self._notices = notices

    async def check(self, actor: Actor) -> None:
        """Raise LockedOut while the member is locked out (owners never are)."""
        if actor.is_owner or actor.id is None:
            return
        async with self._uow() as uow:
            lockout = await uow.lockouts.current(actor.id, self._clock.now())
        if lockout is not None:
            raise LockedOut(lockout.until)

    async def strike(self, actor: Actor, action: str) -> StrikeResult:
        """Count a denied privileged attempt; lock out at the limit, within the window."""
        if actor.is_owner or actor.id is None:
            return StrikeResult(0)
        now = self._clock.now()
        async with self._uow() as uow:
            current = await uow.lockouts.current(actor.id, now)
            if current is not None:
                return StrikeResult(0, already=current)
            await uow.lockouts.add_strike(actor.id, now, action)
            strikes = await uow.lockouts.strikes_since(actor.id, now - self.policy.strike_window)
            result = StrikeResult(
                strikes,
                next_would_lock_until=now + self.policy.lockout
                if strikes == self.policy.strikes - 1
                else None,
            )
            if strikes >= self.policy.strikes:
                spared = None
                if OpsRole.CORE_OPS in actor.roles:
                    holders = await uow.grants.active_holders(OpsRole.CORE_OPS)
                    if not holders - {actor.id}:
                        spared = "last active Core Ops member"
                if spared:
                    result = StrikeResult(strikes, spared=spared)
                else:
                    until = now + self.policy.lockout
                    await uow.lockouts.lock(actor.id, now, until)
                    result = StrikeResult(strikes, Lockout(actor.id, now, until))
                    await self._notices.notice(
                        uow,
                        NoticeTemplate.ACCESS_LOCKOUT,
                        {
                            "member_id": actor.id,
                            "member_name": actor.name,
                            "strikes": strikes,
                            "until": until.isoformat(),
                            "last_action": action,
                        },
                    )
                await self._audit.record(
                    uow,
                    SYSTEM,
                    "access:lockout",
                    outcome="spared" if spared else "ok",
                    target=f"{actor.name} ({actor.id})",
                    details={"strikes": strikes, "last_action": action, "spared": spared},
                )
            await uow.commit()
        if result.lockout:
            self._notices.wake()
        return result

    async def unlock(self, actor: Actor, member_id: int, member_name: str) -> None:
        now = self._clock.now()
        async with self._uow() as uow:
            if not await uow.lockouts.lift(member_id, now, actor.name):
                raise InvalidInput(f"{member_name} is not locked out.")
            await self._audit.record(
                uow, actor, "access unlock", target=f"{member_name} ({member_id})"
            )
            await self._notices.notice(
                uow,
                NoticeTemplate.ACCESS_UNLOCKED,
                {"member_id": member_id, "member_name": member_name, "by": actor.name},
            )
            await uow.commit()
        self._notices.wake()
