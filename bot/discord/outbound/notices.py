"""The outbox's channel posts, notices and DMs: how a queued post becomes a message, exactly once.

`discord.message` items carry a ready payload (`message_payload`); `notice` and `direct` items
name a template that a cog's renderer turns into a message (each cog registers its templates at
setup, in `OpsBot.notice_templates`). A retried post carries the same nonce as the first try, so
Discord keeps one message if the first did land after all. Errors: bot/discord/outbound/errors.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.outbound.errors import CANNOT_DM, bounded, classify
from bot.discord.sending import (
    CONTENT_MAX,
    EMBEDS_PER_MESSAGE,
    NO_MENTIONS,
    Rendered,
    allowed_mentions,
    fit_embed,
    nonce_for,
    truncate,
)
from bot.domain.outbox import OutboxItem, PermanentFailure
from bot.domain.roles import OpsRole

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

NoticeRenderer = Callable[[Mapping[str, Any]], Rendered]
"""A notice template's renderer: the notice's data -> the message."""


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


class DiscordDelivery:
    """The `discord.message` handler: a ready payload, posted once."""

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
            async with bounded(self.bot):
                message = await channel.send(
                    content=truncate(content, CONTENT_MAX) if content else None,
                    embeds=embeds,
                    allowed_mentions=allowed_mentions(payload),
                    nonce=nonce_for("m", item),
                )
        except Exception as exc:
            raise classify(exc) from exc
        return {"message_id": message.id, "channel_id": message.channel.id}


class NoticeDelivery:
    """Delivers the services' notices and DMs (see bot/services/notices.py)."""

    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    def channel_id(self, name: str) -> int:
        channel = getattr(self.bot.settings.channels, name, None)
        if not isinstance(channel, int):
            raise PermanentFailure(f"no channel named {name!r} in [channels]")
        return channel

    def render(self, payload: Mapping[str, Any]) -> Rendered:
        template = str(payload.get("template"))
        renderer = self.bot.notice_templates.get(template)
        if renderer is None:
            raise PermanentFailure(f"no renderer for notice template {template!r}")
        return renderer(payload.get("data", {}))

    def mentions(self, payload: Mapping[str, Any]) -> tuple[str, list[int], list[int]]:
        """Mention text for the roles and users a notice names, and the ids allowed to ping."""
        role_ids = [self.bot.role_map.role_id(OpsRole(r)) for r in payload.get("mention_roles", [])]
        user_ids = [int(u) for u in payload.get("mention_user_ids", [])]
        text = " ".join([*(f"<@&{r}>" for r in role_ids), *(f"<@{u}>" for u in user_ids)])
        return text, role_ids, user_ids

    async def notice(self, item: OutboxItem) -> Mapping[str, Any]:
        payload = item.payload
        rendered = self.render(payload)
        mention_text, role_ids, user_ids = self.mentions(payload)
        content = " ".join(p for p in (mention_text, rendered.content or "") if p) or None
        channel_id = payload.get("channel_id")
        return await self._send(
            int(channel_id)
            if channel_id is not None
            else self.channel_id(str(payload.get("channel", "operations"))),
            content,
            rendered,
            role_ids=role_ids,
            user_ids=user_ids,
            nonce=nonce_for("n", item),
        )

    async def direct(self, item: OutboxItem) -> Mapping[str, Any]:
        """A DM; members who closed their DMs are mentioned in the fallback channel instead."""
        payload = item.payload
        user_id = int(payload["user_id"])
        rendered = self.render(payload)
        try:
            async with bounded(self.bot):
                channel = await self.bot.create_dm(discord.Object(user_id))
            async with bounded(self.bot):
                message = await channel.send(
                    content=truncate(rendered.content, CONTENT_MAX) if rendered.content else None,
                    embeds=[fit_embed(e) for e in rendered.embeds[:EMBEDS_PER_MESSAGE]],
                    allowed_mentions=NO_MENTIONS,
                    nonce=nonce_for("d", item),
                )
            return {"message_id": message.id, "via": "dm"}
        except discord.HTTPException as exc:
            if exc.status not in (400, 403) or exc.code != CANNOT_DM:
                raise classify(exc) from exc
        except Exception as exc:
            raise classify(exc) from exc
        fallback = self.channel_id(str(payload.get("fallback_channel", "operations")))
        note = f"<@{user_id}> (your DMs are closed, so here):"
        content = " ".join(p for p in (note, rendered.content or "") if p)
        result = await self._send(
            fallback, content, rendered, role_ids=[], user_ids=[user_id], nonce=nonce_for("f", item)
        )
        return {**result, "via": "fallback"}

    async def _send(
        self,
        channel_id: int,
        content: str | None,
        rendered: Rendered,
        *,
        role_ids: list[int],
        user_ids: list[int],
        nonce: str,
    ) -> Mapping[str, Any]:
        channel = self.bot.get_partial_messageable(channel_id)
        view = rendered.view()
        mentions = allowed_mentions({"mention_role_ids": role_ids, "mention_user_ids": user_ids})
        try:
            async with bounded(self.bot):
                message = await channel.send(
                    content=truncate(content, CONTENT_MAX) if content else None,
                    embeds=[fit_embed(e) for e in rendered.embeds[:EMBEDS_PER_MESSAGE]],
                    view=view or discord.utils.MISSING,
                    allowed_mentions=mentions,
                    nonce=nonce,
                )
        except Exception as exc:
            raise classify(exc) from exc
        return {"message_id": message.id, "channel_id": channel_id}
