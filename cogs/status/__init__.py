"""Status: /status, the public summary for miners (manual §19: #miners is general support).

Answers from a cache the scheduler refreshes every 30 s (never probes on demand), one request
per member per 10 s. Public in #miners; ephemeral anywhere else, so it never clutters #ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.sending import NO_MENTIONS
from cogs.status import render
from cogs.status.render import node_line, status_embed

if TYPE_CHECKING:
    from bot.discord.client import OpsBot


class StatusCog(commands.Cog, name="status"):
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    @app_commands.command(name="status", description="Is the pool up? Public network status.")
    @app_commands.describe(node="The public name of the node you mine on (optional)")
    async def status(self, interaction: discord.Interaction, node: str | None = None) -> None:
        ephemeral = interaction.channel_id != self.bot.settings.channels.miners
        if node is not None:
            answer = await self.bot.health.node_status_for(interaction.user.id, node)
            await interaction.response.send_message(
                node_line(answer), ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
            )
            return
        status = self.bot.health.status_for(interaction.user.id)
        await interaction.response.send_message(
            embed=status_embed(status), ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
        )


async def setup(bot: OpsBot) -> None:
    bot.notice_templates.update(render.TEMPLATES)
    await bot.add_cog(StatusCog(bot))
