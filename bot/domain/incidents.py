"""Incidents (manual §9, §12, §19, §20): severities, statuses, the checklist and the timeline.

Pure values and rules; the service (bot/services/incidents.py) applies them in transactions.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.domain.errors import InvalidInput
from bot.domain.roles import OpsRole

TITLE_MAX = 200
"""Leaves room in an embed title (256) and a thread name (100, truncated) for the id."""
SUMMARY_MAX = 1500
TEXT_MAX = 1500
NODES_MAX = 300
MINERS_TEXT_MAX = 500


class Severity(enum.IntEnum):
    """Manual §12."""

    SEV1 = 1
    SEV2 = 2
    SEV3 = 3

    @property
    def meaning(self) -> str:
        return _MEANING[self]

    @property
    def label(self) -> str:
        return f"Sev {int(self)}"

    @property
    def tells_miners(self) -> bool:
        return self in (Severity.SEV1, Severity.SEV2)


_MEANING = {
    Severity.SEV1: "mining or payout halted",
    Severity.SEV2: "several nodes offline for more than 30 minutes",
    Severity.SEV3: "UI glitch or delayed telemetry",
}


class IncidentStatus(enum.StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"

    @property
    def is_open(self) -> bool:
        return self is not IncidentStatus.RESOLVED


UPDATE_STATUSES = (
    IncidentStatus.INVESTIGATING,
    IncidentStatus.IDENTIFIED,
    IncidentStatus.MONITORING,
)


class ChecklistItem(enum.StrEnum):
    """The manual's response steps, in order: isolate → snapshot → rotate → notify → report."""

    ISOLATE = "isolate"
    SNAPSHOT = "snapshot"
    ROTATE = "rotate"
    NOTIFY = "notify"
    REPORT = "report"

    @property
    def label(self) -> str:
        return _CHECK_LABELS[self]


_CHECK_LABELS = {
    ChecklistItem.ISOLATE: "Isolate affected systems",
    ChecklistItem.SNAPSHOT: "Snapshot logs and state",
    ChecklistItem.ROTATE: "Rotate credentials",
    ChecklistItem.NOTIFY: "Notify #operations",
    ChecklistItem.REPORT: "Publish the report (within 48 h)",
}


class TimelineKind(enum.StrEnum):
    OPENED = "opened"
    UPDATE = "update"
    SEVERITY = "severity"
    ASSIGNED = "assigned"
    CHECKLIST = "checklist"
    RESOLVED = "resolved"
    REPORT = "report"
    PINNED = "pinned"
    MINERS = "miners"
    LINKED = "linked"


@dataclass(frozen=True)
class Tick:
    by_id: int | None
    by_name: str
    at: datetime


@dataclass(frozen=True)
class Incident:
    id: int
    ref: str
    severity: Severity
    status: IncidentStatus
    title: str
    summary: str
    nodes: str
    reporter_id: int | None
    reporter_name: str
    opened_at: datetime
    last_update_at: datetime
    commander_id: int | None = None
    commander_name: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    cause: str | None = None
    resolution: str | None = None
    report_due_at: datetime | None = None
    report_at: datetime | None = None
    checklist: Mapping[ChecklistItem, Tick] = field(default_factory=dict)
    updates: int = 0
    github_number: int | None = None
    github_url: str | None = None
    github_error: str | None = None
    report_url: str | None = None
    card_channel_id: int | None = None
    card_message_id: int | None = None
    thread_id: int | None = None
    miners_enabled: bool = True
    miners_text: str | None = None
    links: tuple[IncidentLink, ...] = ()
    """Pull requests and commits linked to it (newest last); loaded with one incident."""
    latest_update: TimelineEntry | None = None
    """Its newest `/incident update` (text, who, when); loaded with one incident."""

    @property
    def is_open(self) -> bool:
        return self.status.is_open


class LinkKind(enum.StrEnum):
    PR = "pr"
    COMMIT = "commit"


@dataclass(frozen=True)
class IncidentLink:
    """A pull request or commit linked to an incident (manual §19: operators link commits or
    PRs to resolution records), by a webhook or `/incident link`; once per incident and URL."""

    kind: LinkKind
    url: str
    title: str
    author: str
    at: datetime


_GITHUB_LINK = re.compile(
    r"^https://[A-Za-z0-9.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/"
    r"(?:(pull)/(\d{1,9})|(commit)/([0-9a-fA-F]{7,40}))/?$"
)
LINK_URL_MAX = 300


