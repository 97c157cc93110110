"""Health: /ping (the bot itself), /health (the network, for ops roles), /node (the registry).

Discord cannot have a bare `/health` and `/health uptime` subcommands on one name, so /health is
one command with two optional options: `target` (autocomplete) for one target in detail, and
`view` (`now`, `uptime`, `chart`). `/health` alone is the overview an operator wants at 3 a.m.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import __version__
from bot.discord.policy import OPS_COMMANDS
from bot.discord.sending import NO_MENTIONS, fit_embed
from bot.domain.errors import InvalidInput
from bot.domain.health import NodeStatus, RegisteredNode
from cogs.health.chart import render_chart
from cogs.health.render import (
    approval_content,
    nodes_embed,
    overview_pages,
    removed_content,
    replaced_content,
    target_embed,
    uptime_embed,
)
from cogs.health.views import BUTTONS, HealthPager, approval_view

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

VIEWS = [
    app_commands.Choice(name="now: probe and judge against the baselines", value="now"),
    app_commands.Choice(name="uptime: 24 h / 30 d / quarter against 99.9 %", value="uptime"),
    app_commands.Choice(name="chart: latency and availability, last 24 h (PNG)", value="chart"),
]


class HealthCog(commands.Cog, name="health"):
    node = app_commands.Group(
        name="node", description="The Hyper Node registry.", default_permissions=OPS_COMMANDS
    )

    def __init__(self, bot: OpsBot) -> None:
        self.bot = bot

    def _private(self, interaction: discord.Interaction) -> bool:
        """Ops answers are visible to the channel only in #operations; elsewhere ephemeral."""
        return interaction.channel_id != self.bot.settings.channels.operations

    @app_commands.command(
        name="ping", description="Is the bot healthy? Gateway and database latency."
    )
    @app_commands.default_permissions(OPS_COMMANDS)
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

    @app_commands.command(
        name="health", description="Network health against the manual's baselines (ops roles)."
    )
    @app_commands.default_permissions(OPS_COMMANDS)
    @app_commands.describe(
        target="One target in detail (core, bitcoind, lnd, prometheus or a node)",
        view="now (default), uptime, or chart (needs a target)",
    )
    @app_commands.choices(view=VIEWS)
    async def health(
        self,
        interaction: discord.Interaction,
        target: str | None = None,
        view: str = "now",
    ) -> None:
        if view == "chart" and not target:
            raise InvalidInput("Pick a `target` for the chart: `/health target:<name> view:chart`.")
        await interaction.response.defer(ephemeral=self._private(interaction), thinking=True)
        service = self.bot.health
        if view == "uptime":
            rows = await service.uptime(target)
            await interaction.followup.send(embed=uptime_embed(rows), allowed_mentions=NO_MENTIONS)
            return
        if view == "chart":
            assert target is not None
            series = await service.chart_series(target)
            png = await asyncio.to_thread(render_chart, series)
            filename = "health-chart.png"
            embed = discord.Embed(
                title=f"{target}: last 24 h", colour=discord.Colour.blue()
            ).set_image(url=f"attachment://{filename}")
            await interaction.followup.send(
                embed=fit_embed(embed),
                file=discord.File(io.BytesIO(png), filename=filename),
                allowed_mentions=NO_MENTIONS,
            )
            return
        if target:
            result = await service.check(target)
            known = {t.name: t for t in await service.targets()}
            await interaction.followup.send(
                embed=target_embed(result.verdicts[0], known.get(target)),
                allowed_mentions=NO_MENTIONS,
            )
            return
        pages = overview_pages(await service.check())
        if len(pages) > 1:
            await interaction.followup.send(
                embed=pages[0], view=HealthPager(self.bot, pages), allowed_mentions=NO_MENTIONS
            )
        else:
            await interaction.followup.send(embed=pages[0], allowed_mentions=NO_MENTIONS)

    @health.autocomplete("target")
    async def _target_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        # Target names are for ops roles only, not while locked out: the tree checks every
        # autocomplete like its command (bot/discord/policy.py) before this runs.
        needle = current.lower()
        names = [t.name for t in await self.bot.health.targets()]
        matches = sorted(names, key=lambda n: (not n.startswith(needle), n))
        return [app_commands.Choice(name=n, value=n) for n in matches if needle in n][:25]

    # -- /node ------------------------------------------------------------------------------

    @node.command(name="register", description="Register a Hyper Node: pending Core Ops approval.")
    @app_commands.describe(
        name="Node name: lowercase letters, digits and -",
        endpoint="The node agent's base URL, e.g. https://node7.example:8442",
        region="Where it runs, e.g. eu-west",
    )
    async def register(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 32],
        endpoint: app_commands.Range[str, 1, 200],
        region: app_commands.Range[str, 1, 32] | None = None,
    ) -> None:
        if interaction.channel_id != self.bot.settings.channels.operations:
            raise InvalidInput("Register nodes in #operations, where Core Ops can approve them.")
        registration = await self.bot.health.request_node(
            self.bot.actor_for(interaction), name=name, endpoint=endpoint, region=region
        )
        node, replaced = registration.node, registration.replaced
        callback = await interaction.response.send_message(
            content=approval_content(node, interaction.user.id),
            view=approval_view(node.id),
            allowed_mentions=NO_MENTIONS,
        )
        if callback.message_id is not None and interaction.channel_id is not None:
            try:
                await self.bot.health.remember_approval_message(
                    node.id, channel_id=interaction.channel_id, message_id=callback.message_id
                )
            except Exception as exc:  # only the early disabling needs it: a press is checked
                log.warning(
                    "could not remember the message of node request %s (%s)",
                    node.id,
                    type(exc).__name__,
                )
        if replaced is not None:
            await self._retire(replaced, replaced_content(replaced, node))

    async def _retire(self, request: RegisteredNode, content: str) -> None:
        """Disable the buttons of a request that was replaced or removed (best effort: a press
        on them is refused by the service whether or not this edit lands)."""
        if request.approval_channel_id is None or request.approval_message_id is None:
            return
        message = self.bot.get_partial_messageable(request.approval_channel_id).get_partial_message(
            request.approval_message_id
        )
        try:
            await message.edit(
                content=content,
                view=approval_view(request.id, disabled=True),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException as exc:
            log.warning(
                "could not disable the buttons of node request %s (HTTP %s)",
                request.id,
                exc.status,
            )

    @node.command(name="list", description="Registered and configured Hyper Nodes.")
    async def list_nodes(self, interaction: discord.Interaction) -> None:
        nodes = await self.bot.health.nodes()
        await interaction.response.send_message(
            embed=nodes_embed(nodes, self.bot.health.static_targets),
            ephemeral=self._private(interaction),
            allowed_mentions=NO_MENTIONS,
        )

    @node.command(name="remove", description="Remove a registered Hyper Node (Core Ops).")
    @app_commands.describe(name="The node's name")
    async def remove(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 32]
    ) -> None:
        node = await self.bot.health.remove(self.bot.actor_for(interaction), name)
        await interaction.response.send_message(
            f"🗑️ `{node.name}` removed from the registry: /health no longer probes it.",
            ephemeral=self._private(interaction),
            allowed_mentions=NO_MENTIONS,
        )
        if node.status is NodeStatus.PENDING:
            await self._retire(node, removed_content(node))


async def setup(bot: OpsBot) -> None:
    bot.add_dynamic_items(*BUTTONS)
    await bot.add_cog(HealthCog(bot))
