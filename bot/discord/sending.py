"""Safe sending: Discord's size limits enforced by truncation, no accidental pings, and one
message per outbox item however often it is tried (nonces).

Every send in the bot goes through these limits, so an alert or a user-typed title can never
make Discord answer 400, and never mention @everyone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import discord

from bot.domain.outbox import OutboxItem

NO_MENTIONS = discord.AllowedMentions.none()

CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
EMBEDS_PER_MESSAGE = 10
ELLIPSIS = "…"


def allowed_mentions(payload: Mapping[str, Any]) -> discord.AllowedMentions:
    """Only the roles and users a payload names (`mention_role_ids`, `mention_user_ids`) may be
    pinged: never @everyone."""
    roles = [discord.Object(i) for i in payload.get("mention_role_ids", [])]
    users = [discord.Object(i) for i in payload.get("mention_user_ids", [])]
    return discord.AllowedMentions(everyone=False, roles=roles or False, users=users or False)


def nonce_for(prefix: str, item: OutboxItem) -> str:
    """The nonce of a post the outbox sends: the same for every try of one item (Discord keeps
    one message per nonce for a few minutes), so a retried post that did land is not doubled;
    at most 25 characters."""
    return f"hh{prefix}{item.id}"


def truncate(text: str, limit: int) -> str:
    """Cut to `limit` characters, marking the cut; Discord counts characters (code points)."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def embed_length(embed: discord.Embed) -> int:
    return len(embed)


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """Bring an embed within every limit, dropping trailing fields if the total is over."""
    if embed.title:
        embed.title = truncate(embed.title, TITLE_MAX)
    if embed.description:
        embed.description = truncate(embed.description, DESCRIPTION_MAX)
    if embed.author and embed.author.name:
        embed.set_author(
            name=truncate(embed.author.name, AUTHOR_MAX),
            url=embed.author.url,
            icon_url=embed.author.icon_url,
        )
    if embed.footer and embed.footer.text:
        embed.set_footer(
            text=truncate(embed.footer.text, FOOTER_MAX), icon_url=embed.footer.icon_url
        )
    fields = embed.fields[:FIELDS_MAX]
    omitted = len(embed.fields) - len(fields)
    embed.clear_fields()
    for field in fields:
        embed.add_field(
            name=truncate(field.name or "\u200b", FIELD_NAME_MAX),
            value=truncate(field.value or "\u200b", FIELD_VALUE_MAX),
            inline=field.inline,
        )
    while len(embed) > EMBED_TOTAL_MAX and embed.fields:
        embed.remove_field(-1)
        omitted += 1
    if len(embed) > EMBED_TOTAL_MAX and embed.description:
        over = len(embed) - EMBED_TOTAL_MAX
        embed.description = truncate(embed.description, max(len(embed.description) - over, 1))
    if omitted and embed.footer.text is None:
        embed.set_footer(text=f"{omitted} more not shown")
    return embed


async def reply(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer whether or not the interaction was already acknowledged; ephemeral unless told."""
    text = truncate(content, CONTENT_MAX) if content is not None else None
    embeds = [fit_embed(embed)] if embed is not None else []
    if interaction.response.is_done():
        await interaction.followup.send(
            content=text or discord.utils.MISSING,
            embeds=embeds,
            ephemeral=ephemeral,
            allowed_mentions=NO_MENTIONS,
        )
    else:
        await interaction.response.send_message(
            content=text, embeds=embeds, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
        )


@dataclasses.dataclass
class Rendered:
    """A message ready to send: what a notice template renders to."""

    content: str | None = None
    embeds: list[discord.Embed] = dataclasses.field(default_factory=list)
    items: list[discord.ui.Item[Any]] = dataclasses.field(default_factory=list)
    """Components (persistent buttons); sent as one view."""

    def view(self) -> discord.ui.View | None:
        if not self.items:
            return None
        view = discord.ui.View(timeout=None)
        for item in self.items:
            view.add_item(item)
        return view
