"""Texts of the access area that its buttons need too (views import this module; it imports no
view): Discord timestamps, a member as text, and the approval request once decided."""

from __future__ import annotations

from datetime import datetime

import discord

from bot.discord.sending import Rendered, fit_embed, truncate
from bot.discord.state import MessageState, stated
from bot.domain.access import Grant


def ts(at: datetime | str | None, style: str = "f") -> str:
    """A Discord timestamp: every reader sees it in their own time zone."""
    if at is None:
        return "never"
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return f"<t:{int(moment.timestamp())}:{style}>"


def who(member_id: object, name: object) -> str:
    """A member as text: the mention renders as their name, and pings nobody (allowed_mentions)."""
    return f"<@{member_id}> ({truncate(str(name), 60)})"


def grant_decision(grant: Grant, *, approved: bool, by_name: str) -> Rendered:
    """The approval request once decided: its title, text line and colour say APPROVED or
    REJECTED, and its buttons are gone (nothing is left to decide)."""
    member = truncate(grant.member_name, 60)
    decider = truncate(by_name, 60)
    label = grant.role.label
    if approved:
        until = (
            f" until {ts(grant.expires_at)} ({ts(grant.expires_at, 'R')})"
            if grant.expires_at
            else ""
        )
        shown = stated(
            MessageState.APPROVED,
            f"{label} grant for {member}",
            f"approved by {decider}; {member} holds {label} for {grant.days} days",
        )
        text = (
            f"{who(grant.member_id, grant.member_name)} holds **{label}**{until}.\n"
            f"Asked by {truncate(grant.granted_by_name, 60)}, approved by {decider}."
        )
    else:
        shown = stated(
            MessageState.REJECTED,
            f"{label} grant for {member}",
            f"rejected by {decider}; nothing was granted",
        )
        text = (
            f"{who(grant.member_id, grant.member_name)} was not given **{label}**.\n"
            f"Asked by {truncate(grant.granted_by_name, 60)}, rejected by {decider}."
        )
    embed = discord.Embed(title=shown.title, description=text, colour=shown.colour)
    embed.add_field(name="Reason", value=truncate(grant.reason, 1024), inline=False)
    return Rendered(content=shown.content, embeds=[fit_embed(embed)])


__all__ = ["grant_decision", "ts", "who"]
