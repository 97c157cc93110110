"""The one error policy, for slash commands, buttons and select menus alike, and the command tree
that sends every command through the gate first.

A domain error gets its safe message; anything else a correlation id that the log line carries
too, never a traceback. The outcome is audited before the reply, and a denial is a strike.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.discord.gate import Denied, Gate, Refused, action_of
from bot.discord.sending import reply
from bot.domain.access import lockout_until
from bot.domain.audit import already_audited
from bot.domain.errors import DomainError

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

OPS_COMMANDS = discord.Permissions(manage_guild=True)
"""`default_member_permissions` of every ops command (all but /status and /whoami): Discord
hides them from members without Manage Server until a server admin opens them to the ops roles
(Server Settings → Integrations → hh-opsbot). Only a default for the command picker: the
permission table still decides every use, whatever Discord shows."""


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
    gate: Gate, interaction: discord.Interaction, error: BaseException
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
            message += await strike(gate, interaction, action)
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
    gate.metrics.commands.labels(action, outcome).inc()
    # Recorded before the reply: once the member reads the answer, the audit log has it. A use
    # case that refused and committed its own row (`upgrade:verify`, say) said it already; an
    # unexpected error is always recorded, with its reference.
    if known is None or not already_audited():
        try:
            await gate.audit_outcome(interaction, action, outcome, details)
        except Exception:
            log.exception("could not audit the failed %s", action)
    try:
        await reply(interaction, message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell %s about a failed %s", interaction.user.id, action)


async def strike(gate: Gate, interaction: discord.Interaction, action: str) -> str:
    """Count the denial; returns what the member should know about their strikes.

    Only denials in the server count: a command from a DM is no attempt on the server's
    privileged actions (and is refused before the role check anyway)."""
    if not gate.in_guild(interaction):
        return ""
    try:
        result = await gate.lockouts.strike(gate.actor_for(interaction), action)
    except Exception:
        log.exception("could not record a strike for %s", interaction.user.id)
        return ""
    policy = gate.lockouts.policy
    minutes = int(policy.lockout.total_seconds() // 60)
    if result.lockout is not None:
        return (
            f"\nThat was denied attempt {result.strikes} within "
            f"{int(policy.strike_window.total_seconds() // 60)} minutes: you are now locked out "
            f"of privileged actions {lockout_until(result.lockout.until)} (manual §9)."
        )
    if result.already is not None:
        return f"\nYou are locked out of privileged actions {lockout_until(result.already.until)}."
    if result.next_would_lock_until is not None:
        at = int(result.next_would_lock_until.timestamp())
        return (
            f"\nOne more denied attempt and you will be locked out of privileged actions for "
            f"{minutes} minutes (until about <t:{at}:t>, <t:{at}:R>); only a Core Ops member "
            "can lift it, with `/access unlock` (manual §9)."
        )
    return ""


async def checked(gate: Gate, interaction: discord.Interaction, action: str) -> bool:
    """The component half of the one check: role, then lockout; a refusal is answered here."""
    try:
        await gate.authorize(interaction, action)
    except Refused as refused:
        await handle_interaction_error(gate, interaction, refused)
        return False
    return True


class OpsCommandTree(app_commands.CommandTree["OpsBot"]):
    """Every slash command (and its autocomplete) passes the gate; every failure the policy."""

    async def interaction_check(self, interaction: discord.Interaction[OpsBot], /) -> bool:
        if interaction.type is discord.InteractionType.autocomplete:
            return await self._may_suggest(interaction)
        await self.client.gate.authorize(interaction, action_of(interaction))
        return True

    async def _may_suggest(self, interaction: discord.Interaction[OpsBot]) -> bool:
        """Every autocomplete, in one place: suggestions show data (incident ids and titles,
        target names), so they pass the command's own check, role then lockout. A refusal is
        an empty list, quietly: no strike and no audit row per keystroke. Fails closed."""
        action = action_of(interaction)
        try:
            await self.client.gate.authorize(interaction, action)
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
        await handle_interaction_error(self.client.gate, interaction, error)
