"""`hh_opsbot_discord_connected` on /metrics goes to 0 when the gateway connection drops and the
bot cannot reconnect, though discord.py still calls itself ready: Prometheus's OpsBotHealthy reads
it, and Alertmanager emails critical alerts to Core Ops while it is 0 (issue 15 §4)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bot.app import Application
from tests.harness.running import running_app
from tests.harness.waiting import until_async
from tests.harness.world import World

pytestmark = pytest.mark.e2e


async def connected(app: Application) -> float:
    url = f"http://127.0.0.1:{app.settings.web.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    (line,) = (s for s in text.splitlines() if s.startswith("hh_opsbot_discord_connected "))
    return float(line.split()[1])


async def test_gateway_lost_is_discord_unreachable_on_metrics(world: World, tmp_path: Path) -> None:
    emulator = world.emulator
    async with running_app(world, tmp_path) as app:
        assert await connected(app) == 1.0

        emulator.set_gateway_outage(503)
        await emulator.close_gateway()

        async def unreachable() -> bool:
            return await connected(app) == 0.0

        await until_async(unreachable, 20, "hh_opsbot_discord_connected 0")
        assert app.discord_ready(), "discord.py still says ready: the metric must not rely on it"

        emulator.set_gateway_outage(None)

        async def reachable() -> bool:
            return await connected(app) == 1.0

        await until_async(reachable, 30, "hh_opsbot_discord_connected 1 after the reconnect")
