"""Operators' acts on an alert group: acknowledge, silence, expire the silence, open an incident.

Each act is one use case (the contract of design.md): it opens its own unit of work, changes the
group, writes its audit row and the durable edit of the group's message, commits and wakes the
worker. A refusal (a resolved group, a bad choice, Alertmanager unreachable) raises before
anything is written. Alertmanager is called before the transaction, never inside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, NamedTuple, Protocol

from bot.domain.alert_rules import (
    acknowledged,
    actionable,
    incident_draft,
    silence_comment,
    silence_matchers,
    silenced,
    with_incident,
)
from bot.domain.alerts import AlertGroup, AlertMessage, Silence
from bot.domain.errors import InvalidInput, NotFound, Unavailable
from bot.domain.incidents import Incident
from bot.domain.outbox import OutboxKind
from bot.domain.ports import Clock, SilenceGateway, UnitOfWork, UowFactory
from bot.domain.roles import Actor
from bot.services.audit import AuditService
from bot.services.outbox import OutboxService

REFRESH_DELAY = 3.0
"""The durable edit of a group's message waits this long: the interaction's own answer shows
the new state first, and a burst of presses costs one edit."""
NO_SILENCES = "Silences need `[alertmanager] api_url` in the bot's configuration."


class IncidentOpener(Protocol):
    """The incidents' use case an alert group opens one with (`IncidentService.open`)."""

    async def open(
        self,
        actor: Actor,
        *,
        severity: int,
        title: str,
        summary: str | None = None,
        nodes: str | None = None,
        then: Callable[[UnitOfWork, Incident], Awaitable[None]] | None = None,
    ) -> Incident: ...


class Silenced(NamedTuple):
    group: AlertGroup
    silence: Silence


class Expired(NamedTuple):
    group: AlertGroup
    silence_id: str


class OpenedIncident(NamedTuple):
    group: AlertGroup
    incident: Incident | None
    """The incident this press opened; None when the group had one already (its incident_ref)."""


class _AlreadyLinked(Exception):
    """Another press linked an incident first: this one's incident is rolled back."""

    def __init__(self, group: AlertGroup) -> None:
        super().__init__(group.incident_ref)
        self.group = group


