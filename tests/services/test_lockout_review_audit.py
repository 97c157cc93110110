"""The 3-strike lockout, the quarterly review, and the audit hash chain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from bot.app.services import Services
from bot.domain.access import LockedOut, ReviewDecision
from bot.domain.errors import InvalidInput
from bot.domain.roles import Actor, OpsRole
from bot.services.audit import verify_chain
from bot.storage.database import Database
from tests.services.conftest import ALICE, BOB, CORE_A, CORE_B, NODE, OWNER, audit_actions

# -- lockout -----------------------------------------------------------------------------------


async def test_three_strikes_within_the_window_lock_out(
    services: Services, clock, delivered, database
) -> None:
    lockouts = services.lockouts
    assert (await lockouts.strike(NODE, "access grant")).lockout is None
    clock.advance(minutes=5)
    assert (await lockouts.strike(NODE, "access grant")).strikes == 2
    clock.advance(minutes=5)
    result = await lockouts.strike(NODE, "access revoke")
    assert result.lockout is not None
    assert result.lockout.until == clock.now() + timedelta(minutes=60)
    with pytest.raises(LockedOut):
        await lockouts.check(NODE)
    await services.outbox.drain_all()
    assert delivered.templates() == ["access.lockout"]
    assert ("access:lockout", "ok") in await audit_actions(database)
    clock.advance(minutes=60)
    await lockouts.check(NODE)  # lifted by time


async def test_strikes_outside_the_window_do_not_add_up(services: Services, clock) -> None:
    for _ in range(3):
        result = await services.lockouts.strike(NODE, "x")
        clock.advance(minutes=8)
    assert result.lockout is None, "strikes 16 minutes apart never make three within 15"


async def test_unlock(services: Services, clock, database) -> None:
    for _ in range(3):
        await services.lockouts.strike(NODE, "x")
    await services.lockouts.unlock(CORE_A, NODE.id or 0, NODE.name)
    await services.lockouts.check(NODE)
    assert (await services.lockouts.strike(NODE, "x")).strikes == 1, "strikes reset by unlock"
    with pytest.raises(InvalidInput, match="not locked out"):
        await services.lockouts.unlock(CORE_A, NODE.id or 0, NODE.name)
    assert ("access unlock", "ok") in await audit_actions(database)


async def test_owners_are_never_locked_out(services: Services) -> None:
    for _ in range(5):
        assert (await services.lockouts.strike(OWNER, "x")).lockout is None
    await services.lockouts.check(OWNER)


async def test_the_last_core_ops_member_is_never_locked_out(services: Services, database) -> None:
    # The first Core Ops member, granted by an owner (the bootstrap).
    await services.grants.grant(OWNER, ALICE, OpsRole.CORE_OPS, 30, "rota")
    alice = Actor(id=ALICE.id, name=ALICE.name, roles=frozenset({OpsRole.CORE_OPS}))
    for _ in range(3):
        result = await services.lockouts.strike(alice, "treasury:send")
    assert result.lockout is None and result.spared == "last active Core Ops member"
    await services.lockouts.check(alice)
    assert ("access:lockout", "spared") in await audit_actions(database)


# -- review ------------------------------------------------------------------------------------


async def grant_three(services: Services) -> None:
    await services.grants.grant(CORE_A, ALICE, OpsRole.NODE_OPS, 90, "rota")
    await services.grants.grant(CORE_A, BOB, OpsRole.OBSERVER, 90, "audit")
    # The first Core Ops member, granted by an owner (the bootstrap).
    await services.grants.grant(OWNER, BOB, OpsRole.CORE_OPS, 90, "core")


async def test_review_covers_every_active_grant_and_posts_it(services: Services, delivered) -> None:
    await grant_three(services)
    _review, items = await services.reviews.start(CORE_A)
    assert len(items) == 3
    await services.outbox.drain_all()
    (notice,) = [n for n in delivered.notices if n["template"] == "access.review"]
    assert {i["item_id"] for i in notice["data"]["items"]} == {i.id for i in items}
    with pytest.raises(InvalidInput, match="still open"):
        await services.reviews.start(CORE_B)


async def test_reviewer_may_not_decide_their_own_grant(services: Services) -> None:
    await grant_three(services)
    _, items = await services.reviews.start(CORE_A)
    bob_item = next(i for i in items if i.member_id == BOB.id)
    bob = Actor(id=BOB.id, name=BOB.name, roles=frozenset({OpsRole.CORE_OPS}))
    with pytest.raises(InvalidInput, match="your own grant"):
        await services.reviews.decide(bob, bob_item.id, ReviewDecision.KEEP)


async def test_decisions_keep_and_revoke_then_summary(
    services: Services, roles, delivered, database
) -> None:
    await grant_three(services)
    _, items = await services.reviews.start(CORE_A)
    for item in items:
        decision = ReviewDecision.REVOKE if item.role is OpsRole.OBSERVER else ReviewDecision.KEEP
        await services.reviews.decide(CORE_B, item.id, decision)
    with pytest.raises(InvalidInput, match="closed"):
        await services.reviews.decide(CORE_B, items[0].id, ReviewDecision.KEEP)
    await services.outbox.drain_all()
    assert (BOB.id, OpsRole.OBSERVER) not in roles.held
    (summary,) = [n for n in delivered.notices if n["template"] == "access.review_summary"]
    assert (summary["data"]["kept"], summary["data"]["revoked"]) == (2, 1)
    actions = await audit_actions(database)
    assert actions.count(("access:review_keep", "ok")) == 2
    assert ("access:review_revoke", "ok") in actions


async def test_unconfirmed_grants_are_revoked_at_the_deadline(
    services: Services, roles, clock, delivered
) -> None:
    await grant_three(services)
    _, items = await services.reviews.start(CORE_A)
    alice_item = next(i for i in items if i.member_id == ALICE.id)
    await services.reviews.decide(CORE_B, alice_item.id, ReviewDecision.KEEP)
    clock.advance(days=14, microseconds=-1)
    assert await services.reviews.close_overdue() == []
    clock.advance(microseconds=1)
    (summary,) = await services.reviews.close_overdue()
    # Bob's Observer grant is revoked; Bob's Core Ops grant is the last one: kept.
    assert (summary.kept, summary.auto_revoked, summary.spared) == (2, 1, 1)
    await services.outbox.drain_all()
    assert (BOB.id, OpsRole.OBSERVER) not in roles.held
    assert (BOB.id, OpsRole.CORE_OPS) in roles.held
    assert await services.reviews.close_overdue() == [], "closed once"


# -- audit hash chain --------------------------------------------------------------------------


async def test_chain_verifies_on_a_real_log(services: Services, database: Database) -> None:
    await grant_three(services)
    await services.grants.revoke(CORE_A, ALICE, OpsRole.NODE_OPS, "rota change")
    async with database.uow() as uow:
        verdict = await verify_chain(uow, batch=3)
    assert verdict.ok and verdict.rows >= 4


async def test_chain_names_the_first_edited_row(services: Services, database: Database) -> None:
    await grant_three(services)
    async with database.uow() as uow:
        rows = await uow.audit.recent(100)
    victim = sorted(r.id or 0 for r in rows)[1]
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE audit_log SET actor_name = 'mallory' WHERE id = :id"), {"id": victim}
        )
    async with database.uow() as uow:
        verdict = await verify_chain(uow)
    assert not verdict.ok
    assert verdict.first_broken_id == victim
    assert "edited" in (verdict.reason or "")


async def test_chain_detects_a_deleted_row(services: Services, database: Database) -> None:
    await grant_three(services)
    async with database.uow() as uow:
        ids = sorted(r.id or 0 for r in await uow.audit.recent(100))
    async with database.engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[1]})
    async with database.uow() as uow:
        verdict = await verify_chain(uow)
    assert not verdict.ok and verdict.first_broken_id == ids[2]
