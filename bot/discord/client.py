"""The discord.py client: loads the cogs it is given and syncs the guild's commands.

It owns nothing the rest of the app needs while Discord is away: the scheduler, the web server
and the outbox run whether or not it has logged in (bot.app starts them first). What every
interaction passes (the check, the audit hook) is its gate (bot/discord/gate.py); what every
failure meets, the error policy (bot/discord/policy.py): neither imports this module."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.config import Settings
from bot.discord.components import PersistentItem
from bot.discord.gate import Gate, action_of
from bot.discord.outbound.cards import IncidentCards
from bot.discord.outbound.notices import NoticeRenderer
from bot.discord.policy import OpsCommandTree
from bot.domain.errors import Unavailable
from bot.domain.ports import UnitOfWork
from bot.domain.roles import Actor, OpsRole, RoleMap
from bot.metrics import Metrics
from bot.services.alerts import AlertService
from bot.services.health import HealthService
from bot.storage.database import Database

if TYPE_CHECKING:
    from bot.app.services import Services

if TYPE_CHECKING:
    from bot.app.services import Services

log = logging.getLogger(__name__)


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
            # item after it, and nothing else waits (see bot/discord/outbound/errors.py).
            max_ratelimit_timeout=settings.discord.max_ratelimit_timeout,
        )
        self.settings = settings
        self.database = database
        self.metrics = metrics
        self.services = services
        self.clock = services.audit.clock
        """The process's one clock (a FakeClock in tests): what the cogs read for "now"."""
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
        self.gate = Gate(settings, services, database.uow, metrics)
        self.cards = IncidentCards(self)
        """The incident cards (their look is registered by the incidents cog's setup)."""
        self.persistent_items: set[type[PersistentItem[Any]]] = set()
        """Every persistent component class the cogs registered (re-registered at each start)."""
        self._extensions = extensions
        self.synced_commands: list[str] = []
        self.logged_in = False
        """True once a login reached Discord and the cogs (with their notice renderers) are
        loaded: until then, outbox work for Discord waits (bot.app holds it)."""

    async def drain(self, within: float) -> int:
        """Wait for interactions being handled; returns how many were still running after."""
        return await self.gate.drain(within)

    def add_dynamic_items(self, *items: type[discord.ui.DynamicItem[Any]]) -> None:
        """Only the one persistent base (bot/discord/components.py): its check, policy and
        audit are what make a press after a restart safe."""
        for item in items:
            if not issubclass(item, PersistentItem):
                raise TypeError(f"{item.__name__} is not a PersistentItem")
        super().add_dynamic_items(*items)
        self.persistent_items.update(items)  # type: ignore[arg-type]

    def remove_dynamic_items(self, *items: type[discord.ui.DynamicItem[Any]]) -> None:
        super().remove_dynamic_items(*items)
        self.persistent_items.difference_update(items)

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

    # -- the gate's, for the cogs ------------------------------------------------------------

    def actor_for(self, interaction: discord.Interaction) -> Actor:
        return self.gate.actor_for(interaction)

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
        await self.gate.audit_outcome(interaction, action, outcome, details, target=target, uow=uow)

    async def on_app_command_completion(
        self, interaction: discord.Interaction, command: discord.app_commands.Command[Any, ..., Any]
    ) -> None:
        self.gate.track_current_task()
        await self.gate.succeeded(interaction, action_of(interaction))
