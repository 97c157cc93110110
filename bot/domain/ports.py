"""Ports: what services need from the outside world, as small Protocols.

Storage implements them with SQLAlchemy; tests may implement them with anything.
Each area's repository Protocol lives beside its entities in `bot.domain.<area>`; this module
keeps the cross-cutting ports and the unit of work that gathers the repositories.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from bot.domain.access import (
    DriftRepository,
    GrantRepository,
    LockoutRepository,
    ReviewRepository,
)
from bot.domain.alerts import AlertRepository, Silence, SpooledBody
from bot.domain.audit import AuditRepository
from bot.domain.devlog import DevLogRepository
from bot.domain.health import HealthRepository, ProbeResult, Target
from bot.domain.incidents import IncidentRepository
from bot.domain.outbox import OutboxRepository, ReminderRepository
from bot.domain.releases import ReleaseAssets, ReleaseRepository
from bot.domain.roles import OpsRole


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""
        ...


class UnitOfWork(Protocol):
    """One transaction: everything a use case changes, and its audit row, commit together."""

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def reminders(self) -> ReminderRepository: ...

    @property
    def grants(self) -> GrantRepository: ...

    @property
    def lockouts(self) -> LockoutRepository: ...

    @property
    def reviews(self) -> ReviewRepository: ...

    @property
    def drift(self) -> DriftRepository: ...

    @property
    def health(self) -> HealthRepository: ...

    @property
    def incidents(self) -> IncidentRepository: ...

    @property
    def alerts(self) -> AlertRepository: ...

    @property
    def releases(self) -> ReleaseRepository: ...

    @property
    def devlog(self) -> DevLogRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


UowFactory = Callable[[], UnitOfWork]
"""Opens a new unit of work (one transaction); services take one instead of a session."""


class MemberRoles(Protocol):
    """Adds and removes ops roles in the chat platform; raises RoleChangeRefused/Unavailable."""

    async def add(self, member_id: int, role: OpsRole, reason: str) -> None: ...

    async def remove(self, member_id: int, role: OpsRole, reason: str) -> None: ...

    async def is_member(self, member_id: int) -> bool:
        """Whether the member is in the server now; raises RoleChangeUnavailable if unknown."""
        ...


class Prober(Protocol):
    """Probes targets; never raises: every failure is a ProbeResult with a reason."""

    async def probe_all(self, targets: list[Target]) -> list[ProbeResult]: ...


class IssueTracker(Protocol):
    """Where incidents are logged (GitHub). Every method may raise RetryLater or
    PermanentFailure (bot.domain.outbox); each is safe to call again after a lost answer."""

    async def find_issue(self, marker: str) -> tuple[int, str] | None:
        """(number, url) of an issue whose body's first line is `marker`, if one exists."""
        ...

    async def create_issue(self, title: str, body: str, labels: list[str]) -> tuple[int, str]: ...

    async def edit_issue(
        self, number: int, *, body: str, state: str, labels: list[str]
    ) -> None: ...

    async def comment(self, number: int, body: str, marker: str) -> str:
        """Add a comment unless one ending with `marker` is already there; returns its url."""
        ...

    async def put_file(self, path: str, content: str, message: str) -> str | None:
        """Create or update a file on the default branch; returns its html url (None when
        GitHub gives none)."""
        ...


class AlertSpool(Protocol):
    """The receiver process's spool of webhook bodies (`bot.storage.spool`), read by the bot.

    Every method but `prune` is a read of a few tens of microseconds that never waits."""

    generation: str

    def changed(self) -> bool:
        """Did anything commit to the spool since the last call."""
        ...

    def last_id(self) -> int: ...

    def sequence(self) -> int:
        """The highest id ever given; lower than a cursor only if the spool went backwards."""
        ...

    def regenerate(self) -> str:
        """A new generation for the file (everything in it is copied again); returns it."""
        ...

    def count_after(self, after: int) -> int: ...

    def read(self, after: int, limit: int) -> list[SpooledBody]: ...

    def watchdog_at(self) -> datetime | None:
        """When the receiver last got a firing Watchdog."""
        ...

    def prune(self, upto: int, before: datetime) -> int:
        """Delete copied bodies received before `before` (blocking: run in a thread)."""
        ...


class SilenceGateway(Protocol):
    """Alertmanager's API v2 silences."""

    async def create_silence(
        self,
        matchers: Mapping[str, str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> Silence: ...

    async def expire_silence(self, silence_id: str) -> None: ...


class ManifestFetcher(Protocol):
    async def fetch(self, url: str, *, cross_host: bool = False) -> bytes:
        """The body at an http(s) URL, size-capped and with a timeout, under the address rules
        of `bot.domain.addresses`; redirects stay on the URL's host unless `cross_host` (a
        source the config names). Raises a `DomainError` (one text for "could not fetch")."""
        ...


class ReleaseSource(Protocol):
    async def manifests(self) -> list[ReleaseAssets]:
        """Published releases with a manifest and its signature, newest first."""
        ...
