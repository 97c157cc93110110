"""The Discord gateway, logged in apart from everything else: a refused or failing login is
retried with backoff while the web server, the scheduler and email go on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aiohttp
import discord
import yarl

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

LOGIN_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Seconds between Discord login attempts while Discord or the network fails (the last repeats)."""


def point_discord_at(api_base: str, gateway_url: str | None) -> None:
    """Redirect discord.py (REST proxies, the test emulator). Must run before `start()`."""
    discord.http.Route.BASE = api_base
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def websocket_open(client: discord.Client) -> bool:
    """Whether the gateway connection is open now. discord.py keeps `is_ready()` true while it
    reconnects (a lost network, Discord down): this is what says the bot cannot reach Discord."""
    ws = getattr(client, "ws", None)
    return ws is not None and bool(ws.open)


class Gateway:
    """Logs the bot in, retrying with backoff while Discord answers 5xx or the network fails,
    then stays connected (discord.py reconnects by itself). Nothing else waits for it: the web
    server, the scheduler and the outbox (email included) run from the start.

    A refused token or a missing privileged intent ends the process with one line: those are
    configuration errors that no retry mends."""

    def __init__(self, bot: OpsBot, token: str, backoff: tuple[float, ...] = LOGIN_BACKOFF) -> None:
        self._bot = bot
        self._token = token
        self._backoff = backoff
        self.state = "starting"
        self.failed_logins = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.state = "logging in"
            try:
                await self._bot.login(self._token)
                break
            except (discord.LoginFailure, discord.PrivilegedIntentsRequired):
                self.state = "refused"
                raise
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                await self._reset_http()
                delay = self._backoff[min(self.failed_logins, len(self._backoff) - 1)]
                self.failed_logins += 1
                reason = (
                    f"HTTP {exc.status}"
                    if isinstance(exc, discord.HTTPException)
                    else type(exc).__name__
                )
                self.state = f"login failing ({reason}); retrying"
                log.warning(
                    "Discord login failed (%s); retrying in %gs. Webhooks, alerts by email and "
                    "scheduled jobs go on meanwhile",
                    reason,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return
        self.state = "connecting"
        await self._bot.connect(reconnect=True)

    async def _reset_http(self) -> None:
        """A failed login leaves discord.py's HTTP session open: close it, so the next attempt
        starts clean (static_login opens a new one each time)."""
        with contextlib.suppress(Exception):
            await self._bot.http.close()
        self._bot.http.connector = discord.utils.MISSING
        self._bot.http.clear()
