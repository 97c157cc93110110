"""What services ask the transport to deliver, as outbox work: channel notices, DMs, role removals.

Services say *what* happened (a template name and plain data); the transport renders it for
Discord. So a notice survives a restart, and the wording is tested where it is rendered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.domain.outbox import OutboxItem, OutboxKind
from bot.domain.ports import UnitOfWork
from bot.domain.roles import OpsRole
from bot.services.outbox import OutboxService


class Notices:
    def __init__(self, outbox: OutboxService) -> None:
        self._outbox = outbox

    async def notice(
        self,
        uow: UnitOfWork,
        template: str,
        data: Mapping[str, Any],
        *,
        channel: str = "operations",
        channel_id: int | None = None,
        mention_user_ids: Iterable[int] = (),
        mention_roles: Iterable[OpsRole] = (),
        dedupe_key: str | None = None,
        ordering_key: str | None = None,
    ) -> OutboxItem | None:
        return await self._outbox.enqueue(
            uow,
            OutboxKind.NOTICE,
            {
                "channel": channel,
                **({"channel_id": channel_id} if channel_id is not None else {}),
                "template": template,
                "data": dict(data),
                "mention_user_ids": list(mention_user_ids),
                "mention_roles": [r.value for r in mention_roles],
            },
            dedupe_key=dedupe_key,
            ordering_key=ordering_key,
        )

    async def direct(
        self,
        uow: UnitOfWork,
        user_id: int,
        template: str,
        data: Mapping[str, Any],
        *,
        fallback_channel: str = "operations",
        dedupe_key: str | None = None,
    ) -> OutboxItem | None:
        return await self._outbox.enqueue(
            uow,
            OutboxKind.DIRECT,
            {
                "user_id": user_id,
                "template": template,
                "data": dict(data),
                "fallback_channel": fallback_channel,
            },
            dedupe_key=dedupe_key,
        )

    async def remove_role(
        self, uow: UnitOfWork, member_id: int, role: OpsRole, reason: str, *, dedupe_key: str
    ) -> OutboxItem | None:
        return await self._outbox.enqueue(
            uow,
            OutboxKind.ROLE_REMOVE,
            {"member_id": member_id, "role": role.value, "reason": reason},
            dedupe_key=dedupe_key,
            ordering_key=f"member:{member_id}",
        )

    def wake(self) -> None:
        self._outbox.wake()
