"""Access services over a real database (SQLite, PostgreSQL when configured), a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from bot.app.services import Services
from bot.config import AccessSettings
from bot.domain.access import Grant, GrantStatus, RoleChangeRefused, RoleChangeUnavailable
from bot.domain.outbox import OutboxItem, OutboxKind
from bot.domain.roles import Actor, OpsRole
from bot.services.grants import MemberRef
from bot.storage.database import Database

CORE_A = Actor(id=1, name="core-a", roles=frozenset({OpsRole.CORE_OPS}))
CORE_B = Actor(id=2, name="core-b", roles=frozenset({OpsRole.CORE_OPS}))
NODE = Actor(id=3, name="node-op", roles=frozenset({OpsRole.NODE_OPS}))
OWNER = Actor(id=9, name="owner", is_owner=True)
ALICE = MemberRef(id=10, name="alice")
BOB = MemberRef(id=11, name="bob")


@dataclass
class FakeRoles:
    """The chat platform's roles: who holds what, and a switch to make it refuse.

    `gate`, when set, holds every role addition until the test opens it (to line up concurrent
    decisions); `gone` are members who left the server."""

    held: set[tuple[int, OpsRole]] = field(default_factory=set)
    refuse: Exception | None = None
    calls: list[tuple[str, int, OpsRole]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    gone: set[int] = field(default_factory=set)

    async def add(self, member_id: int, role: OpsRole, reason: str) -> None:
        self.calls.append(("add", member_id, role))
        if self.gate is not None:
            await self.gate.wait()
        if self.refuse:
            raise self.refuse
        self.held.add((member_id, role))

    def count(self, verb: str) -> int:
        return sum(1 for call in self.calls if call[0] == verb)

    async def remove(self, member_id: int, role: OpsRole, reason: str) -> None:
        self.calls.append(("remove", member_id, role))
        if self.refuse:
            raise self.refuse
        self.held.discard((member_id, role))

    async def is_member(self, member_id: int) -> bool:
        return member_id not in self.gone


REFUSED = RoleChangeRefused("Discord refused: move the bot's role above Core Ops.")
UNAVAILABLE = RoleChangeUnavailable("Discord is not answering.")


@dataclass
class Delivered:
    notices: list[dict] = field(default_factory=list)
    directs: list[dict] = field(default_factory=list)
    removals: list[dict] = field(default_factory=list)

    def templates(self) -> list[str]:
        return [n["template"] for n in self.notices]


@pytest.fixture
def roles() -> FakeRoles:
    return FakeRoles()


@pytest.fixture
def delivered() -> Delivered:
    return Delivered()


@pytest.fixture
def services(database: Database, clock, roles: FakeRoles, delivered: Delivered) -> Services:
    built = Services.build(
        database.uow,
        clock,
        access_settings=AccessSettings(),
        roles=roles,
        owner_ids=frozenset({OWNER.id or 0}),
    )

    async def notice(item: OutboxItem) -> dict:
        delivered.notices.append(dict(item.payload))
        return {}

    async def direct(item: OutboxItem) -> dict:
        delivered.directs.append(dict(item.payload))
        return {}

    async def removal(item: OutboxItem) -> dict:
        delivered.removals.append(dict(item.payload))
        roles.held.discard((int(item.payload["member_id"]), OpsRole(item.payload["role"])))
        return {}

    built.outbox.register(OutboxKind.NOTICE, notice)
    built.outbox.register(OutboxKind.DIRECT, direct)
    built.outbox.register(OutboxKind.ROLE_REMOVE, removal)
    return built


async def audit_actions(database: Database) -> list[tuple[str, str]]:
    async with database.uow() as uow:
        rows = await uow.audit.recent(1000)
    return [(r.action, r.outcome) for r in reversed(rows)]


async def seed_grant(
    database: Database, clock, member: Actor | MemberRef, role: OpsRole, days: int = 90
) -> Grant:
    """An active grant written straight to the database (no role change, no audit row)."""
    now = clock.now()
    async with database.uow() as uow:
        grant = await uow.grants.add(
            member_id=member.id or 0,
            member_name=member.name,
            role=role,
            status=GrantStatus.ACTIVE,
            reason="seeded by the test",
            granted_by_id=None,
            granted_by_name="test",
            requested_at=now,
            days=days,
            granted_at=now,
            expires_at=now + timedelta(days=days),
        )
        await uow.commit()
    return grant


async def until(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll `check` until it is true (raises TimeoutError after `timeout` seconds)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
