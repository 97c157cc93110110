"""Access services over a real database (SQLite, PostgreSQL when configured), a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.config import AccessSettings
from bot.domain.access import RoleChangeRefused, RoleChangeUnavailable
from bot.domain.outbox import OutboxItem
from bot.domain.roles import Actor, OpsRole
from bot.services.container import Services
from bot.services.grants import MemberRef
from bot.services.notices import DIRECT, NOTICE, ROLE_REMOVE
from bot.storage.database import Database

CORE_A = Actor(id=1, name="core-a", roles=frozenset({OpsRole.CORE_OPS}))
CORE_B = Actor(id=2, name="core-b", roles=frozenset({OpsRole.CORE_OPS}))
NODE = Actor(id=3, name="node-op", roles=frozenset({OpsRole.NODE_OPS}))
OWNER = Actor(id=9, name="owner", is_owner=True)
ALICE = MemberRef(id=10, name="alice")
BOB = MemberRef(id=11, name="bob")


@dataclass
class FakeRoles:
    """The chat platform's roles: who holds what, and a switch to make it refuse."""

    held: set[tuple[int, OpsRole]] = field(default_factory=set)
    refuse: Exception | None = None
    calls: list[tuple[str, int, OpsRole]] = field(default_factory=list)

    async def add(self, member_id: int, role: OpsRole, reason: str) -> None:
        self.calls.append(("add", member_id, role))
        if self.refuse:
            raise self.refuse
        self.held.add((member_id, role))

    async def remove(self, member_id: int, role: OpsRole, reason: str) -> None:
        self.calls.append(("remove", member_id, role))
        if self.refuse:
            raise self.refuse
        self.held.discard((member_id, role))


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

    built.outbox.register(NOTICE, notice)
    built.outbox.register(DIRECT, direct)
    built.outbox.register(ROLE_REMOVE, removal)
    return built


async def audit_actions(database: Database) -> list[tuple[str, str]]:
    async with database.uow() as uow:
        rows = await uow.audit.recent(1000)
    return [(r.action, r.outcome) for r in reversed(rows)]
