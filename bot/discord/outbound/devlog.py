"""#dev-log messages the bot keeps up to date (a failing workflow edited to green, a burst of
merges edited as they come): the outbox's `devlog.post` handler.

The post's row says what it shows (a notice template and its data) and, once posted, where it
is; the first delivery posts and stores the message id, every later one edits that message, so
an edit after a restart finds it (a message someone deleted is posted again). Nothing from
GitHub pings anyone: the renderers make its text safe and every send says `allowed_mentions`
none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.outbound.errors import bounded, classify
from bot.discord.sending import (
    CONTENT_MAX,
    EMBEDS_PER_MESSAGE,
    NO_MENTIONS,
    fit_embed,
    nonce_for,
    truncate,
)
from bot.domain.outbox import OutboxItem, PermanentFailure

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)


class DevLogPosts:
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    async def deliver(self, item: OutboxItem) -> Mapping[str, Any]:
        """Idempotent: the message shows the post as it is now, however often this runs."""
        service = self.bot.services.devlog
        post = await service.post(int(item.payload["post_id"]))
        if post is None:
            return {"skipped": "post gone"}
        renderer = self.bot.notice_templates.get(post.template)
        if renderer is None:
            raise PermanentFailure(f"no renderer for notice template {post.template!r}")
        rendered = renderer(post.data)
        content = truncate(rendered.content, CONTENT_MAX) if rendered.content else None
        embeds = [fit_embed(e) for e in rendered.embeds[:EMBEDS_PER_MESSAGE]]
        try:
            if post.message_id is not None and post.channel_id is not None:
                message = self.bot.get_partial_messageable(post.channel_id).get_partial_message(
                    post.message_id
                )
                try:
                    async with bounded(self.bot):
                        await message.edit(
                            content=content, embeds=embeds, allowed_mentions=NO_MENTIONS
                        )
                    return {"message_id": post.message_id, "edited": post.version}
                except discord.NotFound:
                    log.info("#dev-log post %s was deleted: posting it again", post.id)
            channel_id = self.bot.settings.channels.dev_log
            if not isinstance(channel_id, int):
                raise PermanentFailure("no channel named 'dev_log' in [channels]")
            async with bounded(self.bot):
                sent = await self.bot.get_partial_messageable(channel_id).send(
                    content=content,
                    embeds=embeds,
                    allowed_mentions=NO_MENTIONS,
                    nonce=nonce_for("p", item),
                )
        except PermanentFailure:
            raise
        except Exception as exc:
            raise classify(exc) from exc
        await service.posted(post.id, channel_id=channel_id, message_id=sent.id)
        return {"message_id": sent.id}
