"""Ops roles on Discord: the `MemberRoles` port, with Discord's refusals turned into words."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.domain.access import RoleChangeRefused, RoleChangeUnavailable
from bot.domain.roles import OpsRole

if TYPE_CHECKING:
    from bot.client import OpsBot

log = logging.getLogger(__name__)

TIMEOUT = 10.0
MISSING_PERMISSIONS = 50013
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011


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


class DiscordMemberRoles:
    """Bound to the bot after it is built (the bot needs the services, the services need this)."""

    def __init__(self, guild_id: int, role_ids: dict[OpsRole, int]) -> None:
        self._guild_id = guild_id
        self._role_ids = role_ids
        self._bot: OpsBot | None = None

    def bind(self, bot: OpsBot) -> None:
        self._bot = bot

    async def add(self, member_id: int, role: OpsRole, reason: str) -> None:
        await self._change("add", member_id, role, reason)

    async def remove(self, member_id: int, role: OpsRole, reason: str) -> None:
        await self._change("remove", member_id, role, reason)

    async def is_member(self, member_id: int) -> bool:
        """In the server now? The member cache first (members intent), then Discord itself."""
        assert self._bot is not None, "DiscordMemberRoles used before bind()"
        guild = self._bot.get_guild(self._guild_id)
        if guild is not None and guild.get_member(member_id) is not None:
            return True
        try:
            async with asyncio.timeout(TIMEOUT):
                await self._bot.http.get_member(self._guild_id, member_id)
        except discord.NotFound:
            return False
        except (discord.HTTPException, TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise RoleChangeUnavailable(
                "Discord did not say whether that member is still in the server: try again "
                "shortly. Nothing was changed."
            ) from exc
        return True

    async def _change(self, verb: str, member_id: int, role: OpsRole, reason: str) -> None:
        assert self._bot is not None, "DiscordMemberRoles used before bind()"
        http = self._bot.http
        call = http.add_role if verb == "add" else http.remove_role
        try:
            async with asyncio.timeout(TIMEOUT):
                await call(self._guild_id, member_id, self._role_ids[role], reason=reason[:512])
        except discord.HTTPException as exc:
            if exc.status >= 500 or exc.status == 429:
                raise RoleChangeUnavailable(
                    "Discord is not answering right now. Nothing was changed: try again shortly."
                ) from exc
            raise RoleChangeRefused(refusal_message(role, exc)) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise RoleChangeUnavailable(
                "Discord did not answer in time. Nothing was changed: try again shortly."
            ) from exc
        log.info("%s ops role %s for member %s", verb, role.value, member_id)
