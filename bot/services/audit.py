"""Writing the audit trail: rows go into the caller's unit of work, to commit with the change."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.domain.audit import AuditRecord
from bot.domain.ports import Clock, UnitOfWork
from bot.domain.roles import Actor

_SECRETISH = re.compile(r"token|secret|password|passwd|macaroon|api[_-]?key|authorization", re.I)
MAX_TARGET = 200
MAX_DETAIL_TEXT = 1000


def scrub(details: Mapping[str, Any]) -> dict[str, Any]:
    """Audit rows outlive everything: keys that name a secret never get their value stored."""
    clean: dict[str, Any] = {}
    for key, value in details.items():
        if _SECRETISH.search(key):
            clean[key] = "[redacted]"
        elif isinstance(value, Mapping):
            clean[key] = scrub(value)
        elif isinstance(value, str) and len(value) > MAX_DETAIL_TEXT:
            clean[key] = value[: MAX_DETAIL_TEXT - 1] + "…"
        else:
            clean[key] = value
    return clean


class AuditService:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def record(
        self,
        uow: UnitOfWork,
        actor: Actor,
        action: str,
        *,
        outcome: str = "ok",
        target: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        record = AuditRecord(
            at=self.clock.now(),
            actor_id=actor.id,
            actor_name=actor.name[:100],
            action=action[:64],
            outcome=outcome[:16],
            target=target[:MAX_TARGET] if target else None,
            details=scrub(details or {}),
        )
        await uow.audit.add(record)
        return record
