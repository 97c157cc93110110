"""An incident's card in #operations, its thread and the checklist: posted once, right after the
incident is opened (by `/incident open` or an alert group's Open incident button). Later changes
reach the card through the outbox (`cogs/incidents/delivery.py`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot.discord.sending import NO_MENTIONS
from bot.domain.errors import InvalidInput
from bot.domain.incidents import Incident
from cogs.incidents import render
from cogs.incidents.views import checklist_view

if TYPE_CHECKING:
    from bot.client import OpsBot

log = logging.getLogger(__name__)


async def post_card(bot: OpsBot, incident: Incident) -> tuple[Incident, bool]:
    """The card in #operations, its thread and the checklist; a refusal is not fatal."""
    service = bot.services.incidents
    operations = bot.settings.channels.operations
    core = bot.settings.roles.core_ops
    content = render.card_content(incident, core)
    try:
        channel = bot.get_channel(operations) or await bot.fetch_channel(operations)
        if not isinstance(channel, discord.TextChannel):
            raise InvalidInput("[channels] operations is not a text channel.")
        message = await channel.send(
            content=content,
            embed=render.card(incident, github_configured=service.github_configured),
            allowed_mentions=discord.AllowedMentions(
                everyone=False, users=False, roles=[discord.Object(core)] if content else False
            ),
        )
    except discord.HTTPException:
        log.exception("could not post the card of %s", incident.ref)
        return incident, False
    thread_id: int | None = None
    try:
        thread = await message.create_thread(
            name=render.thread_name(incident), auto_archive_duration=4320
        )
        thread_id = thread.id
        await thread.send(
            render.checklist_intro(incident),
            view=checklist_view(incident),
            allowed_mentions=NO_MENTIONS,
        )
    except (discord.HTTPException, ValueError):
        log.exception("could not open the thread of %s", incident.ref)
    incident = await service.attach_discord(
        incident.id, channel_id=operations, message_id=message.id, thread_id=thread_id
    )
    return incident, True
