"""One rule for every message that changes state: it says the state it is in now, in its title,
its text line (the message content: what notifications and the channel preview show) and its
colour, all three from one vocabulary.

    shown = stated(MessageState.APPROVED, "Core Ops grant for dana", "approved by erin")
    embed = discord.Embed(title=shown.title, colour=shown.colour)
    await message.edit(content=shown.content, embed=embed)

`shown.title` reads `✅ APPROVED · Core Ops grant for dana`, `shown.content` (its first line)
`✅ **APPROVED** · Core Ops grant for dana: approved by erin`. Every area's request, card and
notice that is later edited renders through here, so an approved request never still reads
"awaiting approval" in orange.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import discord

from bot.discord.sending import CONTENT_MAX, TITLE_MAX, truncate


class MessageState(enum.Enum):
    """The states a message can be in, with the one icon, word and colour each shows."""

    AWAITING = ("⏳", "AWAITING APPROVAL", 0xE67E22)
    APPROVED = ("✅", "APPROVED", 0x2ECC71)
    REJECTED = ("⛔", "REJECTED", 0x95A5A6)
    INVESTIGATING = ("🔎", "INVESTIGATING", 0xE74C3C)
    IDENTIFIED = ("🎯", "IDENTIFIED", 0xE74C3C)
    MONITORING = ("👀", "MONITORING", 0xE67E22)
    RESOLVED = ("✅", "RESOLVED", 0x2ECC71)

    def __init__(self, icon: str, word: str, colour: int) -> None:
        self.icon = icon
        self.word = word
        self.colour_value = colour

    @property
    def colour(self) -> discord.Colour:
        return discord.Colour(self.colour_value)

    @property
    def mark(self) -> str:
        """`✅ APPROVED`: what leads a title."""
        return f"{self.icon} {self.word}"


@dataclass(frozen=True)
class Stated:
    """A message's title, text line and colour, all saying the same state."""

    state: MessageState
    title: str
    content: str
    colour: discord.Colour


def stated(
    state: MessageState,
    subject: str,
    line: str | None = None,
    *,
    colour: discord.Colour | None = None,
    prefix: str = "",
) -> Stated:
    """The title (`✅ APPROVED · <subject>`), the text line (`✅ **APPROVED** · <subject>: <line>`)
    and the colour of a message in `state`, within Discord's limits.

    `colour` refines the state's colour where an area grades it (an open incident's severity);
    `prefix` goes before the text line (a role mention on a first post: notifications show it),
    never into the title."""
    title = truncate(f"{state.mark} · {subject}", TITLE_MAX)
    text = f"{state.icon} **{state.word}** · {subject}" + (f": {line}" if line else "")
    if prefix:
        text = f"{prefix} {text}"
    return Stated(
        state=state,
        title=title,
        content=truncate(text, CONTENT_MAX),
        colour=colour if colour is not None else state.colour,
    )
