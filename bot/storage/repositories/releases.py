"""The release repository: known releases and rollout snapshots."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.releases import Release, RolloutSnapshot
from bot.storage.models import (
    ReleaseEntry,
    RolloutSnapshotEntry,
)


def _release(row: ReleaseEntry) -> Release:
    return Release(
        id=row.id,
        version=row.version,
        channel=row.channel,
        released_at=row.released_at,
        manifest=row.manifest,
        key_id=row.key_id,
        trusted_comment=row.trusted_comment,
        source=row.source,
        announced_by=row.announced_by,
        announced_by_name=row.announced_by_name,
        announced_at=row.announced_at,
        approved_by=row.approved_by,
        approved_by_name=row.approved_by_name,
        approved_at=row.approved_at,
        rolled_back_from=row.rolled_back_from,
        rejected_by=row.rejected_by,
        rejected_by_name=row.rejected_by_name,
        rejected_at=row.rejected_at,
    )


def _snapshot(row: RolloutSnapshotEntry) -> RolloutSnapshot:
    return RolloutSnapshot(
        release_id=row.release_id,
        at=row.at,
        total=row.total,
        upgraded=row.upgraded,
        pending=row.pending,
        unhealthy=row.unhealthy,
        unreachable=row.unreachable,
    )


class SqlReleaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, **values: Any) -> Release | None:
        """None when the version is already recorded (the unique constraint decides)."""
        try:
            async with self._session.begin_nested():
                row = ReleaseEntry(**values)
                self._session.add(row)
        except IntegrityError:
            return None
        return _release(row)

    async def get(self, release_id: int, *, for_update: bool = False) -> Release | None:
        query = select(ReleaseEntry).where(ReleaseEntry.id == release_id)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        return _release(row) if row else None

    async def by_version(self, version: str) -> Release | None:
        row = await self._session.scalar(
            select(ReleaseEntry).where(ReleaseEntry.version == version)
        )
        return _release(row) if row else None

    async def by_source(self, source: str) -> Release | None:
        row = await self._session.scalar(
            select(ReleaseEntry).where(ReleaseEntry.source == source).limit(1)
        )
        return _release(row) if row else None

    async def versions(self) -> list[str]:
        """Every recorded version (a few per month: the newest is found by precedence)."""
        return list((await self._session.scalars(select(ReleaseEntry.version))).all())

    async def latest(self) -> Release | None:
        """The release announced last: after a rollback, the version rolled back to."""
        row = await self._session.scalar(
            select(ReleaseEntry).order_by(ReleaseEntry.announced_at.desc(), ReleaseEntry.id.desc())
        )
        return _release(row) if row else None

    async def recent(self, limit: int = 10) -> list[Release]:
        rows = await self._session.scalars(
            select(ReleaseEntry)
            .order_by(ReleaseEntry.released_at.desc(), ReleaseEntry.id.desc())
            .limit(limit)
        )
        return [_release(r) for r in rows.all()]

    async def approve(self, release_id: int, *, by: int | None, by_name: str, at: datetime) -> None:
        await self._session.execute(
            update(ReleaseEntry)
            .where(ReleaseEntry.id == release_id)
            .values(approved_by=by, approved_by_name=by_name[:100], approved_at=at)
        )

    async def reject(self, release_id: int, *, by: int | None, by_name: str, at: datetime) -> None:
        await self._session.execute(
            update(ReleaseEntry)
            .where(ReleaseEntry.id == release_id)
            .values(rejected_by=by, rejected_by_name=by_name[:100], rejected_at=at)
        )

    async def add_snapshot(self, snapshot: RolloutSnapshot) -> None:
        self._session.add(
            RolloutSnapshotEntry(
                release_id=snapshot.release_id,
                at=snapshot.at,
                total=snapshot.total,
                upgraded=snapshot.upgraded,
                pending=snapshot.pending,
                unhealthy=snapshot.unhealthy,
                unreachable=snapshot.unreachable,
            )
        )
        await self._session.flush()

    async def snapshots(self, release_id: int, limit: int = 50) -> list[RolloutSnapshot]:
        """The newest `limit` snapshots of a release, oldest first."""
        rows = await self._session.scalars(
            select(RolloutSnapshotEntry)
            .where(RolloutSnapshotEntry.release_id == release_id)
            .order_by(RolloutSnapshotEntry.at.desc(), RolloutSnapshotEntry.id.desc())
            .limit(limit)
        )
        return [_snapshot(r) for r in reversed(rows.all())]
