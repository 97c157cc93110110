"""Node registry and probe storage: raw 48 h, per-minute aggregates 90 d, uptime from them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.errors import InvalidInput, NotFound
from bot.domain.health import NodeStatus, ProbeResult, ProbeSample, State, Target, TargetKind
from bot.services.health import HealthService
from bot.storage.database import Database
from tests.conftest import FakeClock


class ScriptedProber:
    """Answers what the test says: `up` maps target name -> ok."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.up: dict[str, bool] = {}

    async def probe_all(self, targets: list[Target]) -> list[ProbeResult]:
        return [
            ProbeResult(
                t.name,
                t.kind,
                self.up.get(t.name, True),
                12.0 if self.up.get(t.name, True) else None,
                self.clock.now(),
                None if self.up.get(t.name, True) else "connection refused",
            )
            for t in targets
        ]


def service(database: Database, clock: FakeClock, prober: ScriptedProber) -> HealthService:
    core = Target("core", TargetKind.CORE, "http://127.0.0.1:8442")
    return HealthService(database.uow, clock, prober, [core])


async def register(svc: HealthService, database: Database, name: str, **kw: str | None) -> int:
    async with database.uow() as uow:
        registration = await svc.register_node(
            uow,
            name=name,
            endpoint=kw.get("endpoint") or "http://10.0.0.9:9001",
            region=kw.get("region"),
            requested_by=1,
        )
        await uow.commit()
    return registration.node.id


async def test_registry_pending_approve_reject_remove(database: Database, clock: FakeClock) -> None:
    svc = service(database, clock, ScriptedProber(clock))
    node_id = await register(svc, database, "Node-7", region="eu-west")
    (pending,) = await svc.pending()
    assert (pending.name, pending.status, pending.region) == (
        "node-7",
        NodeStatus.PENDING,
        "eu-west",
    )
    assert [t.name for t in await svc.targets()] == ["core"], "pending nodes are not probed"

    async with database.uow() as uow:
        node, changed = await svc.decide(uow, node_id, approve=True, decided_by=2)
        await uow.commit()
    assert changed and node.status is NodeStatus.APPROVED and node.decided_by == 2
    async with database.uow() as uow:
        again, changed = await svc.decide(uow, node_id, approve=False, decided_by=3)
        await uow.commit()
    assert not changed and again.status is NodeStatus.APPROVED, "a second press changes nothing"
    assert [t.name for t in await svc.targets()] == ["core", "node-7"]

    with pytest.raises(InvalidInput, match="already registered"):
        await register(svc, database, "node-7")
    async with database.uow() as uow:
        await svc.remove_node(uow, "node-7")
        await uow.commit()
    assert await svc.nodes() == []
    async with database.uow() as uow:
        with pytest.raises(NotFound):
            await svc.remove_node(uow, "node-7")


async def test_re_registering_makes_a_new_request(database: Database, clock: FakeClock) -> None:
    """Asking again while pending (or after a rejection) is a new request with its own id."""
    svc = service(database, clock, ScriptedProber(clock))
    first = await register(svc, database, "node-1")
    second = await register(svc, database, "node-1", endpoint="https://10.0.0.9:9443")
    assert second != first, "a changed request is a new request with its own id"
    (pending,) = await svc.pending()
    assert (pending.id, pending.endpoint) == (second, "https://10.0.0.9:9443")
    async with database.uow() as uow:
        await svc.decide(uow, second, approve=False, decided_by=2)
        await uow.commit()
    assert await svc.nodes() == []
    third = await register(svc, database, "node-1")
    (node,) = await svc.pending()
    assert node.id == third not in (first, second)
    assert node.endpoint == "http://10.0.0.9:9001" and node.decided_by is None


async def test_approval_binds_to_the_request_its_message_showed(
    database: Database, clock: FakeClock
) -> None:
    """The bait-and-switch: Approve on the first request must not approve the second endpoint."""
    svc = service(database, clock, ScriptedProber(clock))
    shown = await register(svc, database, "hn-new", endpoint="http://10.0.0.7:8442")
    await register(svc, database, "hn-new", endpoint="http://10.66.6.6:8442")
    async with database.uow() as uow:
        with pytest.raises(InvalidInput, match="Nothing was approved") as refused:
            await svc.decide(uow, shown, approve=True, decided_by=2)
        await uow.commit()
    assert refused.value.outcome == "stale"
    assert [t.name for t in await svc.targets()] == ["core"], "nothing approved"
    (pending,) = await svc.pending()
    assert pending.endpoint == "http://10.66.6.6:8442" and pending.decided_by is None
    async with database.uow() as uow:
        with pytest.raises(InvalidInput, match="Nothing was rejected"):
            await svc.decide(uow, shown, approve=False, decided_by=2)


