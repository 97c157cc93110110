"""Grants: the two-person rule, expiry at the boundary, reminders once, revocation, departures."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from bot.app.services import Services
from bot.config import AccessSettings
from bot.domain.access import Grant, GrantStatus
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.outbox import OutboxKind
from bot.domain.roles import OpsRole
from bot.services.grants import MemberRef
from tests.services.conftest import (
    ALICE,
    BOB,
    CORE_A,
    CORE_B,
    OWNER,
    REFUSED,
    UNAVAILABLE,
    audit_actions,
    seed_grant,
    until,
)


async def test_grant_adds_the_role_records_the_grant_and_audits(
    services: Services, roles, database, clock
) -> None:
    result = await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 30, "runs node-7")
    grant = result.grant
    assert not result.pending_approval
    assert (ALICE.id, OpsRole.NODE_OPS) in roles.held
    assert grant.status is GrantStatus.ACTIVE
    assert grant.expires_at == clock.now() + timedelta(days=30)
    assert grant.granted_by_name == "core-a" and grant.reason == "runs node-7"
    assert ("access grant", "ok") in await audit_actions(database)


async def test_default_and_maximum_is_90_days(services: Services, clock) -> None:
    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.OBSERVER, None, "audit")).grant
    assert grant.expires_at == clock.now() + timedelta(days=90)
    with pytest.raises(InvalidInput, match="between 1 and 90"):
        await services.grants.grant(CORE_A, BOB, OpsRole.OBSERVER, 91, "too long")
    with pytest.raises(InvalidInput, match="between 1 and 90"):
        await services.grants.grant(CORE_A, BOB, OpsRole.OBSERVER, 0, "zero")


async def test_nobody_grants_or_renews_for_themselves(services: Services) -> None:
    from bot.services.grants import MemberRef

    me = MemberRef(id=CORE_A.id or 0, name=CORE_A.name)
    with pytest.raises(InvalidInput, match="their own access"):
        await services.grants.grant(CORE_A, me, OpsRole.NODE_OPS, 10, "myself")
    await services.grants.grant(CORE_B, me, OpsRole.NODE_OPS, 10, "by b")
    with pytest.raises(InvalidInput, match="their own access"):
        await services.grants.renew(CORE_A, me, OpsRole.NODE_OPS, 10)


async def test_a_reason_is_required(services: Services) -> None:
    with pytest.raises(InvalidInput, match="reason"):
        await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 10, "  ")


async def test_discord_refusal_leaves_no_half_made_grant(
    services: Services, roles, database
) -> None:
    roles.refuse = REFUSED
    with pytest.raises(type(REFUSED), match="move the bot's role"):
        await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 10, "runs node-7")
    assert await services.grants.find() == []
    assert ("access grant", "ok") not in await audit_actions(database)


async def test_second_grant_of_the_same_role_points_to_renew(services: Services) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 10, "first")
    with pytest.raises(InvalidInput, match="/access renew"):
        await services.grants.grant(CORE_B, ALICE, OpsRole.NODE_OPS, 10, "again")


# -- two-person rule ---------------------------------------------------------------------------


async def test_core_ops_grant_waits_for_a_second_core_ops_member(
    services: Services, roles, delivered, clock, database
) -> None:
    await seed_grant(database, clock, CORE_A, OpsRole.CORE_OPS)
    result = await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 60, "on-call rota")
    assert result.pending_approval and result.grant.status is GrantStatus.PENDING
    assert roles.held == set(), "no role before approval"
    await services.outbox.drain_all()
    assert delivered.templates() == ["access.approval_request"]
    assert delivered.notices[0]["mention_roles"] == ["core_ops"]

    with pytest.raises(InvalidInput, match="second Core Ops member"):
        await services.grants.approve(CORE_A, result.grant.id)  # the requester
    clock.advance(hours=2)
    grant = await services.grants.approve(CORE_B, result.grant.id)
    assert grant.status is GrantStatus.ACTIVE and grant.approved_by_id == CORE_B.id
    assert grant.expires_at == clock.now() + timedelta(days=60), "counted from approval"
    assert (ALICE.id, OpsRole.CORE_OPS) in roles.held
    with pytest.raises(InvalidInput, match="already decided"):
        await services.grants.approve(CORE_B, result.grant.id)


async def test_the_member_receiving_the_role_cannot_approve(services: Services) -> None:
    from bot.domain.roles import Actor

    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 60, "rota")).grant
    alice_as_core = Actor(id=ALICE.id, name=ALICE.name, roles=frozenset({OpsRole.CORE_OPS}))
    with pytest.raises(InvalidInput, match="second Core Ops member"):
        await services.grants.approve(alice_as_core, grant.id)


async def test_request_lapses_after_24_hours(services: Services, roles, clock, database) -> None:
    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 60, "rota")).grant
    clock.advance(hours=24)
    with pytest.raises(InvalidInput, match="expired"):
        await services.grants.approve(CORE_B, grant.id)
    assert roles.held == set()
    (ended,) = await services.grants.find(statuses=(GrantStatus.LAPSED,))
    assert ended.id == grant.id


async def test_sweep_lapses_unapproved_requests(services: Services, clock) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 60, "rota")
    clock.advance(hours=23, minutes=59)
    assert (await services.grants.sweep()).lapsed == []
    clock.advance(minutes=1)
    assert len((await services.grants.sweep()).lapsed) == 1


async def test_reject(services: Services, roles, database) -> None:
    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 60, "rota")).grant
    await services.grants.reject(CORE_B, grant.id)
    assert roles.held == set()
    assert ("access:reject", "ok") in await audit_actions(database)


# -- expiry ------------------------------------------------------------------------------------


async def test_expiry_exactly_at_the_boundary(services: Services, roles, clock, delivered) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 7, "a week")
    clock.advance(days=7, microseconds=-1)
    assert (await services.grants.sweep()).expired == []
    clock.advance(microseconds=1)
    result = await services.grants.sweep()
    assert [g.member_id for g in result.expired] == [ALICE.id]
    await services.outbox.drain_all()
    assert (ALICE.id, OpsRole.NODE_OPS) not in roles.held
    assert delivered.removals[0]["member_id"] == ALICE.id
    assert "access.expired" in delivered.templates()
    assert (await services.grants.sweep()).expired == [], "idempotent"


async def test_grant_that_expired_during_downtime_is_removed_by_the_next_sweep(
    services: Services, roles, clock
) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.OBSERVER, 1, "short")
    clock.advance(days=30)  # the bot was down all along
    assert len((await services.grants.sweep()).expired) == 1
    await services.outbox.drain_all()
    assert roles.held == set()


async def test_last_core_ops_member_is_never_removed_by_automation(
    services: Services, roles, clock, delivered
) -> None:
    # The first Core Ops member, granted by an owner (the bootstrap).
    grant = (await services.grants.grant(OWNER, ALICE, OpsRole.CORE_OPS, 10, "only one")).grant
    assert grant.status is GrantStatus.ACTIVE
    clock.advance(days=11)
    result = await services.grants.sweep()
    assert result.expired == [] and [g.id for g in result.kept] == [grant.id]
    await services.outbox.drain_all()
    assert (ALICE.id, OpsRole.CORE_OPS) in roles.held
    assert "access.expiry_kept" in delivered.templates()


async def test_owner_accounts_are_never_removed_by_automation(services: Services, clock) -> None:
    from bot.services.grants import MemberRef

    owner = MemberRef(id=OWNER.id or 0, name="owner")
    await services.grants.grant(CORE_A, owner, OpsRole.NODE_OPS, 1, "owner also runs a node")
    clock.advance(days=2)
    result = await services.grants.sweep()
    assert result.expired == [] and len(result.kept) == 1


# -- reminders ---------------------------------------------------------------------------------


async def test_reminders_7_and_1_days_before_expiry_sent_once(
    services: Services, clock, delivered, database
) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 30, "rota")
    clock.advance(days=22, hours=23)
    assert await services.reminders.fire_due() == 0
    clock.advance(hours=1)  # 7 days left
    assert await services.reminders.fire_due() == 1
    assert await services.reminders.fire_due() == 0, "once"
    clock.advance(days=6)  # 1 day left
    assert await services.reminders.fire_due() == 1
    await services.outbox.drain_all()
    assert [d["data"]["days_left"] for d in delivered.directs] == [7, 1]
    assert all(d["user_id"] == ALICE.id for d in delivered.directs)
    assert [a for a in await audit_actions(database) if a[0] == "access:reminder"] == [
        ("access:reminder", "ok"),
        ("access:reminder", "ok"),
    ]


async def test_renewal_moves_the_reminders(services: Services, clock, delivered) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 10, "rota")
    clock.advance(days=3)  # the 7-day reminder is due now
    await services.grants.renew(CORE_B, ALICE, OpsRole.NODE_OPS, 30)
    assert await services.reminders.fire_due() == 0, "the old reminder went with the old expiry"
    clock.advance(days=23)
    assert await services.reminders.fire_due() == 1
    await services.outbox.drain_all()
    assert delivered.directs[0]["data"]["days_left"] == 7


async def test_short_grant_gets_only_the_reminders_that_fit(services: Services, clock) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 3, "short")
    clock.advance(days=10)
    assert await services.reminders.fire_due() == 1  # the 1-day one only


# -- revoke and departures ---------------------------------------------------------------------


async def test_revoke_removes_the_role_now(services: Services, roles, database) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 30, "rota")
    result = await services.grants.revoke(CORE_B, ALICE, OpsRole.NODE_OPS, "left the rota")
    assert not result.queued_removal
    assert roles.held == set()
    assert await services.grants.find() == []
    with pytest.raises(NotFound):
        await services.grants.revoke(CORE_B, ALICE, OpsRole.NODE_OPS, "again")


async def test_revoke_refused_by_discord_changes_nothing(services: Services, roles) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 30, "rota")
    roles.refuse = REFUSED
    with pytest.raises(type(REFUSED)):
        await services.grants.revoke(CORE_B, ALICE, OpsRole.NODE_OPS, "left")
    assert [g.status for g in await services.grants.find()] == [GrantStatus.ACTIVE]


async def test_revoke_while_discord_is_down_is_queued(services: Services, roles) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 30, "rota")
    roles.refuse = UNAVAILABLE
    result = await services.grants.revoke(CORE_B, ALICE, OpsRole.NODE_OPS, "left")
    assert result.queued_removal
    assert await services.grants.find() == []
    roles.refuse = None
    await services.outbox.drain_all()
    assert roles.held == set()


async def test_member_leaving_ends_every_grant(services: Services, database) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 30, "rota")
    await services.grants.grant(CORE_A, ALICE, OpsRole.OBSERVER, 30, "audit")
    ended = await services.grants.member_left(ALICE)
    assert {g.role for g in ended} == {OpsRole.NODE_OPS, OpsRole.OBSERVER}
    assert await services.grants.find(member_id=ALICE.id) == []
    actions = await audit_actions(database)
    assert actions.count(("access:member_left", "ok")) == 2


# -- drift -------------------------------------------------------------------------------------


async def test_drift_is_reported_once_and_resolved(services: Services, delivered, database) -> None:
    holdings = {ALICE.id: ("alice", frozenset({OpsRole.NODE_OPS}))}
    found = await services.grants.check_drift(holdings, complete=True)
    assert [(f.member_id, f.role) for f in found] == [(ALICE.id, OpsRole.NODE_OPS)]
    assert await services.grants.check_drift(holdings, complete=True) == [], "reported once"
    await services.outbox.drain_all()
    assert delivered.templates() == ["access.drift"]
    assert [(r["member_id"], r["role"]) for r in delivered.removals] == [(ALICE.id, "node_ops")]
    # The role goes away: resolved; it comes back: reported again.
    await services.grants.check_drift({ALICE.id: ("alice", frozenset())}, complete=False)
    assert len(await services.grants.check_drift(holdings, complete=False)) == 1


async def test_drift_at_start_up_is_one_message(services: Services, delivered) -> None:
    """Issue 16 §4: every member's drift found in one look is one summary notice."""
    holdings = {
        member: (f"m{member}", frozenset({OpsRole.NODE_OPS, OpsRole.OBSERVER}))
        for member in range(1, 31)
    }
    found = await services.grants.check_drift(holdings, complete=True)
    assert len(found) == 60
    await services.outbox.drain_all()
    assert delivered.templates() == ["access.drift"]
    (notice,) = delivered.notices
    assert len(notice["data"]["findings"]) == 60
    from cogs.access.render import TEMPLATES

    embed = TEMPLATES[notice["template"]](notice["data"]).embeds[0]
    assert embed.title == "Access drift: 60 ops roles held without a grant"
    assert embed.description is not None and "… and 40 more" in embed.description
    assert len(embed.description) <= 4096


