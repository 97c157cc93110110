"""The webhook's store: each Alertmanager body committed before the answer, once.

Knows nothing of groups or Discord (that is the processor's work, in `AlertService`), so it is
the whole of what a webhook waits for. Concurrent bodies share one short transaction (group
commit); identical bodies (retries, an HA pair) store one row, and the rest answer "duplicate".
A batch the store refuses is written again one body at a time, so a bad body fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.domain.alerts import (
    AlertStatus,
    IngestOutcome,
    IngestResult,
    NotificationRow,
    WebhookPayload,
    group_key_hash,
)
from bot.domain.ports import Clock, UnitOfWork

log = logging.getLogger(__name__)

Stored = Callable[[Sequence[WebhookPayload], Sequence[IngestResult]], None]
"""Called after each commit with the bodies and what became of them (on the loop)."""


class Inbox:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        on_stored: Stored | None = None,
        *,
        max_batch: int = 100,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._on_stored = on_stored
        self.max_batch = max_batch
        self._pending: list[
            tuple[WebhookPayload, Mapping[str, Any] | str, asyncio.Future[IngestResult]]
        ] = []
        self._writer: asyncio.Task[None] | None = None

    async def receive(self, payload: WebhookPayload, raw: Mapping[str, Any] | str) -> IngestResult:
        """Store one body; return once it is committed ("accepted" or "duplicate").

        `raw` is the body as it arrived: its JSON text (stored as is, no second encoding on
        the loop that answers webhooks) or the decoded object.
        """
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._pending.append((payload, raw, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="alerts-inbox")
        return await future

    async def _write_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: len(batch)]
            try:
                await self._write(batch)
            except Exception:
                if len(batch) == 1:
                    continue  # its own answer (503) is set
                # One body the store refuses must not fail the others that came with it:
                # each alone, so only the one at fault answers 503.
                for one in batch:
                    with contextlib.suppress(Exception):
                        await self._write([one])

    async def _write(
        self,
        batch: list[tuple[WebhookPayload, Mapping[str, Any] | str, asyncio.Future[IngestResult]]],
    ) -> None:
        """One transaction; a lone body's failure is its answer, a batch's is raised."""
        payloads = [p for p, _, _ in batch]
        try:
            results = await self._store(payloads, [r for _, r, _ in batch])
        except Exception as exc:
            if len(batch) > 1:
                raise
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        if self._on_stored is not None:
            try:
                self._on_stored(payloads, results)
            except Exception:  # stored all the same: the processor finds them
                log.exception("after storing %d webhook bodies", len(payloads))
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _store(
        self, payloads: list[WebhookPayload], raws: list[Mapping[str, Any] | str]
    ) -> list[IngestResult]:
        """One short transaction: "accepted" (new) or "duplicate" for each body."""
        keys = [payload.dedupe_key() for payload in payloads]
        rows: dict[str, NotificationRow] = {}
        for payload, raw, key in zip(payloads, raws, keys, strict=True):
            rows.setdefault(
                key,
                NotificationRow(
                    key,
                    group_key_hash(payload.group_key),
                    payload.status.value,
                    payload.receiver,
                    raw,
                ),
            )
        async with self._uow_factory() as uow:
            inserted = await uow.alerts.add_notifications(list(rows.values()), self._clock.now())
            await uow.commit()
        results = []
        for key in keys:
            # The first of several identical bodies in one batch is the one stored.
            new_id = inserted.pop(key, None)
            outcome: IngestOutcome = "accepted" if new_id is not None else "duplicate"
            results.append(IngestResult(outcome, dedupe_key=key, notification_id=new_id))
        return results


def watchdog_fired(payloads: Sequence[WebhookPayload], alertname: str) -> bool:
    """Did any body carry the firing Watchdog? Every arrival counts for the dead man's switch,
    a duplicate too: its repeats are byte-identical, so most of them store nothing."""
    return any(
        a.name == alertname and a.status is AlertStatus.FIRING
        for payload in payloads
        for a in payload.alerts
    )
