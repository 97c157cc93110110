"""Buttons of the health area: node approval (persistent dynamic items) and /health paging."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from bot.discord.components import OpsView, PersistentButton, ops_bot
from bot.discord.sending import NO_MENTIONS
from bot.services.health import StaleRequest
from cogs.health.render import decision_content, stale_content

if TYPE_CHECKING:
    from bot.discord.client import OpsBot


class ApproveNodeButton(PersistentButton, action="node:approve"):
    """Approve request `<id>`: `hh:node:approve:<id>`. A dynamic item, so a press on any
    request's message is answered (after a restart too): a replaced request is refused."""

    async def run(self, interaction: discord.Interaction) -> None:
        await decide_node(interaction, ops_bot(interaction), self.object_id, approve=True)


class RejectNodeButton(PersistentButton, action="node:reject"):
    async def run(self, interaction: discord.Interaction) -> None:
        await decide_node(interaction, ops_bot(interaction), self.object_id, approve=False)


BUTTONS: tuple[type[PersistentButton], ...] = (ApproveNodeButton, RejectNodeButton)


def approval_view(node_id: int, *, disabled: bool = False) -> discord.ui.View:
    """Approve / Reject of one request (disabled once the request was replaced)."""
    view = discord.ui.View(timeout=None)
    view.add_item(
        ApproveNodeButton.build(
            node_id, label="Approve", style=discord.ButtonStyle.success, disabled=disabled
        )
    )
    view.add_item(
        RejectNodeButton.build(
            node_id, label="Reject", style=discord.ButtonStyle.danger, disabled=disabled
        )
    )
    return view


async def decide_node(
    interaction: discord.Interaction, bot: OpsBot, node_id: int, *, approve: bool
) -> None:
    """Approve or reject exactly the request the pressed message showed; pressing twice
    changes nothing; a replaced request's buttons are disabled and the press is refused."""
    try:
        node, changed = await bot.health.decide_request(
            bot.actor_for(interaction), node_id, approve=approve
        )
    except StaleRequest:
        original = interaction.message.content if interaction.message else ""
        await interaction.response.edit_message(
            content=stale_content(node_id, original),
            view=approval_view(node_id, disabled=True),
            allowed_mentions=NO_MENTIONS,
        )
        raise  # the error policy answers (ephemeral) and audits the refusal
    if changed:
        await interaction.response.edit_message(
            content=decision_content(node, interaction.user.id),
            view=None,
            allowed_mentions=NO_MENTIONS,
        )
    else:
        await interaction.response.send_message(
            f"`{node.name}` was already {node.status.value}: nothing changed.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


class HealthPager(OpsView):
    """◀ / ▶ through the pages of a /health overview (kept 10 minutes, in memory)."""

    def __init__(self, bot: OpsBot, pages: list[discord.Embed]) -> None:
        super().__init__(bot, timeout=600)
        self.pages = pages
        self.index = 0
        self.previous: discord.ui.Button[Any] = discord.ui.Button(
            label="◀", style=discord.ButtonStyle.secondary, custom_id="hh:health:page:prev"
        )
        self.next: discord.ui.Button[Any] = discord.ui.Button(
            label="▶", style=discord.ButtonStyle.secondary, custom_id="hh:health:page:next"
        )
        self.previous.callback = self._previous  # type: ignore[method-assign]
        self.next.callback = self._next  # type: ignore[method-assign]
        self.add_item(self.previous)
        self.add_item(self.next)
        self._sync()

    def _sync(self) -> None:
        self.previous.disabled = self.index == 0
        self.next.disabled = self.index >= len(self.pages) - 1

    async def _previous(self, interaction: discord.Interaction) -> None:
        await self._show(interaction, self.index - 1)

    async def _next(self, interaction: discord.Interaction) -> None:
        await self._show(interaction, self.index + 1)

    async def _show(self, interaction: discord.Interaction, index: int) -> None:
        self.index = max(0, min(index, len(self.pages) - 1))
        self._sync()
        await interaction.response.edit_message(
            embed=self.pages[self.index], view=self, allowed_mentions=NO_MENTIONS
        )
