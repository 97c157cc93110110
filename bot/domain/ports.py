"""Ports: what services need from the outside world, as small Protocols.

Storage implements them with SQLAlchemy; tests may implement them with anything.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from bot.domain.access import (
    AccessReview,
    DriftFinding,
    Grant,
    GrantStatus,
    Lockout,
    ReviewDecision,
    ReviewItem,
)
from bot.domain.alerts import (
    AlertGroup,
    AlertMessage,
    NotificationRow,
    Silence,
    SpooledBody,
    StoredNotification,
)
from bot.domain.audit import AuditRecord, ChainHead, HeadMark
from bot.domain.health import (
    MinuteAggregate,
    NodeStatus,
    ProbeResult,
    ProbeSample,
    RegisteredNode,
    Target,
)
from bot.domain.incidents import Incident, TimelineEntry
from bot.domain.outbox import NewOutboxItem, OutboxItem, OutboxStatus, Reminder
from bot.domain.releases import Release, ReleaseAssets, RolloutSnapshot
from bot.domain.roles import OpsRole


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""
        ...


class AuditRepository(Protocol):
    async def add(self, record: AuditRecord) -> None: ...

    async def recent(
        self, limit: int = 20, *, actor_id: int | None = None, action: str | None = None
    ) -> list[AuditRecord]: ...

    async def since(self, since: datetime | None, limit: int = ...) -> list[AuditRecord]: ...

    async def chain(
        self, after_id: int, limit: int
    ) -> list[tuple[AuditRecord, str | None, str | None]]:
        """Rows after `after_id` in id order, each with its stored prev_hash and hash."""
        ...

    @property
    def key_check(self) -> str | None:
        """The configured HMAC key's fingerprint; None without a key."""
        ...

    async def head(self) -> ChainHead | None:
        """The stored chain head; None when it is missing."""
        ...

    async def mark_at(self, row_id: int) -> HeadMark | None: ...

    async def snapshot(self) -> None:
        """The rest of this transaction reads one consistent snapshot."""
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

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class OutboxRepository(Protocol):
    async def add(self, item: NewOutboxItem, now: datetime) -> OutboxItem | None:
        """None when an item with the same dedupe_key already exists (idempotent enqueue)."""
        ...

    async def add_many(self, items: list[NewOutboxItem], now: datetime) -> None:
        """Several items without dedupe keys, in one statement."""
        ...

    async def due(
        self,
        now: datetime,
        limit: int,
        exclude_kinds: Collection[str] = (),
        exclude_ids: Collection[int] = (),
    ) -> list[OutboxItem]:
        """Pending items whose time has come, at most one per ordering key: its oldest;
        none of `exclude_kinds` nor `exclude_ids` (the worker's items in flight)."""
        ...

    async def get(self, item_id: int) -> OutboxItem | None: ...

    async def complete(
        self, item_id: int, now: datetime, result: Mapping[str, Any] | None
    ) -> None: ...

    async def reschedule(self, item_id: int, available_at: datetime, error: str) -> None: ...

    async def postpone(self, item_ids: list[int], available_at: datetime, reason: str) -> None:
        """Not due before `available_at`; not a failed attempt (pacing, not an error)."""
        ...

    async def pending_for_keys(self, kind: str, ordering_keys: list[str]) -> list[OutboxItem]:
        """Pending items of `kind` under these ordering keys."""
        ...

    async def complete_many(
        self, item_ids: list[int], now: datetime, result: Mapping[str, Any] | None
    ) -> None: ...

    async def fail(self, item_id: int, now: datetime, error: str) -> None: ...

    async def count(self, status: OutboxStatus) -> int: ...

    async def next_due(
        self, exclude_kinds: Collection[str] = (), exclude_ids: Collection[int] = ()
    ) -> datetime | None:
        """When the earliest item that `due` could return (not excluded, first of its
        ordering key) becomes due."""
        ...


class ReminderRepository(Protocol):
    async def schedule(
        self, kind: str, subject: str, due_at: datetime, payload: Mapping[str, Any]
    ) -> None:
        """Create, or move an unsent reminder; a sent one stays sent."""
        ...

    async def cancel(self, kind: str, subject: str) -> None: ...

    async def due(self, now: datetime, limit: int) -> list[Reminder]: ...

    async def mark_sent(self, reminder_id: int, now: datetime) -> bool:
        """False when it was already sent (another worker, or a replay)."""
        ...


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


class IncidentRepository(Protocol):
    async def next_number(self, year: int) -> int:
        """The next incident number of `year`; safe when two incidents open at once."""
        ...

    async def add(self, ref: str, **values: Any) -> Incident: ...

    async def get(self, incident_id: int, *, for_update: bool = False) -> Incident | None: ...

    async def by_ref(self, ref: str, *, for_update: bool = False) -> Incident | None: ...

    async def by_thread(self, thread_id: int) -> Incident | None: ...

    async def update(self, incident_id: int, **values: Any) -> None: ...

    async def find(self, *, open_only: bool, limit: int = 25) -> list[Incident]: ...

    async def refs_starting(self, prefix: str, limit: int = 25) -> list[tuple[str, str]]: ...

    async def all_for_stats(self, since: datetime | None = None) -> list[Incident]: ...

    async def add_timeline(
        self, incident_id: int, entry: TimelineEntry, *, source_id: int | None = None
    ) -> bool: ...

    async def timeline(self, incident_id: int) -> list[TimelineEntry]: ...


class MemberRoles(Protocol):
    """Adds and removes ops roles in the chat platform; raises RoleChangeRefused/Unavailable."""

    async def add(self, member_id: int, role: OpsRole, reason: str) -> None: ...

    async def remove(self, member_id: int, role: OpsRole, reason: str) -> None: ...

    async def is_member(self, member_id: int) -> bool:
        """Whether the member is in the server now; raises RoleChangeUnavailable if unknown."""
        ...