async def test_granted_roles_are_not_drift(services: Services) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 30, "rota")
    holdings = {ALICE.id: ("alice", frozenset({OpsRole.NODE_OPS}))}
    assert await services.grants.check_drift(holdings, complete=True) == []


async def test_drift_is_only_reported_with_enforce_off(database, clock, roles, delivered) -> None:
    from bot.domain.outbox import OutboxItem

    built = Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(enforce=False),
        roles=roles,
        owner_ids=frozenset(),
    )

    async def record(item: OutboxItem) -> dict:
        (delivered.removals if item.kind == OutboxKind.ROLE_REMOVE else delivered.notices).append(
            dict(item.payload)
        )
        return {}

    built.outbox.register(OutboxKind.NOTICE, record)
    built.outbox.register(OutboxKind.ROLE_REMOVE, record)
    holdings = {ALICE.id: ("alice", frozenset({OpsRole.NODE_OPS}))}
    assert len(await built.grants.check_drift(holdings, complete=True)) == 1
    await built.outbox.drain_all()
    assert delivered.removals == []
    assert delivered.notices[0]["data"]["findings"][0]["removed"] is False


# -- security: two decisions on one request at once (item 4) ----------------------------------


async def test_two_approve_presses_at_once_make_one_decision_and_keep_the_role(
    services: Services, roles, database, clock
) -> None:
    """Both presses used to add the role; the loser's compensation then took it off again,
    leaving the grant active and the member without the role. Decisions are serialised now."""
    await seed_grant(database, clock, CORE_A, OpsRole.CORE_OPS)
    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 30, "rota")).grant
    roles.gate = asyncio.Event()
    presses = [
        asyncio.create_task(services.grants.approve(CORE_B, grant.id)),
        asyncio.create_task(services.grants.approve(OWNER, grant.id)),
    ]
    await until(lambda: roles.count("add") >= 1)
    with contextlib.suppress(TimeoutError):  # unserialised decisions both reach Discord here
        await until(lambda: roles.count("add") >= 2, timeout=0.5)
    roles.gate.set()
    results = await asyncio.gather(*presses, return_exceptions=True)

    assert (ALICE.id, OpsRole.CORE_OPS) in roles.held
    assert [verb for verb, *_ in roles.calls] == ["add"], "one role change, nothing undone"
    decided = [r for r in results if isinstance(r, Grant)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(decided) == 1 and len(refused) == 1, results
    assert isinstance(refused[0], InvalidInput) and "already decided" in str(refused[0])
    after = await services.grants.get(grant.id)
    assert after is not None and after.status is GrantStatus.ACTIVE
    actions = await audit_actions(database)
    assert actions.count(("access:approve", "ok")) == 1


async def test_compensation_never_undoes_another_instances_decision(
    services: Services, roles, database, clock
) -> None:
    """Two bot instances (no shared lock) approve at once: one wins in the database; the other's
    compensation sees the active grant and leaves the role on."""
    other = Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(),
        roles=roles,
        owner_ids=frozenset({OWNER.id or 0}),
    )
    await seed_grant(database, clock, CORE_A, OpsRole.CORE_OPS)
    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 30, "rota")).grant
    roles.gate = asyncio.Event()
    presses = [
        asyncio.create_task(services.grants.approve(CORE_B, grant.id)),
        asyncio.create_task(other.grants.approve(OWNER, grant.id)),
    ]
    await until(lambda: roles.count("add") == 2)
    roles.gate.set()
    results = await asyncio.gather(*presses, return_exceptions=True)

    assert sum(isinstance(r, Grant) for r in results) == 1, results
    loser = next(r for r in results if isinstance(r, BaseException))
    assert isinstance(loser, InvalidInput) and "moment ago" in str(loser)
    assert (ALICE.id, OpsRole.CORE_OPS) in roles.held
    assert roles.count("remove") == 0
    after = await services.grants.get(grant.id)
    assert after is not None and after.status is GrantStatus.ACTIVE


