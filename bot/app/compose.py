"""The composition root: settings -> database -> services -> Discord, web, jobs.

The only module of `bot/` that imports the cogs (import-linter checks it). Every outbox and
reminder kind gets its handler here or in `bot/app/services.py`, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.app.gateway import LOGIN_BACKOFF, Gateway, websocket_open
from bot.app.jobs import Jobs
from bot.app.lifecycle import Lifecycle
from bot.app.policies import alert_policy, audit_chain_options, probe_runner, probe_targets
from bot.app.services import Services
from bot.config import Settings
from bot.discord.client import OpsBot
from bot.discord.outbound.board import StatusBoardPosts
from bot.discord.outbound.devlog import DevLogPosts
from bot.discord.outbound.notices import DiscordDelivery, NoticeDelivery
from bot.discord.outbound.roles import DiscordMemberRoles
from bot.domain.clock import SystemClock
from bot.domain.outbox import OutboxItem, OutboxKind, RetryLater
from bot.domain.permissions import PERMISSIONS
from bot.domain.ports import Clock
from bot.domain.roles import OpsRole
from bot.integrations.alertmanager import AlertmanagerClient
from bot.integrations.github import GitHubIssues, GitHubReleases
from bot.integrations.releases import HttpManifestFetcher
from bot.integrations.smtp import SmtpMailer
from bot.metrics import Metrics
from bot.scheduling import RunningJobs, build_scheduler
from bot.services.alerts import AlertService
from bot.services.health import HealthService
from bot.services.outbox import DISCORD_LANE, OutboxHandler
from bot.storage.database import Database
from bot.storage.spool import SpoolReader
from bot.web.app import HealthSources, WebServer, create_app
from cogs import EXTENSIONS
from cogs.alerts.delivery import AlertDelivery, ChannelPacer


class Application(Lifecycle):
    """Everything the process runs, wired once, started and stopped in order."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        extensions: tuple[str, ...] = EXTENSIONS,
        permissions: Mapping[str, frozenset[OpsRole] | None] = PERMISSIONS,
        clock: Clock | None = None,
        login_backoff: tuple[float, ...] = LOGIN_BACKOFF,
    ) -> None:
        self.settings = settings
        self.login_backoff = login_backoff
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.database = Database.from_url(
            settings.database.url.get_secret_value(),
            echo=settings.database.echo,
            audit=audit_chain_options(settings),
        )
        self.roles = DiscordMemberRoles(
            settings.discord.guild_id,
            {role: getattr(settings.roles, role.value) for role in OpsRole},
        )
        health = settings.health
        self.prober = probe_runner(self.clock, settings)
        self.health = HealthService(
            self.database.uow,
            self.clock,
            self.prober,
            probe_targets(settings),
            share_stale_after=health.share_stale_after,
            status_cooldown=health.status_cooldown,
            board_interval=health.board_interval,
            allow_loopback=health.allow_loopback,
        )
        self.services = Services.build(
            self.database.uow,
            self.clock,
            access_settings=settings.access,
            roles=self.roles,
            owner_ids=frozenset(settings.discord.owner_ids),
            permissions=dict(permissions),
            incident_settings=settings.incidents,
            tracker=GitHubIssues(settings.github, self.clock)
            if settings.github.configured
            else None,
            observer=self.metrics,
            guild_id=settings.discord.guild_id,
            outbox_max_backoff=settings.outbox.max_backoff,
            outbox_idle_poll=settings.outbox.idle_poll,
            upgrade_settings=settings.upgrades,
            fetcher=HttpManifestFetcher(
                timeout=settings.upgrades.fetch_timeout, allow_loopback=health.allow_loopback
            ),
            check_nodes=self.health.check,
            release_source=GitHubReleases(
                settings.github, settings.upgrades.github_repo, self.clock
            )
            if settings.upgrades.github_repo
            else None,
            github_settings=settings.github,
        )
        self.outbox = self.services.outbox
        self.health.use_outbox(self.outbox)
        self.reminders = self.services.reminders
        am = settings.alertmanager
        self.silences = (
            AlertmanagerClient(am.api_url, timeout=am.api_timeout) if am and am.api_url else None
        )
        self.alerts = AlertService(
            self.database.uow,
            self.clock,
            self.outbox,
            self.reminders,
            alert_policy(settings),
            silences=self.silences,
            ingest_uow_factory=self.database.priority_uow,
            observer=self.metrics,
            audit=self.services.audit,
            incidents=self.services.incidents,  # an alert group opens an incident
        )
        self.jobs = Jobs(
            database=self.database,
            metrics=self.metrics,
            services=self.services,
            health=self.health,
            alerts=self.alerts,
        )
        self.running_jobs = RunningJobs()
        self.scheduler = build_scheduler(self.jobs.table(settings), self.running_jobs)
        self.bot = OpsBot(
            settings,
            database=self.database,
            metrics=self.metrics,
            services=self.services,
            health=self.health,
            alerts=self.alerts,
            extensions=extensions,
        )
        self.roles.bind(self.bot)
        self._gateway_stop = asyncio.Event()
        self.gateway: Gateway | None = None
        self.delivery = DiscordDelivery(self.bot)
        self.notice_delivery = NoticeDelivery(self.bot)
        self.incident_cards = self.bot.cards
        self.devlog_posts = DevLogPosts(self.bot)
        self.status_board = StatusBoardPosts(self.bot)
        self.alert_delivery = AlertDelivery(
            self.bot,
            self.alerts,
            ChannelPacer(settings.alerts.channel_rate_limit, settings.alerts.channel_rate_period),
            horizon=settings.alerts.storm_horizon,
        )
        self.mailer = SmtpMailer(settings.smtp) if settings.smtp else None
        self._register_outbox_handlers()
        self._outbox_stop = asyncio.Event()
        self._outbox_task: asyncio.Task[None] | None = None
        self._processor_stop = asyncio.Event()
        self._processor_task: asyncio.Task[None] | None = None
        self._bot_task: asyncio.Task[None] | None = None
        self._catch_up_task: asyncio.Task[None] | None = None
        self._stopped = False
        self.spool: SpoolReader | None = None
        self.metrics.track_gateway(lambda: self.bot.latency, self.discord_reachable)
        webhook_secret = settings.github.webhook_secret
        self.web = WebServer(
            create_app(
                self.metrics,
                HealthSources(
                    self.discord_ready,
                    self.database.ping,
                    discord_state=self.discord_state,
                ),
                alertmanager_token=am.webhook_token.get_secret_value() if am else None,
                ingest=self.alerts.receive if am else None,
                github_secret=webhook_secret.get_secret_value() if webhook_secret else None,
                github_receive=self.services.devlog.receive,
            ),
            settings.web.host,
            settings.web.port,
        )

    def _register_outbox_handlers(self) -> None:
        """The handlers of the outbox kinds that leave through Discord or SMTP, and the alert
        relay's reminder (the other services' GitHub writes and reminders are registered by
        `Services.build`): each once."""
        handlers: dict[OutboxKind, OutboxHandler] = {
            OutboxKind.DISCORD_MESSAGE: self.delivery.send_message,
            OutboxKind.NOTICE: self.notice_delivery.notice,
            OutboxKind.DIRECT: self.notice_delivery.direct,
            OutboxKind.ROLE_REMOVE: self.roles.remove_item,
            OutboxKind.INCIDENT_CARD: self.incident_cards.refresh,
            OutboxKind.ALERTS_DELIVER: self.alert_delivery.deliver,
            OutboxKind.DEVLOG_POST: self.devlog_posts.deliver,
            OutboxKind.STATUS_BOARD: self.status_board.deliver,
        }
        for kind, handler in handlers.items():
            self._register_discord(kind, handler)
        for reminder_kind, reminder in self.alerts.reminder_handlers().items():
            self.reminders.register(reminder_kind, reminder)
        # Email is how an alert reaches Core Ops when Discord cannot: it never waits for Discord.
        if self.mailer is not None:
            self.outbox.register(OutboxKind.EMAIL, self.mailer.send_item)

    def _register_discord(self, kind: OutboxKind, handler: OutboxHandler) -> None:
        """Discord work waits (the kind is held, nothing is lost) until a login has reached
        Discord and loaded the cogs: a bot that cannot log in still sends its email."""

        async def when_logged_in(item: OutboxItem) -> Mapping[str, Any] | None:
            if not self.bot.logged_in:
                raise RetryLater("Discord not logged in yet", retry_after=1.0, whole_kind=True)
            return await handler(item)

        # Discord's kinds share a lane of their own: a rate-limited or hung Discord holds none
        # of the outbox's other slots (emails, GitHub writes).
        self.outbox.register(kind, when_logged_in, lane=DISCORD_LANE)

    def discord_state(self) -> str:
        """What /healthz says of Discord: ready, or where the gateway is."""
        if self.discord_ready():
            return "ready"
        return self.gateway.state if self.gateway is not None else "not started"

    def discord_ready(self) -> bool:
        return self.bot.is_ready() and not self.bot.is_closed()

    def discord_reachable(self) -> bool:
        """`hh_opsbot_discord_connected` on /metrics: ready and the gateway connection open now.
        Prometheus's `OpsBotHealthy` alert reads it (deploy/prometheus/hyperhash-alerts.yml): at 0,
        Alertmanager emails critical alerts to Core Ops itself."""
        return self.discord_ready() and websocket_open(self.bot)
