"""The permission table: every command and button action, and the roles allowed to use it.

One table, read by one check (`bot.services.access.AccessService.authorize`), so that what a
command needs is visible in one place and a command missing from the table is refused, not open.
Button actions are named `area:verb` and carried in the button's `custom_id` (`hh:area:verb:id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bot.domain.roles import ALL_OPS_ROLES, OpsRole

EVERYONE: frozenset[OpsRole] | None = None
"""Marker: the action is public (miners included)."""

CORE = frozenset({OpsRole.CORE_OPS})
NODE_AND_CORE = frozenset({OpsRole.CORE_OPS, OpsRole.NODE_OPS})

PERMISSIONS: Mapping[str, frozenset[OpsRole] | None] = MappingProxyType(
    {
        # Anyone may ask who they are and what they may do.
        "whoami": EVERYONE,
        # Health of the bot itself, for any ops role (the public /status comes later).
        "ping": ALL_OPS_ROLES,
        # Buttons on a firing alert group in #alerts (manual §5: node operators act on alerts).
        "alerts:ack": NODE_AND_CORE,
        "alerts:silence": NODE_AND_CORE,
        "alerts:expire": NODE_AND_CORE,
    }
)


def required_roles(action: str) -> frozenset[OpsRole] | None:
    """None means public; an empty set means owners only (also for unknown actions)."""
    if action not in PERMISSIONS:
        return frozenset()
    return PERMISSIONS[action]
