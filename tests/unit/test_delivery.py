"""Discord outbox handlers: every REST call bounded by [discord] send_timeout, posts idempotent.

A call that hangs must become the worker's RetryLater (its slot freed, the item retried), and a
retried post must carry the same nonce, so Discord keeps one message if the first one did land.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest

from bot.discord.outbound.cards import IncidentCards
from bot.discord.outbound.errors import classify
from bot.discord.outbound.notices import DiscordDelivery, message_payload
from bot.discord.outbound.roles import DiscordMemberRoles
from bot.domain.incidents import IncidentPolicy, Severity
from bot.domain.outbox import OutboxItem, OutboxKind, RetryLater
from bot.domain.roles import OpsRole
from cogs.incidents import CardLook
from cogs.incidents import render as card_render

SEND_TIMEOUT = 0.05


class HungChannel:
    """A channel whose every call waits for an answer that never comes."""

    def __init__(self) -> None:
        self.sends: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> Any:
        self.sends.append(kwargs)
        await asyncio.Event().wait()

    def get_partial_message(self, message_id: int) -> HungChannel:
        return self

    async def edit(self, **kwargs: Any) -> Any:
        await asyncio.Event().wait()


class HungHTTP:
    async def remove_role(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.Event().wait()


def hung_bot(channel: HungChannel) -> Any:
    settings = SimpleNamespace(
        discord=SimpleNamespace(send_timeout=SEND_TIMEOUT, guild_id=1),
        channels=SimpleNamespace(operations=5),
    )
    incident = SimpleNamespace(
        id=1,
        commander_id=None,
        report_at=None,
        card_channel_id=5,
        card_message_id=6,
        severity=Severity.SEV1,
        is_open=True,
        last_update_at=datetime(2026, 1, 1, tzinfo=UTC),
    )

    async def get_by_id(_incident_id: int) -> Any:
        return incident

    return SimpleNamespace(
        settings=settings,
        http=HungHTTP(),
        get_partial_messageable=lambda _channel_id: channel,
        role_map=SimpleNamespace(role_id=lambda _role: 11),
        services=SimpleNamespace(
            incidents=SimpleNamespace(
                get_by_id=get_by_id, github_configured=False, policy=IncidentPolicy()
            )
        ),
    )


def item(payload: dict[str, Any], item_id: int = 42) -> OutboxItem:
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    return OutboxItem(
        id=item_id,
        kind=OutboxKind.DISCORD_MESSAGE,
        payload=payload,
        ordering_key=None,
        attempts=0,
        created_at=now,
        available_at=now,
    )


async def test_a_hung_post_becomes_a_retry() -> None:
    channel = HungChannel()
    delivery = DiscordDelivery(cast(Any, hung_bot(channel)))
    async with asyncio.timeout(5):
        with pytest.raises(RetryLater, match="no answer"):
            await delivery.send_message(item(message_payload(5, content="hello")))


async def test_a_hung_role_removal_or_card_edit_becomes_a_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(card_render, "card", lambda *_a, **_k: discord.Embed(title="INC-1"))
    monkeypatch.setattr(card_render, "card_content", lambda *_a, **_k: "INC-1")
    bot = hung_bot(HungChannel())
    async with asyncio.timeout(5):
        roles = DiscordMemberRoles(1, {OpsRole.CORE_OPS: 11})
        roles.bind(bot)
        with pytest.raises(RetryLater):
            await roles.remove_item(item({"role": "core_ops", "member_id": 7, "reason": "expired"}))
        with pytest.raises(RetryLater):
            await IncidentCards(bot, CardLook()).refresh(item({"incident_id": 1}))


async def test_a_retried_post_carries_the_same_nonce() -> None:
    channel = HungChannel()
    delivery = DiscordDelivery(cast(Any, hung_bot(channel)))
    async with asyncio.timeout(5):
        for _ in range(2):
            with pytest.raises(RetryLater):
                await delivery.send_message(item(message_payload(5, content="hi"), item_id=42))
        with pytest.raises(RetryLater):
            await delivery.send_message(item(message_payload(5, content="hi"), item_id=43))
    nonces = [send["nonce"] for send in channel.sends]
    assert nonces[0] == nonces[1] != nonces[2]
    assert all(len(n) <= 25 for n in nonces), "Discord's limit on a nonce"


def test_a_long_rate_limit_is_the_workers_retry_after() -> None:
    retry = classify(discord.RateLimited(120.0))
    assert isinstance(retry, RetryLater) and retry.retry_after == 120.0
