"""Writing the audit trail: rows go into the caller's unit of work, to commit with the change."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.domain.audit import (
    EMPTY_HEAD,
    AuditRecord,
    ChainVerdict,
    ChainVerifier,
    HeadFileReading,
    HeadMark,
    key_fingerprint,
)
from bot.domain.errors import DomainError
from bot.domain.ports import Clock, UnitOfWork, UowFactory
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
    def __init__(self, clock: Clock, uow_factory: UowFactory | None = None) -> None:
        self.clock = clock
        self._uow_factory = uow_factory

    async def latest(
        self, *, actor_id: int | None = None, action: str | None = None, limit: int = 20
    ) -> list[AuditRecord]:
        """`/audit recent`: the newest rows, in a read of their own."""
        async with self._own_uow() as uow:
            return await self.recent(uow, actor_id=actor_id, action=action, limit=limit)

    async def rows_since(self, since: datetime | None, limit: int = 100_000) -> list[AuditRecord]:
        """`/audit export`: every row from `since` on (oldest first), in a read of its own."""
        async with self._own_uow() as uow:
            return await self.export(uow, since, limit)

    def _own_uow(self) -> UnitOfWork:
        if self._uow_factory is None:
            raise RuntimeError("this AuditService was built without a unit of work factory")
        return self._uow_factory()

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

    async def key_chain(self, uow: UnitOfWork) -> bool:
        """At start. A keyed chain needs its own key: without it, or with another, the bot
        refuses to start (it could append no row that verifies). An unkeyed chain with a key
        configured is keyed now, from a row that says so. True when this call keyed it."""
        head = await uow.audit.head()
        configured = uow.audit.key_check
        if head is not None and head.keyed_from is not None:
            if configured is None:
                raise AuditKeyError(
                    f"the audit log is keyed (HMAC) from row {head.keyed_from}: set [audit] "
                    "hmac_key_file to the key it was written with"
                )
            if configured != head.key_check:
                raise AuditKeyError(
                    "[audit] hmac_key_file is not the key the audit log was written with: "
                    "configure that key again"
                )
            return False
        if configured is None:
            return False
        await self.record(
            uow, Actor.system("startup"), "audit:chain_keyed", details={"hmac": "sha256"}
        )
        await uow.commit()
        return True


class AuditKeyError(DomainError):
    """The chain's HMAC key and the configured one disagree; the bot does not start."""


async def verify_chain(
    uow: UnitOfWork,
    batch: int = 1000,
    *,
    key: bytes | None = None,
    head_file: HeadFileReading | None = None,
) -> ChainVerdict:
    """Walk the whole log in id order and name the first row whose chain link does not hold;
    then compare the log with its stored head (row count, last row), the key the chain was
    written with, and the head file (when configured). Each failure is one line in `problems`.

    `key`: `[audit] hmac_key_file`'s contents. Rows written with a key are checked with it;
    without it (or with another one) their links are still checked but not their content, and
    the verdict fails saying so."""
    await uow.audit.snapshot()
    stored = await uow.audit.head()
    keyed_from = stored.keyed_from if stored else None
    problems: list[str] = []
    notes: list[str] = []
    check_key = key
    if keyed_from is not None and key is None:
        problems.append(
            f"rows from {keyed_from} on are keyed (HMAC-SHA256) and no key is configured: set "
            "[audit] hmac_key_file to the key they were written with to check their content"
        )
    elif (
        keyed_from is not None
        and key is not None
        and stored is not None
        and key_fingerprint(key) != stored.key_check
    ):
        problems.append(
            "[audit] hmac_key_file is not the key the chain was written with: rows from "
            f"{keyed_from} on cannot be checked with it"
        )
        check_key = None
    watch = head_file.mark.row_id if head_file and head_file.mark else None
    verifier = ChainVerifier(check_key, keyed_from, watch)
    after = 0
    while True:
        rows = await uow.audit.chain(after, batch)
        if not rows or not verifier.feed(rows):
            break
        after = rows[-1][0].id or after
    found = verifier.verdict()
    if found.first_broken_id is not None:
        return replace(found, problems=tuple(problems), keyed_from=keyed_from)
    head = verifier.head
    if key is not None and keyed_from is None and head.rows:
        problems.append(
            "[audit] hmac_key_file is set but no row is keyed: the bot keys the chain when it "
            "starts with the key, so it has not started since, or the keyed rows were removed"
        )
    problems += _against_stored(head, stored.mark if stored else None)
    if head_file is not None:
        problems += _against_file(head, head_file, verifier.watched, notes)
    return replace(
        found,
        ok=not problems,
        problems=tuple(problems),
        notes=tuple(notes),
        keyed_from=keyed_from,
    )


def _short(digest: str) -> str:
    return digest[:12]


def _against_stored(head: HeadMark, stored: HeadMark | None) -> list[str]:
    if stored is None:
        return ["the stored chain head (table audit_chain_head) is missing"]
    problems = []
    if stored.rows != head.rows:
        problems.append(
            f"the log has {head.rows} rows but its stored head counts {stored.rows}: "
            + ("rows were deleted" if head.rows < stored.rows else "rows were added past the bot")
        )
    if (stored.row_id, stored.hash) != (head.row_id, head.hash):
        problems.append(
            f"the stored head names row {stored.row_id} (hash {_short(stored.hash)}) but the "
            f"log ends at row {head.row_id} (hash {_short(head.hash)}): the newest rows were "
            "deleted or rewritten"
        )
    return problems


def _against_file(
    head: HeadMark, reading: HeadFileReading, watched: HeadMark | None, notes: list[str]
) -> list[str]:
    """The file names the newest row at its last write: the log must still hold that row, with
    that hash and as many rows up to it. It may lag (a crash between a commit and the write,
    or another instance appending): then a note says how far."""
    where = f"the head file {reading.path}"
    if reading.error:
        return [f"{where} {reading.error}"]
    mark = reading.mark
    if mark is None:
        if not head.rows:
            return []
        return [
            f"{where} does not exist: the bot writes it at start and after every append, so "
            "it was removed (or the bot has not started since the head file was configured)"
        ]
    if mark.row_id == 0:
        return [] if mark == EMPTY_HEAD else [f"{where} names row 0 with an unexpected hash"]
    if mark.row_id > head.row_id:
        return [
            f"{where} names row {mark.row_id} but the log ends at row {head.row_id}: "
            "the newest rows were deleted"
        ]
    if watched is None:
        return [f"{where} names row {mark.row_id}, which the log no longer has: rows were deleted"]
    if watched.hash != mark.hash:
        return [
            f"{where} names row {mark.row_id} with hash {_short(mark.hash)} but the log's row "
            f"{mark.row_id} has hash {_short(watched.hash)}: the log was rewritten"
        ]
    if watched.rows != mark.rows:
        return [
            f"{where} counts {mark.rows} rows up to row {mark.row_id} but the log has "
            f"{watched.rows}: rows were deleted or inserted"
        ]
    if mark.row_id < head.row_id:
        notes.append(
            f"{where} is {head.rows - mark.rows} rows behind the log (a crash between a commit "
            "and its write, or another instance appending); the bot moves it forward at start"
        )
    return []


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
