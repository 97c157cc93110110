"""The audit record: who did what to what, and how it ended."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
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
