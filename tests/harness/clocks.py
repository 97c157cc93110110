"""The clocks a test hands the app: one that moves only when told, one that runs with an offset.

Every FakeClock starts at `default_start()`: 2026-11-28 03:00 UTC, or HH_TEST_CLOCK_START (an ISO
date), so the whole suite can be run years ahead to prove nothing reads the wall clock. A test that
needs a FakeClock builds one with no argument (never from a fixed date).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

CLOCK_START_ENV = "HH_TEST_CLOCK_START"


def default_start() -> datetime:
    """Where every FakeClock starts: 2026-11-28 03:00 UTC, or HH_TEST_CLOCK_START."""
    given = os.environ.get(CLOCK_START_ENV, "").strip()
    if not given:
        return datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    moment = datetime.fromisoformat(given)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or default_start()

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


class RunningClock:
    """The wall clock plus an offset a test moves forward: time passes as usual (batching,
    backoff, reminders), and a test can skip a long wait such as a 120 s Retry-After."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> datetime:
        self.offset += timedelta(**kwargs)
        return self.now()
