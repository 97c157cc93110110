"""The one gate every interaction passes: who acts, may they (the permission table, then the
lockout), and the audit hook that records how it ended.

Slash commands reach it through the tree (`bot.discord.policy.OpsCommandTree`), buttons and
select menus through the component base (`bot.discord.components`). It knows nothing of the
client: the client owns one `Gate` and hands it over; the gate never calls back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.config import Settings
from bot.domain.audit import already_audited, open_audit_scope
from bot.domain.errors import (
    DomainError,
    InvalidInput,
    NoOpsRole,
    PermissionDenied,
    named_action,
)
from bot.domain.ports import UnitOfWork, UowFactory
from bot.domain.roles import Actor
from bot.metrics import Metrics

if TYPE_CHECKING:
    from bot.app.services import Services


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
    """The permission-table name of what was invoked: `incident open`, or a component's
    `area:verb` (read from its custom_id, `hh:<area>:<verb>:...`)."""
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


def label_of(interaction: discord.Interaction) -> str | None:
    """The label of the pressed button (or the placeholder of the select menu) as the member saw
    it on the message: what a refusal names. None for a slash command."""
    if interaction.command is not None or interaction.message is None:
        return None
    custom_id = dict(interaction.data or {}).get("custom_id")
    for row in interaction.message.components:
        for component in getattr(row, "children", [row]):
            if getattr(component, "custom_id", None) == custom_id:
                label = getattr(component, "label", None) or getattr(component, "placeholder", None)
                return str(label) if label else None
    return None


class Gate:
    """Actor, check, lockout, audit hook, and the interactions in flight (so shutdown lets them
    finish and audit)."""

    def __init__(
        self, settings: Settings, services: Services, uow: UowFactory, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.access = services.access
        self.audit = services.audit
        self.grants = services.grants
        self.lockouts = services.lockouts
        self._uow = uow
        self._in_flight: set[asyncio.Task[Any]] = set()

    # -- interactions in flight -------------------------------------------------------------

    def track_current_task(self) -> None:
        """Remember the task handling an interaction, so shutdown lets it finish (and audit)."""
        task = asyncio.current_task()
        if task is not None and task not in self._in_flight:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def drain(self, within: float) -> int:
        """Wait for interactions being handled; returns how many were still running after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            # A finished command has just scheduled its completion listener: let it start.
            for _ in range(5):
                await asyncio.sleep(0)
            pending = {t for t in self._in_flight if t is not asyncio.current_task()}
            remaining = deadline - loop.time()
            if not pending or remaining <= 0:
                return len(pending)
            await asyncio.wait(pending, timeout=remaining)

    # -- identity and permission ------------------------------------------------------------

    def actor_for(self, interaction: discord.Interaction) -> Actor:
        """Who acts in this interaction, as `authorize` resolved them from their grants. Before
        the check (or for an interaction that had none) a member without ops roles."""
        actor = interaction.extras.get("actor")
        if isinstance(actor, Actor):
            return actor
        user = interaction.user
        return Actor(
            id=user.id, name=str(user), is_owner=user.id in self.settings.discord.owner_ids
        )

    def in_guild(self, interaction: discord.Interaction) -> bool:
        """Sent from the ops server itself (not a DM, not another server)."""
        return interaction.guild_id == self.settings.discord.guild_id

    async def authorize(self, interaction: discord.Interaction, action: str) -> Actor:
        """The one check: the member's grants (not their Discord roles) against the table, only
        in the server, then (for privileged actions) no lockout."""
        self.track_current_task()
        open_audit_scope()
        user = interaction.user
        actor = await self.grants.actor(user.id, str(user))
        interaction.extras["actor"] = actor
        privileged = self.access.required(action) is not None
        if privileged and not self.in_guild(interaction):
            # Not a denial: no strike counts towards the lockout (security item 14).
            raise Refused(
                InvalidInput(
                    f"{named_action(action, label_of(interaction))} only works in the server, "
                    "not in direct messages."
                )
            )
        try:
            self.access.authorize(actor, action)
        except PermissionDenied as denial:
            denial = denial.labelled(label_of(interaction))
            if not actor.roles and not actor.is_owner:
                # A miner's curiosity: pointed to /status and /whoami, audited, never a strike
                # (strikes protect privileged accounts; they would page #operations).
                raise Refused(NoOpsRole(denial)) from None
            raise Denied(denial) from None
        if privileged:
            try:
                await self.lockouts.check(actor)
            except DomainError as refusal:
                raise Refused(refusal) from None
        return actor

    # -- the audit hook ---------------------------------------------------------------------

    async def audit_outcome(
        self,
        interaction: discord.Interaction,
        action: str,
        outcome: str,
        details: Mapping[str, Any] | None = None,
        *,
        target: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> None:
        """Record a command's outcome; inside `uow` it commits with the change it describes."""
        actor = self.actor_for(interaction)
        details = {"channel_id": interaction.channel_id, **(details or {})}
        if uow is not None:
            await self.audit.record(
                uow, actor, action, outcome=outcome, target=target, details=details
            )
        else:
            async with self._uow() as own:
                await self.audit.record(
                    own, actor, action, outcome=outcome, target=target, details=details
                )
                await own.commit()

    async def succeeded(
        self,
        interaction: discord.Interaction,
        action: str,
        *,
        target: str | None = None,
        audit: bool = True,
    ) -> None:
        """An interaction that ended well: counted, and audited unless its use case committed
        its own row (the audit scope says so) or it changed nothing and says so (`audit=False`:
        a button that only opens a form; the form's submit is the use case, audited once)."""
        self.metrics.commands.labels(action, "ok").inc()
        if audit and not already_audited():
            await self.audit_outcome(interaction, action, "ok", target=target)