async def test_reject_never_ends_a_grant_approved_a_moment_before(
    services: Services, roles, database, clock
) -> None:
    await seed_grant(database, clock, CORE_A, OpsRole.CORE_OPS)
    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 30, "rota")).grant
    roles.gate = asyncio.Event()
    approving = asyncio.create_task(services.grants.approve(CORE_B, grant.id))
    await until(lambda: roles.count("add") == 1)
    rejecting = asyncio.create_task(services.grants.reject(OWNER, grant.id))
    with contextlib.suppress(TimeoutError):  # an unserialised reject ends the request here
        await until(rejecting.done, timeout=0.5)
    roles.gate.set()
    approved, rejected = await asyncio.gather(approving, rejecting, return_exceptions=True)
    assert isinstance(approved, Grant), approved
    assert (ALICE.id, OpsRole.CORE_OPS) in roles.held
    assert isinstance(rejected, InvalidInput) and "already decided" in str(rejected)


# -- security: a request outlives its requester (item 6) ---------------------------------------


async def test_request_of_a_requester_who_lost_core_ops_is_void(
    services: Services, roles, database, clock
) -> None:
    await seed_grant(database, clock, CORE_A, OpsRole.CORE_OPS)
    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 30, "rota")).grant
    core_a = MemberRef(id=CORE_A.id or 0, name=CORE_A.name)
    await services.grants.revoke(OWNER, core_a, OpsRole.CORE_OPS, "left the rota")
    with pytest.raises(InvalidInput, match="void") as refused:
        await services.grants.approve(CORE_B, grant.id)
    assert "its requester, core-a, no longer holds Core Ops" in refused.value.user_message
    assert (ALICE.id, OpsRole.CORE_OPS) not in roles.held
    after = await services.grants.get(grant.id)
    assert after is not None and after.status is GrantStatus.VOID
    assert ("access:void", "ok") in await audit_actions(database)
    with pytest.raises(InvalidInput, match="void: its requester, core-a, no longer holds"):
        await services.grants.approve(CORE_B, grant.id)


