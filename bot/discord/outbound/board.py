"""The #miners status board: the outbox's `status.board` handler.

One message the bot keeps (and pins). The board's row says what it shows and, once posted, where
it is: the first delivery posts, pins and stores the message id, every later one edits that
message, so an edit after a restart finds it; a message someone deleted is posted again. The
board pings nobody (`allowed_mentions` none).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.outbound.errors import bounded, classify
from bot.discord.sending import EMBEDS_PER_MESSAGE, NO_MENTIONS, fit_embed, nonce_for
from bot.domain.outbox import NoticeTemplate, OutboxItem, PermanentFailure

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)


class StatusBoardPosts:
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    async def deliver(self, item: OutboxItem) -> Mapping[str, Any]:
        """Idempotent: the message shows the board as it is now, however often this runs."""
        health = self.bot.health
        board = await health.board()
        if board is None:
            return {"skipped": "no board"}
        if int(item.payload.get("version", 0)) < board.version:
            return {"skipped": "superseded"}
        renderer = self.bot.notice_templates.get(NoticeTemplate.STATUS_BOARD)
        if renderer is None:
            raise PermanentFailure("no renderer for notice template 'status.board'")
        embeds = [fit_embed(e) for e in renderer(board.data).embeds[:EMBEDS_PER_MESSAGE]]
        try:
            if board.message_id is not None and board.channel_id is not None:
                message = self.bot.get_partial_messageable(board.channel_id).get_partial_message(
                    board.message_id
                )
                try:
                    async with bounded(self.bot):
                        await message.edit(
                            content=None, embeds=embeds, allowed_mentions=NO_MENTIONS
                        )
                    return {"message_id": board.message_id, "edited": board.version}
                except discord.NotFound:
                    log.info("the #miners status board was deleted: posting it again")
            channel_id = self.bot.settings.channels.miners
            if not isinstance(channel_id, int):
                raise PermanentFailure("no channel named 'miners' in [channels]")
            async with bounded(self.bot):
                sent = await self.bot.get_partial_messageable(channel_id).send(
                    embeds=embeds, allowed_mentions=NO_MENTIONS, nonce=nonce_for("b", item)
                )
        except PermanentFailure:
            raise
        except Exception as exc:
            raise classify(exc) from exc
        await health.board_posted(channel_id=channel_id, message_id=sent.id)
        try:
            async with bounded(self.bot):
                await sent.pin(reason="the #miners status board")
        except discord.HTTPException as exc:  # no Manage Messages: the board still works
            log.warning("could not pin the #miners status board (%s)", exc.status)
        return {"message_id": sent.id, "posted": board.version}
