"""The buttons of an incident: the checklist in its thread, and Update, Take command, Resolve
and Report on its card in #operations. Persistent, permission-checked, audited.

custom_id `hh:incident:<verb>:<incident row id>`; the readable id (INC-…) is shown in labels
and embeds, and nobody types it. A button pressed after a restart still works; pressing a done
step again says who did it and changes nothing. Update and Resolve open a form (`OpsModal`);
its submit calls the same use case as `/incident update` and `/incident resolve`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, ClassVar

import discord

from bot.discord.components import OpsModal, PersistentButton, ops_bot
from bot.discord.sending import NO_MENTIONS, truncate
from bot.domain.errors import InvalidInput
from bot.domain.incidents import TEXT_MAX, ChecklistItem, Incident
from cogs.incidents import render

if TYPE_CHECKING:
    from bot.discord.client import OpsBot


class _ChecklistButton(PersistentButton):
    step: ClassVar[ChecklistItem]

    @classmethod
    def make(cls, incident: Incident, *, row: int | None = None) -> _ChecklistButton:
        tick = incident.checklist.get(cls.step)
        label = cls.step.label if tick is None else f"{cls.step.label} ✔ {tick.by_name}"
        return cls.build(
            incident.id,
            label=truncate(label, 80),
            style=discord.ButtonStyle.success if tick else discord.ButtonStyle.secondary,
            disabled=tick is not None and cls.step is not ChecklistItem.REPORT,
            row=row,
        )

    async def run(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        await interaction.response.defer()
        actor = bot.actor_for(interaction)
        incident = await bot.services.incidents.tick(actor, self.object_id, self.step)
        await interaction.edit_original_response(
            view=checklist_view(incident), allowed_mentions=NO_MENTIONS
        )


class IsolateButton(_ChecklistButton, action="incident:isolate"):
    step = ChecklistItem.ISOLATE


class SnapshotButton(_ChecklistButton, action="incident:snapshot"):
    step = ChecklistItem.SNAPSHOT


class RotateButton(_ChecklistButton, action="incident:rotate"):
    step = ChecklistItem.ROTATE


class NotifyButton(_ChecklistButton, action="incident:notify"):
    step = ChecklistItem.NOTIFY


class ReportButton(_ChecklistButton, action="incident:report"):
    """Writes the report (as `/incident report`), which ticks the step."""

    step = ChecklistItem.REPORT

    async def run(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        await interaction.response.defer()
        actor = bot.actor_for(interaction)
        incident = await bot.services.incidents.get_by_id(self.object_id)
        report = await bot.services.incidents.report(actor, incident.ref)
        await post_report(bot, report.incident, report.markdown)
        on_card = interaction.message is not None and (
            interaction.message.id == report.incident.card_message_id
        )
        await interaction.edit_original_response(
            view=card_view(report.incident) if on_card else checklist_view(report.incident),
            allowed_mentions=NO_MENTIONS,
        )

    @classmethod
    def on_card(cls, incident: Incident) -> ReportButton:
        done = incident.report_at is not None
        return cls.build(
            incident.id,
            label="Report ✔ (update it)" if done else "Report",
            style=discord.ButtonStyle.success if done else discord.ButtonStyle.secondary,
        )


BUTTONS: tuple[type[_ChecklistButton], ...] = (
    IsolateButton,
    SnapshotButton,
    RotateButton,
    NotifyButton,
    ReportButton,
)


# -- the card's buttons ------------------------------------------------------------------------


async def _open_incident(interaction: discord.Interaction, incident_id: int) -> Incident:
    incident = await ops_bot(interaction).services.incidents.get_by_id(incident_id)
    if not incident.is_open:
        raise InvalidInput(f"{incident.ref} is resolved: nothing more to change.")
    return incident


async def _confirm(interaction: discord.Interaction, incident: Incident, text: str) -> None:
    """One private line with a link to the card; the card itself follows (outbox refresh)."""
    guild_id = ops_bot(interaction).settings.discord.guild_id
    await interaction.response.send_message(
        render.confirmation(text, incident, guild_id), ephemeral=True, allowed_mentions=NO_MENTIONS
    )


class UpdateForm(OpsModal):
    """Update: text and status, as `/incident update`."""

    def __init__(self, incident: Incident, nonce: int) -> None:
        super().__init__("incident:update", incident.id, nonce, title=f"Update {incident.ref}")
        self.ref = incident.ref
        self.text: discord.ui.TextInput[UpdateForm] = discord.ui.TextInput(
            label="What changed",
            style=discord.TextStyle.paragraph,
            min_length=3,
            max_length=TEXT_MAX,
            custom_id="text",
        )
        self.status: discord.ui.TextInput[UpdateForm] = discord.ui.TextInput(
            label="Status: investigating, identified or monitoring",
            default=incident.status.value,
            required=False,
            max_length=20,
            custom_id="status",
        )
        self.add_item(self.text)
        self.add_item(self.status)

    async def submit(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        incident = await bot.services.incidents.update(
            bot.actor_for(interaction),
            self.ref,
            self.text.value,
            self.status.value.strip() or None,
        )
        await _confirm(interaction, incident, f"Update posted to **{incident.ref}**.")


class ResolveForm(OpsModal):
    """Resolve: cause and resolution, as `/incident resolve`."""

    def __init__(self, incident: Incident, nonce: int) -> None:
        super().__init__("incident:resolve", incident.id, nonce, title=f"Resolve {incident.ref}")
        self.ref = incident.ref
        self.cause: discord.ui.TextInput[ResolveForm] = discord.ui.TextInput(
            label="Root cause",
            style=discord.TextStyle.paragraph,
            min_length=3,
            max_length=TEXT_MAX,
            custom_id="cause",
        )
        self.resolution: discord.ui.TextInput[ResolveForm] = discord.ui.TextInput(
            label="What fixed it",
            style=discord.TextStyle.paragraph,
            min_length=3,
            max_length=TEXT_MAX,
            custom_id="resolution",
        )
        self.add_item(self.cause)
        self.add_item(self.resolution)

    async def submit(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        incident = await bot.services.incidents.resolve(
            bot.actor_for(interaction), self.ref, self.cause.value, self.resolution.value
        )
        due = render.ts(incident.report_due_at)
        await _confirm(
            interaction, incident, f"**{incident.ref}** is resolved. The report is due {due}."
        )


class UpdateButton(PersistentButton, action="incident:update"):
    """Opens the update form; the form's submit is `/incident update`'s use case."""

    opens_form = True

    async def run(self, interaction: discord.Interaction) -> None:
        incident = await _open_incident(interaction, self.object_id)
        await interaction.response.send_modal(UpdateForm(incident, interaction.id))


class ResolveButton(PersistentButton, action="incident:resolve"):
    """Opens the resolve form; the form's submit is `/incident resolve`'s use case."""

    opens_form = True

    async def run(self, interaction: discord.Interaction) -> None:
        incident = await _open_incident(interaction, self.object_id)
        await interaction.response.send_modal(ResolveForm(incident, interaction.id))


class TakeCommandButton(PersistentButton, action="incident:command"):
    """The member who presses it commands the incident (`/incident assign` to themselves):
    when nobody does, or to take over."""

    async def run(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        incident = await _open_incident(interaction, self.object_id)
        member = interaction.user
        if member.bot:
            raise InvalidInput("A bot cannot command an incident.")
        incident = await bot.services.incidents.assign(
            bot.actor_for(interaction), incident.ref, member.id, str(member)
        )
        await _confirm(interaction, incident, f"You command **{incident.ref}** now.")


CARD_BUTTONS: tuple[type[PersistentButton], ...] = (
    UpdateButton,
    TakeCommandButton,
    ResolveButton,
)
"""Registered at start beside the checklist's (the card's Report is the checklist's)."""


