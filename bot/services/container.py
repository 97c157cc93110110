"""Every service of the process, built once from the settings (the composition root's half
that knows nothing of Discord)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.config import AccessSettings, IncidentSettings, UpgradeSettings
from bot.domain.access import AccessPolicy
from bot.domain.errors import InvalidInput
from bot.domain.incidents import IncidentPolicy
from bot.domain.permissions import PERMISSIONS
from bot.domain.ports import Clock, IssueTracker, ManifestFetcher, MemberRoles, ReleaseSource
from bot.domain.public_status import Overview
from bot.domain.roles import OpsRole
from bot.services.access import AccessService
from bot.services.audit import AuditService
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


def access_policy(settings: AccessSettings) -> AccessPolicy:
    return AccessPolicy(
        max_days=settings.max_days,
        enforce=settings.enforce,
        review_days=settings.review_days,
        strikes=settings.lockout_strikes,
        strike_window=timedelta(minutes=settings.lockout_window_minutes),
        lockout=timedelta(minutes=settings.lockout_minutes),
        approval_window=timedelta(hours=settings.approval_hours),
        reminder_days=tuple(settings.reminder_days),
    )


def incident_policy(settings: IncidentSettings) -> IncidentPolicy:
    return IncidentPolicy(
        nudge_sev1=timedelta(minutes=settings.nudge_sev1_minutes),
        nudge_sev2=timedelta(minutes=settings.nudge_sev2_minutes),
        report_due=timedelta(hours=settings.report_due_hours),
        report_warning=timedelta(hours=min(24, settings.report_due_hours)),
        miners_notice=settings.miners_notice,
    )


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
        return cls(
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
            incidents=IncidentService(
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
            ),
            upgrades=UpgradeService(
                uow_factory,
                clock,
                fetcher=fetcher or NoFetcher(),
                trusted_keys=(upgrade_settings or UpgradeSettings()).trusted_keys,
                notices=notices,
                audit=audit,
                access=access,
                check_nodes=check_nodes,
                source=release_source,
            ),
        )
