"""Writing the audit trail: rows go into the caller's unit of work, to commit with the change."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from bot.domain.audit import AuditRecord, ChainVerdict, ChainVerifier
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


class AuditScope:
    """The audit rows written so far while handling one request (an interaction, say).

    The Discord gate opens one per interaction; every `AuditService.record` inside it counts.
    When the command ends well, the gate writes its generic "ok" row only if no use case wrote
    its own: no flag for a cog to remember, and never a second row for one action."""

    __slots__ = ("recorded",)

    def __init__(self) -> None:
        self.recorded = 0


_scope: ContextVar[AuditScope | None] = ContextVar("hh_audit_scope", default=None)


def open_audit_scope() -> AuditScope:
    """A fresh scope for the current task (and the tasks it starts from now on)."""
    scope = AuditScope()
    _scope.set(scope)
    return scope


def already_audited() -> bool:
    """Did the use case behind the current request write its own audit row."""
    scope = _scope.get()
    return scope is not None and scope.recorded > 0


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
        scope = _scope.get()
        if scope is not None:
            scope.recorded += 1
        return record

    async def recent(
        self,
        uow: UnitOfWork,
        *,
        actor_id: int | None = None,
        action: str | None = None,
        limit: int = 20,
    ) -> list[AuditRecord]:
        return await uow.audit.recent(limit, actor_id=actor_id, action=action)

    async def export(
        self, uow: UnitOfWork, since: datetime | None, limit: int = 100_000
    ) -> list[AuditRecord]:
        return await uow.audit.since(since, limit)


async def verify_chain(uow: UnitOfWork, batch: int = 1000) -> ChainVerdict:
    """Walk the whole log in id order; name the first row whose chain link does not hold."""
    verifier = ChainVerifier()
    after = 0
    while True:
        rows = await uow.audit.chain(after, batch)
        if not rows:
            return verifier.verdict()
        if not verifier.feed(rows):
            return verifier.verdict()
        after = rows[-1][0].id or after


def to_json_line(record: AuditRecord) -> str:
    """One audit row as a JSON object, for `/audit export` (JSON Lines)."""
    return json.dumps(
        {
            "id": record.id,
            "at": record.at.isoformat(),
            "actor_id": record.actor_id,
            "actor_name": record.actor_name,
            "action": record.action,
            "target": record.target,
            "outcome": record.outcome,
            "details": dict(record.details),
        },
        ensure_ascii=False,
        sort_keys=True,
    )
