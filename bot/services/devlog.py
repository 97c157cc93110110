"""#dev-log hears CI/CD (manual §19): GitHub's signed webhook, stored, then applied.

`receive` is all the webhook waits for: the delivery is a row (unique on GitHub's
`X-GitHub-Delivery`, so a redelivery stores and posts nothing) and a `devlog.apply` outbox item,
committed before GitHub gets its answer. The outbox then applies it (`_apply`), with retries and
across restarts:

- a failing workflow run on the default branch is one #dev-log message (a `devlog_posts` row
  the Discord handler posts, then edits), updated while it keeps failing and turned green when a
  later run of the same workflow passes; successes alone are not posted;
- pull requests merged into the default branch: one line each, a burst in one message (edited);
- a published release is handed to the signed-manifest flow (`UpgradeService.announce_assets`):
  nothing unsigned is announced;
- a merged pull request or pushed commit naming `INC-YYYY-NNNN` is linked to that incident
  (`IncidentService.link`: card, report, thread, GitHub issue, audit row).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.domain.devlog import (
    DevLogPolicy,
    DevLogPost,
    PullRequestEvent,
    PushEvent,
    Received,
    ReleaseEvent,
    WorkflowRunEvent,
    commit_lines,
    failed_data,
    failing_seconds,
    first_line,
    incident_refs,
    is_older_run,
    joins_burst,
    merge_line,
    merged_into_default,
    merges_key,
    parse_event,
    passed_data,
    release_assets,
    safe_url,
    workflow_key,
    workflow_outcome,
)
from bot.domain.errors import DomainError
from bot.domain.incidents import LinkKind
from bot.domain.outbox import NoticeTemplate, OutboxItem, OutboxKind, RetryLater
from bot.domain.ports import Clock, UnitOfWork
from bot.domain.releases import ReleaseAssets
from bot.domain.roles import Actor
from bot.services.incidents import IncidentService
from bot.services.outbox import OutboxHandler, OutboxService, UowFactory
from bot.services.upgrades import UpgradeService

log = logging.getLogger(__name__)

WEBHOOK = Actor.system("github-webhook")
RELEASE_RETRY = 300.0
"""Seconds before a release whose manifest could not be downloaded is tried again."""

Link = tuple[str, str, LinkKind, str, str]
"""(incident ref, url, kind, title, author)"""


class DevLogService:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        policy: DevLogPolicy,
        *,
        outbox: OutboxService,
        incidents: IncidentService,
        upgrades: UpgradeService,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self.policy = policy
        self._outbox = outbox
        self._incidents = incidents
        self._upgrades = upgrades

    def outbox_handlers(self) -> Mapping[OutboxKind, OutboxHandler]:
        """Registered by the composition root (bot/app/services.py)."""
        return {OutboxKind.DEVLOG_APPLY: self._apply}

    # -- the webhook's store -------------------------------------------------------------------

    async def receive(self, delivery_id: str, event: str, payload: Mapping[str, Any]) -> Received:
        """Store one validated delivery and its `devlog.apply` work, once per delivery id."""
        async with self._uow() as uow:
            row = await uow.devlog.add_delivery(delivery_id, event, payload, self._clock.now())
            if row is None:
                return Received("duplicate")
            await self._outbox.enqueue(
                uow,
                OutboxKind.DEVLOG_APPLY,
                {"delivery_row": row},
                dedupe_key=f"github:delivery:{row}",
            )
            await uow.commit()
        self._outbox.wake()
        return Received("accepted", row)

    # -- the Discord handler's side ------------------------------------------------------------

    async def post(self, post_id: int) -> DevLogPost | None:
        async with self._uow() as uow:
            return await uow.devlog.post(post_id)

    async def posted(self, post_id: int, *, channel_id: int, message_id: int) -> None:
        """Where a post is, so later edits (and a restart) find it."""
        async with self._uow() as uow:
            await uow.devlog.posted(post_id, channel_id, message_id)
            await uow.commit()

    # -- applying a delivery -------------------------------------------------------------------

    async def _apply(self, item: OutboxItem) -> Mapping[str, Any]:
        row = int(item.payload["delivery_row"])
        async with self._uow() as uow:
            delivery = await uow.devlog.delivery(row)
        if delivery is None:
            return {"skipped": "delivery gone"}
        try:
            event = parse_event(delivery.event, delivery.payload)
        except (KeyError, ValidationError) as exc:
            # Validated when it arrived; only a body stored by another version gets here.
            log.error("GitHub delivery %s set aside: %s", row, type(exc).__name__)
            await self._mark(row, "invalid")
            return {"outcome": "invalid"}
        outcome = delivery.outcome
        if delivery.processed_at is None:
            if isinstance(event, ReleaseEvent):
                outcome = await self._release(event)
                await self._mark(row, outcome)
            else:
                async with self._uow() as uow:
                    outcome = await self._change(uow, event)
                    await uow.devlog.mark_delivery(row, outcome, self._clock.now())
                    await uow.commit()
                self._outbox.wake()
        # Links are their own use cases, idempotent: a replay after a crash links the rest.
        linked = 0
        for ref, url, kind, title, author in links_of(event):
            try:
                _, added = await self._incidents.link(
                    WEBHOOK, ref, url, kind=kind, title=title, author=author
                )
            except DomainError as refusal:
                log.info("GitHub delivery %s: %s not linked: %s", row, ref, refusal.user_message)
                continue
            linked += int(added)
        return {"outcome": outcome, "linked": linked}

    async def _mark(self, row: int, outcome: str) -> None:
        async with self._uow() as uow:
            await uow.devlog.mark_delivery(row, outcome, self._clock.now())
            await uow.commit()

    async def _change(self, uow: UnitOfWork, event: BaseModel) -> str:
        if isinstance(event, WorkflowRunEvent):
            return await self._workflow(uow, event)
        if isinstance(event, PullRequestEvent):
            return await self._merge(uow, event)
        return "used" if isinstance(event, PushEvent) else "ignored"

    async def _workflow(self, uow: UnitOfWork, event: WorkflowRunEvent) -> str:
        outcome = workflow_outcome(event)
        if outcome == "ignored":
            return "ignored"
        now = self._clock.now()
        key = workflow_key(event)
        post = await uow.devlog.open_post(key)
        if post is not None and is_older_run(post.data, event):
            return "stale"
        if outcome == "failed":
            data = failed_data(post.data if post else None, event, received=now)
            if post is None:
                post = await uow.devlog.add_post(key, NoticeTemplate.DEVLOG_WORKFLOW, data, now)
            else:
                await uow.devlog.update_post(post.id, data, open=True, now=now)
            await self._deliver(uow, post.id)
            return "failing"
        if post is None:
            return "passed"  # green and nothing failing: not posted one by one
        data = passed_data(post.data, event, received=now)
        data["failed_for_seconds"] = failing_seconds(post.data, now)
        await uow.devlog.update_post(post.id, data, open=False, now=now)
        await self._deliver(uow, post.id)
        return "green"

    async def _merge(self, uow: UnitOfWork, event: PullRequestEvent) -> str:
        if not merged_into_default(event):
            return "ignored"
        now = self._clock.now()
        key = merges_key(event.repository)
        line = merge_line(event, received=now)
        post = await uow.devlog.open_post(key)
        merges = list(post.data.get("merges", [])) if post else []
        if any(m.get("number") == line["number"] for m in merges):
            return "known"
        if post is not None and joins_burst(post, now, self.policy):
            data = {**post.data, "merges": [*merges, line]}
            await uow.devlog.update_post(post.id, data, open=True, now=now)
        else:
            if post is not None:
                await uow.devlog.update_post(post.id, post.data, open=False, now=now)
            data = {"repository": event.repository.full_name, "merges": [line]}
            post = await uow.devlog.add_post(key, NoticeTemplate.DEVLOG_MERGES, data, now)
        await self._deliver(uow, post.id)
        return "merged"

    async def _deliver(self, uow: UnitOfWork, post_id: int) -> None:
        await self._outbox.enqueue(
            uow,
            OutboxKind.DEVLOG_POST,
            {"post_id": post_id},
            ordering_key=f"devlog:post:{post_id}",
        )

    async def _release(self, event: ReleaseEvent) -> str:
        """Handed to the signed-manifest flow; a release without a signed manifest is not one."""
        if event.action != "published" or event.release.draft:
            return "ignored"
        urls = release_assets(event)
        if urls is None:
            log.info(
                "GitHub release %s has no manifest.json + manifest.json.minisig: not announced",
                event.release.tag_name[:64],
            )
            return "unsigned"
        outcome = await self._upgrades.announce_assets(
            ReleaseAssets(tag=event.release.tag_name, manifest_url=urls[0], signature_url=urls[1])
        )
        if outcome == "unfetched":
            raise RetryLater("the release's manifest could not be fetched", RELEASE_RETRY)
        return f"release {outcome}"


def links_of(event: BaseModel) -> list[Link]:
    """The incident links a merged pull request or a push asks for."""
    links: list[Link] = []
    if isinstance(event, PullRequestEvent):
        pr = event.pull_request
        url = safe_url(pr.html_url)
        if event.action == "closed" and pr.merged and url:
            for ref in incident_refs(pr.title, pr.body):
                links.append((ref, url, LinkKind.PR, pr.title, pr.user.login))
    elif isinstance(event, PushEvent):
        for commit in commit_lines(event.commits):
            url = safe_url(commit.url)
            if url is None:
                continue
            author = commit.author.username or commit.author.name if commit.author else ""
            for ref in incident_refs(commit.message):
                links.append((ref, url, LinkKind.COMMIT, first_line(commit.message), author or ""))
    return links
