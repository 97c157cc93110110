"""Ops roles on Discord: the `MemberRoles` port the access services call (a member waits; a
refusal is told in words they can act on) and the outbox's `role.remove` handler (nobody waits;
a refusal is the worker's). Both read Discord's errors through the one classification
(bot/discord/outbound/errors.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.outbound.errors import (
    UNKNOWN_MEMBER,
    UNKNOWN_ROLE,
    bounded,
    classify,
    is_discords,
)
from bot.domain.access import RoleChangeRefused, RoleChangeUnavailable
from bot.domain.outbox import OutboxItem, PermanentFailure
from bot.domain.roles import OpsRole

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

TIMEOUT = 10.0
"""How long a member's role change waits for Discord."""


def refusal_message(role: OpsRole, exc: discord.HTTPException) -> str:
    """What to tell the operator, in terms of the settings they can change."""
    if exc.status == 403:
        return (
            f"Discord refused to change the {role.label} role (403 Missing Permissions): in "
            f"Server Settings → Roles, drag the bot's role above {role.label}, and give it "
            "Manage Roles. Nothing was changed."
        )
    if exc.code == UNKNOWN_MEMBER:
        return "That member is not in the server any more. Nothing was changed."
    if exc.code == UNKNOWN_ROLE:
        return (
            f"The {role.label} role id in the bot's configuration (roles.{role.value}) does "
            "not exist in this server. Nothing was changed."
        )
    return f"Discord refused to change the {role.label} role ({exc.status}). Nothing was changed."


def role_change_error(role: OpsRole, exc: Exception) -> Exception:
    """A failed role change as the member asking for it reads it (the error itself if it was
    not Discord's)."""
    verdict = classify(exc)
    if isinstance(verdict, PermanentFailure) and isinstance(exc, discord.HTTPException):
        return RoleChangeRefused(refusal_message(role, exc))
    if verdict is exc:
        return exc
    if isinstance(exc, discord.HTTPException | discord.RateLimited):
        return RoleChangeUnavailable(
            "Discord is not answering right now. Nothing was changed: try again shortly."
        )
    return RoleChangeUnavailable(
        "Discord did not answer in time. Nothing was changed: try again shortly."
    )


class DiscordMemberRoles:
    """Bound to the bot after it is built (the bot needs the services, the services need this)."""

    def __init__(self, guild_id: int, role_ids: dict[OpsRole, int]) -> None:
        self._guild_id = guild_id
        self._role_ids = role_ids
        self._bot: OpsBot | None = None

    def bind(self, bot: OpsBot) -> None:
        self._bot = bot

    @property
    def bot(self) -> OpsBot:
        assert self._bot is not None, "DiscordMemberRoles used before bind()"
        return self._bot

    async def add(self, member_id: int, role: OpsRole, reason: str) -> None:
        await self._change("add", member_id, role, reason)

    async def remove(self, member_id: int, role: OpsRole, reason: str) -> None:
        await self._change("remove", member_id, role, reason)

    async def is_member(self, member_id: int) -> bool:
        """In the server now? The member cache first (members intent), then Discord itself."""
        guild = self.bot.get_guild(self._guild_id)
        if guild is not None and guild.get_member(member_id) is not None:
            return True
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.bot.http.get_member(self._guild_id, member_id)
        except discord.NotFound:
            return False
        except Exception as exc:
            if not is_discords(exc):
                raise
            raise RoleChangeUnavailable(
                "Discord did not say whether that member is still in the server: try again "
                "shortly. Nothing was changed."
            ) from exc
        return True

    async def _change(self, verb: str, member_id: int, role: OpsRole, reason: str) -> None:
        http = self.bot.http
        call = http.add_role if verb == "add" else http.remove_role
        try:
            async with asyncio.timeout(TIMEOUT):
                await call(self._guild_id, member_id, self._role_ids[role], reason=reason[:512])
        except Exception as exc:
            error = role_change_error(role, exc)
            if error is exc:
                raise
            raise error from exc
        log.info("%s ops role %s for member %s", verb, role.value, member_id)

    async def remove_item(self, item: OutboxItem) -> Mapping[str, Any]:
        """The outbox's `role.remove` handler: a member who left has nothing to remove."""
        payload = item.payload
        role = OpsRole(payload["role"])
        try:
            async with bounded(self.bot):
                await self.bot.http.remove_role(
                    self._guild_id,
                    int(payload["member_id"]),
                    self._role_ids[role],
                    reason=str(payload.get("reason", ""))[:512],
                )
        except discord.NotFound:
            return {"removed": False, "why": "member gone"}
        except Exception as exc:
            raise classify(exc) from exc
        return {"removed": True}
