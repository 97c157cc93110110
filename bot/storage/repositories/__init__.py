"""SQL repositories, one module per area; services see them only through the domain's Protocols.

This package re-exports every repository so `from bot.storage.repositories import X` keeps working.
"""

from bot.storage.repositories.access import (
    LIVE,
    SqlDriftRepository,
    SqlGrantRepository,
    SqlLockoutRepository,
    SqlReviewRepository,
)
from bot.storage.repositories.alerts import PENDING, SqlAlertRepository
from bot.storage.repositories.audit import AuditChainError, SqlAuditRepository
from bot.storage.repositories.devlog import SqlDevLogRepository
from bot.storage.repositories.health import SqlHealthRepository
from bot.storage.repositories.incidents import SqlIncidentRepository
from bot.storage.repositories.outbox import SqlOutboxRepository, SqlReminderRepository
from bot.storage.repositories.releases import SqlReleaseRepository

__all__ = [
    "LIVE",
    "PENDING",
    "AuditChainError",
    "SqlAlertRepository",
    "SqlAuditRepository",
    "SqlDevLogRepository",
    "SqlDriftRepository",
    "SqlGrantRepository",
    "SqlHealthRepository",
    "SqlIncidentRepository",
    "SqlLockoutRepository",
    "SqlOutboxRepository",
    "SqlReleaseRepository",
    "SqlReminderRepository",
    "SqlReviewRepository",
]
