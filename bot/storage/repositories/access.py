"""The access repositories: grants, lockouts and strikes, access reviews and role drift."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.access import (
    AccessReview,
    DriftFinding,
    Grant,
    GrantStatus,
    Lockout,
    ReviewDecision,
    ReviewItem,
)
from bot.domain.roles import OpsRole
from bot.storage.models import (
    DriftEntry,
    GrantEntry,
    LockoutEntry,
    ReviewEntry,
    ReviewItemEntry,
    StrikeEntry,
)


def _grant(row: GrantEntry) -> Grant:
    return Grant(
        id=row.id,
        member_id=row.member_id,
        member_name=row.member_name,
        role=OpsRole(row.role),
        status=GrantStatus(row.status),
        reason=row.reason,
        granted_by_id=row.granted_by_id,
        granted_by_name=row.granted_by_name,
        requested_at=row.requested_at,
        days=row.days,
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        approved_by_id=row.approved_by_id,
        ended_at=row.ended_at,
        ended_by_name=row.ended_by_name,
        end_reason=row.end_reason,
    )


LIVE = (GrantStatus.PENDING.value, GrantStatus.ACTIVE.value)


class SqlGrantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

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
    ) -> Grant:
        row = GrantEntry(
            member_id=member_id,
            member_name=member_name[:100],
            role=role.value,
            status=status.value,
            reason=reason[:500],
            granted_by_id=granted_by_id,
            granted_by_name=granted_by_name[:100],
            requested_at=requested_at,
            days=days,
            granted_at=granted_at,
            expires_at=expires_at,
            approved_by_id=granted_by_id if status is GrantStatus.ACTIVE else None,
        )
        self._session.add(row)
        await self._session.flush()
        return _grant(row)

    async def get(self, grant_id: int, *, for_update: bool = False) -> Grant | None:
        query = select(GrantEntry).where(GrantEntry.id == grant_id)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return _grant(row) if row else None

    async def live_for(self, member_id: int, role: OpsRole) -> Grant | None:
        row = await self._session.scalar(
            select(GrantEntry)
            .where(
                GrantEntry.member_id == member_id,
                GrantEntry.role == role.value,
                GrantEntry.status.in_(LIVE),
            )
            .order_by(GrantEntry.id.desc())
            .limit(1)
        )
        return _grant(row) if row else None

    async def find(
        self,
        *,
        statuses: tuple[GrantStatus, ...] = (GrantStatus.PENDING, GrantStatus.ACTIVE),
        member_id: int | None = None,
        role: OpsRole | None = None,
        limit: int = 100,
    ) -> list[Grant]:
        query = (
            select(GrantEntry)
            .where(GrantEntry.status.in_([s.value for s in statuses]))
            .order_by(GrantEntry.expires_at.is_(None), GrantEntry.expires_at, GrantEntry.id)
            .limit(limit)
        )
        if member_id is not None:
            query = query.where(GrantEntry.member_id == member_id)
        if role is not None:
            query = query.where(GrantEntry.role == role.value)
        return [_grant(row) for row in (await self._session.scalars(query)).all()]

    async def activate(
        self, grant_id: int, *, granted_at: datetime, expires_at: datetime, approved_by_id: int
    ) -> bool:
        result = await self._session.execute(
            update(GrantEntry)
            .where(GrantEntry.id == grant_id, GrantEntry.status == GrantStatus.PENDING.value)
            .values(
                status=GrantStatus.ACTIVE.value,
                granted_at=granted_at,
                expires_at=expires_at,
                approved_by_id=approved_by_id,
            )
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def extend(self, grant_id: int, expires_at: datetime, days: int) -> None:
        await self._session.execute(
            update(GrantEntry)
            .where(GrantEntry.id == grant_id)
            .values(expires_at=expires_at, days=days)
        )

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
        statuses = [s.value for s in only] if only is not None else LIVE
        result = await self._session.execute(
            update(GrantEntry)
            .where(GrantEntry.id == grant_id, GrantEntry.status.in_(statuses))
            .values(
                status=status.value,
                ended_at=at,
                ended_by_name=by_name[:100],
                end_reason=reason[:500],
            )
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def expired(self, now: datetime) -> list[Grant]:
        query = (
            select(GrantEntry)
            .where(GrantEntry.status == GrantStatus.ACTIVE.value, GrantEntry.expires_at <= now)
            .order_by(GrantEntry.expires_at)
        )
        return [_grant(row) for row in (await self._session.scalars(query)).all()]

    async def lapsed_requests(self, before: datetime) -> list[Grant]:
        query = select(GrantEntry).where(
            GrantEntry.status == GrantStatus.PENDING.value, GrantEntry.requested_at <= before
        )
        return [_grant(row) for row in (await self._session.scalars(query)).all()]

    async def active_holders(self, role: OpsRole) -> set[int]:
        query = select(GrantEntry.member_id).where(
            GrantEntry.status == GrantStatus.ACTIVE.value, GrantEntry.role == role.value
        )
        return set((await self._session.scalars(query)).all())


class SqlLockoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_strike(self, member_id: int, at: datetime, action: str) -> None:
        self._session.add(StrikeEntry(member_id=member_id, at=at, action=action[:64]))
        await self._session.flush()

    async def strikes_since(self, member_id: int, since: datetime) -> int:
        query = (
            select(func.count())
            .select_from(StrikeEntry)
            .where(StrikeEntry.member_id == member_id, StrikeEntry.at > since)
        )
        return int(await self._session.scalar(query) or 0)

    async def current(self, member_id: int, now: datetime) -> Lockout | None:
        row = await self._session.scalar(
            select(LockoutEntry)
            .where(
                LockoutEntry.member_id == member_id,
                LockoutEntry.until > now,
                LockoutEntry.lifted_at.is_(None),
            )
            .order_by(LockoutEntry.until.desc())
            .limit(1)
        )
        if row is None:
            return None
        return Lockout(member_id=row.member_id, locked_at=row.locked_at, until=row.until)

    async def lock(self, member_id: int, at: datetime, until: datetime) -> None:
        self._session.add(LockoutEntry(member_id=member_id, locked_at=at, until=until))
        await self._session.flush()

    async def lift(self, member_id: int, at: datetime, by_name: str) -> bool:
        result = await self._session.execute(
            update(LockoutEntry)
            .where(
                LockoutEntry.member_id == member_id,
                LockoutEntry.until > at,
                LockoutEntry.lifted_at.is_(None),
            )
            .values(lifted_at=at, lifted_by_name=by_name[:100])
        )
        # Strikes before the unlock no longer count towards the next lockout.
        await self._session.execute(
            delete(StrikeEntry).where(StrikeEntry.member_id == member_id, StrikeEntry.at <= at)
        )
        return bool(getattr(result, "rowcount", 0))


def _review(row: ReviewEntry) -> AccessReview:
    return AccessReview(
        id=row.id,
        started_at=row.started_at,
        deadline=row.deadline,
        started_by_name=row.started_by_name,
        closed_at=row.closed_at,
    )


def _item(row: ReviewItemEntry) -> ReviewItem:
    return ReviewItem(
        id=row.id,
        review_id=row.review_id,
        grant_id=row.grant_id,
        member_id=row.member_id,
        member_name=row.member_name,
        role=OpsRole(row.role),
        expires_at=row.expires_at,
        decision=ReviewDecision(row.decision) if row.decision else None,
        decided_by_name=row.decided_by_name,
        decided_at=row.decided_at,
    )


class SqlReviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(
        self, started_at: datetime, deadline: datetime, started_by_name: str, grants: list[Grant]
    ) -> tuple[AccessReview, list[ReviewItem]]:
        review = ReviewEntry(
            started_at=started_at, deadline=deadline, started_by_name=started_by_name[:100]
        )
        self._session.add(review)
        await self._session.flush()
        rows = [
            ReviewItemEntry(
                review_id=review.id,
                grant_id=g.id,
                member_id=g.member_id,
                member_name=g.member_name,
                role=g.role.value,
                expires_at=g.expires_at,
            )
            for g in grants
        ]
        self._session.add_all(rows)
        await self._session.flush()
        return _review(review), [_item(r) for r in rows]

    async def item(self, item_id: int, *, for_update: bool = False) -> ReviewItem | None:
        query = select(ReviewItemEntry).where(ReviewItemEntry.id == item_id)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return _item(row) if row else None

    async def review(self, review_id: int) -> AccessReview | None:
        row = await self._session.get(ReviewEntry, review_id)
        return _review(row) if row else None

    async def items(self, review_id: int) -> list[ReviewItem]:
        query = (
            select(ReviewItemEntry)
            .where(ReviewItemEntry.review_id == review_id)
            .order_by(ReviewItemEntry.id)
        )
        return [_item(r) for r in (await self._session.scalars(query)).all()]

    async def decide(
        self, item_id: int, decision: ReviewDecision, by_name: str, at: datetime
    ) -> bool:
        result = await self._session.execute(
            update(ReviewItemEntry)
            .where(ReviewItemEntry.id == item_id, ReviewItemEntry.decision.is_(None))
            .values(decision=decision.value, decided_by_name=by_name[:100], decided_at=at)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def overdue(self, now: datetime) -> list[AccessReview]:
        query = select(ReviewEntry).where(
            ReviewEntry.closed_at.is_(None), ReviewEntry.deadline <= now
        )
        return [_review(r) for r in (await self._session.scalars(query)).all()]

    async def open_reviews(self) -> list[AccessReview]:
        query = select(ReviewEntry).where(ReviewEntry.closed_at.is_(None)).order_by(ReviewEntry.id)
        return [_review(r) for r in (await self._session.scalars(query)).all()]

    async def close(self, review_id: int, at: datetime) -> None:
        await self._session.execute(
            update(ReviewEntry).where(ReviewEntry.id == review_id).values(closed_at=at)
        )


class SqlDriftRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, finding: DriftFinding, at: datetime) -> bool:
        open_row = await self._session.scalar(
            select(DriftEntry.id).where(
                DriftEntry.member_id == finding.member_id,
                DriftEntry.role == finding.role.value,
                DriftEntry.resolved_at.is_(None),
            )
        )
        if open_row is not None:
            return False
        self._session.add(
            DriftEntry(
                member_id=finding.member_id,
                member_name=finding.member_name[:100],
                role=finding.role.value,
                found_at=at,
            )
        )
        await self._session.flush()
        return True

    async def resolve(self, member_id: int, role: OpsRole, at: datetime) -> bool:
        result = await self._session.execute(
            update(DriftEntry)
            .where(
                DriftEntry.member_id == member_id,
                DriftEntry.role == role.value,
                DriftEntry.resolved_at.is_(None),
            )
            .values(resolved_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def open_findings(self) -> list[DriftFinding]:
        query = select(DriftEntry).where(DriftEntry.resolved_at.is_(None))
        return [
            DriftFinding(member_id=r.member_id, member_name=r.member_name, role=OpsRole(r.role))
            for r in (await self._session.scalars(query)).all()
        ]