async def test_request_of_a_requester_whose_grant_ran_out_is_void(
    services: Services, roles, database, clock
) -> None:
    await seed_grant(database, clock, CORE_A, OpsRole.CORE_OPS, days=1)
    await seed_grant(database, clock, CORE_B, OpsRole.CORE_OPS)  # so the sweep would end A's
    clock.advance(hours=12)
    grant = (await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 30, "rota")).grant
    clock.advance(hours=12)  # A's grant is at its expiry; no sweep has run yet
    with pytest.raises(InvalidInput, match="no longer holds Core Ops"):
        await services.grants.approve(CORE_B, grant.id)
    assert roles.held == set()


@pytest.mark.parametrize("requester", [CORE_A, OWNER], ids=["core-ops", "owner"])
async def test_request_of_a_requester_who_left_the_server_is_void(
    services: Services, roles, database, clock, requester
) -> None:
    """Also when the departure was missed (the bot was down): the server is asked."""
    await seed_grant(database, clock, CORE_A, OpsRole.CORE_OPS)
    grant = (await services.grants.grant(requester, ALICE, OpsRole.CORE_OPS, 30, "rota")).grant
    assert grant.status is GrantStatus.PENDING
    roles.gone.add(requester.id or 0)
    with pytest.raises(InvalidInput, match="left the server"):
        await services.grants.approve(CORE_B, grant.id)
    assert roles.held == set()
    after = await services.grants.get(grant.id)
    assert after is not None and after.status is GrantStatus.VOID


