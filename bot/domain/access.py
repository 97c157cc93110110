"""Grants, lockouts and access reviews (manual §9, §18): the entities and their errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

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


class LockedOut(DomainError):
    outcome = "locked"

    def __init__(self, until: datetime) -> None:
        super().__init__(
            f"You are locked out of privileged actions until <t:{int(until.timestamp())}:t> "
            f"(<t:{int(until.timestamp())}:R>) after repeated denied attempts. A Core Ops member "
            "can lift it with `/access unlock`."
        )
        self.until = until
