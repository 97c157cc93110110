"""The alert relay seen from outside, for the e2e tests that run it: the config sections, a
webhook POSTed as Alertmanager does (and waited for until applied), what #alerts shows."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy import func, select

from bot.storage.models import OutboxEntry
from tests.alerting import WEBHOOK_TOKEN
from tests.harness.waiting import eventually_async
from tests.harness.world import World

if TYPE_CHECKING:
    from bot.app import Application


def alert_sections(
    world: World, api_url: str | None = None, alertmanager_extra: str = "", **alerts: Any
) -> str:
    """`[alertmanager]`, `[alerts]` (short batch and check intervals; `alerts` override keys)
    and a quick `[outbox]`: TOML for `running_app(extra=...)`."""
    settings = {
        "mention_roles": f"{{ critical = [{world.roles['core_ops']}] }}",
        "batch_wait": "0.3",
        "check_interval": "0.3",
        **{k: (json.dumps(v) if isinstance(v, str) else str(v)) for k, v in alerts.items()},
    }
    lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
    return f"""
[alertmanager]
webhook_token = "{WEBHOOK_TOKEN}"
{f'api_url = "{api_url}"' if api_url else ""}
api_timeout = 2
{alertmanager_extra}

[alerts]
{lines}

[outbox]
max_backoff = 2
idle_poll = 1
"""


async def send(app: Application, body: bytes) -> dict[str, Any]:
    """POST like Alertmanager; then, once the processor has applied the stored body, its
    outcome ("accepted", "stale", "watchdog") and group instead of the webhook's "accepted"."""
    url = f"http://127.0.0.1:{app.settings.web.port}/webhooks/alertmanager"
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        data: dict[str, Any] = await r.json()
    if data["status"] == "accepted":
        assert "group_id" not in data, "the webhook answers before the group is updated"

        async def applied() -> Any:
            result = await app.alerts.result_of(data["notification_id"])
            return result if result is not None and result.outcome != "pending" else None

        result = await eventually_async(applied, 10, "the stored body applied")
        data["status"] = result.outcome
        if result.group_id is not None:
            data["group_id"] = result.group_id
    return data


def alerts_in(world: World) -> list[dict[str, Any]]:
    return list(world.emulator.messages.get(world.channels["alerts"], []))


def shown_groups(world: World) -> dict[int, list[str]]:
    """Group id -> ids of the messages that show it (a group must appear in exactly one)."""
    shown: dict[int, list[str]] = {}
    for message in alerts_in(world):
        for embed in message["embeds"]:
            if embed["title"].startswith("Alert storm digest"):
                ids = [int(i) for i in re.findall(r"· #(\d+)$", embed["description"], re.M)]
            else:
                footer = (embed.get("footer") or {}).get("text", "")
                ids = [int(i) for i in re.findall(r"alert group #(\d+)", footer)]
            for group_id in ids:
                shown.setdefault(group_id, []).append(message["id"])
    return shown


async def outbox_counts(app: Application) -> dict[str, int]:
    """Outbox items by status ("pending", "done", "failed")."""
    async with app.database.sessions() as session:
        rows = await session.execute(
            select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)
        )
        return {status: n for status, n in rows.all()}
