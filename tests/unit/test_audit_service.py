from __future__ import annotations

from typing import Any

from bot.domain.audit import AuditRecord
from bot.domain.roles import Actor
from bot.services.audit import AuditService, scrub


class MemoryAudit:
    def __init__(self) -> None:
        self.rows: list[AuditRecord] = []

    async def add(self, record: AuditRecord) -> None:
        self.rows.append(record)

    async def recent(self, limit=20, *, actor_id=None, action=None):
        return self.rows[-limit:]

    async def since(self, since, limit=100_000):
        return self.rows

    async def chain(self, after_id, limit):
        return []

    @property
    def key_check(self) -> str | None:
        return None

    async def head(self):
        return None

    async def mark_at(self, row_id):
        return None

    async def snapshot(self) -> None:
        pass


class MemoryUow:
    outbox: Any = None
    reminders: Any = None
    grants: Any = None
    lockouts: Any = None
    reviews: Any = None
    drift: Any = None
    health: Any = None
    incidents: Any = None
    alerts: Any = None
    releases: Any = None
    devlog: Any = None

    def __init__(self) -> None:
        self.audit = MemoryAudit()
        self.committed = False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def commit(self) -> None:
        self.committed = True

    async def rollback(self) -> None:
        pass


def test_scrub_hides_secret_keys_at_any_depth() -> None:
    details = {
        "token": "abc",
        "api_key": "k",
        "nested": {"Password": "p", "ok": 1},
        "note": "x" * 5000,
        "channel_id": 5,
    }
    clean = scrub(details)
    assert clean["token"] == clean["api_key"] == clean["nested"]["Password"] == "[redacted]"
    assert clean["nested"]["ok"] == 1 and clean["channel_id"] == 5
    assert len(clean["note"]) == 1000


async def test_record_uses_the_clock_and_the_callers_unit_of_work(clock) -> None:
    uow = MemoryUow()
    service = AuditService(clock)
    actor = Actor(id=42, name="alice#0001")
    record = await service.record(
        uow, actor, "whoami", outcome="ok", target="t" * 300, details={"secret": "s"}
    )
    assert uow.audit.rows == [record]
    assert record.at == clock.now() and record.at.tzinfo is not None
    assert (record.actor_id, record.actor_name, record.action) == (42, "alice#0001", "whoami")
    assert record.target is not None and len(record.target) == 200
    assert record.details == {"secret": "[redacted]"}
    assert not uow.committed, "the caller commits: the row belongs to its transaction"


async def test_system_actor(clock) -> None:
    uow = MemoryUow()
    record = await AuditService(clock).record(uow, Actor.system(), "access:expire")
    assert record.actor_id is None and record.actor_name == "scheduler"
