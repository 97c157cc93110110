"""Incidents (manual §9, §12, §19, §20): /incident open|update|severity|assign|resolve|report|
miners|link|list|show|stats, the card in #operations, the thread and its checklist buttons.

Thin: options become service calls, results become embeds. `/incident open` defers at once and
never waits for GitHub (that is outbox work); the card and the thread are posted right away.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.policy import OPS_COMMANDS
from bot.discord.sending import NO_MENTIONS, Rendered, truncate
from bot.domain.errors import InvalidInput
from bot.domain.incidents import Incident, IncidentPolicy
from bot.services.incidents import IncidentService
from cogs.incidents import render
from cogs.incidents.views import BUTTONS, CARD_BUTTONS, card_view, post_report

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

SEVERITY_HELP = "1 = mining or payout halted, 2 = nodes offline > 30 min, 3 = UI or telemetry"
STATUS_CHOICES = [
    app_commands.Choice(name=s, value=s) for s in ("investigating", "identified", "monitoring")
]
SCOPE_CHOICES = [app_commands.Choice(name=s, value=s) for s in ("open", "recent")]


class IncidentCog(commands.Cog, name="incidents"):
    incident = app_commands.Group(
        name="incident",
        description="Declare, work and close Sev 1–3 incidents (manual §12).",
        default_permissions=OPS_COMMANDS,
    )

    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    @property
    def service(self) -> IncidentService:
        return self.bot.services.incidents

    async def ids(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        found = await self.service.autocomplete(current)
        return [
            app_commands.Choice(name=truncate(f"{ref} {title}", 100), value=ref)
            for ref, title in found[:25]
        ]

    # -- open ----------------------------------------------------------------------------------

    @incident.command(name="open", description="Declare an incident: card, thread, GitHub issue.")
    @app_commands.describe(
        severity=SEVERITY_HELP,
        title="What is wrong, in a few words (at most 200 characters)",
        summary="What is known so far",
        nodes="Affected nodes (kept out of the #miners notice)",
    )
    async def open(
        self,
        interaction: discord.Interaction,
        severity: int,
        title: str,
        summary: str | None = None,
        nodes: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = self.bot.actor_for(interaction)
        incident = await self.service.open(
            actor, severity=severity, title=title, summary=summary, nodes=nodes
        )
        incident, posted = await self.bot.cards.post(incident)
        await interaction.followup.send(
            render.opened_reply(
                incident, card_posted=posted, github_configured=self.service.github_configured
            ),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    # -- working it ----------------------------------------------------------------------------

    @incident.command(name="update", description="Post progress: timeline, thread and GitHub.")
    @app_commands.describe(id="Incident id (INC-…)", text="What changed", status="New status")
    @app_commands.choices(status=STATUS_CHOICES)
    async def update(
        self,
        interaction: discord.Interaction,
        id: str,
        text: str,
        status: app_commands.Choice[str] | None = None,
    ) -> None:
        incident = await self.service.update(
            self.bot.actor_for(interaction), id, text, status.value if status else None
        )
        await self._done(interaction, incident, f"Update posted to **{incident.ref}**.")

    @incident.command(name="severity", description="Change the severity (1–3, manual §12).")
    @app_commands.describe(id="Incident id (INC-…)", level=SEVERITY_HELP)
    async def severity(self, interaction: discord.Interaction, id: str, level: int) -> None:
        incident = await self.service.set_severity(self.bot.actor_for(interaction), id, level)
        await self._done(
            interaction, incident, f"**{incident.ref}** is now {incident.severity.label}."
        )

    @incident.command(name="assign", description="Name the incident commander.")
    @app_commands.describe(id="Incident id (INC-…)", member="The commander")
    async def assign(
        self, interaction: discord.Interaction, id: str, member: discord.Member
    ) -> None:
        if member.bot:
            raise InvalidInput("A bot cannot command an incident.")
        incident = await self.service.assign(
            self.bot.actor_for(interaction), id, member.id, str(member)
        )
        await self._done(interaction, incident, f"{member.mention} commands **{incident.ref}**.")

    @incident.command(name="resolve", description="Close the incident; the report is due in 48 h.")
    @app_commands.describe(id="Incident id (INC-…)", cause="Root cause", resolution="What fixed it")
    async def resolve(
        self, interaction: discord.Interaction, id: str, cause: str, resolution: str
    ) -> None:
        incident = await self.service.resolve(
            self.bot.actor_for(interaction), id, cause, resolution
        )
        due = render.ts(incident.report_due_at)
        await self._done(
            interaction, incident, f"**{incident.ref}** is resolved. The report is due {due}."
        )

    @incident.command(name="report", description="Write the postmortem from the timeline.")
    @app_commands.describe(id="Incident id (INC-…)")
    async def report(self, interaction: discord.Interaction, id: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.service.report(self.bot.actor_for(interaction), id)
        try:
            await post_report(self.bot, report.incident, report.markdown)
            where = "in the thread"
        except discord.HTTPException:
            log.exception("could not attach the report of %s", report.incident.ref)
            where = "(Discord refused the attachment; GitHub has it)"
        github = f" and committed as `{report.path}`" if self.service.github_configured else ""
        await interaction.followup.send(
            render.confirmation(
                f"Report of **{report.incident.ref}** attached {where}{github}.",
                report.incident,
                self.bot.settings.discord.guild_id,
            ),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @incident.command(name="miners", description="Edit or turn off this incident's #miners notice.")
    @app_commands.describe(
        id="Incident id (INC-…)",
        enabled="Post notices in #miners for this incident",
        text="Your own plain wording (hostnames and addresses are removed)",
    )
    async def miners(
        self, interaction: discord.Interaction, id: str, enabled: bool, text: str | None = None
    ) -> None:
        incident = await self.service.miners(
            self.bot.actor_for(interaction), id, enabled=enabled, text=text
        )
        state = "on" if enabled else "off"
        await self._done(interaction, incident, f"#miners notice of **{incident.ref}**: {state}.")

    # -- looking -------------------------------------------------------------------------------

    @incident.command(name="list", description="Open or recent incidents.")
    @app_commands.describe(scope="open (default) or recent")
    @app_commands.choices(scope=SCOPE_CHOICES)
    async def list_incidents(
        self, interaction: discord.Interaction, scope: app_commands.Choice[str] | None = None
    ) -> None:
        open_only = scope is None or scope.value == "open"
        found = await self.service.find(open_only=open_only)
        title = "Open incidents" if open_only else "Recent incidents"
        await interaction.response.send_message(
            embed=render.listing(found, title=title), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @incident.command(name="show", description="One incident: card and latest timeline.")
    @app_commands.describe(id="Incident id (INC-…)")
    async def show(self, interaction: discord.Interaction, id: str) -> None:
        incident = await self.service.get(id)
        timeline = await self.service.timeline(incident.id)
        await interaction.response.send_message(
            embed=render.detail(
                incident,
                timeline,
                github_configured=self.service.github_configured,
                next_update_due=self.service.policy.next_update_due(incident),
            ),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @incident.command(
        name="link", description="Link a pull request or commit: card, report, issue."
    )
    @app_commands.describe(
        id="Incident id (INC-…)", url="The pull request's or commit's URL on GitHub"
    )
    async def link(self, interaction: discord.Interaction, id: str, url: str) -> None:
        incident, added = await self.service.link(self.bot.actor_for(interaction), id, url)
        await self._done(
            interaction,
            incident,
            f"Linked to **{incident.ref}**: shown on its card and in its report."
            if added
            else f"That link is on **{incident.ref}** already: nothing changed.",
        )

    @incident.command(name="stats", description="Time to acknowledge and resolve, per severity.")
    async def stats(self, interaction: discord.Interaction) -> None:
        rows = await self.service.stats()
        await interaction.response.send_message(
            embed=render.stats(rows), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    async def _done(self, interaction: discord.Interaction, incident: Incident, text: str) -> None:
        """One private line with a link to the card: the card itself is in #operations."""
        await interaction.response.send_message(
            render.confirmation(text, incident, self.bot.settings.discord.guild_id),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    for _command in (update, severity, assign, resolve, report, miners, show, link):
        _command.autocomplete("id")(ids)
    del _command

    # -- pins ----------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """A 📌 on a message in an incident thread puts it on the timeline (once)."""
        if str(payload.emoji) != "📌" or payload.guild_id != self.bot.settings.discord.guild_id:
            return
        await self._pin(payload.channel_id, payload.message_id)

    @commands.Cog.listener()
    async def on_guild_channel_pins_update(
        self, channel: discord.abc.GuildChannel | discord.Thread, last_pin: object
    ) -> None:
        """A pin in an incident thread: every pinned message joins the timeline, each once."""
        if not isinstance(channel, discord.Thread) or last_pin is None:
            return
        try:
            async for message in channel.pins(limit=50):
                await self._pin(channel.id, message.id, message)
        except discord.HTTPException:
            log.info("could not read the pins of thread %s", channel.id)

    async def _pin(
        self, channel_id: int, message_id: int, message: discord.Message | None = None
    ) -> None:
        if message is None:
            try:
                channel = self.bot.get_partial_messageable(channel_id)
                message = await channel.fetch_message(message_id)
            except discord.HTTPException:
                log.info("could not read pinned message %s", message_id)
                return
        # Without the message-content intent, Discord sends the text only of the bot's own
        # messages and of messages that mention the bot; the rest enters as a link.
        text = message.content or f"(message {message.jump_url})"
        await self.bot.services.incidents.pinned(
            thread_id=channel_id,
            message_id=message_id,
            author_id=message.author.id,
            author_name=str(message.author),
            text=text,
        )


class CardLook:
    """How an incident's card, its thread and checklist look (bot/discord/outbound/cards.py
    sends them)."""

    def __init__(self, policy: IncidentPolicy | None = None) -> None:
        self.policy = policy or IncidentPolicy()

    def card(self, incident: Incident, *, github_configured: bool) -> discord.Embed:
        return render.card(
            incident,
            github_configured=github_configured,
            next_update_due=self.policy.next_update_due(incident),
        )

    def content(self, incident: Incident, role_ids: Sequence[int]) -> str | None:
        return render.card_content(incident, role_ids)

    def thread_name(self, incident: Incident) -> str:
        return render.thread_name(incident)

    def view(self, incident: Incident) -> discord.ui.View:
        return card_view(incident)

    def checklist(self, incident: Incident) -> Rendered:
        return Rendered(
            content=render.checklist_intro(incident),
            items=[button.make(incident) for button in BUTTONS],
        )


async def setup(bot: OpsBot) -> None:
    bot.notice_templates.update(render.TEMPLATES)
    bot.cards.look = CardLook(bot.services.incidents.policy)
    bot.add_dynamic_items(*BUTTONS, *CARD_BUTTONS)
    await bot.add_cog(IncidentCog(bot))
