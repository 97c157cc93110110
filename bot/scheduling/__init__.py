"""APScheduler wiring. Jobs call services or storage; they never talk to Discord themselves."""

from __future__ import annotations

import asyncio
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


class RunningJobs:
    """The jobs running right now, so shutdown can let them finish instead of cancelling them
    mid-query (APScheduler's asyncio executor cancels what is running when it shuts down)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    def guarded(self, job: Job) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await job.func()
            except Exception:
                log.exception("scheduled job %s failed", job.id)
            finally:
                if task is not None:
                    self._tasks.discard(task)

        return run

    async def wait(self, within: float) -> int:
        """Wait for running jobs; returns how many were still running when time ran out."""
        pending = {t for t in self._tasks if not t.done()}
        if not pending:
            return 0
        _done, still = await asyncio.wait(pending, timeout=within)
        return len(still)


def build_scheduler(jobs: list[Job], running: RunningJobs | None = None) -> AsyncIOScheduler:
    """One instance per process; a job that is late coalesces instead of running in a burst."""
    running = running or RunningJobs()
    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    for job in jobs:
        scheduler.add_job(
            running.guarded(job), job.trigger, id=job.id, name=job.id, replace_existing=True
        )
    return scheduler
