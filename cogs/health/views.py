"""Buttons of the health area: node approval (persistent) and /health paging."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from bot.tree import OpsView
from cogs.common import NO_MENTIONS
from cogs.health.render import decision_content

if TYPE_CHECKING:
    from bot.client import OpsBot


class NodeApprovalView(OpsView):
    """Approve / Reject a pending registration: `hh:node:approve:<id>`, `hh:node:reject:<id>`.

    Persistent (no timeout, custom_id carries the node id); re-registered at start for every
    pending node, so a press after a restart still works. Pressing twice changes nothing.
    """

    def __init__(self, bot: OpsBot, node_id: int) -> None:
        super().__init__(bot, timeout=None)
        self.node_id = node_id
        approve: discord.ui.Button[Any] = discord.ui.Button(
            label="Approve",
            style=discord.ButtonStyle.success,
            custom_id=f"hh:node:approve:{node_id}",
        )
        reject: discord.ui.Button[Any] = discord.ui.Button(
            label="Reject", style=discord.ButtonStyle.danger, custom_id=f"hh:node:reject:{node_id}"
        )
        approve.callback = self._approve  # type: ignore[method-assign]
        reject.callback = self._reject  # type: ignore[method-assign]
        self.add_item(approve)
        self.add_item(reject)

    async def _approve(self, interaction: discord.Interaction) -> None:
        await self._decide(interaction, approve=True)

    async def _reject(self, interaction: discord.Interaction) -> None:
        await self._decide(interaction, approve=False)

    async def _decide(self, interaction: discord.Interaction, *, approve: bool) -> None:
        action = "node:approve" if approve else "node:reject"
        async with self.bot.database.uow() as uow:
            node, changed = await self.bot.health.decide(
                uow, self.node_id, approve=approve, decided_by=interaction.user.id
            )
            if changed:
                await self.bot.audit_outcome(
                    interaction,
                    action,
                    "ok",
                    {"node": node.name, "endpoint": node.endpoint},
                    target=node.name,
                    uow=uow,
                )
            await uow.commit()
        if changed:
            self.stop()
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