# -- security: grants, not Discord roles, are the truth (item 9) -------------------------------


async def test_permissions_come_from_active_grants_only(
    services: Services, database, clock
) -> None:
    assert (await services.grants.actor(ALICE.id, "alice")).roles == frozenset()
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 7, "runs node-7")
    actor = await services.grants.actor(ALICE.id, "alice")
    assert actor.roles == {OpsRole.NODE_OPS} and not actor.is_owner
    assert actor.id == ALICE.id and actor.name == "alice"
    clock.advance(days=7)  # expired, though the sweep has not run yet
    assert (await services.grants.actor(ALICE.id, "alice")).roles == frozenset()
    owner = await services.grants.actor(OWNER.id or 0, "owner")
    assert owner.is_owner and owner.roles == frozenset()


async def test_the_last_core_ops_grant_the_sweep_keeps_still_counts(
    services: Services, clock
) -> None:
    await services.grants.grant(OWNER, ALICE, OpsRole.CORE_OPS, 10, "first Core Ops member")
    clock.advance(days=11)
    assert (await services.grants.sweep()).kept
    assert (await services.grants.actor(ALICE.id, "alice")).roles == {OpsRole.CORE_OPS}


async def test_an_owner_bootstraps_the_first_core_ops_member(
    services: Services, roles, database
) -> None:
    result = await services.grants.grant(OWNER, ALICE, OpsRole.CORE_OPS, 30, "first member")
    assert not result.pending_approval and result.grant.status is GrantStatus.ACTIVE
    assert (ALICE.id, OpsRole.CORE_OPS) in roles.held
    # From the first Core Ops member on, the two-person rule applies to owners too.
    second = await services.grants.grant(OWNER, BOB, OpsRole.CORE_OPS, 30, "second member")
    assert second.pending_approval
    async with database.uow() as uow:
        rows = await uow.audit.recent(10)
    bootstrap = next(r for r in rows if r.details.get("grant_id") == result.grant.id)
    assert bootstrap.details["bootstrap"] is True


