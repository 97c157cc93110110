"""The persistent buttons of a release notice: "Approve rollout" (two-person rule, manual §8)
and "Reject".

custom_ids `hh:upgrade:approve:<release row id>` and `hh:upgrade:reject:<release row id>`; a
press after a restart still works, the permission table says Core Ops, the service says "not the
announcer" for an approval, and each decision is one use case with its own audit row. The notice
is then edited to say its new state (title, text line, colour), its buttons greyed out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.discord.components import PersistentButton, ops_bot
from bot.discord.sending import NO_MENTIONS
from bot.discord.state import MessageState
from bot.services.upgrades import notice_data
from cogs.upgrades.texts import release_text

if TYPE_CHECKING:
    from bot.domain.releases import Release


class ApproveRolloutButton(PersistentButton, action="upgrade:approve"):
    @classmethod
    def make(cls, release_id: int) -> ApproveRolloutButton:
        return cls.build(release_id, label="Approve rollout", style=discord.ButtonStyle.success)

    async def run(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        await interaction.response.defer()
        actor = bot.actor_for(interaction)
        release = await bot.services.upgrades.approve(actor, self.object_id)
        await _show_decision(interaction, release, MessageState.APPROVED, actor.name)


class RejectRolloutButton(PersistentButton, action="upgrade:reject"):
    @classmethod
    def make(cls, release_id: int) -> RejectRolloutButton:
        return cls.build(release_id, label="Reject", style=discord.ButtonStyle.danger)

    async def run(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        await interaction.response.defer()
        actor = bot.actor_for(interaction)
        release = await bot.services.upgrades.reject(actor, self.object_id)
        await _show_decision(interaction, release, MessageState.REJECTED, actor.name)


async def _show_decision(
    interaction: discord.Interaction, release: Release, state: MessageState, by_name: str
) -> None:
    """The notice, rendered again from the release as it is now, its button greyed out."""
    shown = release_text(notice_data(release, release.parsed), state=state, decided_by=by_name)
    verb = "approved" if state is MessageState.APPROVED else "rejected"
    shown.items = [
        ApproveRolloutButton.build(
            release.id,
            label=f"Rollout {verb} by {by_name}",
            style=discord.ButtonStyle.secondary,
            disabled=True,
        )
    ]
    await interaction.edit_original_response(
        content=shown.content, embeds=shown.embeds, view=shown.view(), allowed_mentions=NO_MENTIONS
    )


BUTTONS: tuple[type[PersistentButton], ...] = (ApproveRolloutButton, RejectRolloutButton)
