"""The alert relay's rules against real databases: ingest, delivery plans, acts, fallbacks."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.domain.alerts import NotificationRow, WebhookPayload, group_key_hash
from bot.domain.outbox import NoticeTemplate, OutboxKind
from bot.domain.roles import Actor, OpsRole
from bot.metrics import Metrics
from bot.services.alerts import AlertService
from bot.services.outbox import ReminderService
from bot.storage.models import AlertNotification, OutboxEntry
from tests.alerting import fixture, storm, wire


def parsed(name: str) -> tuple[WebhookPayload, dict]:
    raw = fixture(name)
    return WebhookPayload.model_validate(raw), raw


async def outbox_rows(database, kind: str) -> list[OutboxEntry]:
    async with database.sessions() as session:
        query = select(OutboxEntry).where(OutboxEntry.kind == kind).order_by(OutboxEntry.id)
        return list((await session.scalars(query)).all())


async def test_post_then_edit_then_nothing_left(database, clock) -> None:
    service, _ = wire(database, clock)
    first = await service.ingest(*parsed("01_firing_single_nodeoffline.json"))
    (item,) = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
    plan = await service.plan(item.payload)
    assert plan is not None and not plan.is_edit and not plan.digest
    assert plan.mention_role_ids and [g.id for g in plan.groups] == [first.group_id]
    await service.record_posted(plan, 111)
    assert await service.plan(item.payload) is None, "shown: a replay sends nothing"

    await service.ingest(*parsed("03_resolved_single_nodeoffline.json"))
    second = (await outbox_rows(database, OutboxKind.ALERTS_DELIVER))[-1]
    edit = await service.plan(second.payload)
    assert edit is not None and edit.message is not None and edit.message.message_id == 111
    assert not edit.groups[0].firing
    await service.record_edited(edit)
    assert await service.plan(second.payload) is None
    group = await service.get_group(first.group_id or 0)
    assert group.posted_at is not None and group.rendered_version == group.version


async def test_a_storm_is_planned_as_digests(database, clock) -> None:
    service, _ = wire(database, clock)
    results = await asyncio.gather(
        *(service.ingest(WebhookPayload.model_validate_json(line), json.loads(line))
          for line in storm("firing"))
    )  # fmt: skip
    assert {r.outcome for r in results} == {"accepted"}
    assert len({r.group_id for r in results}) == 50
    items = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
    assert len(items) == 50
    plan = await service.plan(items[0].payload, capacity=10)
    assert plan is not None and plan.digest and len(plan.groups) == 10
    await service.record_posted(plan, 222)
    shown = {g.id for g in plan.groups}
    for item in items:
        if item.payload["group_id"] in shown:
            assert await service.plan(item.payload, capacity=10) is None
    # With room to spare, a group gets its own message.
    single = await service.plan(items[-1].payload, capacity=100)
    assert single is not None and not single.digest


async def test_acknowledge_bumps_the_version_once(database, clock) -> None:
    service, _ = wire(database, clock)
    result = await service.ingest(*parsed("04_firing_group_4_alerts.json"))
    actor = Actor(id=7, name="node-bob", roles=frozenset({OpsRole.NODE_OPS}))
    group = await service.acknowledge(actor, result.group_id or 0)
    assert group.acked_by_name == "node-bob" and group.version == 2
    again = await service.acknowledge(actor, group.id)
    assert again.version == 2, "idempotent"


async def test_email_fallback_once_when_not_posted(database, clock) -> None:
    service, _ = wire(database, clock, email_to=("core@x.invalid",), email_fallback_after=120)
    reminders: ReminderService = service.reminders
    await service.ingest(*parsed("01_firing_single_nodeoffline.json"))
    await service.ingest(*parsed("07_firing_max_alerts_truncated.json"))  # warning only
    assert await reminders.fire_due() == 0
    clock.advance(seconds=121)
    assert await reminders.fire_due() == 1
    assert await reminders.fire_due() == 0
    (email,) = await outbox_rows(database, OutboxKind.EMAIL)
    assert email.payload["to"] == ["core@x.invalid"]
    assert "NodeOffline" in email.payload["subject"]


async def test_no_email_when_posted_in_time(database, clock) -> None:
    service, _ = wire(database, clock, email_to=("core@x.invalid",), email_fallback_after=120)
    reminders: ReminderService = service.reminders
    await service.ingest(*parsed("01_firing_single_nodeoffline.json"))
    (item,) = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
    plan = await service.plan(item.payload)
    assert plan is not None
    await service.record_posted(plan, 333)
    clock.advance(seconds=121)
    await reminders.fire_due()
    assert await outbox_rows(database, OutboxKind.EMAIL) == []


async def test_watchdog_outage_once_then_recovery(database, clock) -> None:
    service, _ = wire(database, clock, watchdog_timeout=600)
    raw = fixture("01_firing_single_nodeoffline.json")
    raw["groupKey"] = '{}:{alertname="Watchdog"}'
    raw["alerts"][0]["labels"] = {"alertname": "Watchdog"}
    watchdog = WebhookPayload.model_validate(raw)
    assert not await service.check_watchdog(), "never seen: not armed"
    assert (await service.ingest(watchdog, raw)).outcome == "watchdog"
    clock.advance(seconds=599)
    assert not await service.check_watchdog()
    clock.advance(seconds=2)
    assert await service.check_watchdog()
    assert not await service.check_watchdog(), "once per outage"
    assert (await service.ingest(watchdog, raw)).outcome == "duplicate"
    posts = await outbox_rows(database, OutboxKind.NOTICE)
    assert [(p.payload["template"], p.payload["channel"]) for p in posts] == [
        (NoticeTemplate.ALERTS_PIPELINE_BROKEN, "operations"),
        (NoticeTemplate.ALERTS_PIPELINE_RECOVERED, "operations"),
    ]
    from cogs.alerts.render import TEMPLATES

    titles = [TEMPLATES[p.payload["template"]](p.payload["data"]).embeds[0].title for p in posts]
    assert titles == ["Alert pipeline broken", "Alert pipeline recovered"]


async def test_transaction_lock_priority_and_reentrance() -> None:
    from bot.storage.uow import TaskLock

    lock = TaskLock()
    order: list[str] = []
    await lock.acquire()
    await lock.acquire()  # the same task again
    lock.release()

    async def take(name: str, priority: bool) -> None:
        await lock.acquire(priority=priority)
        order.append(name)
        lock.release()

    tasks = [asyncio.create_task(take("low1", False)), asyncio.create_task(take("high", True))]
    cancelled = asyncio.create_task(take("gone", False))
    tasks.append(asyncio.create_task(take("low2", False)))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["high", "low1", "low2"]
    assert not lock.locked


# -- the inbox: stored first, applied after --------------------------------------------------


async def test_receive_stores_and_the_processor_applies_later(database, clock) -> None:
    from bot.storage.models import AlertGroupRow, AlertNotification

    service, _ = wire(database, clock)
    received = await service.receive(*parsed("04_firing_group_4_alerts.json"))
    assert received.outcome == "accepted" and received.notification_id is not None
    assert received.group_id is None, "answered before the group is updated"
    async with database.sessions() as session:
        row = await session.get(AlertNotification, received.notification_id)
        assert row is not None and row.outcome == "pending" and row.processed_at is None
        assert (await session.scalars(select(AlertGroupRow))).all() == []
    waiting = await service.result_of(received.notification_id)
    assert waiting is not None and waiting.outcome == "pending"
    assert await service.process_pending() == 1
    result = await service.result_of(received.notification_id)
    assert result is not None and result.outcome == "accepted" and result.group_id
    assert len(await outbox_rows(database, OutboxKind.ALERTS_DELIVER)) == 1
    assert await service.process_pending() == 0, "applied once"
    again = await service.receive(*parsed("04_firing_group_4_alerts.json"))
    assert again.outcome == "duplicate" and again.notification_id is None


async def test_batches_shrink_when_bodies_are_slow_to_apply(database, clock, monkeypatch) -> None:
    """A slow moment (a busy or throttled machine): the next transactions take fewer bodies,
    so a webhook arriving meanwhile waits for one body's work, not ten."""
    import bot.services.alerts.ingest as alerts_module

    service, _ = wire(database, clock, process_batch=10, process_budget=0.008)
    bodies = [json.loads(line) for line in storm()[:30]]
    for raw in bodies:
        await service.receive(WebhookPayload.model_validate(raw), raw)
    assert service.batch_limit() == 10, "no measure yet: the configured batch"
    ticks = iter(range(10_000))
    monkeypatch.setattr(alerts_module, "perf_counter", lambda: next(ticks) * 0.02)
    assert await service.process_pending() == 10  # measured: 20 ms for 10 bodies
    assert service.batch_limit() == 4, "2 ms a body: four fit in 8 ms"
    applied = [await service.process_pending() for _ in range(3)]
    assert applied == [4, 2, 1], "still 20 ms a transaction: fewer each time, one at least"
    monkeypatch.undo()
    while await service.process_pending():
        pass
    assert await service.backlog() == 0, "nothing left behind"


