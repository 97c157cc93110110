"""Buttons on a firing group's message: Acknowledge, Silence 1 h / 4 h / 24 h, Expire.

Persistent by construction: each button is a DynamicItem whose custom_id carries the group id
(`hh:alerts:ack:12`, `hh:alerts:silence:12:4h`, `hh:alerts:expire:12`), so a press after a
restart is understood from the custom_id alone. Permission and errors: OpsDynamicButton. Each
press is one use case of `bot/services/alerts/actions.py` (its own transaction and audit row);
a view only parses the press and shows the answer.

A storm digest shows up to 40 groups in one message, more than a message has room for buttons
(25), so it carries select menus instead (`hh:alerts:pick:0`, 25 groups each): picking a group
answers, privately, with that group's own embed and buttons.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import discord

from bot.discord.components import PersistentButton, PersistentSelect
from bot.discord.sending import NO_MENTIONS, truncate
from bot.domain.alerts import AlertGroup
from bot.domain.errors import InvalidInput
from bot.domain.units import plural
from bot.services.alerts import SILENCE_HOURS
from cogs.alerts.render import group_embed, header, icon_of, plain

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

ACK_TEMPLATE = r"hh:alerts:ack:(?P<id>[0-9]+)"
SILENCE_TEMPLATE = r"hh:alerts:silence:(?P<id>[0-9]+):(?P<hours>1|4|24)h"
EXPIRE_TEMPLATE = r"hh:alerts:expire:(?P<id>[0-9]+)"
INCIDENT_TEMPLATE = r"hh:alerts:incident:(?P<id>[0-9]+)"
PICK_TEMPLATE = r"hh:alerts:pick:(?P<part>[0-4])"
OPTIONS_PER_SELECT = 25
SELECTS_PER_MESSAGE = 5


def _bot(interaction: discord.Interaction) -> OpsBot:
    return interaction.client  # type: ignore[return-value]


def group_view(group: AlertGroup, now: Any) -> discord.ui.View | None:
    """The buttons a group's own message carries; None (no buttons) once it is resolved."""
    if not group.firing:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(AckButton(group.id, acked_by=group.acked_by_name))
    if group.silence_active(now):
        view.add_item(ExpireButton(group.id))
    else:
        for hours in SILENCE_HOURS:
            view.add_item(SilenceButton(group.id, hours))
    view.add_item(IncidentButton(group.id, ref=group.incident_ref))
    return view


