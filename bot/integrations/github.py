"""GitHub through PyGithub: incident issues, comments and report files (manual §19).

PyGithub is blocking (requests), so every call runs in a worker thread (`asyncio.to_thread`)
under a timeout, never on the event loop. PyGithub's own retries and throttling are off: the
outbox owns retries (with backoff, across restarts). Errors are sorted for the outbox worker:
rate limits (403/429 with `X-RateLimit-Remaining: 0` or `Retry-After`) are `RetryLater` after the
reset, 5xx and timeouts are `RetryLater`, refusals (401, 403, 404, 410, 422) are
`PermanentFailure`. Every write is safe to repeat after a lost answer: issues and comments carry a
marker that is looked for before creating (only where the bot puts it: an issue's first line, a
comment's last line, so text quoting a marker never counts), and a file whose content is already
there is left be.
The token is never logged, and never part of an error message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException, RateLimitExceededException
from github.ContentFile import ContentFile
from github.Repository import Repository

from bot.config import GitHubSettings
from bot.domain.outbox import PermanentFailure, RetryLater
from bot.domain.ports import Clock
from bot.domain.releases import ReleaseAssets

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SCANNED = 500
"""Issues or comments looked through for a marker, at most (a bounded loop)."""
PERMANENT = frozenset({400, 401, 403, 404, 410, 422})
MANAGED_LABELS = frozenset({"incident", "resolved"})


def classify(exc: BaseException, now: float) -> Exception:
    """Map a PyGithub / requests error onto the outbox's retry policy."""
    if isinstance(exc, GithubException):
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        status = exc.status
        limited = isinstance(exc, RateLimitExceededException) or (
            status in (403, 429)
            and (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers)
        )
        if limited:
            return RetryLater("GitHub rate limit", retry_after=_retry_after(headers, now))
        if status >= 500:
            return RetryLater(f"GitHub {status}")
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        text = f"GitHub {status}" + (f": {str(message)[:200]}" if message else "")
        if status in PERMANENT:
            return PermanentFailure(text)
        return RetryLater(text)
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):
        return RetryLater("GitHub timed out")
    if isinstance(exc, requests.exceptions.RequestException | OSError):
        return RetryLater(f"GitHub unreachable ({type(exc).__name__})")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def _retry_after(headers: dict[str, str], now: float) -> float:
    if "retry-after" in headers:
        try:
            return max(float(headers["retry-after"]), 1.0)
        except ValueError:
            pass
    try:
        reset = float(headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return 60.0
    return max(reset - now, 1.0) + 1.0


class GitHubIssues:
    """The `IssueTracker` port on one repository."""

    def __init__(self, settings: GitHubSettings, clock: Clock) -> None:
        if not settings.repo or settings.token is None:
            raise ValueError("GitHub is not configured ([github] repo and token)")
        self.repo_name = settings.repo
        self.timeout = settings.timeout_seconds
        self._clock = clock
        self._client = Github(
            auth=Auth.Token(settings.token.get_secret_value()),
            base_url=settings.api_url,
            timeout=max(1, round(settings.timeout_seconds)),
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self._repo: Repository = self._client.get_repo(settings.repo)

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one blocking PyGithub call in a thread, bounded, with errors sorted."""
        try:
            # PyGithub's timeout applies per request; a call may make a few (pages, a lookup).
            return await asyncio.wait_for(asyncio.to_thread(fn), timeout=self.timeout * 4 + 5)
        except Exception as exc:
            mapped = classify(exc, self._clock.now().timestamp())
            if mapped is exc:
                raise
            log.warning("GitHub %s on %s failed: %s", what, self.repo_name, mapped)
            raise mapped from None

    async def find_issue(self, marker: str) -> tuple[int, str] | None:
        def scan() -> tuple[int, str] | None:
            for index, issue in enumerate(self._repo.get_issues(state="all", labels=["incident"])):
                if index >= MAX_SCANNED:
                    break
                if _line(issue.body, 0) == marker:  # only where the bot puts it: the first line
                    return issue.number, issue.html_url
            return None

        return await self._call("issue lookup", scan)

    async def create_issue(self, title: str, body: str, labels: list[str]) -> tuple[int, str]:
        def create() -> tuple[int, str]:
            issue = self._repo.create_issue(title=title[:256], body=body, labels=labels)
            return issue.number, issue.html_url

        return await self._call("issue create", create)

    async def edit_issue(self, number: int, *, body: str, state: str, labels: list[str]) -> None:
        def edit() -> None:
            issue = self._repo.get_issue(number)
            # Labels people added by hand stay; the bot manages incident, sev-N and resolved.
            kept = [
                label.name
                for label in issue.labels
                if label.name not in MANAGED_LABELS and not label.name.startswith("sev-")
            ]
            issue.edit(body=body, state=state, labels=[*labels, *kept])

        await self._call("issue edit", edit)

    async def comment(self, number: int, body: str, marker: str) -> str:
        tag = f"<!-- {marker} -->"

        def post() -> str:
            issue = self._repo.get_issue(number)
            for index, existing in enumerate(issue.get_comments()):
                if index >= MAX_SCANNED:
                    break
                if _line(existing.body, -1) == tag:  # only where the bot puts it: the last line
                    return existing.html_url
            return issue.create_comment(f"{body}\n\n{tag}").html_url

        return await self._call("comment", post)

    async def put_file(self, path: str, content: str, message: str) -> str | None:
        def put() -> str | None:
            try:
                current = self._repo.get_contents(path)
            except GithubException as exc:
                if exc.status != 404:
                    raise
                created: Any = self._repo.create_file(path, message, content)
                return _html_url(created["content"])
            if isinstance(current, list):
                raise GithubException(422, {"message": f"{path} is a directory"}, {})
            if _text(current) == content:
                return _html_url(current)
            updated: Any = self._repo.update_file(path, message, content, current.sha)
            return _html_url(updated["content"])

        return await self._call("file commit", put)


def _html_url(content: Any) -> str | None:
    """A file's page on GitHub, or None when GitHub gives none (never the text "None")."""
    url = getattr(content, "html_url", None)
    return str(url) if url else None


def _line(text: str | None, index: int) -> str | None:
    """One line of an issue or comment body, trimmed (GitHub stores web edits with CRLF)."""
    lines = (text or "").strip().splitlines()
    return lines[index].strip() if lines else None


def _text(content: ContentFile) -> str | None:
    try:
        return content.decoded_content.decode("utf-8")
    except (ValueError, AssertionError, UnicodeDecodeError):
        return None


MANIFEST_ASSET = "manifest.json"
SIGNATURE_ASSET = "manifest.json.minisig"
MAX_RELEASES = 20
"""Releases looked at per poll, newest first (a bounded loop)."""


class GitHubReleases:
    """The `ReleaseSource` port: published releases of `[upgrades] github_repo` that carry a
    `manifest.json` and its `manifest.json.minisig` (their public download URLs; the bytes are
    fetched by the size-capped manifest fetcher, without the token)."""

    def __init__(self, settings: GitHubSettings, repo: str, clock: Clock) -> None:
        self.repo_name = repo
        self.timeout = settings.timeout_seconds
        self._clock = clock
        token = settings.token.get_secret_value() if settings.token else None
        self._client = Github(
            auth=Auth.Token(token) if token else None,
            base_url=settings.api_url,
            timeout=max(1, round(settings.timeout_seconds)),
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self._repo: Repository = self._client.get_repo(repo)

    async def manifests(self) -> list[ReleaseAssets]:
        def scan() -> list[ReleaseAssets]:
            found: list[ReleaseAssets] = []
            for index, release in enumerate(self._repo.get_releases()):
                if index >= MAX_RELEASES:
                    break
                if release.draft:
                    continue
                urls: dict[str, str] = {}
                for count, asset in enumerate(release.get_assets()):
                    if count >= 100:
                        break
                    if asset.name in (MANIFEST_ASSET, SIGNATURE_ASSET):
                        urls[asset.name] = asset.browser_download_url
                if MANIFEST_ASSET in urls and SIGNATURE_ASSET in urls:
                    found.append(
                        ReleaseAssets(
                            tag=release.tag_name,
                            manifest_url=urls[MANIFEST_ASSET],
                            signature_url=urls[SIGNATURE_ASSET],
                        )
                    )
            return found

        try:
            return await asyncio.wait_for(asyncio.to_thread(scan), timeout=self.timeout * 4 + 5)
        except Exception as exc:
            mapped = classify(exc, self._clock.now().timestamp())
            log.warning("GitHub releases of %s could not be listed: %s", self.repo_name, mapped)
            raise mapped from None