async def test_bodies_stored_before_a_crash_are_applied_at_the_next_start(database, clock) -> None:
    """The webhook answered 200, the process died before the processor ran: nothing lost."""
    first, _ = wire(database, clock)
    names = [
        "04_firing_group_4_alerts.json",
        "05_firing_group_partially_resolved.json",
        "06_resolved_group_4_alerts.json",
    ]
    for name in names:
        assert (await first.receive(*parsed(name))).outcome == "accepted"
    assert await first.backlog() == 3

    restarted, _ = wire(database, clock)  # a new process: nothing parsed in memory
    stop = asyncio.Event()
    runner = asyncio.create_task(restarted.run_processor(stop))
    async with asyncio.timeout(10):
        while await restarted.backlog():
            await asyncio.sleep(0.01)
    stop.set()
    await runner
    (item,) = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)  # one batch: one delivery
    group = await restarted.get_group(item.payload["group_id"])
    assert (group.status.value, group.version) == ("resolved", 3), "each applied once, in order"
    assert item.payload["version"] == 3


async def test_the_processor_wakes_when_a_body_arrives(database, clock) -> None:
    service, _ = wire(database, clock)
    stop = asyncio.Event()
    runner = asyncio.create_task(service.run_processor(stop))
    try:
        received = await service.receive(*parsed("01_firing_single_nodeoffline.json"))
        assert received.notification_id is not None
        async with asyncio.timeout(5):  # well before the 5 s idle poll
            while True:
                result = await service.result_of(received.notification_id)
                assert result is not None
                if result.outcome != "pending":
                    break
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await runner