class HealthRepository(Protocol):
    """Node registrations and stored probe results (raw 48 h, per-minute aggregates 90 days)."""

    async def add_node(
        self, name: str, endpoint: str, region: str | None, requested_by: int, now: datetime
    ) -> RegisteredNode: ...

    async def set_approval_message(
        self, node_id: int, channel_id: int, message_id: int
    ) -> None: ...

    async def node(self, node_id: int) -> RegisteredNode | None: ...

    async def node_named(self, name: str) -> RegisteredNode | None: ...

    async def nodes(self, status: NodeStatus | None = None) -> list[RegisteredNode]: ...

    async def decide(
        self, node_id: int, status: NodeStatus, decided_by: int, now: datetime
    ) -> RegisteredNode: ...

    async def remove_node(self, node_id: int) -> None: ...

    async def add_samples(self, samples: list[ProbeSample]) -> None: ...

    async def recent_samples(self, target: str, since: datetime) -> list[ProbeSample]: ...

    async def rollup(self, before: datetime) -> int:
        """Aggregate complete minutes not aggregated yet (idempotent); returns minutes written."""
        ...

    async def prune(self, raw_before: datetime, aggregates_before: datetime) -> int: ...

    async def minutes(
        self, since: datetime, target: str | None = None
    ) -> list[MinuteAggregate]: ...


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

    async def put_file(self, path: str, content: str, message: str) -> str:
        """Create or update a file on the default branch; returns its html url."""
        ...


class AlertRepository(Protocol):
    async def add_notifications(self, rows: list[NotificationRow], now: datetime) -> dict[str, int]:
        """Store webhook bodies (unique dedupe keys, unprocessed); dedupe key -> id of new ones."""
        ...

    async def unprocessed(self, limit: int, known: Container[int] = ()) -> list[StoredNotification]:
        """Stored bodies whose group is not updated yet, oldest first; the payload is left
        empty for the ids in `known` (the caller has it parsed already)."""
        ...

    async def mark_processed(self, outcomes: Mapping[int, str], now: datetime) -> None: ...

    async def count_unprocessed(self) -> int: ...

    async def notification_result(self, notification_id: int) -> tuple[str, int | None] | None:
        """(outcome, id of its group) of a stored body; None when there is no such body."""
        ...

    async def groups_by_keys(self, key_hashes: list[str]) -> dict[str, AlertGroup]:
        """Locked for update (PostgreSQL) until the transaction ends."""
        ...

    async def group_by_key(self, key_hash: str) -> AlertGroup | None:
        """Locked for update (PostgreSQL) until the transaction ends."""
        ...

    async def create_groups(self, groups: list[tuple[str, AlertGroup]]) -> dict[str, int]:
        """Insert new groups (ids ignored); key hash -> id. One taken meanwhile is left out."""
        ...

    async def save_group(self, group: AlertGroup) -> None:
        """Write every mutable field of an existing group."""
        ...

    async def save_groups(self, groups: list[AlertGroup]) -> None: ...

    async def get_group(self, group_id: int, *, for_update: bool = False) -> AlertGroup | None: ...

    async def set_emailed(self, group_id: int, now: datetime) -> None: ...

    async def groups(self, group_ids: list[int]) -> list[AlertGroup]: ...

    async def pending_new_versions(self, limit: int) -> list[tuple[int, int]]:
        """(id, version) of the groups without a message yet, oldest first."""
        ...

    async def count_pending_new(self) -> int: ...

    async def add_message(
        self, channel_id: int, message_id: int, digest: bool, group_ids: list[int], now: datetime
    ) -> AlertMessage: ...

    async def get_message(self, ref: int) -> AlertMessage | None: ...

    async def clear_message(self, ref: int) -> None:
        """Its groups have no message any more (it was deleted in Discord)."""
        ...

    async def mark_posted(
        self, versions: Mapping[int, int], message_ref: int, now: datetime
    ) -> None:
        """The groups are shown by `message_ref` at these versions (first post: posted_at)."""
        ...

    async def mark_rendered(self, versions: Mapping[int, int]) -> None:
        """Raise rendered_version to these versions (never lowers it)."""
        ...

    async def watchdog_seen(self, now: datetime) -> datetime | None:
        """Record a Watchdog arrival; returns the start of the outage it ends, if one was open."""
        ...

    async def watchdog_overdue(self, now: datetime, cutoff: datetime) -> datetime | None:
        """Open an outage when the Watchdog is overdue; returns when it was last seen, once."""
        ...

    async def spool_cursor(self, generation: str) -> int:
        """The last id copied from the receiver's spool of this generation (0: none yet)."""
        ...

    async def set_spool_cursor(self, generation: str, last_id: int, now: datetime) -> None: ...


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


class ReleaseRepository(Protocol):
    async def add(self, **values: Any) -> Release | None:
        """The recorded release; None when that version is already recorded."""
        ...

    async def get(self, release_id: int, *, for_update: bool = False) -> Release | None: ...

    async def by_version(self, version: str) -> Release | None: ...

    async def by_source(self, source: str) -> Release | None: ...

    async def versions(self) -> list[str]:
        """Every recorded version, in no particular order."""
        ...

    async def latest(self) -> Release | None:
        """The release announced last (after a rollback: the version rolled back to)."""
        ...

    async def recent(self, limit: int = 10) -> list[Release]: ...

    async def approve(
        self, release_id: int, *, by: int | None, by_name: str, at: datetime
    ) -> None: ...

    async def add_snapshot(self, snapshot: RolloutSnapshot) -> None: ...

    async def snapshots(self, release_id: int, limit: int = 50) -> list[RolloutSnapshot]: ...


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
