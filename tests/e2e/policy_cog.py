"""A test-only extension: commands that fail in every way, and a persistent button."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.components import OpsView
from bot.domain.errors import InvalidInput

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

LEAKY = "postgresql://hh:hunter2-very-secret@db/x"


class PressView(OpsView):
    @discord.ui.button(label="Press", custom_id="hh:test:press:42")
    async def press(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content=f"pressed by {interaction.user.id}")


class PolicyCog(commands.Cog):
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_view(PressView(self.bot))

    @app_commands.command(name="boom", description="fails unexpectedly")
    async def boom(self, interaction: discord.Interaction) -> None:
        raise RuntimeError(f"cannot connect to {LEAKY}")

    @app_commands.command(name="reject", description="fails with a domain error")
    async def reject(self, interaction: discord.Interaction, node: str) -> None:
        raise InvalidInput(f"No node named `{node[:50]}` is registered.")

    @app_commands.command(name="shout", description="posts in #operations, then answers")
    async def shout(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        channel = self.bot.get_partial_messageable(self.bot.settings.channels.operations)
        await channel.send("shout", allowed_mentions=discord.AllowedMentions.none())
        await interaction.followup.send("posted", ephemeral=True)

    @app_commands.command(name="buttons", description="posts a persistent button")
    async def buttons(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("press it", view=PressView(self.bot))


async def setup(bot: OpsBot) -> None:
    await bot.add_cog(PolicyCog(bot))
