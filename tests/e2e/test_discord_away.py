"""The bot starts while Discord refuses its login: webhooks, email and jobs do not wait for it.

The email fallback exists for Discord outages, so it must run even when the bot (restarted in the
middle of one) cannot log in. Discord answers 503 to every REST call, the login included; the
outage lasts until the login has failed several times, the webhooks were accepted and the
fallback email went out; then Discord comes back, the bot connects, and every alert appears once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Application, StartupError
from bot.domain.outbox import OutboxStatus
from tests.alerting import fixture_bytes
from tests.harness.alerts import alert_sections, outbox_counts, send, shown_groups
from tests.harness.mail import Inbox, smtp_section
from tests.harness.running import running_app
from tests.harness.waiting import until, until_async
from tests.harness.world import World

pytestmark = pytest.mark.e2e

LOGIN_ATTEMPTS_REFUSED = 3


@pytest.fixture
async def app_while_discord_is_down(
    world: World, tmp_path: Path, smtp: tuple[Inbox, int]
) -> AsyncIterator[Application]:
    _inbox, smtp_port = smtp
    extra = alert_sections(world, email_fallback_after=1) + smtp_section(smtp_port)
    world.emulator.set_rest_outage(503)
    async with running_app(
        world, tmp_path, extra=extra, login_backoff=(0.05, 0.2), seed=False, wait_ready=False
    ) as app:  # app.start() returns at once: nothing waits for the gateway
        yield app


async def healthz(app: Application) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{app.settings.web.port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def test_refused_login_is_retried_while_webhooks_and_email_go_on(
    world: World, app_while_discord_is_down: Application, smtp: Any
) -> None:
    app = app_while_discord_is_down
    inbox, _port = smtp
    emulator = world.emulator

    # Discord is down: the webhook is still answered and stored, a critical alert still emailed.
    first = await send(app, fixture_bytes("01_firing_single_nodeoffline.json"))
    second = await send(app, fixture_bytes("04_firing_group_4_alerts.json"))
    await until(lambda: len(inbox.messages) >= 2, 20, "the fallback emails while Discord is down")
    texts = [m.content.decode() for m in inbox.messages]
    assert any("Subject: [hh-opsbot] CRITICAL NodeOffline" in t for t in texts), texts

    # The login is retried, and /healthz says why the bot is not on Discord.
    await until(
        lambda: app.gateway is not None and app.gateway.failed_logins >= LOGIN_ATTEMPTS_REFUSED,
        20,
        "several refused logins",
    )
    status, body = await healthz(app)
    assert status == 503 and body["failing"] == "discord", body
    assert body["discord"].startswith("login failing (HTTP 503)"), body
    assert body["database"] == "ok"
    assert not emulator.messages.get(world.channels["alerts"])

    # Discord comes back: the bot logs in, syncs its commands and shows every group once.
    emulator.set_rest_outage(None)
    await emulator.wait_ready(timeout=30)
    await emulator.wait_for_commands(world.emulator.guild_id, timeout=30)
    groups = {first["group_id"], second["group_id"]}
    await until(lambda: set(shown_groups(world)) >= groups, 30, "both groups on Discord")

    async def drained() -> bool:
        return (await outbox_counts(app)).get(OutboxStatus.PENDING.value, 0) == 0

    await until_async(drained, 30, "the outbox drained")
    shown = shown_groups(world)
    assert all(len(ids) == 1 for ids in shown.values()), shown
    assert len(inbox.messages) == 2, "one email per group, not one per login attempt"
    await until(app.discord_ready, 30, "the client's own ready")
    status, body = await healthz(app)
    assert status == 200 and body["discord"] == "ready", body
    assert (await outbox_counts(app)).get(OutboxStatus.FAILED.value, 0) == 0


async def test_a_refused_token_still_ends_the_start_with_one_line(
    world: World, tmp_path: Path
) -> None:
    """401 is a configuration error, not an outage: no retry can mend it."""
    async with running_app(
        world,
        tmp_path,
        environ={"HH_DISCORD__TOKEN": "wrong-token"},
        login_backoff=(0.05,),
        seed=False,
        start=False,
    ) as app:
        with pytest.raises(StartupError, match="Discord refused the bot token"):
            async with asyncio.timeout(30):
                await app.run()
        assert app.gateway is not None and app.gateway.failed_logins == 0