async def test_a_posted_digest_settles_the_items_it_shows(database, clock) -> None:
    from bot.domain.outbox import OutboxStatus

    service, _ = wire(database, clock, storm_threshold=10)
    for line in storm("firing")[:30]:
        raw = json.loads(line)
        await service.ingest(WebhookPayload.model_validate(raw), raw)
    items = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
    plan = await service.plan(items[0].payload, capacity=5)
    assert plan is not None and plan.digest and len(plan.groups) > 1
    await service.record_posted(plan, 999)
    shown = {g.id for g in plan.groups}
    after = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
    for item in after:
        settled = item.status == OutboxStatus.DONE.value
        assert settled == (item.payload["group_id"] in shown), item.payload
    # A newer version of a shown group still goes out (an edit).
    group = await service.get_group(next(iter(shown)))
    await service.acknowledge(Actor(1, "ops", frozenset({OpsRole.CORE_OPS})), group.id)
    pending = [
        i
        for i in await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
        if i.status == "pending" and i.payload["group_id"] == group.id
    ]
    assert len(pending) == 1


async def test_a_digest_from_the_processors_groups_equals_one_read_back(database, clock) -> None:
    """The groups the processor just built stand in for a read of the database: the same
    digest either way, and an acknowledged (newer) group is read again."""
    service, _ = wire(database, clock)
    for line in storm("firing")[:30]:
        raw = json.loads(line)
        await service.ingest(WebhookPayload.model_validate(raw), raw)
    items = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
    acked = items[3].payload["group_id"]
    await service.acknowledge(Actor(1, "ops", frozenset({OpsRole.CORE_OPS})), acked)
    cached = await service.plan(items[0].payload, capacity=5)
    restarted, _ = wire(database, clock)  # nothing in memory: every group read back
    read = await restarted.plan(items[0].payload, capacity=5)
    assert cached is not None and read is not None and cached.digest
    assert cached.groups == read.groups
    assert next(g for g in cached.groups if g.id == acked).acked_by_name == "ops"


