"""Delivery planning: what #alerts must show next, and what Discord answered.

The outbox handler (the transport, in cogs/alerts) asks `plan()` what to send for one
`alerts.deliver` item: an edit of the group's message, its own new message, or, during a storm,
a digest that shows many new groups at once; then tells `record_*()` what Discord answered.
Every plan is rendered from the latest stored state, so a replay sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.alert_rules import digest_size, mention_roles
from bot.domain.alerts import AlertGroup, DeliveryPlan
from bot.domain.outbox import OutboxKind
from bot.domain.ports import Clock, UnitOfWork, UowFactory
from bot.services.alerts.common import AlertPolicy, FreshGroups

RENDERED_CACHE = 10_000
"""Versions this process has shown, so an already-shown item needs no transaction."""


class AlertDeliveryPlanner:
    def __init__(
        self, uow_factory: UowFactory, clock: Clock, policy: AlertPolicy, fresh: FreshGroups
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self.policy = policy
        self._fresh = fresh
        self._rendered: dict[int, int] = {}

    async def plan(
        self, payload: Mapping[str, Any], capacity: int | None = None
    ) -> DeliveryPlan | None:
        """What to send for one `alerts.deliver` item; None when Discord already shows it.

        `capacity` is how many messages the channel can take in the next ~10 s (the transport
        knows its rate budget); when more new groups wait than that, they go out as digests.
        """
        group_id, version = int(payload["group_id"]), int(payload["version"])
        if self._rendered.get(group_id, 0) >= version:
            return None  # shown by a message this process sent (a digest's other items)
        policy = self.policy
        threshold = policy.storm_threshold if capacity is None else max(capacity, 1)
        async with self._uow_factory() as uow:
            group = await uow.alerts.get_group(group_id)
            if group is None or group.rendered_version >= version:
                return None
            if group.message_ref is not None:
                message = await uow.alerts.get_message(group.message_ref)
                if message is not None:
                    members = [group]
                    if message.digest:
                        members = [
                            g
                            for g in await uow.alerts.groups(list(message.group_ids))
                            if g.message_ref == message.id
                        ]
                    return DeliveryPlan(
                        channel_id=message.channel_id,
                        groups=tuple(members),
                        digest=message.digest,
                        message=message,
                    )
            pending = await uow.alerts.count_pending_new()
            if pending <= threshold:
                return DeliveryPlan(
                    channel_id=policy.alerts_channel_id,
                    groups=(group,),
                    digest=False,
                    mention_role_ids=self.mentions_for([group]),
                )
            size = digest_size(pending, threshold, policy.digest_max_groups)
            waiting = await uow.alerts.pending_new_versions(size)
            known = {
                group_id: cached
                for group_id, version in waiting
                if (cached := self._fresh.get(group_id)) is not None and cached.version == version
            }
            loaded = await uow.alerts.groups([i for i, _ in waiting if i not in known])
            by_id = {**known, **{g.id: g for g in loaded}}
            others = [by_id[i] for i, _ in waiting if i in by_id]
        members = [group, *[g for g in others if g.id != group.id]][:size]
        return DeliveryPlan(
            channel_id=policy.alerts_channel_id,
            groups=tuple(members),
            digest=True,
            mention_role_ids=self.mentions_for(members),
        )

    def mentions_for(self, groups: Sequence[AlertGroup]) -> tuple[int, ...]:
        """The roles `[alerts] mention_roles` names for the firing groups' severities."""
        return mention_roles(groups, self.policy.mention_roles)

    async def record_posted(self, plan: DeliveryPlan, message_id: int) -> None:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            message = await uow.alerts.add_message(
                plan.channel_id, message_id, plan.digest, [g.id for g in plan.groups], now
            )
            await uow.alerts.mark_posted({g.id: g.version for g in plan.groups}, message.id, now)
            for shown in plan.groups:
                self._fresh.forget(shown.id)
            # Email fallbacks that come due now find `posted_at` set and send nothing.
            await self._settle(uow, plan, now)
            await uow.commit()
        self._shown(plan)

    async def forget_message(self, plan: DeliveryPlan) -> None:
        """The message is gone from Discord: its groups will be posted again."""
        if plan.message is None:
            return
        async with self._uow_factory() as uow:
            await uow.alerts.clear_message(plan.message.id)
            await uow.commit()
        self._rendered.clear()  # rare: let every plan ask the database again

    async def record_edited(self, plan: DeliveryPlan) -> None:
        async with self._uow_factory() as uow:
            await uow.alerts.mark_rendered({g.id: g.version for g in plan.groups})
            await self._settle(uow, plan, self._clock.now())
            await uow.commit()
        self._shown(plan)

    def _shown(self, plan: DeliveryPlan) -> None:
        """Remember what Discord shows now, so the other waiting items of a digest's groups
        are answered without a transaction each."""
        for group in plan.groups:
            self._rendered.pop(group.id, None)
            self._rendered[group.id] = group.version
        while len(self._rendered) > RENDERED_CACHE:
            del self._rendered[next(iter(self._rendered))]

    async def _settle(self, uow: UnitOfWork, plan: DeliveryPlan, now: datetime) -> None:
        """The groups' waiting items that this message already shows are done: a digest of
        forty groups settles forty items in one statement instead of forty plans."""
        shown = {f"alerts:{g.id}": g.version for g in plan.groups}
        items = await uow.outbox.pending_for_keys(OutboxKind.ALERTS_DELIVER, list(shown))
        done = [
            item.id
            for item in items
            if int(item.payload.get("version", 0)) <= shown[item.ordering_key or ""]
        ]
        await uow.outbox.complete_many(done, now, {"shown": True})
