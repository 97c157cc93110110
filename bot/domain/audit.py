"""The audit record: who did what to what, and how it ended."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


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


def chain_hash(prev_hash: str, record: AuditRecord) -> str:
    """SHA-256 of the previous row's hash and this row's canonical content."""
    return hashlib.sha256((prev_hash + canonical(record)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    rows: int
    first_broken_id: int | None = None
    reason: str | None = None


class ChainVerifier:
    """Walks rows in id order; feed it batches, then read the verdict."""

    def __init__(self) -> None:
        self.prev = GENESIS_HASH
        self.rows = 0
        self.broken: tuple[int, str] | None = None

    def feed(self, rows: list[tuple[AuditRecord, str | None, str | None]]) -> bool:
        """Each row with its stored prev_hash and hash; False once the chain is broken."""
        for record, prev_hash, row_hash in rows:
            if self.broken:
                return False
            self.rows += 1
            row_id = record.id or 0
            if prev_hash != self.prev:
                self.broken = (row_id, "its prev_hash does not match the row before it")
            elif row_hash != chain_hash(self.prev, record):
                self.broken = (row_id, "its content does not match its hash (edited)")
            else:
                self.prev = row_hash
        return self.broken is None

    def verdict(self) -> ChainVerdict:
        if self.broken:
            return ChainVerdict(False, self.rows, self.broken[0], self.broken[1])
        return ChainVerdict(True, self.rows)
