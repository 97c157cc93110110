"""The public status: one render function for the #miners board and `/status`. Built only from
`PublicStatus` (numbers and a state), so it cannot show a hostname, an address, a balance or an
internal error: there is none to show."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import discord

from bot.discord.sending import Rendered, fit_embed, truncate
from bot.domain.outbox import NoticeTemplate
from bot.domain.public_status import NodeAnswer, PublicStatus, reason_line, status_from_data
from bot.domain.units import format_hashrate

POOL = {
    "up": ("🟢 Pool up", discord.Colour.green()),
    "degraded": ("🟡 Pool degraded", discord.Colour.gold()),
    "down": ("🔴 Pool down", discord.Colour.red()),
    "unknown": ("⚪ Status not measured yet", discord.Colour.light_grey()),
}


def status_embed(status: PublicStatus) -> discord.Embed:
    """The words of the board and of `/status` (the same function, so they never differ)."""
    headline, colour = POOL.get(status.pool, POOL["unknown"])
    # The state is the title; the description says why, when the figures need a word.
    embed = discord.Embed(
        title=f"Hyper Hash Network status: {headline}",
        description=reason_line(status),
        colour=colour,
    )
    if status.nodes_total:
        embed.add_field(name="Nodes online", value=f"{status.nodes_online} / {status.nodes_total}")
    if status.pool_hashrate is not None:
        embed.add_field(name="Pool hashrate", value=format_hashrate(status.pool_hashrate))
    if status.notice:
        embed.add_field(name="Notice", value=truncate(status.notice, 1024), inline=False)
    if status.updated_at is not None:
        # Discord shows the timestamp beside the footer in each reader's own time zone.
        embed.set_footer(text="Checked")
        embed.timestamp = status.updated_at
    else:
        embed.set_footer(text="the first check runs within 30 s of the bot starting")
    return fit_embed(embed)


def board(data: Mapping[str, Any]) -> Rendered:
    """The #miners status board (notice template `status.board`): the `/status` embed."""
    return Rendered(embeds=[status_embed(status_from_data(dict(data)))])


def node_line(answer: NodeAnswer) -> str:
    """`/status node:<name>`: the public name and up or not; nothing internal."""
    name = truncate(discord.utils.escape_markdown(answer.name), 40)
    if not answer.known:
        return f"⚪ No public node named `{name}`: check the name on your miner's pool settings."
    if not answer.measured:
        return f"⚪ Node `{name}`: not measured yet, ask again in a minute."
    if answer.up:
        return f"🟢 Node `{name}` is up."
    return f"🔴 Node `{name}` is not answering; the team sees it too."


TEMPLATES: dict[str, Callable[[Mapping[str, Any]], Rendered]] = {
    # keyed by NoticeTemplate (a str); tests/unit/test_outbox_catalogue.py checks none is missing
    NoticeTemplate.STATUS_BOARD: board,
}
