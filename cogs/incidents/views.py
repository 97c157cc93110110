"""The checklist buttons in an incident's thread: persistent, permission-checked, audited.

custom_id `hh:incident:<verb>:<incident row id>`; the readable id (INC-…) is shown in labels
and embeds. A button pressed after a restart still works; pressing a done step again says who
did it and changes nothing.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, ClassVar

import discord

from bot.discord.components import PersistentButton, ops_bot
from bot.discord.sending import NO_MENTIONS, truncate
from bot.domain.incidents import ChecklistItem, Incident

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
        await interaction.edit_original_response(
            view=checklist_view(report.incident), allowed_mentions=NO_MENTIONS
        )


BUTTONS: tuple[type[_ChecklistButton], ...] = (
    IsolateButton,
    SnapshotButton,
    RotateButton,
    NotifyButton,
    ReportButton,
)


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
