"""The public /status embed. Built only from `PublicStatus` (numbers and a state), so it cannot
show a hostname, an address, a balance or an internal error: there is none to show."""

from __future__ import annotations

import discord

from bot.discord.sending import fit_embed, truncate
from bot.domain.public_status import PublicStatus
from bot.domain.units import format_hashrate

POOL = {
    "up": ("🟢 Pool up", discord.Colour.green()),
    "degraded": ("🟡 Pool degraded", discord.Colour.gold()),
    "down": ("🔴 Pool down", discord.Colour.red()),
    "unknown": ("⚪ Status not measured yet", discord.Colour.light_grey()),
}


def status_embed(status: PublicStatus) -> discord.Embed:
    headline, colour = POOL.get(status.pool, POOL["unknown"])
    embed = discord.Embed(title="Hyper Hash Network status", description=headline, colour=colour)
    if status.nodes_total:
        embed.add_field(name="Nodes online", value=f"{status.nodes_online} / {status.nodes_total}")
    if status.pool_hashrate is not None:
        embed.add_field(name="Pool hashrate", value=format_hashrate(status.pool_hashrate))
    if status.notice:
        embed.add_field(name="Notice", value=truncate(status.notice, 1024), inline=False)
    if status.updated_at is not None:
        embed.set_footer(text=f"updated {status.updated_at:%Y-%m-%d %H:%M:%S} UTC")
        embed.timestamp = status.updated_at
    else:
        embed.set_footer(text="the first check runs within 30 s of the bot starting")
    return fit_embed(embed)
