"""Grants, lockouts and access reviews (manual §9, §18): the entities and their errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.domain.errors import DomainError
from bot.domain.roles import OpsRole


class GrantStatus(enum.StrEnum):
    PENDING = "pending"
    """A Core Ops grant waiting for a second Core Ops member (two-person rule)."""
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REJECTED = "rejected"
    LAPSED = "lapsed"
    """A pending request nobody approved within the approval window."""
    VOID = "void"
    """A pending request whose requester left the server or lost Core Ops before approval."""


LIVE_STATUSES = (GrantStatus.PENDING, GrantStatus.ACTIVE)


@dataclass(frozen=True)
class AccessPolicy:
    """The `[access]` settings, as the services need them."""

    max_days: int = 90
    enforce: bool = True
    review_days: int = 14
    strikes: int = 3
    strike_window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=60)
    approval_window: timedelta = timedelta(hours=24)
    reminder_days: tuple[int, ...] = (7, 1)


@dataclass(frozen=True)
class Grant:
    id: int
    member_id: int
    member_name: str
    role: OpsRole
    status: GrantStatus
    reason: str
    granted_by_id: int | None
    granted_by_name: str
    requested_at: datetime
    days: int
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    approved_by_id: int | None = None
    ended_at: datetime | None = None
    ended_by_name: str | None = None
    end_reason: str | None = None

    @property
    def subject(self) -> str:
        return f"grant:{self.id}"

    def label(self) -> str:
        return f"{self.role.label} for {self.member_name}"


@dataclass(frozen=True)
class Lockout:
    member_id: int
    locked_at: datetime
    until: datetime
    lifted_at: datetime | None = None
    lifted_by_name: str | None = None


class ReviewDecision(enum.StrEnum):
    KEEP = "keep"
    REVOKE = "revoke"


@dataclass(frozen=True)
class AccessReview:
    id: int
    started_at: datetime
    deadline: datetime
    started_by_name: str
    closed_at: datetime | None = None


@dataclass(frozen=True)
class ReviewItem:
    id: int
    review_id: int
    grant_id: int
    member_id: int
    member_name: str
    role: OpsRole
    expires_at: datetime | None
    decision: ReviewDecision | None = None
    decided_by_name: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class DriftFinding:
    """A member holding an ops role with no active grant (given by hand in Discord)."""

    member_id: int
    member_name: str
    role: OpsRole


class RoleChangeRefused(DomainError):
    """Discord said no to a role change; the message says why and how to fix it."""

    outcome = "refused"


class RoleChangeUnavailable(DomainError):
    """Discord did not answer a role change; nothing was changed, try again."""

    outcome = "unavailable"


def lockout_until(until: datetime) -> str:
    """Until when a lockout holds and who can lift it, as every message about it says it: the
    clock time and the time left (Discord shows both in the reader's time zone)."""
    at = int(until.timestamp())
    return f"until <t:{at}:t> (<t:{at}:R>). A Core Ops member can lift it with `/access unlock`"


class LockedOut(DomainError):
    outcome = "locked"

    def __init__(self, until: datetime) -> None:
        super().__init__(
            f"You are locked out of privileged actions after repeated denied attempts, "
            f"{lockout_until(until)}."
        )
        self.until = until


class GrantRepository(Protocol):
    async def add(
        self,
        *,
        member_id: int,
        member_name: str,
        role: OpsRole,
        status: GrantStatus,
        reason: str,
        granted_by_id: int | None,
        granted_by_name: str,
        requested_at: datetime,
        days: int,
        granted_at: datetime | None,
        expires_at: datetime | None,
    ) -> Grant: ...

    async def get(self, grant_id: int, *, for_update: bool = False) -> Grant | None: ...

    async def live_for(self, member_id: int, role: OpsRole) -> Grant | None:
        """The pending or active grant of this member for this role, if any."""
        ...

    async def find(
        self,
        *,
        statuses: tuple[GrantStatus, ...] = ...,
        member_id: int | None = None,
        role: OpsRole | None = None,
        limit: int = 100,
    ) -> list[Grant]: ...

    async def activate(
        self, grant_id: int, *, granted_at: datetime, expires_at: datetime, approved_by_id: int
    ) -> bool:
        """Activate a pending request; False when it was no longer pending (decided meanwhile)."""
        ...

    async def extend(self, grant_id: int, expires_at: datetime, days: int) -> None: ...

    async def end(
        self,
        grant_id: int,
        status: GrantStatus,
        *,
        at: datetime,
        by_name: str,
        reason: str,
        only: tuple[GrantStatus, ...] | None = None,
    ) -> bool:
        """Close a live grant (`only`: a grant in one of these statuses); False when it was not
        in them any more (a replay, or a race)."""
        ...

    async def expired(self, now: datetime) -> list[Grant]: ...

    async def lapsed_requests(self, before: datetime) -> list[Grant]: ...

    async def active_holders(self, role: OpsRole) -> set[int]: ...


class LockoutRepository(Protocol):
    async def add_strike(self, member_id: int, at: datetime, action: str) -> None: ...

    async def strikes_since(self, member_id: int, since: datetime) -> int: ...

    async def current(self, member_id: int, now: datetime) -> Lockout | None: ...

    async def lock(self, member_id: int, at: datetime, until: datetime) -> None: ...

    async def lift(self, member_id: int, at: datetime, by_name: str) -> bool: ...


class ReviewRepository(Protocol):
    async def create(
        self, started_at: datetime, deadline: datetime, started_by_name: str, grants: list[Grant]
    ) -> tuple[AccessReview, list[ReviewItem]]: ...

    async def item(self, item_id: int, *, for_update: bool = False) -> ReviewItem | None: ...

    async def review(self, review_id: int) -> AccessReview | None: ...

    async def items(self, review_id: int) -> list[ReviewItem]: ...

    async def decide(
        self, item_id: int, decision: ReviewDecision, by_name: str, at: datetime
    ) -> bool: ...

    async def overdue(self, now: datetime) -> list[AccessReview]: ...

    async def open_reviews(self) -> list[AccessReview]: ...

    async def close(self, review_id: int, at: datetime) -> None: ...


class DriftRepository(Protocol):
    async def record(self, finding: DriftFinding, at: datetime) -> bool:
        """True when this drift is new (not already reported and still open)."""
        ...

    async def resolve(self, member_id: int, role: OpsRole, at: datetime) -> bool:
        """Close an open finding; True if there was one."""
        ...

    async def open_findings(self) -> list[DriftFinding]: ...
