from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.scheduling import Job, build_scheduler


async def test_jobs_run_and_a_failing_job_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran = asyncio.Event()

    async def good() -> None:
        ran.set()

    async def bad() -> None:
        raise ValueError("broken job")

    soon = DateTrigger(datetime.now(UTC) + timedelta(milliseconds=50))
    scheduler = build_scheduler(
        [Job("good", good, IntervalTrigger(seconds=0.05)), Job("bad", bad, soon)]
    )
    scheduler.start()
    try:
        await asyncio.wait_for(ran.wait(), 5)
        async with asyncio.timeout(5):
            while not any("scheduled job bad failed" in r.message for r in caplog.records):
                await asyncio.sleep(0.02)
    finally:
        scheduler.shutdown(wait=False)
    record = next(r for r in caplog.records if "bad failed" in r.message)
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_jobs_are_coalesced_and_single_instance() -> None:
    async def nothing() -> None:
        return None

    scheduler = build_scheduler([Job("x", nothing, IntervalTrigger(seconds=30))])
    assert scheduler._job_defaults["coalesce"] is True
    assert scheduler._job_defaults["max_instances"] == 1


async def test_shutdown_lets_a_running_job_finish() -> None:
    from bot.scheduling import RunningJobs

    finished = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.1)  # the job's own (slow) work
        finished.set()

    running = RunningJobs()
    soon = DateTrigger(datetime.now(UTC) + timedelta(milliseconds=20))
    scheduler = build_scheduler([Job("slow", slow, soon)], running)
    scheduler.start()
    await asyncio.wait_for(started.wait(), 5)
    scheduler.pause()
    assert await running.wait(5) == 0
    scheduler.shutdown(wait=False)
    assert finished.is_set(), "the job ran to its end instead of being cancelled"
