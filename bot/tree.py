"""The one error policy and the one permission check, for slash commands and buttons alike."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any, Self

import discord
from discord import app_commands

from bot.domain.errors import DomainError, PermissionDenied
from cogs.common import reply

if TYPE_CHECKING:
    from bot.client import OpsBot

log = logging.getLogger(__name__)


class Denied(app_commands.CheckFailure):
    """Carries the domain's PermissionDenied through discord.py's error plumbing."""

    def __init__(self, denial: PermissionDenied) -> None:
        super().__init__(denial.user_message)
        self.denial = denial


def action_of(interaction: discord.Interaction) -> str:
    """The permission-table name of what was invoked: `incident open`, or a button's `area:verb`."""
    command = interaction.command
    if command is not None:
        return command.qualified_name
    data: dict[str, Any] = dict(interaction.data or {})
    custom_id = data.get("custom_id")
    if isinstance(custom_id, str) and custom_id.startswith("hh:"):
        parts = custom_id.split(":")
        if len(parts) >= 3:
            return f"{parts[1]}:{parts[2]}"
    return "unknown"


def unwrap(error: BaseException) -> BaseException:
    while isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    return error


def user_message_for(error: BaseException) -> tuple[str, str] | None:
    """(outcome, message) for errors the user caused; None for our own failures."""
    if isinstance(error, Denied):
        return "denied", error.denial.user_message
    if isinstance(error, DomainError):
        return error.outcome, error.user_message
    if isinstance(error, app_commands.TransformerError):
        return "invalid", f"`{error.value}` is not a valid {error.type.name.lower()} here."
    if isinstance(error, app_commands.CommandOnCooldown):
        return "cooldown", f"Slow down: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "invalid", "This command only works in the server."
    if isinstance(error, app_commands.CheckFailure):
        return "denied", str(error) or "You cannot use this here."
    if isinstance(error, app_commands.CommandNotFound):
        return "invalid", "That command is not available any more; Discord may need a moment."
    return None


async def handle_interaction_error(
    bot: OpsBot, interaction: discord.Interaction, error: BaseException
) -> None:
    """Domain errors: their safe message. Anything else: a correlation id, never a traceback."""
    action = action_of(interaction)
    cause = unwrap(error)
    known = user_message_for(cause)
    details: dict[str, object] = {}
    if known is not None:
        outcome, message = known
        log.info("%s by %s: %s (%s)", action, interaction.user.id, outcome, message)
    else:
        outcome = "error"
        correlation_id = secrets.token_hex(4)
        details["correlation_id"] = correlation_id
        log.error(
            "unexpected error in %s (ref %s)",
            action,
            correlation_id,
            exc_info=(type(cause), cause, cause.__traceback__),
            extra={"correlation_id": correlation_id, "action": action},
        )
        message = (
            "Something went wrong on our side. It was logged with reference "
            f"`{correlation_id}`: quote it to a Core Ops member if it keeps happening."
        )
    bot.metrics.commands.labels(action, outcome).inc()
    # Recorded before the reply: once the member reads the answer, the audit log has it.
    try:
        await bot.audit_outcome(interaction, action, outcome, details)
    except Exception:
        log.exception("could not audit the failed %s", action)
    try:
        await reply(interaction, message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell %s about a failed %s", interaction.user.id, action)


class OpsCommandTree(app_commands.CommandTree["OpsBot"]):
    async def interaction_check(self, interaction: discord.Interaction[OpsBot], /) -> bool:
        if interaction.type is discord.InteractionType.autocomplete:
            return True
        self.client.authorize(interaction, action_of(interaction))
        return True

    async def on_error(
        self, interaction: discord.Interaction[OpsBot], error: app_commands.AppCommandError, /
    ) -> None:
        await handle_interaction_error(self.client, interaction, error)


class OpsView(discord.ui.View):
    """Base for every view: same permission check, error policy and audit as slash commands.

    Each item's callback is wrapped so that a button press that ends well is counted and audited
    like a command (unless the handler audited it itself, inside its own transaction).
    """

    def __init__(self, bot: OpsBot, *, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        for item in self.children:
            self._wrap(item)

    def add_item(self, item: discord.ui.Item[Any]) -> Self:
        self._wrap(item)
        return super().add_item(item)

    def _wrap(self, item: discord.ui.Item[Any]) -> None:
        if getattr(item, "_hh_wrapped", False):
            return
        callback = item.callback

        async def audited(interaction: discord.Interaction) -> None:
            await callback(interaction)
            action = action_of(interaction)
            self.bot.metrics.commands.labels(action, "ok").inc()
            if not interaction.extras.get("audited"):
                await self.bot.audit_outcome(interaction, action, "ok")

        item.callback = audited  # type: ignore[method-assign]
        item._hh_wrapped = True  # type: ignore[attr-defined]

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        try:
            self.bot.authorize(interaction, action_of(interaction))
        except Denied as denied:
            await handle_interaction_error(self.bot, interaction, denied)
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        await handle_interaction_error(self.bot, interaction, error)


class OpsDynamicButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"hh:abstract:(?P<id>[0-9]+)"
):
    """Base for persistent buttons whose custom_id carries the object id (`hh:area:verb:id`).

    Register subclasses with `bot.add_dynamic_items(...)`; a press after a restart is parsed
    from the custom_id alone. The same permission check, error policy and audit as OpsView:
    subclasses implement `run()`; discord.py would otherwise only log a failing callback.
    """

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        bot: OpsBot = interaction.client  # type: ignore[assignment]
        try:
            bot.authorize(interaction, action_of(interaction))
        except Denied as denied:
            await handle_interaction_error(bot, interaction, denied)
            return False
        return True

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: OpsBot = interaction.client  # type: ignore[assignment]
        try:
            await self.run(interaction)
        except Exception as exc:
            await handle_interaction_error(bot, interaction, exc)
            return
        action = action_of(interaction)
        bot.metrics.commands.labels(action, "ok").inc()
        if not interaction.extras.get("audited"):
            await bot.audit_outcome(interaction, action, "ok")

    async def run(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError
