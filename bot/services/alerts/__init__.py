"""The alert relay: Alertmanager's webhook bodies become alert groups in #alerts.

One job per module; `AlertService` puts them together for the rest of the bot:

- `ingest.py`: store each webhook body at once, then apply stored bodies to their groups (the
  processor), exactly once, setting aside what cannot be applied; `spool.py`: copy in what the
  retired receiver process's spool file still holds;
- `delivery.py`: what #alerts must show next (an edit, a new message, a storm digest) and what
  Discord answered;
- `actions.py`: operators' acts (acknowledge, silence, expire, open an incident), each one use
  case with its own transaction and audit row;
- `watchdog.py`: the email fallback and the dead man's switch;
- `common.py`: the outbox kinds, the policy, the new-group cache.

Imports run one way: ingest -> watchdog, spool -> common; delivery and actions -> common. The
pure group rules are in `bot/domain/alert_rules.py`.
"""

from __future__ import annotations

from bot.domain.alert_rules import (  # re-exported
    EMBEDS_PER_MESSAGE,
    SILENCE_HOURS,
    digest_size,
    fallback_email,
    fresh_group,
    incident_draft,
    is_stale,
    updated_group,
)
from bot.domain.ports import AlertSpool, Clock, SilenceGateway, UowFactory
from bot.services.alerts.actions import (
    AlertActions,
    Expired,
    IncidentOpener,
    OpenedIncident,
    Silenced,
)
from bot.services.alerts.common import (
    AlertObserver,
    AlertPolicy,
    FreshGroups,
)
from bot.services.alerts.delivery import AlertDeliveryPlanner
from bot.services.alerts.ingest import AlertIngest
from bot.services.alerts.watchdog import AlertWatchdog
from bot.services.audit import AuditService
from bot.services.inbox import Inbox
from bot.services.outbox import OutboxService, ReminderService

__all__ = [
    "EMBEDS_PER_MESSAGE",
    "SILENCE_HOURS",
    "AlertActions",
    "AlertDeliveryPlanner",
    "AlertIngest",
    "AlertObserver",
    "AlertPolicy",
    "AlertService",
    "AlertWatchdog",
    "Expired",
    "IncidentOpener",
    "OpenedIncident",
    "Silenced",
    "digest_size",
    "fallback_email",
    "fresh_group",
    "incident_draft",
    "is_stale",
    "updated_group",
]


class AlertService:
    """The relay's parts, built once and wired together; its methods are theirs."""

    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        outbox: OutboxService,
        reminders: ReminderService,
        policy: AlertPolicy,
        *,
        silences: SilenceGateway | None = None,
        ingest_uow_factory: UowFactory | None = None,
        spool: AlertSpool | None = None,
        observer: AlertObserver | None = None,
        audit: AuditService | None = None,
        incidents: IncidentOpener | None = None,
    ) -> None:
        self.policy = policy
        self.reminders = reminders
        fresh = FreshGroups()
        self.watchdog = AlertWatchdog(uow_factory, clock, outbox, reminders, policy)
        self.intake = AlertIngest(
            uow_factory,
            clock,
            outbox,
            policy,
            self.watchdog,
            fresh,
            ingest_uow_factory=ingest_uow_factory,
            spool=spool,
            observer=observer,
        )
        self.delivery = AlertDeliveryPlanner(uow_factory, clock, policy, fresh)
        self.actions = AlertActions(
            uow_factory,
            clock,
            outbox,
            audit or AuditService(clock),
            silences=silences,
            incidents=incidents,
        )
        # ingest
        self.receive = self.intake.receive
        self.ingest = self.intake.ingest
        self.result_of = self.intake.result_of
        self.run_processor = self.intake.run_processor
        self.process_pending = self.intake.process_pending
        self.batch_limit = self.intake.batch_limit
        self.backlog = self.intake.backlog
        self.prune_spool = self.intake.spooled.prune
        # delivery planning
        self.plan = self.delivery.plan
        self.mentions_for = self.delivery.mentions_for
        self.record_posted = self.delivery.record_posted
        self.record_edited = self.delivery.record_edited
        self.forget_message = self.delivery.forget_message
        # operators' acts
        self.get_group = self.actions.get_group
        self.message_of = self.actions.message_of
        self.public_message = self.actions.public_message
        self.group_on_message = self.actions.group_on_message
        self.acknowledge = self.actions.acknowledge
        self.silence = self.actions.silence
        self.expire = self.actions.expire
        self.open_incident = self.actions.open_incident
        # the dead man's switch
        self.check_watchdog = self.watchdog.check_watchdog
        self.reminder_handlers = self.watchdog.reminder_handlers

    @property
    def inbox(self) -> Inbox:
        return self.intake.inbox

    @property
    def spool(self) -> AlertSpool | None:
        """The retired receiver process's spool file, when one is left (copied in once)."""
        return self.intake.spooled.spool

    @spool.setter
    def spool(self, spool: AlertSpool | None) -> None:
        self.intake.spooled.spool = spool

    @property
    def watchdog_arrival_pending(self) -> bool:
        """A Watchdog alert arrived that the processor has not applied yet."""
        return self.intake.watchdog_arrival_pending
