"""The alert buttons' use cases (acknowledge, silence, expire, open an incident) over a real
database: each accepted act changes the group once and writes exactly one audit row with it;
each refusal writes nothing at all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest

from bot.app.services import Services
from bot.domain.alerts import AlertGroup, Silence, WebhookPayload
from bot.domain.errors import InvalidInput, NotFound, Unavailable
from bot.domain.incidents import Incident
from bot.domain.outbox import OutboxKind
from bot.domain.ports import UnitOfWork
from bot.domain.roles import Actor
from bot.services.alerts import AlertService
from bot.storage.database import Database
from tests.alerting import fixture, policy
from tests.services.conftest import CORE_A, NODE, audit_actions

LINK = "https://discord.com/channels/1/2/3"


@dataclass
class FakeAlertmanager:
    """Alertmanager's silences API: what was asked, and a switch to make it fail."""

    created: list[dict[str, Any]] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    down: bool = False

    async def create_silence(
        self,
        matchers: Mapping[str, str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> Silence:
        if self.down:
            raise Unavailable("Alertmanager did not answer.")
        self.created.append({"matchers": dict(matchers), "ends_at": ends_at, "comment": comment})
        return Silence(f"s-{len(self.created)}", ends_at, tuple(sorted(matchers.items())))

    async def expire_silence(self, silence_id: str) -> None:
        if self.down:
            raise Unavailable("Alertmanager did not answer.")
        self.expired.append(silence_id)


@pytest.fixture
def alertmanager() -> FakeAlertmanager:
    return FakeAlertmanager()


@pytest.fixture
def alerts(
    database: Database, clock: Any, services: Services, alertmanager: FakeAlertmanager
) -> AlertService:
    return AlertService(
        database.uow,
        clock,
        services.outbox,
        services.reminders,
        policy(),
        silences=alertmanager,
        audit=services.audit,
        incidents=services.incidents,
    )


async def firing_group(alerts: AlertService, name: str = "01_firing_single_nodeoffline.json"):
    raw = fixture(name)
    result = await alerts.ingest(WebhookPayload.model_validate(raw), raw)
    assert result.group_id is not None
    return await alerts.get_group(result.group_id)


async def resolved_group(alerts: AlertService) -> AlertGroup:
    group = await firing_group(alerts)
    raw = fixture("03_resolved_single_nodeoffline.json")
    await alerts.ingest(WebhookPayload.model_validate(raw), raw)
    group = await alerts.get_group(group.id)
    assert not group.firing
    return group


async def refreshes(database: Database, group: AlertGroup) -> list[int]:
    """The versions of the group's message edits waiting in the outbox."""
    async with database.uow() as uow:
        items = await uow.outbox.pending_for_keys(OutboxKind.ALERTS_DELIVER, [f"alerts:{group.id}"])
    return sorted(int(item.payload["version"]) for item in items)


async def audit_rows(database: Database) -> list[tuple[str, str, str | None]]:
    async with database.uow() as uow:
        rows = await uow.audit.recent(1000)
    return [(r.action, r.outcome, r.target) for r in reversed(rows)]


# -- acknowledge -------------------------------------------------------------------------------


async def test_acknowledge_takes_the_group_with_one_audit_row(alerts, database) -> None:
    group = await firing_group(alerts)
    taken = await alerts.acknowledge(NODE, group.id)
    assert (taken.acked_by_id, taken.acked_by_name) == (NODE.id, NODE.name)
    assert taken.version == group.version + 1
    assert (await alerts.get_group(group.id)) == taken, "stored"
    assert await audit_rows(database) == [("alerts:ack", "ok", f"alert-group:{group.id}")]
    assert taken.version in await refreshes(database, group), "the message edit is durable"


async def test_a_second_acknowledge_changes_nothing(alerts, database) -> None:
    group = await firing_group(alerts)
    first = await alerts.acknowledge(NODE, group.id)
    again = await alerts.acknowledge(CORE_A, group.id)
    assert again == first, "the first ack stays"
    assert len(await audit_rows(database)) == 1, "no row of its own: nothing happened"


async def test_acknowledge_refuses_a_missing_or_resolved_group(alerts, database) -> None:
    with pytest.raises(NotFound):
        await alerts.acknowledge(NODE, 999_999)
    group = await resolved_group(alerts)
    with pytest.raises(InvalidInput, match="resolved"):
        await alerts.acknowledge(NODE, group.id)
    assert await alerts.get_group(group.id) == group
    assert await audit_rows(database) == []


# -- silence -----------------------------------------------------------------------------------


async def test_silence_asks_alertmanager_then_keeps_it_with_one_audit_row(
    alerts, database, alertmanager, clock
) -> None:
    group = await firing_group(alerts)
    silenced, silence = await alerts.silence(NODE, group.id, 4, link=LINK)
    (asked,) = alertmanager.created
    assert asked["matchers"] == {k: v for k, v in group.common_labels.items() if v}
    assert LINK in asked["comment"] and NODE.name in asked["comment"]
    assert (asked["ends_at"] - clock.now()).total_seconds() == 4 * 3600
    assert (silenced.silence_id, silenced.silenced_by_name) == (silence.id, NODE.name)
    assert silenced.silence_ends_at == silence.ends_at
    assert silenced.version == group.version + 1
    assert await alerts.get_group(group.id) == silenced
    assert await audit_rows(database) == [("alerts:silence", "ok", f"alert-group:{group.id}")]
    async with database.uow() as uow:
        (row,) = await uow.audit.recent(1)
    assert row.details["silence_id"] == silence.id and row.details["hours"] == 4
    assert row.details["matchers"] == dict(silence.matchers)
    assert silenced.version in await refreshes(database, group)


@pytest.mark.parametrize("hours", [0, 2, 48])
async def test_silence_refuses_other_durations(alerts, database, alertmanager, hours) -> None:
    group = await firing_group(alerts)
    with pytest.raises(InvalidInput, match="1, 4, 24 hours"):
        await alerts.silence(NODE, group.id, hours, link=LINK)
    assert alertmanager.created == []
    assert await alerts.get_group(group.id) == group
    assert await audit_rows(database) == []


async def test_silence_refusals_change_nothing(alerts, database, alertmanager) -> None:
    with pytest.raises(NotFound):
        await alerts.silence(NODE, 999_999, 1, link=LINK)
    resolved = await resolved_group(alerts)
    with pytest.raises(InvalidInput, match="resolved"):
        await alerts.silence(NODE, resolved.id, 1, link=LINK)
    firing = await firing_group(alerts, "04_firing_group_4_alerts.json")
    alertmanager.down = True
    with pytest.raises(Unavailable):
        await alerts.silence(NODE, firing.id, 1, link=LINK)
    assert alertmanager.created == []
    assert await alerts.get_group(firing.id) == firing
    assert await alerts.get_group(resolved.id) == resolved
    assert await audit_rows(database) == []


async def test_silence_without_alertmanager_says_so(database, clock, services) -> None:
    alerts = AlertService(
        database.uow, clock, services.outbox, services.reminders, policy(), audit=services.audit
    )
    group = await firing_group(alerts)
    with pytest.raises(Unavailable, match="api_url"):
        await alerts.silence(NODE, group.id, 1, link=LINK)
    with pytest.raises(InvalidInput, match="no silence"):
        await alerts.expire(NODE, group.id)
    assert await audit_rows(database) == []


# -- expire ------------------------------------------------------------------------------------


async def test_expire_ends_the_silence_with_one_audit_row(alerts, database, alertmanager) -> None:
    group = await firing_group(alerts)
    silenced, silence = await alerts.silence(NODE, group.id, 1, link=LINK)
    expired, silence_id = await alerts.expire(CORE_A, group.id)
    assert silence_id == silence.id and alertmanager.expired == [silence.id]
    assert (expired.silence_id, expired.silence_ends_at, expired.silenced_by_name) == (
        None,
        None,
        None,
    )
    assert expired.version == silenced.version + 1
    assert await alerts.get_group(group.id) == expired
    assert [a for a, _, _ in await audit_rows(database)] == ["alerts:silence", "alerts:expire"]
    async with database.uow() as uow:
        (row,) = await uow.audit.recent(1)
    assert (row.actor_id, row.details["silence_id"]) == (CORE_A.id, silence.id)


async def test_expire_refusals_change_nothing(alerts, database, alertmanager) -> None:
    with pytest.raises(NotFound):
        await alerts.expire(CORE_A, 999_999)
    group = await firing_group(alerts)
    with pytest.raises(InvalidInput, match="no silence"):
        await alerts.expire(CORE_A, group.id)
    silenced, _ = await alerts.silence(NODE, group.id, 1, link=LINK)
    alertmanager.down = True
    with pytest.raises(Unavailable):
        await alerts.expire(CORE_A, group.id)
    assert alertmanager.expired == []
    assert await alerts.get_group(group.id) == silenced, "still silenced"
    assert [a for a, _, _ in await audit_rows(database)] == ["alerts:silence"]


# -- open an incident --------------------------------------------------------------------------


async def test_open_incident_opens_and_links_with_one_audit_row(alerts, database, services) -> None:
    group = await firing_group(alerts)
    linked, incident = await alerts.open_incident(CORE_A, group.id)
    assert incident is not None
    assert linked.incident_ref == incident.ref and linked.version == group.version + 1
    assert await alerts.get_group(group.id) == linked
    assert incident.severity.value == 2, "a critical group opens Sev 2"
    assert f"alert group #{group.id}" in (incident.summary or "")
    assert [i.ref for i in await services.incidents.find(open_only=True)] == [incident.ref]
    assert await audit_actions(database) == [("incident open", "ok")], "the incident's row"
    assert linked.version in await refreshes(database, group)


async def test_open_incident_twice_opens_one(alerts, database, services) -> None:
    group = await firing_group(alerts)
    first, incident = await alerts.open_incident(CORE_A, group.id)
    again, none = await alerts.open_incident(NODE, group.id)
    assert none is None and again == first
    assert incident is not None and again.incident_ref == incident.ref
    assert len(await services.incidents.find(open_only=True)) == 1
    assert len(await audit_actions(database)) == 1


async def test_open_incident_refuses_a_missing_or_resolved_group(
    alerts, database, services
) -> None:
    with pytest.raises(NotFound):
        await alerts.open_incident(CORE_A, 999_999)
    group = await resolved_group(alerts)
    with pytest.raises(InvalidInput, match="resolved"):
        await alerts.open_incident(CORE_A, group.id)
    assert await services.incidents.find(open_only=False) == []
    assert await audit_actions(database) == []


async def test_a_press_that_loses_the_race_opens_nothing(
    database, clock, services, alertmanager
) -> None:
    """Two presses at once: the one whose link finds the group already linked rolls its
    incident back (with that incident's audit row), so no orphan incident is left open."""

    class Racing:
        """Another press links INC-0000 while this one's incident is being opened."""

        async def open(self, actor: Actor, **kwargs: Any) -> Incident:
            then = kwargs.pop("then")

            async def first_link_elsewhere(uow: UnitOfWork, incident: Incident) -> None:
                # (Written in this transaction: SQLite has one writer at a time.)
                current = await uow.alerts.get_group(group.id)
                assert current is not None
                await uow.alerts.save_group(replace(current, incident_ref="INC-0000"))
                await then(uow, incident)

            opened: Incident = await services.incidents.open(
                actor, then=first_link_elsewhere, **kwargs
            )
            return opened

    alerts = AlertService(
        database.uow,
        clock,
        services.outbox,
        services.reminders,
        policy(),
        audit=services.audit,
        incidents=Racing(),
    )
    group = await firing_group(alerts)
    linked, incident = await alerts.open_incident(CORE_A, group.id)
    assert incident is None and linked.incident_ref == "INC-0000"
    assert await services.incidents.find(open_only=False) == []
    assert await audit_actions(database) == []
