"""The one error policy and the one permission check, for slash commands and buttons alike."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self

import discord
from discord import app_commands

from bot.discord.sending import reply
from bot.domain.audit import already_audited
from bot.domain.errors import DomainError, PermissionDenied

if TYPE_CHECKING:
    from bot.client import OpsBot

log = logging.getLogger(__name__)


class Refused(app_commands.CheckFailure):
    """Carries a domain error raised by the check (a lockout) through discord.py's plumbing."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.user_message)
        self.error = error


class Denied(Refused):
    """The actor lacks the role: a strike towards the lockout (manual §9)."""

    def __init__(self, denial: PermissionDenied) -> None:
        super().__init__(denial)
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
    """(outcome, message) for errors the user caused, or that say what to do (Discord's long
    rate limits, raised rather than slept: [discord] max_ratelimit_timeout); None for our own
    failures."""
    if isinstance(error, discord.RateLimited):
        wait = math.ceil(error.retry_after)
        return "unavailable", f"Discord is rate-limiting the bot: try again in about {wait} s."
    if isinstance(error, Refused):
        return error.error.outcome, error.error.user_message
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
        if isinstance(cause, Denied):
            message += await _strike(bot, interaction, action)
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
    # Recorded before the reply: once the member reads the answer, the audit log has it. A use
    # case that refused and committed its own row (`upgrade:verify`, say) said it already; an
    # unexpected error is always recorded, with its reference.
    if known is None or not already_audited():
        try:
            await bot.audit_outcome(interaction, action, outcome, details)
        except Exception:
            log.exception("could not audit the failed %s", action)
    try:
        await reply(interaction, message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell %s about a failed %s", interaction.user.id, action)


async def _strike(bot: OpsBot, interaction: discord.Interaction, action: str) -> str:
    """Count the denial; returns what the member should know about their strikes.

    Only denials in the server count: a command from a DM is no attempt on the server's
    privileged actions (and is refused before the role check anyway)."""
    if not bot.in_guild(interaction):
        return ""
    try:
        result = await bot.lockouts.strike(bot.actor_for(interaction), action)
    except Exception:
        log.exception("could not record a strike for %s", interaction.user.id)
        return ""
    policy = bot.lockouts.policy
    if result.lockout is not None:
        minutes = int(policy.lockout.total_seconds() // 60)
        return (
            f"\nThat was denied attempt {result.strikes} within "
            f"{int(policy.strike_window.total_seconds() // 60)} minutes: you are now locked out "
            f"of privileged actions for {minutes} minutes (manual §9)."
        )
    if result.strikes == policy.strikes - 1:
        return "\nOne more denied attempt and you will be locked out for a while (manual §9)."
    return ""


class OpsCommandTree(app_commands.CommandTree["OpsBot"]):
    async def interaction_check(self, interaction: discord.Interaction[OpsBot], /) -> bool:
        if interaction.type is discord.InteractionType.autocomplete:
            return await self._may_suggest(interaction)
        await self.client.authorize(interaction, action_of(interaction))
        return True

    async def _may_suggest(self, interaction: discord.Interaction[OpsBot]) -> bool:
        """Every autocomplete, in one place: suggestions show data (incident ids and titles,
        target names), so they pass the command's own check, role then lockout. A refusal is
        an empty list, quietly: no strike and no audit row per keystroke. Fails closed."""
        action = action_of(interaction)
        try:
            await self.client.authorize(interaction, action)
            return True
        except Refused:
            log.debug("no suggestions for %s to %s: refused", action, interaction.user.id)
        except Exception:
            log.exception("no suggestions for %s: the check failed", action)
        with contextlib.suppress(discord.HTTPException, discord.InteractionResponded):
            await interaction.response.autocomplete([])
        return False

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
            if not already_audited():
                await self.bot.audit_outcome(interaction, action, "ok")

        item.callback = audited  # type: ignore[method-assign]
        item._hh_wrapped = True  # type: ignore[attr-defined]

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        try:
            await self.bot.authorize(interaction, action_of(interaction))
        except Refused as refused:
            await handle_interaction_error(self.bot, interaction, refused)
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        await handle_interaction_error(self.bot, interaction, error)


async def _checked(interaction: discord.Interaction, action: str) -> bool:
    """The button half of the one check: role, then lockout; a refusal is answered here."""
    bot: OpsBot = interaction.client  # type: ignore[assignment]
    try:
        await bot.authorize(interaction, action)
    except Refused as refused:
        await handle_interaction_error(bot, interaction, refused)
        return False
    return True


async def _run_audited(
    interaction: discord.Interaction,
    action: str,
    run: Callable[[], Awaitable[None]],
    target: str | None = None,
) -> None:
    """Run a button's work under the error policy; count and audit it when it ends well."""
    bot: OpsBot = interaction.client  # type: ignore[assignment]
    try:
        await run()
    except Exception as error:
        await handle_interaction_error(bot, interaction, error)
        return
    bot.metrics.commands.labels(action, "ok").inc()
    if not already_audited():
        await bot.audit_outcome(interaction, action, "ok", target=target)


class OpsButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"hh:__base__"):
    """A persistent button whose custom_id carries the object it acts on: `hh:<area>:<verb>:<id>`.

    It survives restarts (discord.py matches the template on every click), goes through the
    same permission check, lockout and error policy as slash commands, and is audited.
    Subclasses set `action` (`area:verb`, as in the permission table), a template, and `run`.
    """

    action: ClassVar[str] = "unknown"

    def __init__(
        self,
        object_id: int,
        *,
        label: str,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        disabled: bool = False,
        row: int | None = None,
    ) -> None:
        area, verb = self.action.split(":")
        super().__init__(
            discord.ui.Button(
                label=label[:80],
                style=style,
                custom_id=f"hh:{area}:{verb}:{object_id}",
                disabled=disabled,
            ),
            row=row,
        )
        self.object_id = object_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        label = getattr(item, "label", None) or ""
        style = getattr(item, "style", discord.ButtonStyle.secondary)
        return cls(int(match["id"]), label=label, style=style)

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await _checked(interaction, self.action)

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: OpsBot = interaction.client  # type: ignore[assignment]
        await _run_audited(
            interaction,
            self.action,
            lambda: self.run(interaction, bot),
            target=str(self.object_id),
        )

    async def run(self, interaction: discord.Interaction, bot: OpsBot) -> None:
        raise NotImplementedError


class _ActionFromCustomId:
    """The check, error policy and audit of a component whose custom_id names its action
    (`hh:area:verb:...`); `run` is the work."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await _checked(interaction, action_of(interaction))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run_audited(interaction, action_of(interaction), lambda: self.run(interaction))

    async def run(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class OpsDynamicButton(
    _ActionFromCustomId,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"hh:abstract:(?P<id>[0-9]+)",
):
    """Like OpsButton, for buttons that build their own `discord.ui.Button` (the alerts area):
    the action is read from the custom_id (`hh:area:verb:id`). Same check, policy and audit."""


class OpsDynamicSelect(
    _ActionFromCustomId,
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"hh:abstract-select:(?P<id>[0-9]+)",
):
    """A persistent select menu, checked, answered and audited like OpsDynamicButton."""
