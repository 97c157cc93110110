"""Operators for the test world: the bot reads grants, not Discord roles (security item 9), so a
test gives its operators their ops roles as grants, written straight to the database."""

from __future__ import annotations

from datetime import timedelta

from bot.domain.access import Grant, GrantStatus
from bot.domain.ports import Clock
from bot.domain.roles import OpsRole
from bot.storage.database import Database
from tests.harness.world import World


async def seed_grant(
    database: Database, clock: Clock, member_id: int, role: OpsRole, name: str = "operator"
) -> Grant | None:
    """An active 90-day grant written straight to the database (no role change, no audit row).

    The bot reads grants, not Discord roles (security item 9): this is how a test gives one of
    its operators an ops role. None when the member already holds a live grant of that role."""
    now = clock.now()
    async with database.uow() as uow:
        if await uow.grants.live_for(member_id, role) is not None:
            return None
        grant = await uow.grants.add(
            member_id=member_id,
            member_name=name,
            role=role,
            status=GrantStatus.ACTIVE,
            reason="seeded by the test world",
            granted_by_id=None,
            granted_by_name="test world",
            requested_at=now,
            days=90,
            granted_at=now,
            expires_at=now + timedelta(days=90),
        )
        await uow.commit()
    return grant


async def seed_grants(world: World, database: Database, clock: Clock) -> None:
    """Every emulator member who holds an ops role in Discord also holds the grant for it.

    The test world's stand-in for an owner granting the first operators (README, Bootstrap).
    Call it after migrating and before starting the app; it is idempotent."""
    ops = {role_id: OpsRole(key) for key, role_id in world.roles.items()}
    for user_id, member in world.emulator.members.items():
        if user_id == world.emulator.bot_user_id:
            continue
        for role_id in member["roles"]:
            role = ops.get(int(role_id))
            if role is not None:
                name = str(member["user"]["username"])
                await seed_grant(database, clock, user_id, role, name)