async def test_only_an_owner_bootstraps(services: Services) -> None:
    result = await services.grants.grant(CORE_A, ALICE, OpsRole.CORE_OPS, 30, "no Core Ops yet")
    assert result.pending_approval


async def test_enforce_is_the_default_and_removes_every_hand_given_role(
    services: Services, roles, delivered
) -> None:
    """A hand-given role grants nothing, so removing it locks nobody out: also a Core Ops role
    when nobody holds a Core Ops grant. Only owner accounts are left alone."""
    roles.held |= {(BOB.id, OpsRole.CORE_OPS), (OWNER.id or 0, OpsRole.NODE_OPS)}
    holdings = {
        BOB.id: ("bob", frozenset({OpsRole.CORE_OPS})),
        OWNER.id or 0: ("owner", frozenset({OpsRole.NODE_OPS})),
    }
    found = await services.grants.check_drift(holdings, complete=True)
    assert {(f.member_id, f.role) for f in found} == {
        (BOB.id, OpsRole.CORE_OPS),
        (OWNER.id or 0, OpsRole.NODE_OPS),
    }
    await services.outbox.drain_all()
    assert [(r["member_id"], r["role"]) for r in delivered.removals] == [(BOB.id, "core_ops")]
    assert roles.held == {(OWNER.id or 0, OpsRole.NODE_OPS)}
    (notice,) = (n for n in delivered.notices if n["template"] == "access.drift")
    kept = next(f for f in notice["data"]["findings"] if f["member_id"] == OWNER.id)
    assert kept["kept_because"] == "break-glass owner account"
