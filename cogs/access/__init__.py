"""Access: /whoami now; grants, reviews and lockouts later (manual §9, §18)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.access.render import whoami_embed

if TYPE_CHECKING:
    from bot.client import OpsBot


class AccessCog(commands.Cog, name="access"):
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    @app_commands.command(name="whoami", description="Your ops roles and the commands you may use.")
    async def whoami(self, interaction: discord.Interaction) -> None:
        actor = self.bot.actor_for(interaction.user)
        info = self.bot.access.whoami(actor, available=self.bot.available_actions())
        await interaction.response.send_message(
            embed=whoami_embed(info, display_name=interaction.user.display_name),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


async def setup(bot: OpsBot) -> None:
    await bot.add_cog(AccessCog(bot))