def digest_view(groups: Sequence[AlertGroup]) -> discord.ui.View | None:
    """Select menus for a digest's firing groups (None when none fires any more)."""
    firing = [g for g in groups if g.firing][: OPTIONS_PER_SELECT * SELECTS_PER_MESSAGE]
    if not firing:
        return None
    view = discord.ui.View(timeout=None)
    for part in range(0, len(firing), OPTIONS_PER_SELECT):
        view.add_item(
            PickGroupSelect(part // OPTIONS_PER_SELECT, firing[part : part + OPTIONS_PER_SELECT])
        )
    return view


async def _public_link(interaction: discord.Interaction, group_id: int) -> str:
    """The group's message in #alerts: the pressed message may be a private answer from a
    digest's menu, which nobody else can open."""
    shown = await _bot(interaction).alerts_service().public_message(group_id)
    if shown is not None:
        channel = interaction.client.get_partial_messageable(
            shown.channel_id, guild_id=interaction.guild_id
        )
        return channel.get_partial_message(shown.message_id).jump_url
    return interaction.message.jump_url if interaction.message else ""


async def show(interaction: discord.Interaction, group: AlertGroup, *, deferred: bool) -> None:
    """Update the pressed message with the group's current state."""
    bot = _bot(interaction)
    now = bot.clock.now()
    embed = group_embed(group, now)
    view = group_view(group, now)
    if deferred:
        await interaction.edit_original_response(
            embed=embed, view=view, allowed_mentions=NO_MENTIONS
        )
    else:
        await interaction.response.edit_message(
            embed=embed, view=view, allowed_mentions=NO_MENTIONS
        )
    # The outbox edit enqueued with the change still runs (a few seconds later): if the
    # delivery worker was editing this message at the same moment with an older state, that
    # edit puts the newest state back. One extra edit per press is cheap; a stale button is not.


class AckButton(PersistentButton, template=ACK_TEMPLATE):
    def __init__(self, group_id: int, *, acked_by: str | None = None) -> None:
        label = "Acknowledge" if acked_by is None else f"Acknowledged by {acked_by}"[:80]
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.primary
                if acked_by is None
                else discord.ButtonStyle.success,
                label=label,
                custom_id=f"hh:alerts:ack:{group_id}",
                disabled=acked_by is not None,
            )
        )
        self.group_id = group_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["id"]))

    async def run(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        group = await bot.alerts_service().acknowledge(bot.actor_for(interaction), self.group_id)
        await show(interaction, group, deferred=False)


class SilenceButton(PersistentButton, template=SILENCE_TEMPLATE):
    def __init__(self, group_id: int, hours: int) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                label=f"Silence {hours} h",
                custom_id=f"hh:alerts:silence:{group_id}:{hours}h",
            )
        )
        self.group_id = group_id
        self.hours = hours

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["id"]), int(match["hours"]))

    async def run(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        alerts = bot.alerts_service()
        # Alertmanager is a network call: acknowledge the press first (Discord waits 3 s).
        await interaction.response.defer()
        link = await _public_link(interaction, self.group_id)
        group, silence = await alerts.silence(
            bot.actor_for(interaction), self.group_id, self.hours, link=link
        )
        await show(interaction, group, deferred=True)
        await interaction.followup.send(
            f"Silenced for {self.hours} h in Alertmanager (silence `{silence.id}`).",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


class ExpireButton(PersistentButton, template=EXPIRE_TEMPLATE):
    def __init__(self, group_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.danger,
                label="Expire silence",
                custom_id=f"hh:alerts:expire:{group_id}",
            )
        )
        self.group_id = group_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["id"]))

    async def run(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        alerts = bot.alerts_service()
        await interaction.response.defer()
        group, silence_id = await alerts.expire(bot.actor_for(interaction), self.group_id)
        await show(interaction, group, deferred=True)
        await interaction.followup.send(
            f"Silence `{silence_id}` expired.", ephemeral=True, allowed_mentions=NO_MENTIONS
        )


class IncidentButton(PersistentButton, template=INCIDENT_TEMPLATE):
    """Open an incident from a firing group (issue 5's /incident open, pre-filled); once."""

    def __init__(self, group_id: int, *, ref: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.danger,
                label="Open incident" if ref is None else f"Incident {ref}",
                custom_id=f"hh:alerts:incident:{group_id}",
                disabled=ref is not None,
            )
        )
        self.group_id = group_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["id"]))

    async def run(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        group, incident = await bot.alerts_service().open_incident(
            bot.actor_for(interaction), self.group_id
        )
        if incident is not None:  # opened by this press: its card, as /incident open posts it
            await bot.cards.post(incident)
        await interaction.followup.send(
            f"Incident {group.incident_ref} is open for this alert group: work it in its thread "
            "in #operations (`/incident show` for the card).",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


class PickGroupSelect(PersistentSelect, template=PICK_TEMPLATE):
    """On a storm digest: pick a group to act on it (its buttons, in a private answer)."""

    def __init__(self, part: int, groups: Sequence[AlertGroup] = ()) -> None:
        first = part * OPTIONS_PER_SELECT + 1
        options = [
            discord.SelectOption(
                label=truncate(f"#{g.id} {plain(header(g))}", 100),
                value=str(g.id),
                emoji=icon_of(g),
                description=truncate(
                    plain(
                        f"{g.severity or 'no severity'}, {plural(len(g.alerts), 'alert')}"
                        + (f", acknowledged by {g.acked_by_name}" if g.acked_by_name else "")
                    ),
                    100,
                ),
            )
            for g in groups
        ]
        super().__init__(
            discord.ui.Select(
                custom_id=f"hh:alerts:pick:{part}",
                placeholder=f"Act on a group ({first}-{first + len(options) - 1})"
                if options
                else "Act on a group",
                min_values=1,
                max_values=1,
                # A click after a restart is rebuilt from the custom_id alone: no options then.
                options=options or [discord.SelectOption(label="-", value="0")],
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["part"]))

    async def run(self, interaction: discord.Interaction) -> None:
        data: dict[str, Any] = dict(interaction.data or {})
        values = data.get("values") or []
        chosen = str(values[0]) if isinstance(values, list) and values else ""
        if not re.fullmatch(r"[0-9]{1,18}", chosen) or interaction.message is None:
            raise InvalidInput("Pick one alert group from the list.")
        bot = _bot(interaction)
        group = await bot.alerts_service().group_on_message(int(chosen), interaction.message.id)
        await bot.audit_outcome(
            interaction,
            "alerts:pick",
            "ok",
            {"message_id": interaction.message.id},
            target=f"alert-group:{group.id}",
        )
        now = bot.clock.now()
        await interaction.response.send_message(
            embed=group_embed(group, now),
            view=group_view(group, now) or discord.utils.MISSING,
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


DYNAMIC_ITEMS: tuple[type[PersistentButton] | type[PersistentSelect], ...] = (
    AckButton,
    SilenceButton,
    ExpireButton,
    IncidentButton,
    PickGroupSelect,
)
