"""The outbox handler that turns `alerts.deliver` items into posts and edits in #alerts.

Discord limits messages per channel (about 5 per 5 s) with a *shared* limit that it does not
advertise in advance, so a client that waits for 429s gets one per message in a storm. The
pacer keeps the bot under the limit by construction: it counts its own posts and edits per
channel (a sliding window, measured when Discord answered) and, when the window is full, hands
the item back to the outbox worker with `RetryLater(retry_after=...)` instead of sending.

One lock serialises planning and sending, so a digest that shows twenty groups is planned once
and the twenty groups' own items find them shown (`plan()` returns None) and finish at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.outbound.errors import bounded, classify
from bot.discord.sending import allowed_mentions, nonce_for
from bot.domain.alerts import DeliveryPlan
from bot.domain.outbox import OutboxItem, RetryLater
from bot.services.alerts import AlertService
from cogs.alerts.render import digest_embeds, group_embed, message_content
from cogs.alerts.views import digest_view, group_view

if TYPE_CHECKING:
    from bot.discord.client import OpsBot

log = logging.getLogger(__name__)

INLINE_WAIT = 0.25
"""A wait this short is slept; a longer one goes back to the worker as RetryLater."""
PACING = "pacing #alerts under Discord's channel limit"


class ChannelPacer:
    """At most `limit` sends per `period` seconds per channel, by the sender's own count."""

    def __init__(
        self, limit: int = 5, period: float = 5.0, margin: float = 0.05, min_gap: float = 0.15
    ) -> None:
        self.limit = limit
        self.period = period
        self.margin = margin
        self.min_gap = min_gap
        """Even within the window's allowance, sends are this far apart: a storm's first five
        digests then cost the bot's loop 0.6 s of small pieces, not one burst in which
        webhooks queue."""
        self._sent: dict[int, deque[float]] = {}

    def wait(self, channel_id: int) -> float:
        sent = self._sent.get(channel_id)
        if not sent:
            return 0.0
        gap = sent[-1] + self.min_gap - time.monotonic()
        if len(sent) < self.limit:
            return max(0.0, gap)
        return max(0.0, gap, sent[0] + self.period + self.margin - time.monotonic())

    def capacity(self, channel_id: int, horizon: float) -> int:
        """About how many sends the channel takes in the next `horizon` seconds."""
        now = time.monotonic()
        recent = sum(1 for t in self._sent.get(channel_id, ()) if t > now - self.period)
        return max(self.limit - recent, 0) + int(
            self.limit * max(horizon - self.period, 0) / self.period
        )

    def record(self, channel_id: int) -> None:
        self._sent.setdefault(channel_id, deque(maxlen=self.limit)).append(time.monotonic())


class AlertDelivery:
    def __init__(
        self, bot: OpsBot, service: AlertService, pacer: ChannelPacer, *, horizon: float = 10.0
    ) -> None:
        self.bot = bot
        self.service = service
        self.pacer = pacer
        self.horizon = horizon
        self._lock = asyncio.Lock()

    async def deliver(self, item: OutboxItem) -> Mapping[str, Any]:
        async with self._lock:
            channel_id = self.service.policy.alerts_channel_id
            wait = self.pacer.wait(channel_id)
            if wait > INLINE_WAIT:
                # The channel is full for a while: this item and every other one wait, without
                # a query each (a storm has a thousand of them).
                raise RetryLater(PACING, retry_after=wait, whole_kind=True)
            plan = await self.service.plan(
                item.payload, capacity=self.pacer.capacity(channel_id, self.horizon)
            )
            if plan is None:
                return {"shown": True}
            wait = self.pacer.wait(plan.channel_id)
            if wait > INLINE_WAIT:
                raise RetryLater(PACING, retry_after=wait, whole_kind=True)
            if wait > 0:
                await asyncio.sleep(wait)
            return await self._send(plan, item)

    async def _send(self, plan: DeliveryPlan, item: OutboxItem) -> Mapping[str, Any]:
        now = self.service_clock_now()
        channel = self.bot.get_partial_messageable(plan.channel_id)
        if plan.digest:
            embeds = digest_embeds(plan.groups, now)
            view = digest_view(plan.groups)
        else:
            (group,) = plan.groups
            embeds = [group_embed(group, now)]
            view = group_view(group, now)
        mentions = allowed_mentions({"mention_role_ids": list(plan.mention_role_ids)})
        try:
            if plan.message is not None:
                partial = channel.get_partial_message(plan.message.message_id)
                try:
                    async with bounded(self.bot):
                        await partial.edit(embeds=embeds, view=view, allowed_mentions=mentions)
                except discord.NotFound:
                    # Someone deleted the message: show the groups again in a new one.
                    await self.service.forget_message(plan)
                    raise RetryLater("alert message was deleted", retry_after=0) from None
                self.bot.metrics.alert_messages.labels("edit").inc()
                await self.service.record_edited(plan)
                return {"edited": plan.message.message_id, "groups": len(plan.groups)}
            async with bounded(self.bot):
                message = await channel.send(
                    content=message_content(plan.groups, plan.mention_role_ids),
                    embeds=embeds,
                    view=view or discord.utils.MISSING,
                    allowed_mentions=mentions,
                    nonce=nonce_for("a", item),
                )
        except RetryLater:
            raise
        except Exception as exc:
            raise classify(exc) from exc
        finally:
            self.pacer.record(plan.channel_id)
        self.bot.metrics.alert_messages.labels("digest" if plan.digest else "post").inc()
        await self.service.record_posted(plan, message.id)
        return {"posted": message.id, "groups": len(plan.groups)}

    def service_clock_now(self) -> Any:
        return self.bot.clock.now()