def link_target(url: str) -> tuple[LinkKind, str]:
    """A pull request or commit URL (`https://<host>/<owner>/<repo>/pull/<n>` or
    `.../commit/<sha>`): its kind and a short label ("pull request #12", "commit abc1234")."""
    value = url.strip()
    match = _GITHUB_LINK.match(value) if len(value) <= LINK_URL_MAX else None
    if match is None:
        raise InvalidInput(
            "Give the URL of a pull request (https://github.com/owner/repo/pull/12) or a "
            "commit (https://github.com/owner/repo/commit/<sha>)."
        )
    if match.group(1):
        return LinkKind.PR, f"pull request #{match.group(2)}"
    return LinkKind.COMMIT, f"commit {match.group(4)[:7].lower()}"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: TimelineKind
    actor_name: str
    text: str
    actor_id: int | None = None
    id: int = 0


@dataclass(frozen=True)
class IncidentPolicy:
    nudge_sev1: timedelta = timedelta(minutes=30)
    nudge_sev2: timedelta = timedelta(minutes=60)
    report_due: timedelta = timedelta(hours=48)
    report_warning: timedelta = timedelta(hours=24)
    """How long before the report deadline the commander is reminded."""
    miners_notice: bool = True

    def page_roles(self, severity: Severity) -> tuple[OpsRole, ...]:
        """Who the card pings when the incident opens or is raised: a Sev 1 pages Core Ops;
        lower severities ping nobody (the card and the nudges carry them)."""
        return (OpsRole.CORE_OPS,) if severity is Severity.SEV1 else ()

    def nudge_after(self, severity: Severity) -> timedelta | None:
        if severity is Severity.SEV1:
            return self.nudge_sev1
        if severity is Severity.SEV2:
            return self.nudge_sev2
        return None

    def next_update_due(self, incident: Incident) -> datetime | None:
        """When the next update is due (the nudge fires then): Sev 1 and Sev 2 while open."""
        after = self.nudge_after(incident.severity)
        if after is None or not incident.is_open:
            return None
        return incident.last_update_at + after


REF_PATTERN = re.compile(r"^INC-(\d{4})-(\d{4,})$")


def format_ref(year: int, number: int) -> str:
    return f"INC-{year:04d}-{number:04d}"


def parse_ref(text: str) -> tuple[int, int] | None:
    match = REF_PATTERN.match(text.strip().upper())
    if match is None:
        return None
    return int(match[1]), int(match[2])


# -- what miners may read --------------------------------------------------------------------

_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
_IPV6 = re.compile(r"\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b", re.I)
_HOSTNAME = re.compile(r"\b[\w-]+(?:\.[\w-]+)+\b")
_NODE_NAME = re.compile(r"\b[a-z]+[-_]?\d+[\w-]*\b", re.I)
_BTC_ADDRESS = re.compile(
    r"\b(?:bc1|tb1|bcrt1)[0-9a-z]{8,87}\b|\b[13mn2][1-9A-HJ-NP-Za-km-z]{25,39}\b"
)
_LONG_TOKEN = re.compile(r"\b[0-9a-fA-F]{16,}\b|\b\w{30,}\b")
_AMOUNT = re.compile(r"\d[\d,.]*\s*(?:btc|sats?|satoshis?|msats?|₿)\b|₿\s*\d[\d,.]*", re.I)
_MENTION = re.compile(r"<[@#][!&]?\d+>|@(?:everyone|here)")
_URL = re.compile(r"\b\w+://\S+")
REDACTED = "[…]"


def miners_safe(text: str) -> str:
    """Text with hostnames, addresses, balances and mentions cut out, for #miners."""
    for pattern in (
        _URL,
        _MENTION,
        _AMOUNT,
        _IPV4,
        _IPV6,
        _BTC_ADDRESS,
        _HOSTNAME,
        _NODE_NAME,
        _LONG_TOKEN,
    ):
        text = pattern.sub(REDACTED, text)
    text = re.sub(r"(?:\[…\]\s*)+", REDACTED + " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:MINERS_TEXT_MAX]


def miners_notice_text(incident: Incident, *, resolved: bool) -> str:
    """The plain notice miners read: severity, status and a sanitised title, nothing else."""
    if incident.miners_text:
        return miners_safe(incident.miners_text)
    title = miners_safe(incident.title) or "an operations issue"
    if resolved:
        return (
            f"Resolved: {title}. Service is back to normal; thank you for your patience. "
            f"(Incident {incident.ref})"
        )
    impact = {
        Severity.SEV1: "Mining or payouts may be interrupted.",
        Severity.SEV2: "Some nodes are offline; service may be degraded.",
        Severity.SEV3: "Some displays may be delayed.",
    }[incident.severity]
    return (
        f"We are working on an incident: {title}. {impact} "
        f"We will post here when it is resolved. (Incident {incident.ref})"
    )


@dataclass(frozen=True)
class SeverityStats:
    severity: Severity
    count: int
    resolved: int
    mean_acknowledge: timedelta | None
    mean_resolve: timedelta | None


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

    async def add_link(self, incident_id: int, link: IncidentLink) -> bool:
        """False when this URL is linked to the incident already."""
        ...

    async def links(self, incident_id: int) -> list[IncidentLink]: ...