async def test_a_removed_request_id_is_never_reused(database: Database, clock: FakeClock) -> None:
    """SQLite reuses the largest rowid after a delete unless told not to: an old message's
    Approve would then act on the next request."""
    svc = service(database, clock, ScriptedProber(clock))
    shown = await register(svc, database, "hn-new", endpoint="http://10.0.0.7:8442")
    async with database.uow() as uow:
        await svc.remove_node(uow, "hn-new")
        await uow.commit()
    again = await register(svc, database, "hn-new", endpoint="http://10.66.6.6:8442")
    assert again != shown
    async with database.uow() as uow:
        with pytest.raises(InvalidInput, match="Nothing was approved"):
            await svc.decide(uow, shown, approve=True, decided_by=2)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8442",
        "http://localhost:8442",
        "http://0xa9fea9fe/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/",
        "http://169.254.10.10:8442",
        "http://[fe80::1]:8442",
        "http://0.0.0.0:8442",
    ],
)
async def test_forbidden_endpoints_are_refused_at_registration(
    database: Database, clock: FakeClock, endpoint: str
) -> None:
    svc = service(database, clock, ScriptedProber(clock))
    with pytest.raises(InvalidInput, match="The endpoint is refused: it names"):
        await register(svc, database, "hn-new", endpoint=endpoint)
    assert await svc.nodes() == []


async def test_loopback_endpoints_only_with_the_lab_switch(
    database: Database, clock: FakeClock
) -> None:
    core = Target("core", TargetKind.CORE, "http://127.0.0.1:8442")
    lab = HealthService(database.uow, clock, ScriptedProber(clock), [core], allow_loopback=True)
    await register(lab, database, "lab-1", endpoint="http://127.0.0.1:8442")
    with pytest.raises(InvalidInput, match="link-local"):
        await register(lab, database, "lab-2", endpoint="http://169.254.169.253/")
    assert [n.name for n in await lab.nodes()] == ["lab-1"]


@pytest.mark.parametrize(
    ("name", "endpoint", "region"),
    [
        ("bad name!", "http://10.0.0.1:1", None),
        ("core", "http://10.0.0.1:1", None),
        ("-x", "http://10.0.0.1:1", None),
        ("node-1", "ftp://10.0.0.1", None),
        ("node-1", "http://user:pw@10.0.0.1:1", None),
        ("node-1", "http://10.0.0.1:99999", None),
        ("node-1", "http://10.0.0.1:1/?q=1", None),
        ("node-1", "http://10.0.0.1:1", "<@&123>"),
    ],
)
async def test_bad_registrations_change_nothing(
    database: Database, clock: FakeClock, name: str, endpoint: str, region: str | None
) -> None:
    svc = service(database, clock, ScriptedProber(clock))
    with pytest.raises(InvalidInput):
        await register(svc, database, name, endpoint=endpoint, region=region)
    assert await svc.nodes() == []


async def test_poll_rollup_retention_and_uptime(database: Database, clock: FakeClock) -> None:
    prober = ScriptedProber(clock)
    svc = service(database, clock, prober)
    start = clock.now()
    # 10 minutes of 30 s polls; the core is down for the two polls of minute 3.
    for i in range(20):
        prober.up["core"] = i not in (6, 7)
        await svc.poll()
        clock.advance(seconds=30)
    assert svc.cached_status().pool == "up"
    written = await svc.maintain()
    assert written == 9, "minutes 0..8 are complete; minute 9 waits for a late poll"
    assert await svc.maintain() == 0, "idempotent: a second run writes nothing"
    clock.advance(minutes=2)
    assert await svc.maintain() == 1

    (core,) = await svc.uptime()
    assert core.windows[0][0] == "24 h"
    assert core.windows[0][1] == pytest.approx(100 * 18 / 20)
    assert core.meets("24 h") is False

    series = await svc.chart_series("core")
    availability = [p[2] for p in series.points]
    assert availability[3] == 0.0 and availability[0] == 1.0

    # Raw samples go after 48 h, aggregates stay for 90 days.
    clock.current = start + timedelta(hours=49)
    await svc.maintain()
    async with database.uow() as uow:
        assert await uow.health.recent_samples("core", start) == []
        assert len(await uow.health.minutes(start)) == 10
    clock.current = start + timedelta(days=91)
    await svc.maintain()
    async with database.uow() as uow:
        assert await uow.health.minutes(start) == []


async def test_samples_keep_state_and_reason(database: Database, clock: FakeClock) -> None:
    async with database.uow() as uow:
        await uow.health.add_samples(
            [ProbeSample("node-1", clock.now(), State.WARN, 300.5, "x" * 500)]
        )
        await uow.commit()
    async with database.uow() as uow:
        (sample,) = await uow.health.recent_samples("node-1", clock.now())
    assert sample.state is State.WARN and sample.latency_ms == 300.5
    assert sample.reason is not None and len(sample.reason) == 200
    assert sample.at == clock.now()


async def test_unknown_target_is_a_clear_error(database: Database, clock: FakeClock) -> None:
    svc = service(database, clock, ScriptedProber(clock))
    with pytest.raises(NotFound, match="No target named `nope`"):
        await svc.check("nope")
    with pytest.raises(NotFound):
        await svc.uptime("nope")
    with pytest.raises(NotFound):
        await svc.chart_series("nope")
    view = await svc.check("core")
    assert [v.target for v in view.verdicts] == ["core"]