def card_view(incident: Incident) -> discord.ui.View:
    """The card's buttons: Update, Take command and Resolve while open; Report always."""
    view = discord.ui.View(timeout=None)
    if incident.is_open:
        view.add_item(
            UpdateButton.build(incident.id, label="Update", style=discord.ButtonStyle.primary)
        )
        view.add_item(
            TakeCommandButton.build(
                incident.id,
                label="Take over command" if incident.commander_id else "Take command",
            )
        )
        view.add_item(
            ResolveButton.build(incident.id, label="Resolve", style=discord.ButtonStyle.success)
        )
    view.add_item(ReportButton.on_card(incident))
    return view


def checklist_view(incident: Incident) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for button in BUTTONS:
        view.add_item(button.make(incident))
    return view


async def post_report(bot: OpsBot, incident: Incident, markdown: str) -> Any:
    """The postmortem as a Markdown file in the incident's thread (or #operations)."""
    channel = bot.get_partial_messageable(incident.thread_id or bot.settings.channels.operations)
    return await channel.send(
        content=truncate(
            f"📄 Report of **{incident.ref}**"
            + (" (also committed to GitHub)." if bot.services.incidents.github_configured else "."),
            2000,
        ),
        file=discord.File(io.BytesIO(markdown.encode("utf-8")), filename=f"{incident.ref}.md"),
        allowed_mentions=NO_MENTIONS,
    )
