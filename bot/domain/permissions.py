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
CORE_AND_OBSERVER = frozenset({OpsRole.CORE_OPS, OpsRole.OBSERVER})
RESPONDERS = frozenset({OpsRole.CORE_OPS, OpsRole.NODE_OPS, OpsRole.TREASURY_OPS})
"""Every ops role but Observer: those who work incidents (Observers watch and audit)."""
NODE_AND_CORE = frozenset({OpsRole.CORE_OPS, OpsRole.NODE_OPS})

PERMISSIONS: Mapping[str, frozenset[OpsRole] | None] = MappingProxyType(
    {
        # Anyone may ask who they are and what they may do.
        "whoami": EVERYONE,
        # Health of the bot itself, for any ops role.
        "ping": ALL_OPS_ROLES,
        # Access control (manual §9, §18): Core Ops decide; every ops role may see the grants.
        "access grant": CORE,
        "access renew": CORE,
        "access revoke": CORE,
        "access list": ALL_OPS_ROLES,
        "access review": CORE,
        "access unlock": CORE,
        "access:approve": CORE,
        "access:reject": CORE,
        "access:keep": CORE,
        "access:revoke": CORE,
        # Incidents (manual §9, §12, §19, §20): responders work them, every ops role may look.
        "incident open": RESPONDERS,
        "incident update": RESPONDERS,
        "incident severity": RESPONDERS,
        "incident assign": RESPONDERS,
        "incident resolve": RESPONDERS,
        "incident report": RESPONDERS,
        "incident miners": RESPONDERS,
        "incident link": RESPONDERS,
        "incident list": ALL_OPS_ROLES,
        "incident show": ALL_OPS_ROLES,
        "incident stats": ALL_OPS_ROLES,
        "incident:isolate": RESPONDERS,
        "incident:snapshot": RESPONDERS,
        "incident:rotate": RESPONDERS,
        "incident:notify": RESPONDERS,
        "incident:report": RESPONDERS,
        # The card's buttons: the same roles as their slash commands (update, assign, resolve).
        "incident:update": RESPONDERS,
        "incident:command": RESPONDERS,
        "incident:resolve": RESPONDERS,
        # The audit trail, for Core Ops and the Observers who audit them.
        "audit recent": CORE_AND_OBSERVER,
        "audit export": CORE_AND_OBSERVER,
        # Health of the network (manual §11): operators ask in #operations.
        "health": ALL_OPS_ROLES,
        "health:page": ALL_OPS_ROLES,
        # The public summary for miners (#miners): everyone, rate-limited.
        "status": EVERYONE,
        # The node registry: Node Ops register, Core Ops sign (approve) registrations (manual §3).
        "node register": frozenset({OpsRole.CORE_OPS, OpsRole.NODE_OPS}),
        "node list": ALL_OPS_ROLES,
        "node remove": CORE,
        "node:approve": CORE,
        "node:reject": CORE,
        # Buttons on a firing alert group in #alerts (manual §5: node operators act on alerts).
        "alerts:ack": NODE_AND_CORE,
        "alerts:pick": NODE_AND_CORE,
        "alerts:silence": NODE_AND_CORE,
        "alerts:expire": NODE_AND_CORE,
        "alerts:incident": NODE_AND_CORE,
        # Upgrades (manual §8): Core Ops announce signed releases; a second Core Ops member
        # approves the rollout (two-person rule); every ops role may follow the rollout.
        "upgrade announce": CORE,
        # A version older than the newest announced one: only with rollback:true, Core Ops.
        "upgrade:rollback": CORE,
        "upgrade status": ALL_OPS_ROLES,
        "upgrade history": ALL_OPS_ROLES,
        "upgrade:approve": CORE,
        # Any Core Ops member may stop a rollout nobody approved yet (the announcer too).
        "upgrade:reject": CORE,
    }
)


ACTION_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "access:approve": "Approve",
        "access:reject": "Reject",
        "access:keep": "Keep",
        "access:revoke": "Revoke",
        "incident:isolate": "Isolate affected systems",
        "incident:snapshot": "Snapshot logs and state",
        "incident:rotate": "Rotate credentials",
        "incident:notify": "Notify #operations",
        "incident:report": "Publish the report",
        "incident:update": "Update",
        "incident:command": "Take command",
        "incident:resolve": "Resolve",
        "health:page": "◀ / ▶",
        "node:approve": "Approve",
        "node:reject": "Reject",
        "alerts:ack": "Acknowledge",
        "alerts:pick": "Act on a group",
        "alerts:silence": "Silence",
        "alerts:expire": "Expire silence",
        "alerts:incident": "Open incident",
        "upgrade:rollback": "/upgrade announce rollback:true",
        "upgrade:approve": "Approve rollout",
        "upgrade:reject": "Reject",
    }
)
"""What a member sees on each button (`area:verb`), or the option an action stands for: what a
refusal names, never the action id. A press names the very label it showed (`Silence 4 h`);
this is the fallback."""


def required_roles(action: str) -> frozenset[OpsRole] | None:
    """None means public; an empty set means owners only (also for unknown actions)."""
    if action not in PERMISSIONS:
        return frozenset()
    return PERMISSIONS[action]
