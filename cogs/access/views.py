"""Persistent buttons of the access area: grant approval and the access review.

Each is a `bot.discord.components.PersistentButton`: its custom_id (`hh:access:<verb>:<id>`,
from its action) carries the grant or review item id, so a button pressed after a restart still
works, and the permission table decides who may press it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from bot.discord.components import PersistentButton, ops_bot
from bot.discord.sending import NO_MENTIONS, Rendered
from bot.domain.access import ReviewDecision
from cogs.access.texts import grant_decision

if TYPE_CHECKING:
    from bot.discord.client import OpsBot


class _AccessButton(PersistentButton):
    @classmethod
    def make(
        cls, object_id: int, label: str | None = None, *, row: int | None = None
    ) -> _AccessButton:
        return cls.build(
            object_id, label=label or cls.default_label, style=cls.default_style, row=row
        )

    default_label = ""
    default_style = discord.ButtonStyle.secondary


class ApproveGrantButton(_AccessButton, action="access:approve"):
    default_label = "Approve"
    default_style = discord.ButtonStyle.success

    async def run(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        await interaction.response.defer()
        actor = bot.actor_for(interaction)
        grant = await bot.grants.approve(actor, self.object_id)
        await _close_request(interaction, grant_decision(grant, approved=True, by_name=actor.name))


class RejectGrantButton(_AccessButton, action="access:reject"):
    default_label = "Reject"
    default_style = discord.ButtonStyle.danger

    async def run(self, interaction: discord.Interaction) -> None:
        bot = ops_bot(interaction)
        await interaction.response.defer()
        actor = bot.actor_for(interaction)
        grant = await bot.grants.reject(actor, self.object_id)
        await _close_request(interaction, grant_decision(grant, approved=False, by_name=actor.name))


class ReviewKeepButton(_AccessButton, action="access:keep"):
    default_label = "Keep"
    default_style = discord.ButtonStyle.success

    async def run(self, interaction: discord.Interaction) -> None:
        await _decide(interaction, ops_bot(interaction), self.object_id, ReviewDecision.KEEP)


class ReviewRevokeButton(_AccessButton, action="access:revoke"):
    default_label = "Revoke"
    default_style = discord.ButtonStyle.danger

    async def run(self, interaction: discord.Interaction) -> None:
        await _decide(interaction, ops_bot(interaction), self.object_id, ReviewDecision.REVOKE)


BUTTONS: tuple[type[_AccessButton], ...] = (
    ApproveGrantButton,
    RejectGrantButton,
    ReviewKeepButton,
    ReviewRevokeButton,
)


async def _close_request(interaction: discord.Interaction, decided: Rendered) -> None:
    """The request message says its decision in its title, text line and colour, and loses its
    buttons (nothing left to decide)."""
    await interaction.edit_original_response(
        content=decided.content, embeds=decided.embeds, view=None, allowed_mentions=NO_MENTIONS
    )


async def _decide(
    interaction: discord.Interaction, bot: OpsBot, item_id: int, decision: ReviewDecision
) -> None:
    await interaction.response.defer()
    actor = bot.actor_for(interaction)
    item = await bot.reviews.decide(actor, item_id, decision)
    verb = "Kept" if decision is ReviewDecision.KEEP else "Revoked"
    await interaction.edit_original_response(
        view=_with_decision(interaction.message, item_id, f"{verb} by {actor.name}"[:80]),
        allowed_mentions=NO_MENTIONS,
    )
    del item


def _with_decision(
    message: discord.Message | None, item_id: int, label: str
) -> discord.ui.View | None:
    """Rebuild the message's buttons as persistent ones, the decided pair greyed out."""
    if message is None:
        return None
    view = discord.ui.View(timeout=None)
    decided = {f"hh:access:keep:{item_id}", f"hh:access:revoke:{item_id}"}
    seen_decided = False
    for row_index, row in enumerate(message.components):
        for component in getattr(row, "children", []):
            custom_id = getattr(component, "custom_id", None)
            if not isinstance(custom_id, str):
                continue
            if custom_id in decided:
                if not seen_decided:
                    seen_decided = True
                    view.add_item(
                        discord.ui.Button(
                            label=label, disabled=True, custom_id=f"{custom_id}:done", row=row_index
                        )
                    )
                continue
            button = _rebuild(custom_id, component, row_index)
            if button is not None:
                view.add_item(button)
    return view


def _rebuild(
    custom_id: str, component: Any, row: int
) -> _AccessButton | discord.ui.Button[Any] | None:
    for cls in BUTTONS:
        match = cls.__discord_ui_compiled_template__.fullmatch(custom_id)
        if match:
            return cls.build(
                int(match["id"]),
                label=getattr(component, "label", None) or cls.default_label,
                style=getattr(component, "style", cls.default_style),
                disabled=bool(getattr(component, "disabled", False)),
                row=row,
            )
    return discord.ui.Button(
        label=getattr(component, "label", None) or "…", disabled=True, custom_id=custom_id, row=row
    )
