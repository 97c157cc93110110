"""Every service of the process, built once from the settings (the composition root's half
that knows nothing of Discord)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.app.policies import access_policy, devlog_policy, incident_policy
from bot.config import AccessSettings, GitHubSettings, IncidentSettings, UpgradeSettings
from bot.domain.errors import InvalidInput
from bot.domain.permissions import PERMISSIONS
from bot.domain.ports import Clock, IssueTracker, ManifestFetcher, MemberRoles, ReleaseSource
from bot.domain.public_status import Overview
from bot.domain.roles import OpsRole
from bot.services.access import AccessService
from bot.services.audit import AuditService
from bot.services.devlog import DevLogService
from bot.services.grants import GrantService
from bot.services.incidents import IncidentObserver, IncidentService
from bot.services.lockout import LockoutService
from bot.services.notices import Notices
from bot.services.outbox import OutboxService, ReminderService, UowFactory
from bot.services.review import ReviewService
from bot.services.upgrades import UpgradeService


class NoFetcher:
    """A process without HTTP fetching (some tests): every announce is refused, clearly."""

    async def fetch(self, url: str, *, cross_host: bool = False) -> bytes:
        raise InvalidInput("Fetching release manifests is not available in this process.")


@dataclass
class Services:
    access: AccessService
    audit: AuditService
    outbox: OutboxService
    reminders: ReminderService
    notices: Notices
    lockouts: LockoutService
    grants: GrantService
    reviews: ReviewService
    incidents: IncidentService
    upgrades: UpgradeService
    devlog: DevLogService

    @classmethod
    def build(
        cls,
        uow_factory: UowFactory,
        clock: Clock,
        *,
        access_settings: AccessSettings,
        roles: MemberRoles,
        owner_ids: frozenset[int],
        permissions: dict[str, frozenset[OpsRole] | None] | None = None,
        outbox_max_backoff: float = 300.0,
        outbox_idle_poll: float = 5.0,
        incident_settings: IncidentSettings | None = None,
        tracker: IssueTracker | None = None,
        observer: IncidentObserver | None = None,
        guild_id: int | None = None,
        upgrade_settings: UpgradeSettings | None = None,
        fetcher: ManifestFetcher | None = None,
        check_nodes: Callable[[], Awaitable[Overview]] | None = None,
        release_source: ReleaseSource | None = None,
        github_settings: GitHubSettings | None = None,
    ) -> Services:
        policy = access_policy(access_settings)
        audit = AuditService(clock, uow_factory)
        outbox = OutboxService(
            uow_factory, clock, max_backoff=outbox_max_backoff, idle_poll=outbox_idle_poll
        )
        reminders = ReminderService(uow_factory, clock)
        notices = Notices(outbox)
        grants = GrantService(
            uow_factory,
            clock,
            policy,
            roles=roles,
            notices=notices,
            reminders=reminders,
            audit=audit,
            owner_ids=owner_ids,
        )
        access = AccessService(permissions if permissions is not None else PERMISSIONS)
        incidents = IncidentService(
            uow_factory,
            clock,
            incident_policy(incident_settings or IncidentSettings()),
            outbox=outbox,
            reminders=reminders,
            notices=notices,
            audit=audit,
            tracker=tracker,
            observer=observer,
            guild_id=guild_id,
        )
        upgrades = UpgradeService(
            uow_factory,
            clock,
            fetcher=fetcher or NoFetcher(),
            trusted_keys=(upgrade_settings or UpgradeSettings()).trusted_keys,
            notices=notices,
            audit=audit,
            access=access,
            check_nodes=check_nodes,
            source=release_source,
        )
        services = cls(
            access=access,
            audit=audit,
            outbox=outbox,
            reminders=reminders,
            notices=notices,
            lockouts=LockoutService(uow_factory, clock, policy, audit=audit, notices=notices),
            grants=grants,
            reviews=ReviewService(
                uow_factory, clock, grants, audit=audit, notices=notices, owner_ids=owner_ids
            ),
            incidents=incidents,
            upgrades=upgrades,
            devlog=DevLogService(
                uow_factory,
                clock,
                devlog_policy(github_settings or GitHubSettings()),
                outbox=outbox,
                incidents=incidents,
                upgrades=upgrades,
            ),
        )
        services.register_handlers()
        return services

    def register_handlers(self) -> None:
        """Every reminder and non-Discord outbox handler of these services, registered once.
        (Discord's handlers and email are registered by `bot/app/compose.py`.)"""
        for reminders in (self.grants.reminder_handlers(), self.incidents.reminder_handlers()):
            for reminder_kind, reminder in reminders.items():
                self.reminders.register(reminder_kind, reminder)
        for handlers in (self.incidents.outbox_handlers(), self.devlog.outbox_handlers()):
            for kind, handler in handlers.items():
                self.outbox.register(kind, handler)
