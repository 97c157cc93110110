"""Who may do what: the one check every command and button goes through."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.domain.errors import PermissionDenied
from bot.domain.permissions import PERMISSIONS
from bot.domain.roles import Actor, OpsRole


@dataclass(frozen=True)
class WhoAmI:
    actor: Actor
    roles: tuple[OpsRole, ...]
    allowed: tuple[str, ...]
    """Actions the actor may take, in table order."""


class AccessService:
    def __init__(self, permissions: Mapping[str, frozenset[OpsRole] | None] = PERMISSIONS) -> None:
        self.permissions = permissions

    def required(self, action: str) -> frozenset[OpsRole] | None:
        """None: public. Empty: owners only. Unknown actions are owners only, never open."""
        return self.permissions.get(action, frozenset())

    def is_allowed(self, actor: Actor, action: str) -> bool:
        needed = self.required(action)
        if needed is None or actor.is_owner:
            return True
        return bool(needed & actor.roles)

    def authorize(self, actor: Actor, action: str) -> None:
        if not self.is_allowed(actor, action):
            raise PermissionDenied(action, self.required(action) or ())

    def whoami(self, actor: Actor, available: Iterable[str] | None = None) -> WhoAmI:
        """`available` limits the answer to the actions this process actually offers."""
        offered = set(available) if available is not None else None
        allowed = tuple(
            action
            for action in self.permissions
            if (offered is None or action in offered) and self.is_allowed(actor, action)
        )
        return WhoAmI(
            actor=actor, roles=tuple(sorted(actor.roles, key=lambda r: r.rank)), allowed=allowed
        )
