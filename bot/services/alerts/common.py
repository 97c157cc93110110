"""What the alert relay's parts share: the policy and the new-group cache.
Depends on no sibling module (each of them may import it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.domain.alerts import AlertGroup

FRESH_CACHE = 5_000
"""New groups kept for their first digest (a plan checks each one's version first)."""


class AlertObserver(Protocol):
    """Told when a stored body is set aside (the metric)."""

    def alert_body_quarantined(self, reason: str) -> None:
        """`invalid`: it no longer passes the webhook's model; `failed`: applying it fails."""
        ...


@dataclass(frozen=True)
class AlertPolicy:
    """The `[alerts]`, `[channels]` and `[smtp]` settings the rules need."""

    alerts_channel_id: int
    operations_channel_id: int
    mention_roles: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    email_to: tuple[str, ...] = ()
    email_fallback_after: float = 120.0
    watchdog_alertname: str = "Watchdog"
    watchdog_timeout: float = 600.0
    batch_wait: float = 0.5
    process_delay: float = 0.02
    """After a body arrives, wait this long so a burst is applied in one transaction."""
    process_batch: int = 10
    """At most this many bodies per transaction: it runs on the event loop's thread on a
    SQLite file, and webhooks wait while it does."""
    process_budget: float = 0.008
    """Fewer, when the last batches show that many would take longer than this (seconds)."""
    process_poll: float = 5.0
    process_retry: float = 1.0
    spool_poll: float = 0.05
    """How often the processor looks for bodies in the receiver process's spool (seconds)."""
    spool_retention: float = 600.0
    """Bodies copied from the spool stay there this long, so the receiver still answers
    "duplicate" to a retry or an HA twin; after that the inbox's dedupe key still applies."""
    storm_threshold: int = 10
    digest_max_groups: int = 40


class FreshGroups:
    """New groups the processor just committed, kept (in memory, bounded) for the digest that
    will show them: it would otherwise read and decode forty groups again, on the loop that
    answers webhooks. Written by ingest, read and emptied by delivery planning."""

    def __init__(self, size: int = FRESH_CACHE) -> None:
        self._groups: dict[int, AlertGroup] = {}
        self._size = size

    def remember(self, groups: Iterable[AlertGroup]) -> None:
        for group in groups:
            if group.message_ref is None:
                self._groups.pop(group.id, None)
                self._groups[group.id] = group
        while len(self._groups) > self._size:
            del self._groups[next(iter(self._groups))]

    def get(self, group_id: int) -> AlertGroup | None:
        return self._groups.get(group_id)

    def forget(self, group_id: int) -> None:
        self._groups.pop(group_id, None)
