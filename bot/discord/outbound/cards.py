"""Incident cards: the one way a card reaches Discord. `post` puts it in #operations with its
thread and checklist (when the incident opens, from `/incident open` or an alert's button);
`refresh` is the outbox's `incidents.card_refresh` handler, which edits it (text, embed and
buttons) to follow the database.

How a card looks is the incidents cog's (`CardLook`, registered at its setup): this module only
knows where and how it is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import discord

from bot.discord.outbound.errors import bounded, classify
from bot.discord.sending import NO_MENTIONS, Rendered
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.incidents import Incident
from bot.domain.outbox import OutboxItem, PermanentFailure

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

THREAD_ARCHIVE_MINUTES: Literal[4320] = 4320
"""Three days without a message, then Discord archives the thread (a message reopens it)."""


class CardLook(Protocol):
    """The card, its ping, its thread's name and the checklist, as the incidents cog draws them."""

    def card(self, incident: Incident, *, github_configured: bool) -> discord.Embed: ...

    def content(self, incident: Incident, role_ids: Sequence[int]) -> str | None: ...

    def thread_name(self, incident: Incident) -> str: ...

    def checklist(self, incident: Incident) -> Rendered: ...

    def view(self, incident: Incident) -> discord.ui.View:
        """The card's buttons (Update, Take command, Resolve, Report)."""
        ...


class IncidentCards:
    def __init__(self, bot: OpsBot, look: CardLook | None = None) -> None:
        self.bot = bot
        self.look = look
        """Set by the incidents cog's setup (or given here)."""

    def _look(self) -> CardLook:
        if self.look is None:
            raise PermanentFailure("no incident card look: the incidents extension is not loaded")
        return self.look

    def _paged(self, incident: Incident) -> list[int]:
        policy = self.bot.services.incidents.policy
        return [self.bot.role_map.role_id(role) for role in policy.page_roles(incident.severity)]

    async def post(self, incident: Incident) -> tuple[Incident, bool]:
        """The card in #operations, its thread and the checklist; a refusal is not fatal (the
        incident is open whatever Discord says; the card is then missing, and said so)."""
        look = self._look()
        service = self.bot.services.incidents
        operations = self.bot.settings.channels.operations
        paged = self._paged(incident)
        content = look.content(incident, paged)
        try:
            channel = self.bot.get_channel(operations) or await self.bot.fetch_channel(operations)
            if not isinstance(channel, discord.TextChannel):
                raise InvalidInput("[channels] operations is not a text channel.")
            message = await channel.send(
                content=content,
                embed=look.card(incident, github_configured=service.github_configured),
                view=look.view(incident),
                allowed_mentions=discord.AllowedMentions(
                    everyone=False,
                    users=False,
                    roles=[discord.Object(r) for r in paged] if paged else False,
                ),
            )
        except discord.HTTPException:
            log.exception("could not post the card of %s", incident.ref)
            return incident, False
        thread_id: int | None = None
        try:
            thread = await message.create_thread(
                name=look.thread_name(incident), auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
            thread_id = thread.id
            checklist = look.checklist(incident)
            await thread.send(
                checklist.content,
                view=checklist.view() or discord.utils.MISSING,
                allowed_mentions=NO_MENTIONS,
            )
        except (discord.HTTPException, ValueError):
            log.exception("could not open the thread of %s", incident.ref)
        incident = await service.attach_discord(
            incident.id, channel_id=operations, message_id=message.id, thread_id=thread_id
        )
        return incident, True

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
        look = self._look()
        embed = look.card(incident, github_configured=service.github_configured)
        # The text line follows the state too (what the channel preview shows); an edit pings
        # nobody, the page's mentions included.
        content = look.content(incident, self._paged(incident))
        try:
            async with bounded(self.bot):
                await message.edit(
                    content=content,
                    embed=embed,
                    view=look.view(incident),
                    allowed_mentions=NO_MENTIONS,
                )
        except Exception as exc:
            raise classify(exc) from exc
        return {"message_id": incident.card_message_id}
