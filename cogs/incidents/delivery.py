"""The incident card follows the database: an outbox handler re-renders and edits it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.delivery import bounded, classify
from bot.discord.sending import NO_MENTIONS
from bot.domain.errors import NotFound
from bot.domain.outbox import OutboxItem
from cogs.incidents import render

if TYPE_CHECKING:
    from bot.client import OpsBot


class IncidentCards:
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    async def refresh(self, item: OutboxItem) -> Mapping[str, Any]:
        """Idempotent: the card shows the incident as it is now, however often it runs."""
        service = self.bot.services.incidents
        try:
            incident = await service.get_by_id(int(item.payload["incident_id"]))
        except NotFound:
            return {"skipped": "incident gone"}
        if incident.card_channel_id is None or incident.card_message_id is None:
            return {"skipped": "no card yet"}  # posting the card will show the latest state
        message = self.bot.get_partial_messageable(incident.card_channel_id).get_partial_message(
            incident.card_message_id
        )
        try:
            async with bounded(self.bot):
                await message.edit(
                    embed=render.card(incident, github_configured=service.github_configured),
                    allowed_mentions=NO_MENTIONS,
                )
        except Exception as exc:
            raise classify(exc) from exc
        return {"message_id": incident.card_message_id}
