"""Shared by the alert relay's tests: the real Alertmanager captures, and a wired service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.services.alerts import AlertPolicy, AlertService
from bot.services.outbox import OutboxService, ReminderService
from bot.storage.database import Database

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager"
WEBHOOK_TOKEN = "lab-secret-token-123"  # the captures' dummy token
ALERTS_CHANNEL = 600000000000000012
OPERATIONS_CHANNEL = 600000000000000011
CRITICAL_ROLE = 600000000000000021


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_bytes(name))
    return data


def storm(kind: str = "firing") -> list[bytes]:
    lines = (FIXTURES / f"storm_50_groups_{kind}.jsonl").read_bytes().splitlines()
    return [line for line in lines if line.strip()]


def policy(**overrides: Any) -> AlertPolicy:
    values: dict[str, Any] = {
        "alerts_channel_id": ALERTS_CHANNEL,
        "operations_channel_id": OPERATIONS_CHANNEL,
        "mention_roles": {"critical": (CRITICAL_ROLE,)},
        "batch_wait": 0.0,
    }
    values.update(overrides)
    return AlertPolicy(**values)


def wire(database: Database, clock: Any, **overrides: Any) -> tuple[AlertService, OutboxService]:
    outbox = OutboxService(database.uow, clock)
    reminders = ReminderService(database.uow, clock)
    service = AlertService(database.uow, clock, outbox, reminders, policy(**overrides))
    # As the composition root does (bot/app/compose.py).
    for kind, handler in service.reminder_handlers().items():
        reminders.register(kind, handler)
    return service, outbox
