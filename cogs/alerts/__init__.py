"""Alerts: the #alerts relay's buttons (the webhook is bot/web, the delivery is the outbox)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

from cogs.alerts import render
from cogs.alerts.views import DYNAMIC_ITEMS

if TYPE_CHECKING:
    from bot.discord.client import OpsBot


class AlertsCog(commands.Cog, name="alerts"):
    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        # Registered at every start: buttons on messages posted before a restart keep working.
        self.bot.add_dynamic_items(*DYNAMIC_ITEMS)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*DYNAMIC_ITEMS)


async def setup(bot: OpsBot) -> None:
    await bot.add_cog(AlertsCog(bot))
    bot.notice_templates.update(render.TEMPLATES)
