"""Buttons on a firing group's message: Acknowledge, Silence 1 h / 4 h / 24 h, Expire.

Persistent by construction: each button is a DynamicItem whose custom_id carries the group id
(`hh:alerts:ack:12`, `hh:alerts:silence:12:4h`, `hh:alerts:expire:12`), so a press after a
restart is understood from the custom_id alone. Permission, errors and audit: OpsDynamicButton.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Self

import discord

from bot.domain.alerts import AlertGroup
from bot.domain.errors import InvalidInput
from bot.services.alerts import SILENCE_HOURS
from bot.tree import OpsDynamicButton
from cogs.alerts.render import group_embed
from cogs.common import NO_MENTIONS

if TYPE_CHECKING:
    from bot.client import OpsBot

ACK_TEMPLATE = r"hh:alerts:ack:(?P<id>[0-9]+)"
SILENCE_TEMPLATE = r"hh:alerts:silence:(?P<id>[0-9]+):(?P<hours>1|4|24)h"
EXPIRE_TEMPLATE = r"hh:alerts:expire:(?P<id>[0-9]+)"
INCIDENT_TEMPLATE = r"hh:alerts:incident:(?P<id>[0-9]+)"


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


async def show(interaction: discord.Interaction, group: AlertGroup, *, deferred: bool) -> None:
    """Update the pressed message with the group's current state."""
    bot = _bot(interaction)
    now = bot.audit.clock.now()
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


class AckButton(OpsDynamicButton, template=ACK_TEMPLATE):
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
        actor = bot.actor_for(interaction.user)
        alerts = bot.alerts_service()
        async with bot.database.uow() as uow:
            group = await alerts.acknowledge(uow, self.group_id, actor)
            await bot.audit_outcome(
                interaction,
                "alerts:ack",
                "ok",
                {"group_key": group.group_key[:200]},
                target=f"alert-group:{group.id}",
                uow=uow,
            )
            await uow.commit()
        await show(interaction, group, deferred=False)


class SilenceButton(OpsDynamicButton, template=SILENCE_TEMPLATE):
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
        actor = bot.actor_for(interaction.user)
        group = await alerts.get_group(self.group_id)
        link = interaction.message.jump_url if interaction.message else ""
        silence = await alerts.create_silence(group, self.hours, actor, link)
        async with bot.database.uow() as uow:
            group = await alerts.record_silence(uow, self.group_id, silence, actor)
            await bot.audit_outcome(
                interaction,
                "alerts:silence",
                "ok",
                {
                    "silence_id": silence.id,
                    "hours": self.hours,
                    "matchers": dict(silence.matchers),
                    "group_key": group.group_key[:200],
                },
                target=f"alert-group:{group.id}",
                uow=uow,
            )
            await uow.commit()
        await show(interaction, group, deferred=True)
        await interaction.followup.send(
            f"Silenced for {self.hours} h in Alertmanager (silence `{silence.id}`).",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


class ExpireButton(OpsDynamicButton, template=EXPIRE_TEMPLATE):
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
        actor = bot.actor_for(interaction.user)
        group = await alerts.get_group(self.group_id)
        silence_id = await alerts.expire_silence(group)
        async with bot.database.uow() as uow:
            group = await alerts.record_silence(uow, self.group_id, None, actor)
            await bot.audit_outcome(
                interaction,
                "alerts:expire",
                "ok",
                {"silence_id": silence_id, "group_key": group.group_key[:200]},
                target=f"alert-group:{group.id}",
                uow=uow,
            )
            await uow.commit()
        await show(interaction, group, deferred=True)
        await interaction.followup.send(
            f"Silence `{silence_id}` expired.", ephemeral=True, allowed_mentions=NO_MENTIONS
        )


class IncidentButton(OpsDynamicButton, template=INCIDENT_TEMPLATE):
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
        actor = bot.actor_for(interaction.user)
        alerts = bot.alerts_service()
        group = await alerts.get_group(self.group_id)
        if not group.firing:
            raise InvalidInput("This alert group is resolved: open an incident with /incident.")
        if group.incident_ref is None:
            severity, title, summary, nodes = alerts.incident_draft(group)
            incident = await bot.services.incidents.open(
                actor, severity=severity, title=title, summary=summary, nodes=nodes
            )
            async with bot.database.uow() as uow:
                group = await alerts.link_incident(uow, self.group_id, incident.ref)
                await uow.commit()
            if group.incident_ref == incident.ref:
                cog = bot.get_cog("incidents")
                post_card = getattr(cog, "post_card", None)
                if post_card is not None:
                    await post_card(incident)
        bot.outbox.wake()
        await interaction.followup.send(
            f"Incident {group.incident_ref} is open for this alert group: work it in its thread "
            "in #operations (`/incident show` for the card).",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


DYNAMIC_ITEMS: tuple[type[OpsDynamicButton], ...] = (
    AckButton,
    SilenceButton,
    ExpireButton,
    IncidentButton,
)
