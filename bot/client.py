"""The discord.py client: loads the cogs and syncs the guild's commands.

It owns nothing the rest of the app needs while Discord is away: the scheduler, the web server
and the outbox run whether or not it has logged in (bot.app starts them first)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.config import Settings
from bot.discord.sending import Rendered
from bot.domain.audit import already_audited, open_audit_scope
from bot.domain.errors import (
    DomainError,
    InvalidInput,
    PermissionDenied,
    Unavailable,
    display_action,
)
from bot.domain.ports import UnitOfWork
from bot.domain.roles import Actor, OpsRole, RoleMap
from bot.metrics import Metrics
from bot.services.alerts import AlertService
from bot.services.health import HealthService
from bot.storage.database import Database
from bot.tree import Denied, OpsCommandTree, Refused, action_of

if TYPE_CHECKING:
    from bot.app.services import Services

log = logging.getLogger(__name__)

NoticeRenderer = Callable[[Mapping[str, Any]], "Rendered"]


def intents() -> discord.Intents:
    """Guilds, members and guild reactions (a 📌 in an incident thread joins its timeline).

    No message content, no presences: privileged and not needed."""
    return discord.Intents(guilds=True, members=True, guild_reactions=True)


class OpsBot(commands.Bot):
    def __init__(
        self,
        settings: Settings,
        *,
        database: Database,
        metrics: Metrics,
        services: Services,
        health: HealthService,
        alerts: AlertService | None = None,
        extensions: tuple[str, ...],
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            help_command=None,
            tree_cls=OpsCommandTree,
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=1000,
            # A long Retry-After raises RateLimited instead of sleeping: the outbox retries the
            # item after it, and nothing else waits (see bot/delivery.py).
            max_ratelimit_timeout=settings.discord.max_ratelimit_timeout,
        )
        self.settings = settings
        self.database = database
        self.metrics = metrics
        self.services = services
        self.access = services.access
        self.audit = services.audit
        self.outbox = services.outbox
        self.reminders = services.reminders
        self.lockouts = services.lockouts
        self.grants = services.grants
        self.reviews = services.reviews
        self.health = health
        self.alerts = alerts
        self.notice_templates: dict[str, NoticeRenderer] = {}
        """Renderers for outbox notices, registered by each cog's setup (template -> render)."""
        self.role_map = RoleMap.from_ids(
            {role: getattr(settings.roles, role.value) for role in OpsRole}
        )
        self._extensions = extensions
        self.synced_commands: list[str] = []
        self._in_flight: set[asyncio.Task[Any]] = set()
        self.logged_in = False
        """True once a login reached Discord and the cogs (with their notice renderers) are
        loaded: until then, outbox work for Discord waits (bot.app holds it)."""

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

    @property
    def guild_object(self) -> discord.Object:
        return discord.Object(self.settings.discord.guild_id)

    async def setup_hook(self) -> None:
        """Runs at each login attempt that reached Discord: a retried login (after a failed sync,
        say) loads only what is not loaded yet."""
        for name in self._extensions:
            if name not in self.extensions:
                await self.load_extension(name)
        self._check_permission_table()
        if self.settings.discord.sync_commands:
            guild = self.guild_object
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            self.synced_commands = sorted(c.name for c in synced)
            log.info(
                "synced %d slash commands to guild %s: %s",
                len(synced),
                guild.id,
                ", ".join(f"/{name}" for name in self.synced_commands) or "(none)",
            )
        self.logged_in = True

    def _check_permission_table(self) -> None:
        for action in self.available_actions():
            if action not in self.access.permissions:
                log.warning("/%s has no entry in the permission table: owners only", action)

    def available_actions(self) -> list[str]:
        """Qualified names of every registered command (and subcommand)."""
        names = []
        for command in self.tree.walk_commands():
            if isinstance(command, discord.app_commands.Command):
                names.append(command.qualified_name)
        return names

    async def on_ready(self) -> None:
        user = self.user
        log.info("connected to Discord as %s (%s)", user, user.id if user else "?")
        if self.get_guild(self.settings.discord.guild_id) is None:
            log.warning(
                "the bot is not in guild %s (discord.guild_id): invite it first",
                self.settings.discord.guild_id,
            )

    def alerts_service(self) -> AlertService:
        if self.alerts is None:
            raise Unavailable("The alerts relay is not running in this process.")
        return self.alerts

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
                    f"`{display_action(action)}` only works in the server, not in direct messages."
                )
            )
        try:
            self.access.authorize(actor, action)
        except PermissionDenied as denial:
            raise Denied(denial) from None
        if privileged:
            try:
                await self.lockouts.check(actor)
            except DomainError as refusal:
                raise Refused(refusal) from None
        return actor

    # -- audit ------------------------------------------------------------------------------

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
            async with self.database.uow() as own:
                await self.audit.record(
                    own, actor, action, outcome=outcome, target=target, details=details
                )
                await own.commit()

    async def on_app_command_completion(
        self, interaction: discord.Interaction, command: discord.app_commands.Command[Any, ..., Any]
    ) -> None:
        self.track_current_task()
        action = action_of(interaction)
        self.metrics.commands.labels(action, "ok").inc()
        if not already_audited():
            await self.audit_outcome(interaction, action, "ok")
