"""Embeds for the access area: pure functions of service results, tested against the limits."""

from __future__ import annotations

import discord

from bot.domain.errors import display_action
from bot.services.access import WhoAmI
from cogs.common import fit_embed, truncate

COLOUR_OPS = discord.Colour.blue()
COLOUR_MINER = discord.Colour.light_grey()


def whoami_embed(info: WhoAmI, *, display_name: str) -> discord.Embed:
    has_roles = bool(info.roles) or info.actor.is_owner
    embed = discord.Embed(
        title=truncate(f"Who am I: {display_name}", 256),
        colour=COLOUR_OPS if has_roles else COLOUR_MINER,
    )
    roles = ", ".join(role.label for role in info.roles) if info.roles else "none: miner access"
    embed.add_field(name="Ops roles", value=roles, inline=False)
    if info.actor.is_owner:
        embed.add_field(
            name="Break-glass owner",
            value="Configured in `discord.owner_ids`: every permission check passes.",
            inline=False,
        )
    commands = "\n".join(f"`{display_action(action)}`" for action in info.allowed)
    embed.add_field(name="Commands you may use", value=commands or "none", inline=False)
    embed.set_footer(text="Ops roles are granted by Core Ops and expire after 90 days.")
    return fit_embed(embed)
