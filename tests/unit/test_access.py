from __future__ import annotations

import pytest

from bot.domain.errors import PermissionDenied
from bot.domain.permissions import PERMISSIONS
from bot.domain.roles import Actor, OpsRole, RoleMap
from bot.services.access import AccessService

TABLE = {
    "whoami": None,
    "ping": frozenset(OpsRole),
    "incident open": frozenset({OpsRole.CORE_OPS, OpsRole.NODE_OPS}),
    "owners only": frozenset(),
    "alerts:ack": frozenset({OpsRole.NODE_OPS}),
}
access = AccessService(TABLE)

MINER = Actor(id=1, name="miner")
NODE = Actor(id=2, name="node-op", roles=frozenset({OpsRole.NODE_OPS}))
CORE = Actor(id=3, name="core", roles=frozenset({OpsRole.CORE_OPS, OpsRole.OBSERVER}))
OWNER = Actor(id=4, name="owner", is_owner=True)


@pytest.mark.parametrize(
    ("actor", "action", "allowed"),
    [
        (MINER, "whoami", True),
        (MINER, "ping", False),
        (NODE, "ping", True),
        (NODE, "incident open", True),
        (NODE, "alerts:ack", True),
        (CORE, "alerts:ack", False),
        (CORE, "owners only", False),
        (OWNER, "owners only", True),
        (OWNER, "incident open", True),
        (CORE, "never heard of it", False),
        (OWNER, "never heard of it", True),
    ],
)
def test_is_allowed(actor: Actor, action: str, allowed: bool) -> None:
    assert access.is_allowed(actor, action) is allowed


def test_denial_names_the_roles_needed() -> None:
    with pytest.raises(PermissionDenied) as info:
        access.authorize(MINER, "incident open")
    assert info.value.user_message == "`/incident open` needs the Core Ops or Node Ops role."
    assert info.value.outcome == "denied"


def test_denial_of_a_button_action() -> None:
    with pytest.raises(PermissionDenied) as info:
        access.authorize(CORE, "alerts:ack")
    assert info.value.user_message == "**Acknowledge** needs the Node Ops role."
    labelled = info.value.labelled("Acknowledged by dana")
    assert labelled.user_message == "**Acknowledged by dana** needs the Node Ops role."
    assert "alerts:ack" not in labelled.user_message, "never the internal action id"


def test_every_button_action_has_a_label_for_refusals() -> None:
    """Issue 16 §5: a refused button names its label, not an internal action id."""
    from bot.domain.permissions import ACTION_LABELS, PERMISSIONS

    buttons = {action for action in PERMISSIONS if ":" in action}
    assert buttons <= set(ACTION_LABELS)


def test_unknown_action_is_owners_only() -> None:
    with pytest.raises(PermissionDenied) as info:
        access.authorize(CORE, "secret thing")
    assert "reserved for the bot owners" in info.value.user_message


def test_whoami_lists_roles_and_allowed_actions_in_table_order() -> None:
    info = access.whoami(CORE)
    assert info.roles == (OpsRole.CORE_OPS, OpsRole.OBSERVER)
    assert info.allowed == ("whoami", "ping", "incident open")


def test_whoami_limited_to_what_the_process_offers() -> None:
    info = access.whoami(OWNER, available=["whoami", "ping"])
    assert info.allowed == ("whoami", "ping")


def test_miner_may_only_whoami() -> None:
    assert access.whoami(MINER).allowed == ("whoami",)


def test_role_map() -> None:
    role_map = RoleMap.from_ids({OpsRole.CORE_OPS: 10, OpsRole.OBSERVER: 20})
    assert role_map.roles_for([10, 99, 20]) == {OpsRole.CORE_OPS, OpsRole.OBSERVER}
    assert role_map.roles_for([]) == frozenset()
    assert role_map.role_id(OpsRole.OBSERVER) == 20


def test_real_table_has_only_known_roles() -> None:
    for action, roles in PERMISSIONS.items():
        assert roles is None or roles <= set(OpsRole), action
