"""The quarterly access review (manual §18): every active grant confirmed or revoked by a person.

Grants nobody confirmed by the deadline are revoked, except where automation must not act
(owner accounts, the last active Core Ops member).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.domain.access import (
    AccessReview,
    GrantStatus,
    ReviewDecision,
    ReviewItem,
)
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.outbox import NoticeTemplate
from bot.domain.ports import Clock, UnitOfWork
from bot.domain.roles import Actor, OpsRole
from bot.services.audit import AuditService
from bot.services.grants import SCHEDULER, GrantService
from bot.services.notices import Notices
from bot.services.outbox import UowFactory

ITEMS_PER_MESSAGE = 5
"""Keep and Revoke for five grants fill Discord's five action rows."""


@dataclass(frozen=True)
class ReviewSummary:
    review: AccessReview
    kept: int
    revoked: int
    auto_revoked: int
    spared: int


class ReviewService:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        grants: GrantService,
        *,
        audit: AuditService,
        notices: Notices,
        owner_ids: frozenset[int] = frozenset(),
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._grants = grants
        self._audit = audit
        self._notices = notices
        self._owners = owner_ids

    async def start(self, actor: Actor) -> tuple[AccessReview, list[ReviewItem]]:
        now = self._clock.now()
        deadline = now + timedelta(days=self._grants.policy.review_days)
        async with self._uow() as uow:
            open_reviews = await uow.reviews.open_reviews()
            if open_reviews:
                current = open_reviews[0]
                raise InvalidInput(
                    f"Access review #{current.id} is still open (deadline "
                    f"{current.deadline:%Y-%m-%d %H:%M} UTC); finish it first."
                )
            grants = await uow.grants.find(statuses=(GrantStatus.ACTIVE,), limit=10_000)
            review, items = await uow.reviews.create(now, deadline, actor.name, grants)
            for page, start in enumerate(range(0, max(len(items), 1), ITEMS_PER_MESSAGE)):
                chunk = items[start : start + ITEMS_PER_MESSAGE]
                await self._notices.notice(
                    uow,
                    NoticeTemplate.ACCESS_REVIEW,
                    {
                        "review_id": review.id,
                        "deadline": deadline.isoformat(),
                        "page": page + 1,
                        "pages": max(1, -(-len(items) // ITEMS_PER_MESSAGE)),
                        "total": len(items),
                        "started_by": actor.name,
                        "items": [_item_data(i) for i in chunk],
                    },
                    mention_roles=[OpsRole.CORE_OPS] if page == 0 else (),
                    ordering_key=f"review:{review.id}",
                    dedupe_key=f"review:{review.id}:page:{page}",
                )
            await self._audit.record(
                uow,
                actor,
                "access review",
                target=f"review #{review.id}",
                details={"grants": len(items), "deadline": deadline.isoformat()},
            )
            await uow.commit()
        self._notices.wake()
        return review, items

    async def decide(self, actor: Actor, item_id: int, decision: ReviewDecision) -> ReviewItem:
        now = self._clock.now()
        async with self._uow() as uow:
            item = await uow.reviews.item(item_id, for_update=True)
            if item is None:
                raise NotFound("That review entry does not exist.")
            review = await uow.reviews.review(item.review_id)
            if review is None or review.closed_at is not None:
                raise InvalidInput(f"Access review #{item.review_id} is closed.")
            if actor.id == item.member_id:
                raise InvalidInput(
                    "You cannot review your own grant: another Core Ops member must."
                )
            if item.decision is not None:
                raise InvalidInput(
                    f"Already decided: {item.decision.value} by {item.decided_by_name}."
                )
            await uow.reviews.decide(item.id, decision, actor.name, now)
            if decision is ReviewDecision.REVOKE:
                await self._revoke(uow, item, actor, "revoked in access review")
            await self._audit.record(
                uow,
                actor,
                f"access:review_{decision.value}",
                target=f"{item.member_name} ({item.member_id}) {item.role.label}",
                details={"review_id": item.review_id, "grant_id": item.grant_id},
            )
            remaining = [i for i in await uow.reviews.items(item.review_id) if i.decision is None]
            if not remaining:
                await self._close(uow, review, auto=False)
            decided = await uow.reviews.item(item.id)
            await uow.commit()
        self._notices.wake()
        assert decided is not None
        return decided

    async def close_overdue(self) -> list[ReviewSummary]:
        """Revoke what nobody confirmed by the deadline, summarise, close. Idempotent."""
        summaries = []
        async with self._uow() as uow:
            for review in await uow.reviews.overdue(self._clock.now()):
                summaries.append(await self._close(uow, review, auto=True))
            await uow.commit()
        if summaries:
            self._notices.wake()
        return summaries

    async def get(self, review_id: int) -> tuple[AccessReview, list[ReviewItem]] | None:
        async with self._uow() as uow:
            review = await uow.reviews.review(review_id)
            if review is None:
                return None
            return review, await uow.reviews.items(review_id)

    async def _close(self, uow: UnitOfWork, review: AccessReview, *, auto: bool) -> ReviewSummary:
        now = self._clock.now()
        auto_revoked = spared = 0
        core_holders = await uow.grants.active_holders(OpsRole.CORE_OPS)
        for item in await uow.reviews.items(review.id):
            if item.decision is not None:
                continue
            guard = None
            if item.member_id in self._owners:
                guard = "break-glass owner account"
            elif item.role is OpsRole.CORE_OPS and not (core_holders - {item.member_id}):
                guard = "last active Core Ops member"
            if guard:
                spared += 1
                await uow.reviews.decide(item.id, ReviewDecision.KEEP, f"automation ({guard})", now)
                continue
            await uow.reviews.decide(item.id, ReviewDecision.REVOKE, SCHEDULER.name, now)
            if await self._revoke(uow, item, SCHEDULER, "not confirmed in access review"):
                auto_revoked += 1
                if item.role is OpsRole.CORE_OPS:
                    core_holders.discard(item.member_id)
            await self._audit.record(
                uow,
                SCHEDULER,
                "access:review_revoke",
                target=f"{item.member_name} ({item.member_id}) {item.role.label}",
                details={"review_id": review.id, "grant_id": item.grant_id, "unconfirmed": True},
            )
        items = await uow.reviews.items(review.id)
        kept = sum(1 for i in items if i.decision is ReviewDecision.KEEP)
        revoked = sum(1 for i in items if i.decision is ReviewDecision.REVOKE) - auto_revoked
        await uow.reviews.close(review.id, now)
        summary = ReviewSummary(review, kept, revoked, auto_revoked, spared)
        await self._notices.notice(
            uow,
            NoticeTemplate.ACCESS_REVIEW_SUMMARY,
            {
                "review_id": review.id,
                "kept": kept,
                "revoked": revoked,
                "auto_revoked": auto_revoked,
                "spared": spared,
                "deadline_passed": auto,
            },
            ordering_key=f"review:{review.id}",
            dedupe_key=f"review:{review.id}:summary",
        )
        await self._audit.record(
            uow,
            SCHEDULER if auto else Actor.system("review"),
            "access:review_close",
            target=f"review #{review.id}",
            details={
                "kept": kept,
                "revoked": revoked,
                "auto_revoked": auto_revoked,
                "spared": spared,
            },
        )
        return summary

    async def _revoke(self, uow: UnitOfWork, item: ReviewItem, actor: Actor, reason: str) -> bool:
        """End the grant and queue the role removal (no person waits on Discord here)."""
        now = self._clock.now()
        ended = await uow.grants.end(
            item.grant_id, GrantStatus.REVOKED, at=now, by_name=actor.name, reason=reason
        )
        if ended:
            await self._notices.remove_role(
                uow,
                item.member_id,
                item.role,
                reason,
                dedupe_key=f"role-remove:grant:{item.grant_id}",
            )
        return ended


def _item_data(item: ReviewItem) -> dict[str, object]:
    return {
        "item_id": item.id,
        "member_id": item.member_id,
        "member_name": item.member_name,
        "role": item.role.value,
        "expires_at": item.expires_at.isoformat() if item.expires_at else None,
    }
