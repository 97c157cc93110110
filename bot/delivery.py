"""Outbox handlers that talk to Discord: how a queued post becomes a message, exactly once.

Errors are sorted for the worker: Discord outages and network trouble are `RetryLater` (discord.py
has already honoured `retry_after` on 429s by then), refusals (400, 403, 404) are
`PermanentFailure`, since sending the same request again would be refused again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from bot.domain.outbox import DISCORD_MESSAGE, OutboxItem, PermanentFailure, RetryLater
from cogs.common import CONTENT_MAX, EMBEDS_PER_MESSAGE, fit_embed, truncate

if TYPE_CHECKING:
    from bot.client import OpsBot

log = logging.getLogger(__name__)

__all__ = ["DISCORD_MESSAGE", "DiscordDelivery", "allowed_mentions", "classify", "message_payload"]


def message_payload(
    channel_id: int,
    *,
    content: str | None = None,
    embeds: list[discord.Embed] | None = None,
    mention_role_ids: list[int] | None = None,
    mention_user_ids: list[int] | None = None,
) -> dict[str, Any]:
    """The outbox payload of a channel post: plain JSON, so it survives a restart."""
    return {
        "channel_id": channel_id,
        "content": content,
        "embeds": [e.to_dict() for e in embeds or []],
        "mention_role_ids": list(mention_role_ids or []),
        "mention_user_ids": list(mention_user_ids or []),
    }


def allowed_mentions(payload: Mapping[str, Any]) -> discord.AllowedMentions:
    """Only the roles and users the payload names may be pinged: never @everyone."""
    roles = [discord.Object(i) for i in payload.get("mention_role_ids", [])]
    users = [discord.Object(i) for i in payload.get("mention_user_ids", [])]
    return discord.AllowedMentions(everyone=False, roles=roles or False, users=users or False)


def classify(exc: Exception) -> Exception:
    """Map a Discord or network error onto the worker's retry policy."""
    if isinstance(exc, discord.DiscordServerError):
        return RetryLater(f"Discord {exc.status}")
    if isinstance(exc, discord.RateLimited):
        return RetryLater("rate limited", retry_after=exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:
            return RetryLater("rate limited")
        return PermanentFailure(f"Discord {exc.status} ({exc.code}): {exc.text[:200]}")
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return RetryLater(f"network: {type(exc).__name__}")
    return exc


class DiscordDelivery:
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    async def send_message(self, item: OutboxItem) -> Mapping[str, Any]:
        payload = item.payload
        channel = self.bot.get_partial_messageable(int(payload["channel_id"]))
        embeds = [
            fit_embed(discord.Embed.from_dict(e))
            for e in payload.get("embeds", [])[:EMBEDS_PER_MESSAGE]
        ]
        content = payload.get("content")
        try:
            message = await channel.send(
                content=truncate(content, CONTENT_MAX) if content else None,
                embeds=embeds,
                allowed_mentions=allowed_mentions(payload),
            )
        except Exception as exc:
            raise classify(exc) from exc
        return {"message_id": message.id, "channel_id": message.channel.id}
