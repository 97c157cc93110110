"""APScheduler wiring. Jobs call services or storage; they never talk to Discord themselves."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[[], Awaitable[None]]
    trigger: BaseTrigger


def build_scheduler(jobs: list[Job]) -> AsyncIOScheduler:
    """One instance per process; a job that is late coalesces instead of running in a burst."""
    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    for job in jobs:
        scheduler.add_job(_guarded(job), job.trigger, id=job.id, name=job.id, replace_existing=True)
    return scheduler


def _guarded(job: Job) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job.func()
        except Exception:
            log.exception("scheduled job %s failed", job.id)

    return run