class AlertActions:
    def __init__(
        self,
        uow_factory: UowFactory,
        clock: Clock,
        outbox: OutboxService,
        audit: AuditService,
        *,
        silences: SilenceGateway | None = None,
        incidents: IncidentOpener | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._outbox = outbox
        self._audit = audit
        self._silences = silences
        self._incidents = incidents

    # -- reading ---------------------------------------------------------------------------------

    async def get_group(self, group_id: int) -> AlertGroup:
        async with self._uow_factory() as uow:
            group = await uow.alerts.get_group(group_id)
        if group is None:
            raise NotFound("That alert group no longer exists.")
        return group

    async def message_of(self, group: AlertGroup) -> AlertMessage | None:
        """The #alerts message that shows the group (None before it is posted)."""
        if group.message_ref is None:
            return None
        async with self._uow_factory() as uow:
            return await uow.alerts.get_message(group.message_ref)

    async def public_message(self, group_id: int) -> AlertMessage | None:
        """The #alerts message of group `group_id` (None before it is posted); NotFound."""
        return await self.message_of(await self.get_group(group_id))

    async def group_on_message(self, group_id: int, message_id: int) -> AlertGroup:
        """A group picked from a digest: it must be one that this Discord message shows (a
        forged choice names another group, or none)."""
        async with self._uow_factory() as uow:
            group = await uow.alerts.get_group(group_id)
            message = (
                await uow.alerts.get_message(group.message_ref)
                if group is not None and group.message_ref is not None
                else None
            )
        if group is None or message is None or message.message_id != message_id:
            raise InvalidInput("That alert group is not on this message.")
        return group

    # -- the acts --------------------------------------------------------------------------------

    async def acknowledge(self, actor: Actor, group_id: int) -> AlertGroup:
        """`actor` takes the alert. Idempotent: once taken, a press changes nothing and writes
        no row of its own (the first ack stays)."""
        async with self._uow_factory() as uow:
            group = actionable(await uow.alerts.get_group(group_id, for_update=True))
            taken = acknowledged(group, actor, self._clock.now())
            if taken is None:
                return group
            await self._save(uow, taken)
            await self._record(uow, actor, "alerts:ack", taken, {})
            await uow.commit()
        self._wake()
        return taken

    async def silence(self, actor: Actor, group_id: int, hours: int, *, link: str) -> Silenced:
        """A silence of `hours` in Alertmanager for the group's common labels, then kept on the
        group. `link` (the group's message) goes into the silence's comment."""
        group = await self.get_group(group_id)
        matchers = silence_matchers(group, hours)
        if self._silences is None:
            raise Unavailable(NO_SILENCES)
        now = self._clock.now()
        silence = await self._silences.create_silence(
            matchers,
            now,
            now + timedelta(hours=hours),
            created_by=f"{actor.name} (Discord {actor.id})",
            comment=silence_comment(actor, hours, link),
        )
        async with self._uow_factory() as uow:
            group = await self._set_silence(uow, group_id, silence, actor)
            details = {"silence_id": silence.id, "hours": hours, "matchers": dict(silence.matchers)}
            await self._record(uow, actor, "alerts:silence", group, details)
            await uow.commit()
        self._wake()
        return Silenced(group, silence)

    async def expire(self, actor: Actor, group_id: int) -> Expired:
        """End the group's silence in Alertmanager, then forget it on the group."""
        group = await self.get_group(group_id)
        silence_id = group.silence_id
        if silence_id is None:
            raise InvalidInput("This alert group has no silence to expire.")
        if self._silences is None:
            raise Unavailable(NO_SILENCES)
        await self._silences.expire_silence(silence_id)
        async with self._uow_factory() as uow:
            group = await self._set_silence(uow, group_id, None, actor)
            await self._record(uow, actor, "alerts:expire", group, {"silence_id": silence_id})
            await uow.commit()
        self._wake()
        return Expired(group, silence_id)

    async def open_incident(self, actor: Actor, group_id: int) -> OpenedIncident:
        """Open an incident drafted from a firing group and link it, in one transaction: the
        incident's own audit row (`incident open`) is the press's row. Once per episode: a
        group that has one (or gets one from a concurrent press) opens none."""
        if self._incidents is None:
            raise Unavailable("Incidents are not available in this process.")
        group = await self.get_group(group_id)
        if not group.firing:
            raise InvalidInput("This alert group is resolved: open an incident with /incident.")
        if group.incident_ref is not None:
            return OpenedIncident(group, None)
        linked: list[AlertGroup] = []

        async def link(uow: UnitOfWork, incident: Incident) -> None:
            current = actionable(
                await uow.alerts.get_group(group_id, for_update=True), group.episode
            )
            updated = with_incident(current, incident.ref)
            if updated is None:
                raise _AlreadyLinked(current)
            await self._save(uow, updated)
            linked.append(updated)

        draft = incident_draft(group)
        try:
            incident = await self._incidents.open(
                actor,
                severity=draft.severity,
                title=draft.title,
                summary=draft.summary,
                nodes=draft.nodes,
                then=link,
            )
        except _AlreadyLinked as raced:
            return OpenedIncident(raced.group, None)
        self._wake()
        return OpenedIncident(linked[0], incident)

    # -- the steps, inside the act's transaction -------------------------------------------------

    async def _set_silence(
        self, uow: UnitOfWork, group_id: int, silence: Silence | None, actor: Actor
    ) -> AlertGroup:
        group = await uow.alerts.get_group(group_id, for_update=True)
        if group is None:
            raise NotFound("That alert group no longer exists.")
        group = silenced(group, silence, actor)
        await self._save(uow, group)
        return group

    async def _save(self, uow: UnitOfWork, group: AlertGroup) -> None:
        """The group, and the durable edit of its message (the interaction shows it first)."""
        await uow.alerts.save_group(group)
        await self._outbox.enqueue(
            uow,
            OutboxKind.ALERTS_DELIVER,
            {"group_id": group.id, "version": group.version},
            ordering_key=f"alerts:{group.id}",
            delay=REFRESH_DELAY,
        )

    async def _record(
        self,
        uow: UnitOfWork,
        actor: Actor,
        action: str,
        group: AlertGroup,
        details: Mapping[str, Any],
    ) -> None:
        await self._audit.record(
            uow,
            actor,
            action,
            target=f"alert-group:{group.id}",
            details={**details, "group_key": group.group_key[:200]},
        )

    def _wake(self) -> None:
        self._outbox.wake(REFRESH_DELAY, kind=OutboxKind.ALERTS_DELIVER)
