"""The manual's four ops roles (§18). Everyone else in the guild is a miner."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class OpsRole(enum.StrEnum):
    CORE_OPS = "core_ops"
    NODE_OPS = "node_ops"
    TREASURY_OPS = "treasury_ops"
    OBSERVER = "observer"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def rank(self) -> int:
        """Display order: most privileged first."""
        return list(OpsRole).index(self)


_LABELS = {
    OpsRole.CORE_OPS: "Core Ops",
    OpsRole.NODE_OPS: "Node Ops",
    OpsRole.TREASURY_OPS: "Treasury Ops",
    OpsRole.OBSERVER: "Observer",
}

ALL_OPS_ROLES = frozenset(OpsRole)


@dataclass(frozen=True)
class RoleMap:
    """Which Discord role id stands for which ops role (from `[roles]`)."""

    by_role_id: Mapping[int, OpsRole]

    @classmethod
    def from_ids(cls, ids: Mapping[OpsRole, int]) -> RoleMap:
        return cls({role_id: role for role, role_id in ids.items()})

    def roles_for(self, discord_role_ids: Iterable[int]) -> frozenset[OpsRole]:
        return frozenset(self.by_role_id[r] for r in discord_role_ids if r in self.by_role_id)

    def role_id(self, role: OpsRole) -> int:
        return next(rid for rid, r in self.by_role_id.items() if r is role)


@dataclass(frozen=True)
class Actor:
    """Whoever acts: a member (with the ops roles they hold) or the scheduler."""

    id: int | None
    name: str
    roles: frozenset[OpsRole] = frozenset()
    is_owner: bool = False

    @classmethod
    def system(cls, name: str = "scheduler") -> Actor:
        return cls(id=None, name=name)
