"""The persistent "Approve rollout" button of a release notice (two-person rule, manual §8).

custom_id `hh:upgrade:approve:<release row id>`; a press after a restart still works, the
permission table says Core Ops, the service says "not the announcer", and it is audited.
"""

from __future__ import annotations

import discord

from bot.discord.components import PersistentButton, ops_bot
from bot.discord.sending import NO_MENTIONS


class ApproveRolloutButton(PersistentButton, action="upgrade:approve"):
    @classmethod
    def make(cls, release_id: int) -> ApproveRolloutButton:
        return cls.build(release_id, label="Approve rollout", style=discord.ButtonStyle.success)

    async def run(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        await interaction.response.defer()
        actor = bot.actor_for(interaction)
        release = await bot.services.upgrades.approve(actor, self.object_id)
        done = ApproveRolloutButton.build(
            release.id,
            label=f"Rollout approved by {actor.name}"[:80],
            style=discord.ButtonStyle.secondary,
            disabled=True,
        )
        view = discord.ui.View(timeout=None)
        view.add_item(done)
        await interaction.edit_original_response(view=view, allowed_mentions=NO_MENTIONS)


BUTTONS: tuple[type[PersistentButton], ...] = (ApproveRolloutButton,)
