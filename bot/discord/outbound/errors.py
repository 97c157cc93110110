"""The one classification of Discord's (and the network's) errors, for every outbound handler.

Discord outages, rate limits and network trouble are `RetryLater`; refusals (400, 403, 404) are
`PermanentFailure`, since sending the same request again would be refused again. Nothing waits
long: a 429 whose Retry-After exceeds `[discord] max_ratelimit_timeout` is raised by discord.py
at once and becomes the item's own `retry_after`, and every REST call is bounded by
`[discord] send_timeout` (`bounded`: a call that hangs becomes a retry).

Role changes asked for by a member (bot/discord/outbound/roles.py) use the same verdicts, turned
into words for that member.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.domain.outbox import PermanentFailure, RetryLater

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

# Discord's JSON error codes the bot acts on.
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011
CANNOT_DM = 50007
MISSING_PERMISSIONS = 50013


def classify(exc: Exception) -> Exception:
    """Map a Discord or network error onto the worker's retry policy: `RetryLater`,
    `PermanentFailure`, or (not Discord's, not the network's) the error itself."""
    if isinstance(exc, discord.RateLimited):
        return RetryLater("rate limited", retry_after=exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        if exc.status >= 500:
            return RetryLater(f"Discord {exc.status}")
        if exc.status == 429:
            return RetryLater("rate limited")
        return PermanentFailure(f"Discord {exc.status} ({exc.code}): {exc.text[:200]}")
    if isinstance(exc, TimeoutError):
        return RetryLater("no answer from Discord in time")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return RetryLater(f"network: {type(exc).__name__}")
    return exc


def is_discords(exc: Exception) -> bool:
    """Did Discord (or the way to it) cause this: anything `classify` has a verdict for."""
    return classify(exc) is not exc


def bounded(bot: OpsBot) -> asyncio.Timeout:
    """Wraps one Discord REST call: at most `[discord] send_timeout`, then `TimeoutError`."""
    return asyncio.timeout(bot.settings.discord.send_timeout)
