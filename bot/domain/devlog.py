"""#dev-log hears CI/CD: GitHub's webhook events (manual §19), what the bot makes of them.

The event models follow GitHub's documented webhook bodies (field names as sent), keeping only
what the bot uses; everything else in a body is ignored. The rules are pure: which events are
used, a failing workflow on the default branch and when it is green again, a burst of merges as
one message, which incident ids (`INC-YYYY-NNNN`) a title, body or commit message names, and
text from GitHub made safe to show on Discord (nobody can be pinged by a pull request title).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

MAX_BODY = 1024 * 1024
"""The largest webhook body the bot reads (GitHub caps its own at 25 MB; ours are far smaller)."""
USED_EVENTS = frozenset({"workflow_run", "pull_request", "release", "push"})
"""Events the bot acts on; `ping` is answered (204) and any other event is ignored (204)."""
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})
PASSED_CONCLUSIONS = frozenset({"success"})
MANIFEST_ASSET = "manifest.json"
SIGNATURE_ASSET = "manifest.json.minisig"
MAX_LINKS_PER_EVENT = 10
"""At most this many incident links from one pull request or push (a wall of ids is noise)."""


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character, which the database cannot store")
    return value


Text = Annotated[str, AfterValidator(_storable)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(_Model):
    login: Text = Field(max_length=100)


class Repository(_Model):
    full_name: Text = Field(max_length=200)
    default_branch: Text = Field(max_length=255)
    html_url: Text = Field(default="", max_length=500)


class WorkflowRun(_Model):
    id: int
    name: Text | None = Field(default=None, max_length=500)
    workflow_id: int
    head_branch: Text | None = Field(default=None, max_length=255)
    head_sha: Text = Field(max_length=64)
    html_url: Text = Field(max_length=500)
    run_number: int = 0
    status: Text | None = Field(default=None, max_length=32)
    conclusion: Text | None = Field(default=None, max_length=32)
    run_started_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    actor: Account | None = None


class WorkflowRunEvent(_Model):
    action: Text = Field(max_length=32)
    workflow_run: WorkflowRun
    repository: Repository
    sender: Account | None = None


class Branch(_Model):
    ref: Text = Field(max_length=255)


class PullRequest(_Model):
    number: int
    html_url: Text = Field(max_length=500)
    title: Text = Field(max_length=1000)
    body: Text | None = None
    user: Account
    merged: bool | None = None
    merged_at: AwareDatetime | None = None
    base: Branch
    merged_by: Account | None = None


class PullRequestEvent(_Model):
    action: Text = Field(max_length=32)
    number: int | None = None
    pull_request: PullRequest
    repository: Repository


class ReleaseAsset(_Model):
    name: Text = Field(max_length=255)
    browser_download_url: Text = Field(max_length=1000)


class GitHubRelease(_Model):
    tag_name: Text = Field(max_length=255)
    name: Text | None = Field(default=None, max_length=500)
    html_url: Text = Field(default="", max_length=500)
    draft: bool = False
    prerelease: bool = False
    assets: list[ReleaseAsset] = Field(default_factory=list, max_length=1000)


class ReleaseEvent(_Model):
    action: Text = Field(max_length=32)
    release: GitHubRelease
    repository: Repository


class CommitAuthor(_Model):
    name: Text = Field(default="", max_length=200)
    username: Text | None = Field(default=None, max_length=100)


class Commit(_Model):
    id: Text = Field(max_length=64)
    message: Text
    url: Text = Field(max_length=500)
    author: CommitAuthor | None = None
    timestamp: AwareDatetime | None = None


class PushEvent(_Model):
    ref: Text = Field(max_length=255)
    commits: list[Commit] = Field(default_factory=list, max_length=2048)
    repository: Repository


class PingEvent(_Model):
    zen: Text | None = Field(default=None, max_length=500)
    hook_id: int | None = None


GitHubEvent = WorkflowRunEvent | PullRequestEvent | ReleaseEvent | PushEvent
EVENT_MODELS: Mapping[str, type[BaseModel]] = {
    "workflow_run": WorkflowRunEvent,
    "pull_request": PullRequestEvent,
    "release": ReleaseEvent,
    "push": PushEvent,
    "ping": PingEvent,
}


def parse_event(event: str, body: bytes | str | Mapping[str, Any]) -> BaseModel:
    """The body as the event it claims (raises pydantic's ValidationError naming the field)."""
    model = EVENT_MODELS[event]
    if isinstance(body, bytes | str):
        return model.model_validate_json(body)
    return model.model_validate(body)


# -- incident ids ------------------------------------------------------------------------------

INCIDENT_REF = re.compile(r"(?<![A-Za-z0-9-])INC-(\d{4})-(\d{4,6})(?![0-9])", re.IGNORECASE)


def incident_refs(*texts: str | None) -> list[str]:
    """The incident ids (`INC-YYYY-NNNN`) these texts name, in order, each once, at most
    `MAX_LINKS_PER_EVENT`; spelled as the bot spells them (upper case, four digits at least)."""
    found: list[str] = []
    for text in texts:
        for match in INCIDENT_REF.finditer(text or ""):
            ref = f"INC-{int(match.group(1)):04d}-{int(match.group(2)):04d}"
            if ref not in found:
                found.append(ref)
            if len(found) >= MAX_LINKS_PER_EVENT:
                return found
    return found


# -- text from GitHub, safe on Discord ---------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#])")
_SPACES = re.compile(r"\s+")


def safe_line(text: str | None, limit: int = 200) -> str:
    """One line of text from GitHub, safe to show on Discord: no control or direction
    characters, no line breaks, Markdown escaped, mentions broken (`@everyone`, `<@id>`, `<@&id>`
    and `<#id>` cannot ping or resolve, whatever `allowed_mentions` says), at most `limit`."""
    value = _SPACES.sub(" ", _CONTROL.sub("", text or "")).strip()
    if len(value) > limit:
        value = value[: max(limit - 1, 0)].rstrip() + "…"
    value = _MARKDOWN.sub(r"\\\1", value)
    return value.replace("@", "@\u200b").replace("<", "<\u200b")


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def safe_url(url: str | None) -> str | None:
    """An https URL as GitHub sent it, or None: nothing else is made a link."""
    value = (url or "").strip()
    if not value.startswith("https://") or any(c in value for c in " <>()\"'`\n"):
        return None
    return value[:500]


# -- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevLogPolicy:
    merge_burst: timedelta = timedelta(minutes=10)
    """Merges within this long of the first one of a message join it (edited)."""
    merge_burst_max: int = 10
    """At most this many merges in one message; the next starts a new one."""


WorkflowOutcome = Literal["failed", "passed", "ignored"]


def workflow_outcome(event: WorkflowRunEvent) -> WorkflowOutcome:
    """A completed run on the default branch that failed or passed; anything else is ignored
    (other branches, cancelled or skipped runs, runs not completed)."""
    run = event.workflow_run
    if event.action != "completed" or run.head_branch != event.repository.default_branch:
        return "ignored"
    if run.conclusion in FAILED_CONCLUSIONS:
        return "failed"
    if run.conclusion in PASSED_CONCLUSIONS:
        return "passed"
    return "ignored"


def workflow_key(event: WorkflowRunEvent) -> str:
    return f"workflow:{event.repository.full_name}:{event.workflow_run.workflow_id}"[:200]


def merges_key(repository: Repository) -> str:
    return f"merges:{repository.full_name}"[:200]


def merged_into_default(event: PullRequestEvent) -> bool:
    pr = event.pull_request
    return (
        event.action == "closed"
        and bool(pr.merged)
        and pr.base.ref == event.repository.default_branch
    )


def joins_burst(post: DevLogPost, now: datetime, policy: DevLogPolicy) -> bool:
    """Does a merge at `now` join this merges message (edited) rather than start a new one?"""
    merges = post.data.get("merges", [])
    return (
        post.open
        and now - post.created_at <= policy.merge_burst
        and len(merges) < policy.merge_burst_max
    )


def run_data(event: WorkflowRunEvent, *, received: datetime) -> dict[str, Any]:
    """What a workflow message shows of one run (plain JSON, made safe when rendered)."""
    run = event.workflow_run
    return {
        "run_id": run.id,
        "run_number": run.run_number,
        "sha": run.head_sha[:40],
        "url": safe_url(run.html_url),
        "actor": (run.actor.login if run.actor else None)
        or (event.sender.login if event.sender else ""),
        "started_at": (run.run_started_at or received).isoformat(),
    }


def failed_data(
    current: Mapping[str, Any] | None, event: WorkflowRunEvent, *, received: datetime
) -> dict[str, Any]:
    """The failing message's data after one more failed run: the streak keeps its start."""
    run = run_data(event, received=received)
    if current is None or current.get("state") != "failing":
        return {
            "state": "failing",
            "workflow": event.workflow_run.name or f"workflow {event.workflow_run.workflow_id}",
            "repository": event.repository.full_name,
            "branch": event.workflow_run.head_branch or event.repository.default_branch,
            "failing_since": run["started_at"],
            "failed_runs": 1,
            "last": run,
        }
    return {**current, "failed_runs": int(current.get("failed_runs", 1)) + 1, "last": run}


def passed_data(
    current: Mapping[str, Any], event: WorkflowRunEvent, *, received: datetime
) -> dict[str, Any]:
    """The same message, green: which run passed and when."""
    run = run_data(event, received=received)
    return {**current, "state": "passed", "passed": run, "passed_at": received.isoformat()}


def is_older_run(current: Mapping[str, Any], event: WorkflowRunEvent) -> bool:
    """A run that started before the streak's latest failure (GitHub delivers out of order):
    it says nothing about now."""
    started = event.workflow_run.run_started_at
    last = (current.get("last") or {}).get("started_at")
    if started is None or not last:
        return False
    return started < datetime.fromisoformat(str(last))


def merge_line(event: PullRequestEvent, *, received: datetime) -> dict[str, Any]:
    pr = event.pull_request
    return {
        "number": pr.number,
        "title": pr.title[:300],
        "author": pr.user.login,
        "url": safe_url(pr.html_url),
        "merged_at": (pr.merged_at or received).isoformat(),
    }


def release_assets(event: ReleaseEvent) -> tuple[str, str] | None:
    """The manifest and signature download URLs a published release carries, or None."""
    urls = {a.name: a.browser_download_url for a in event.release.assets}
    if MANIFEST_ASSET in urls and SIGNATURE_ASSET in urls:
        return urls[MANIFEST_ASSET], urls[SIGNATURE_ASSET]
    return None


# -- what is stored --------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, stored before the answer (unique on GitHub's delivery id)."""

    id: int
    delivery_id: str
    event: str
    payload: Mapping[str, Any]
    received_at: datetime
    processed_at: datetime | None = None
    outcome: str = "pending"


@dataclass(frozen=True)
class DevLogPost:
    """A message in #dev-log that the bot edits later (a failing workflow, a burst of merges):
    what it shows (`template`, `data`) and where it is once posted (`message_id`)."""

    id: int
    key: str
    template: str
    data: Mapping[str, Any]
    open: bool
    created_at: datetime
    updated_at: datetime
    version: int = 1
    channel_id: int | None = None
    message_id: int | None = None


class DevLogRepository(Protocol):
    async def add_delivery(
        self, delivery_id: str, event: str, payload: Mapping[str, Any], now: datetime
    ) -> int | None:
        """The new row's id; None when this delivery id is stored already (a redelivery)."""
        ...

    async def delivery(self, row_id: int) -> Delivery | None: ...

    async def mark_delivery(self, row_id: int, outcome: str, now: datetime) -> None: ...

    async def open_post(self, key: str) -> DevLogPost | None:
        """The newest open post under `key`."""
        ...

    async def add_post(
        self, key: str, template: str, data: Mapping[str, Any], now: datetime
    ) -> DevLogPost: ...

    async def update_post(
        self, post_id: int, data: Mapping[str, Any], *, open: bool, now: datetime
    ) -> None:
        """New data (version + 1); `open=False` closes it (nothing joins it any more)."""
        ...

    async def post(self, post_id: int) -> DevLogPost | None: ...

    async def posted(self, post_id: int, channel_id: int, message_id: int) -> None: ...


def commit_lines(commits: Sequence[Commit]) -> list[Commit]:
    """The commits of a push that name an incident, each once (by id)."""
    seen: set[str] = set()
    out = []
    for commit in commits:
        if commit.id in seen or not incident_refs(commit.message):
            continue
        seen.add(commit.id)
        out.append(commit)
    return out


@dataclass(frozen=True)
class Received:
    """What became of a webhook delivery: stored now ("accepted") or already ("duplicate")."""

    outcome: Literal["accepted", "duplicate"]
    delivery_row: int | None = None


def failing_seconds(data: Mapping[str, Any], until: datetime) -> float:
    """How long a workflow has been failing, from the first failed run of its streak."""
    since = data.get("failing_since")
    if not since:
        return 0.0
    return max((until - datetime.fromisoformat(str(since))).total_seconds(), 0.0)
