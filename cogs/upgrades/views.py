"""The persistent "Approve rollout" button of a release notice (two-person rule, manual §8).

custom_id `hh:upgrade:approve:<release row id>`; a press after a restart still works, the
permission table says Core Ops, the service says "not the announcer", and it is audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.discord.sending import NO_MENTIONS
from bot.tree import OpsButton

if TYPE_CHECKING:
    from bot.client import OpsBot


class ApproveRolloutButton(OpsButton, template=r"hh:upgrade:approve:(?P<id>[0-9]{1,19})"):
    action = "upgrade:approve"

    @classmethod
    def make(cls, release_id: int) -> ApproveRolloutButton:
        return cls(release_id, label="Approve rollout", style=discord.ButtonStyle.success)

    async def run(self, interaction: discord.Interaction, bot: OpsBot) -> None:
        await interaction.response.defer()
        actor = bot.actor_for(interaction)
        release = await bot.services.upgrades.approve(actor, self.object_id)
        done = ApproveRolloutButton(
            release.id,
            label=f"Rollout approved by {actor.name}"[:80],
            style=discord.ButtonStyle.secondary,
            disabled=True,
        )
        view = discord.ui.View(timeout=None)
        view.add_item(done)
        await interaction.edit_original_response(view=view, allowed_mentions=NO_MENTIONS)


BUTTONS: tuple[type[OpsButton], ...] = (ApproveRolloutButton,)
