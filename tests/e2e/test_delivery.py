"""Outbox delivery to the Discord emulator: posted once, kept through an outage, mentions safe."""

from __future__ import annotations

import asyncio

import discord
import pytest

from bot.app import Application
from bot.discord.outbound.notices import message_payload
from bot.domain.outbox import OutboxKind, OutboxStatus
from tests.harness.world import World

pytestmark = pytest.mark.e2e


async def post(app: Application, payload: dict, **kwargs) -> int:
    async with app.database.uow() as uow:
        item = await app.outbox.enqueue(uow, OutboxKind.DISCORD_MESSAGE, payload, **kwargs)
        await uow.commit()
    assert item is not None
    app.outbox.wake()
    return item.id


async def item_status(app: Application, item_id: int) -> tuple[OutboxStatus, int]:
    async with app.database.uow() as uow:
        item = await uow.outbox.get(item_id)
    assert item is not None
    return item.status, item.attempts


async def wait_status(app: Application, item_id: int, status: OutboxStatus, timeout=15) -> int:
    async with asyncio.timeout(timeout):
        while (current := await item_status(app, item_id))[0] is not status:
            await asyncio.sleep(0.05)
    return current[1]


async def test_queued_post_arrives_with_safe_mentions(world: World, app: Application) -> None:
    channel = world.channels["operations"]
    core_role = world.roles["core_ops"]
    embed = discord.Embed(title="Grant expires in 7 days", description="@everyone " + "x" * 5000)
    payload = message_payload(
        channel,
        content=f"<@&{core_role}> @everyone heads up",
        embeds=[embed],
        mention_role_ids=[core_role],
    )
    item_id = await post(app, payload)
    await wait_status(app, item_id, OutboxStatus.DONE)
    (message,) = [
        m for m in world.emulator.messages[channel] if "heads up" in (m.get("content") or "")
    ]
    assert message["content"] == f"<@&{core_role}> @everyone heads up"
    assert len(message["embeds"][0]["description"]) == 4096, "truncated to Discord's limit"
    # Only the named role may be pinged: never @everyone.
    assert message["mention_everyone"] is False
    assert message["mention_roles"] == [str(core_role)]


async def test_outage_is_retried_then_delivered_once(world: World, app: Application) -> None:
    channel = world.channels["alerts"]
    world.emulator.set_rest_outage(503)
    item_id = await post(app, message_payload(channel, content="node-7 offline"))
    async with asyncio.timeout(10):
        while (await item_status(app, item_id))[1] < 1:
            await asyncio.sleep(0.05)
    assert (await item_status(app, item_id))[0] is OutboxStatus.PENDING
    assert world.emulator.messages.get(channel, []) == []
    world.emulator.set_rest_outage(None)
    attempts = await wait_status(app, item_id, OutboxStatus.DONE, timeout=20)
    assert attempts >= 2
    assert [m["content"] for m in world.emulator.messages[channel]] == ["node-7 offline"]


async def test_refused_post_is_failed_not_retried(world: World, app: Application) -> None:
    item_id = await post(app, message_payload(999_999_999_999, content="no such channel"))
    assert await wait_status(app, item_id, OutboxStatus.FAILED) == 1, "one attempt, no retry"
