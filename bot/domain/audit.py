"""The audit record: who did what to what, and how it ended."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    actor_id: int | None
    actor_name: str
    action: str
    outcome: str
    target: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None


GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first row of the chain."""


def canonical(record: AuditRecord) -> str:
    """The row's content as one stable string: what the hash chain protects."""
    content = {
        "at": record.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": record.actor_id,
        "actor_name": record.actor_name,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome,
        "details": record.details,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, record: AuditRecord, key: bytes | None = None) -> str:
    """SHA-256 of the previous row's hash and this row's canonical content; HMAC-SHA256 with
    `key` when the chain is keyed (`[audit] hmac_key_file`)."""
    message = (prev_hash + canonical(record)).encode("utf-8")
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def key_fingerprint(key: bytes) -> str:
    """What the database keeps of the key: an HMAC of a fixed text, so a start or a verify with
    another key is told so plainly (it reveals nothing of the key)."""
    return hmac.new(key, b"hh-opsbot audit chain key", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class HeadMark:
    """The chain's newest row: written to the head file and logged after every append."""

    row_id: int
    hash: str
    rows: int

    def describe(self) -> str:
        return f"row {self.row_id} hash {self.hash} ({self.rows} rows)"


EMPTY_HEAD = HeadMark(0, GENESIS_HASH, 0)


@dataclass(frozen=True)
class ChainHead:
    """The head stored in the database, updated in the transaction of every append."""

    mark: HeadMark
    keyed_from: int | None = None
    key_check: str | None = None


@dataclass(frozen=True)
class HeadFileReading:
    """What `audit verify` found at the head file: a mark, nothing (None), or an error."""

    path: str
    mark: HeadMark | None
    error: str | None = None


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    rows: int
    first_broken_id: int | None = None
    reason: str | None = None
    problems: tuple[str, ...] = ()
    """One line each: what does not hold besides a broken link (truncation, key, head file)."""
    notes: tuple[str, ...] = ()
    head: HeadMark = EMPTY_HEAD
    keyed_from: int | None = None


class ChainVerifier:
    """Walks rows in id order; feed it batches, then read the verdict.

    Rows from `keyed_from` on are HMAC-keyed: without `key` their links are still checked, their
    content is not (`unchecked` counts them). `watch` names a row whose mark is remembered (the
    head file's)."""

    def __init__(
        self, key: bytes | None = None, keyed_from: int | None = None, watch: int | None = None
    ) -> None:
        self.prev = GENESIS_HASH
        self.rows = 0
        self.last_id = 0
        self.unchecked = 0
        self.broken: tuple[int, str] | None = None
        self.key = key
        self.keyed_from = keyed_from
        self.watch = watch
        self.watched: HeadMark | None = None

    def feed(self, rows: list[tuple[AuditRecord, str | None, str | None]]) -> bool:
        """Each row with its stored prev_hash and hash; False once the chain is broken."""
        for record, prev_hash, row_hash in rows:
            if self.broken:
                return False
            self.rows += 1
            row_id = record.id or 0
            keyed = self.keyed_from is not None and row_id >= self.keyed_from
            if prev_hash != self.prev:
                self.broken = (row_id, "its prev_hash does not match the row before it")
            elif keyed and self.key is None:
                self.unchecked += 1
            elif row_hash != chain_hash(self.prev, record, self.key if keyed else None):
                self.broken = (
                    row_id,
                    "its content does not match its hash (edited"
                    + (", or written with another key)" if keyed else ")"),
                )
            if self.broken is None:
                self.prev = row_hash or ""
                self.last_id = row_id
                if row_id == self.watch:
                    self.watched = HeadMark(row_id, self.prev, self.rows)
        return self.broken is None

    @property
    def head(self) -> HeadMark:
        return HeadMark(self.last_id, self.prev, self.rows)

    def verdict(self) -> ChainVerdict:
        if self.broken:
            return ChainVerdict(False, self.rows, self.broken[0], self.broken[1])
        return ChainVerdict(True, self.rows, head=self.head)


class AuditRepository(Protocol):
    async def add(self, record: AuditRecord) -> None: ...

    async def recent(
        self, limit: int = 20, *, actor_id: int | None = None, action: str | None = None
    ) -> list[AuditRecord]: ...

    async def since(self, since: datetime | None, limit: int = ...) -> list[AuditRecord]: ...

    async def chain(
        self, after_id: int, limit: int
    ) -> list[tuple[AuditRecord, str | None, str | None]]:
        """Rows after `after_id` in id order, each with its stored prev_hash and hash."""
        ...

    @property
    def key_check(self) -> str | None:
        """The configured HMAC key's fingerprint; None without a key."""
        ...

    async def head(self) -> ChainHead | None:
        """The stored chain head; None when it is missing."""
        ...

    async def mark_at(self, row_id: int) -> HeadMark | None: ...

    async def snapshot(self) -> None:
        """The rest of this transaction reads one consistent snapshot."""
        ...


class AuditScope:
    """The audit rows written so far while handling one request (an interaction, say).

    The Discord gate opens one per interaction; a unit of work that commits an audit row inside it
    counts (a row rolled back does not). When the command ends, the gate writes its own row (the
    generic "ok", or a refusal's outcome) only if no use case committed one: no flag for a cog to
    remember, and never a second row for one action."""

    __slots__ = ("recorded",)

    def __init__(self) -> None:
        self.recorded = 0


_scope: ContextVar[AuditScope | None] = ContextVar("hh_audit_scope", default=None)


def open_audit_scope() -> AuditScope:
    """A fresh scope for the current task (and the tasks it starts from now on)."""
    scope = AuditScope()
    _scope.set(scope)
    return scope


def note_audit_committed() -> None:
    """Called by the unit of work when a commit carried audit rows."""
    scope = _scope.get()
    if scope is not None:
        scope.recorded += 1


def already_audited() -> bool:
    """Did the use case behind the current request commit its own audit row."""
    scope = _scope.get()
    return scope is not None and scope.recorded > 0
