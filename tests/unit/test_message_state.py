"""The one rule for edited messages (issue 16 §1): title, text line and colour say one state."""

from __future__ import annotations

import discord

from bot.discord.state import MessageState, stated


def test_title_text_line_and_colour_say_the_same_state() -> None:
    shown = stated(MessageState.APPROVED, "Core Ops grant for dana", "approved by erin")
    assert shown.title == "✅ APPROVED · Core Ops grant for dana"
    assert shown.content == "✅ **APPROVED** · Core Ops grant for dana: approved by erin"
    assert shown.colour == MessageState.APPROVED.colour


def test_every_state_has_its_own_word_and_awaiting_is_not_the_colour_of_done() -> None:
    words = [state.word for state in MessageState]
    assert len(set(words)) == len(words)
    assert MessageState.AWAITING.colour != MessageState.APPROVED.colour
    assert MessageState.RESOLVED.colour == MessageState.APPROVED.colour


def test_a_prefix_leads_the_text_line_only_and_limits_hold() -> None:
    shown = stated(
        MessageState.INVESTIGATING,
        "x" * 5000,
        "y" * 5000,
        prefix="<@&55>",
        colour=discord.Colour.gold(),
    )
    assert shown.content.startswith("<@&55> 🔎 **INVESTIGATING** · xxx")
    assert not shown.title.startswith("<@&") and len(shown.title) <= 256
    assert len(shown.content) <= 2000
    assert shown.colour == discord.Colour.gold()