async def test_items_shown_by_a_message_just_sent_need_no_transaction(database, clock) -> None:
    from bot.services.alerts import AlertService
    from bot.services.outbox import OutboxService
    from tests.alerting import policy

    opened = 0

    def counting():
        nonlocal opened
        opened += 1
        return database.uow()

    outbox = OutboxService(database.uow, clock)
    service = AlertService(counting, clock, outbox, ReminderService(database.uow, clock), policy())
    for line in storm("firing")[:20]:
        raw = json.loads(line)
        await service.ingest(WebhookPayload.model_validate(raw), raw)
    items = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
    plan = await service.plan(items[0].payload, capacity=5)
    assert plan is not None and plan.digest
    await service.record_posted(plan, 333)
    shown = {g.id for g in plan.groups}
    before = opened
    for item in items:
        if item.payload["group_id"] in shown:
            assert await service.plan(item.payload, capacity=5) is None
    assert opened == before, "answered from what this process just sent"


# -- one bad body never fails another (security item 11) -------------------------------------


def watched(database, clock) -> tuple[AlertService, Metrics]:
    """A service whose observer is the real metrics."""
    from bot.services.outbox import OutboxService
    from tests.alerting import policy

    metrics = Metrics()
    service = AlertService(
        database.uow,
        clock,
        OutboxService(database.uow, clock),
        ReminderService(database.uow, clock),
        policy(),
        observer=metrics,
    )
    return service, metrics


def quarantined(metrics: Metrics) -> dict[str, float]:
    found = {}
    for reason in ("invalid", "failed"):
        value = metrics.registry.get_sample_value(
            "hh_opsbot_alert_bodies_quarantined_total", {"reason": reason}
        )
        if value:
            found[reason] = value
    return found


