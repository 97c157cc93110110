"""Upgrades (manual §8): /upgrade announce|status|history and the rollout approval button.

Thin: the service verifies, records and decides; this turns results into embeds. `announce`
and `status` fetch or probe over the network, so both defer at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.policy import OPS_COMMANDS
from bot.discord.sending import NO_MENTIONS, truncate
from bot.services.upgrades import UpgradeService
from cogs.upgrades import render
from cogs.upgrades.views import BUTTONS

if TYPE_CHECKING:
    from bot.discord.client import OpsBot


class UpgradeCog(commands.Cog, name="upgrades"):
    upgrade = app_commands.Group(
        name="upgrade",
        description="Signed releases and their rollout (manual §8).",
        default_permissions=OPS_COMMANDS,
    )

    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    @property
    def service(self) -> UpgradeService:
        return self.bot.services.upgrades

    def _private(self, interaction: discord.Interaction) -> bool:
        return interaction.channel_id != self.bot.settings.channels.operations

    @upgrade.command(
        name="announce", description="Verify a signed release manifest, then post it in #dev-log."
    )
    @app_commands.describe(
        url="The manifest's http(s) URL; its signature is at <url>.minisig",
        rollback="True to announce a version older than the newest announced one (Core Ops)",
    )
    async def announce(
        self, interaction: discord.Interaction, url: str, rollback: bool = False
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = self.bot.actor_for(interaction)
        release = await self.service.announce(actor, url, rollback=rollback)
        version = render.plain(release.version, 64)
        dev_log = f"<#{self.bot.settings.channels.dev_log}>"
        text = (
            f"{render.ROLLBACK_ICON} Rollback to **{version}** from "
            f"{render.plain(release.rolled_back_from, 64)} verified (key `{release.key_id}`) "
            f"and announced in {dev_log} as a rollback."
            if release.rolled_back_from
            else f"Release **{version}** verified (key `{release.key_id}`) and announced in "
            f"{dev_log}."
        )
        await interaction.followup.send(
            truncate(
                f"{text} A second Core Ops member must approve the rollout there.",
                2000,
            ),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @upgrade.command(name="status", description="Each node's version and health for a release.")
    @app_commands.describe(
        version="A release version (default: the one announced last, a rollback included)"
    )
    async def status(self, interaction: discord.Interaction, version: str | None = None) -> None:
        await interaction.response.defer(ephemeral=self._private(interaction), thinking=True)
        rollout = await self.service.rollout(version)
        await interaction.followup.send(
            embed=render.rollout_embed(rollout),
            ephemeral=self._private(interaction),
            allowed_mentions=NO_MENTIONS,
        )

    @upgrade.command(name="history", description="Releases, who announced and approved, rollout.")
    async def history(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=self._private(interaction))
        history = await self.service.history()
        await interaction.followup.send(
            embed=render.history_embed(history),
            ephemeral=self._private(interaction),
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: OpsBot) -> None:
    bot.notice_templates.update(render.TEMPLATES)
    bot.add_dynamic_items(*BUTTONS)
    await bot.add_cog(UpgradeCog(bot))
