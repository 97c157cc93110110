"""Texts of the upgrades area its buttons need too (views import this module; it imports no
view): outside text made safe, and the release notice's words in each of its states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import discord

from bot.discord.sending import FIELD_VALUE_MAX, Rendered, fit_embed, truncate
from bot.discord.state import MessageState, stated

ROLLBACK_ICON = "⏪"
NOTES_MAX = 1500


def plain(text: object, limit: int) -> str:
    """Outside text made safe inside code spans and fences: no backticks, one line, bounded."""
    return truncate(str(text).replace("`", "ˋ").replace("\n", " "), limit)


def ts(value: object) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return plain(value, 40)
    if isinstance(value, datetime):
        return f"<t:{int(value.timestamp())}:f>"
    return "unknown"


def component_fields(components: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Components with their sha256, packed into as few ≤1024-character fields as they need."""
    fields: list[tuple[str, str]] = []
    lines: list[str] = []
    for component in components:
        name = plain(component.get("name", "?"), 64)
        version = plain(component.get("version", "?"), 64)
        line = f"**{name}** {version}\nsha256 `{plain(component.get('sha256', ''), 64)}`"
        if lines and len("\n".join([*lines, line])) > FIELD_VALUE_MAX:
            fields.append(("Components" if not fields else "Components (cont.)", "\n".join(lines)))
            lines = []
        lines.append(line)
    if lines:
        fields.append(("Components" if not fields else "Components (cont.)", "\n".join(lines)))
    return fields


def release_text(
    data: Mapping[str, Any],
    *,
    state: MessageState = MessageState.AWAITING,
    decided_by: str | None = None,
) -> Rendered:
    """The release notice in #dev-log without its buttons: while it awaits the second Core Ops
    member, or once decided (`state` APPROVED or REJECTED, by `decided_by`), saying so in its
    title, text line and colour."""
    version = plain(data["version"], 64)
    key_id = plain(data["key_id"], 16)
    channel = plain(data.get("channel", "?"), 16)
    rollback_from = plain(data["rollback_from"], 64) if data.get("rollback_from") else None
    notes = str(data.get("notes") or "").strip()
    if len(notes) > NOTES_MAX:
        notes = truncate(notes, NOTES_MAX) + "\n*(notes truncated: see the manifest)*"
    subject = (
        f"{ROLLBACK_ICON} Rollback to {version} ({channel})"
        if rollback_from
        else f"Release {version} ({channel})"
    )
    verified = f"signature verified, key `{key_id}`"
    who = plain(decided_by or "?", 100)
    if state is MessageState.APPROVED:
        line = f"rollout approved by {who}; {verified}. Node agents apply it at their next poll."
    elif state is MessageState.REJECTED:
        line = f"rejected by {who}: it does not roll out. ({verified})"
    else:
        line = f"{verified}. Rollout needs a second Core Ops member's approval (two-person rule)."
    if rollback_from and state is MessageState.AWAITING:
        line = f"from {rollback_from}; {line}"
    shown = stated(state, subject, line)
    embed = discord.Embed(
        title=shown.title,
        description=notes or "*(no release notes)*",
        colour=shown.colour,
    )
    if rollback_from:
        embed.add_field(
            name="Rolls back",
            value=truncate(
                f"from **{rollback_from}** (the newest announced release) to **{version}**: "
                "announced with rollback:true by Core Ops",
                FIELD_VALUE_MAX,
            ),
            inline=False,
        )
    embed.add_field(name="Released", value=ts(data.get("released_at")), inline=True)
    embed.add_field(
        name="Announced by", value=plain(data.get("announced_by_name", "?"), 100), inline=True
    )
    for name, value in component_fields(data.get("components", []))[:20]:
        embed.add_field(name=name, value=value, inline=False)
    embed.add_field(
        name="Signing key",
        value=truncate(
            f"`{key_id}` · trusted comment: {plain(data.get('trusted_comment', ''), 300)}",
            FIELD_VALUE_MAX,
        ),
        inline=False,
    )
    embed.set_footer(text=truncate(f"manifest: {data.get('source', '')}", 300))
    return Rendered(content=shown.content, embeds=[fit_embed(embed)])