def unstorable(payload: WebhookPayload) -> WebhookPayload:
    """A body as the old model let it through: a start that is year 0 in UTC."""
    alert = payload.alerts[0].model_copy(
        update={"starts_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}
    )
    return payload.model_copy(update={"alerts": [alert, *payload.alerts[1:]]})


async def outcomes(database) -> list[str]:
    async with database.sessions() as session:
        query = select(AlertNotification.outcome).order_by(AlertNotification.id)
        return list((await session.scalars(query)).all())


async def test_the_inbox_never_fails_a_body_for_another_in_its_batch(database, clock) -> None:
    service, _ = wire(database, clock)
    good, raw = parsed("04_firing_group_4_alerts.json")
    other, other_raw = parsed("01_firing_single_nodeoffline.json")
    bad = unstorable(good)
    # One transaction for all three (group commit): they arrive together.
    results = await asyncio.gather(
        service.receive(good, raw),
        service.receive(bad, json.dumps(raw)),
        service.receive(other, other_raw),
        return_exceptions=True,
    )
    first, failed, third = results
    assert isinstance(failed, Exception), "the bad one fails (503: retried)"
    assert not isinstance(first, BaseException) and not isinstance(third, BaseException)
    assert [first.outcome, third.outcome] == ["accepted", "accepted"]
    assert await outcomes(database) == ["pending", "pending"]


async def store_raw(database, clock, bodies: list[tuple[str, dict]]) -> None:
    """Bodies in the inbox as an older version stored them (no validation on the way)."""
    rows = [
        NotificationRow(key, group_key_hash(body["groupKey"]), body["status"], "r", raw)
        for key, body, raw in ((key, body, json.dumps(body)) for key, body in bodies)
    ]
    async with database.uow() as uow:
        await uow.alerts.add_notifications(rows, clock.now())
        await uow.commit()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alerts.0.startsAt", "0001-01-01T00:00:00+01:00"),  # failed the batch on both
        ("groupKey", '{}:{alertname="a\u0000"}'),  # failed the batch on PostgreSQL
    ],
)
async def test_a_body_stored_before_the_fix_is_set_aside_and_the_rest_applied(
    database, clock, caplog, field, value
) -> None:
    """It once failed every batch it was in, for ever: nothing after it reached #alerts."""
    bad = fixture("01_firing_single_nodeoffline.json")
    if field == "groupKey":
        bad["groupKey"] = value
    else:
        bad["alerts"][0]["startsAt"] = value
    await store_raw(
        database,
        clock,
        [
            ("a" * 64, fixture("04_firing_group_4_alerts.json")),
            ("b" * 64, bad),
            ("c" * 64, fixture("05_firing_group_partially_resolved.json")),
        ],
    )
    service, metrics = watched(database, clock)
    for _ in range(20):  # bounded: once, a bad body failed every attempt
        if not await service.backlog():
            break
        await service.process_pending()
    assert await outcomes(database) == ["accepted", "invalid", "accepted"]
    assert quarantined(metrics) == {"invalid": 1}
    assert any(field in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    (item,) = await outbox_rows(database, OutboxKind.ALERTS_DELIVER)
    group = await service.get_group(item.payload["group_id"])
    assert group.version == 2, "both good bodies applied to their group"


async def test_a_body_the_database_keeps_refusing_is_quarantined(
    database, clock, monkeypatch, caplog
) -> None:
    """Whatever the reason a body's transaction fails (here the database refuses its group), it
    is tried alone a few times, then set aside: the bodies after it are applied."""
    from bot.services.alerts import ingest as alerts_module
    from bot.storage.repositories import SqlAlertRepository

    poison = fixture("01_firing_single_nodeoffline.json")
    poison["groupKey"] = '{}:{alertname="Poison"}'
    create_groups = SqlAlertRepository.create_groups

    async def refusing(self, groups):
        if any(g.group_key == poison["groupKey"] for _, g in groups):
            raise RuntimeError("the database refuses this group")
        return await create_groups(self, groups)

    monkeypatch.setattr(SqlAlertRepository, "create_groups", refusing)
    await store_raw(
        database,
        clock,
        [
            ("a" * 64, fixture("04_firing_group_4_alerts.json")),
            ("b" * 64, poison),
            ("c" * 64, fixture("05_firing_group_partially_resolved.json")),
            ("d" * 64, fixture("07_firing_max_alerts_truncated.json")),
        ],
    )
    service, metrics = watched(database, clock)
    failures = 0
    for _ in range(20):  # bounded: once, a bad body failed every attempt
        if not await service.backlog():
            break
        try:
            await service.process_pending()
        except RuntimeError:
            failures += 1
    assert await outcomes(database) == ["accepted", "quarantined", "accepted", "accepted"]
    assert failures <= alerts_module.QUARANTINE_AFTER + 1
    assert quarantined(metrics) == {"failed": 1}
    assert any("quarantined" in r.getMessage() for r in caplog.records)
