"""Health: /ping (the bot itself) now; /health and the probes of the network later."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import __version__
from cogs.common import NO_MENTIONS, fit_embed

if TYPE_CHECKING:
    from bot.client import OpsBot


class HealthCog(commands.Cog, name="health"):
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="ping", description="Is the bot healthy? Gateway and database latency."
    )
    async def ping(self, interaction: discord.Interaction) -> None:
        database = await self.bot.database.ping()
        gateway = self.bot.latency
        embed = discord.Embed(title="hh-opsbot is up", colour=discord.Colour.green())
        embed.add_field(
            name="Gateway",
            value="not measured yet" if math.isnan(gateway) else f"{gateway * 1000:.0f} ms",
        )
        embed.add_field(name="Database", value=f"{database * 1000:.1f} ms")
        embed.set_footer(text=f"version {__version__}")
        await interaction.response.send_message(
            embed=fit_embed(embed), ephemeral=True, allowed_mentions=NO_MENTIONS
        )


async def setup(bot: OpsBot) -> None:
    await bot.add_cog(HealthCog(bot))
