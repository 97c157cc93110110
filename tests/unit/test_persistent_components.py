"""Buttons already on Discord keep working: every persistent component the bot registers is
routed by the custom_ids that earlier versions put on messages, and builds the same ones.

The custom_ids below are literal: what the code before the one persistent base
(bot/discord/components.py) produced. A message keeps its buttons for as long as it exists, so
these strings are a contract with every message the bot ever posted.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import discord
import pytest

from bot.discord.components import PersistentButton, PersistentItem, PersistentSelect
from bot.domain.permissions import PERMISSIONS
from cogs.alerts.views import (
    AckButton,
    ExpireButton,
    IncidentButton,
    PickGroupSelect,
    SilenceButton,
)
from tests.harness.offline import offline_bot

SNOWFLAKE = "1234567890123456789"
OLD_IDS: dict[str, list[str]] = {
    "access:approve": ["hh:access:approve:7", f"hh:access:approve:{SNOWFLAKE}"],
    "access:reject": ["hh:access:reject:7"],
    "access:keep": ["hh:access:keep:42"],
    "access:revoke": ["hh:access:revoke:42"],
    "alerts:ack": ["hh:alerts:ack:12"],
    "alerts:silence": [
        "hh:alerts:silence:12:1h",
        "hh:alerts:silence:12:4h",
        "hh:alerts:silence:12:24h",
    ],
    "alerts:expire": ["hh:alerts:expire:12"],
    "alerts:incident": ["hh:alerts:incident:12"],
    "alerts:pick": [f"hh:alerts:pick:{part}" for part in range(5)],
    "incident:isolate": ["hh:incident:isolate:3"],
    "incident:snapshot": ["hh:incident:snapshot:3"],
    "incident:rotate": ["hh:incident:rotate:3"],
    "incident:notify": ["hh:incident:notify:3"],
    "incident:report": ["hh:incident:report:3"],
    "incident:update": ["hh:incident:update:3"],
    "incident:command": ["hh:incident:command:3"],
    "incident:resolve": ["hh:incident:resolve:3"],
    "node:approve": ["hh:node:approve:5"],
    "node:reject": ["hh:node:reject:5"],
    "upgrade:approve": ["hh:upgrade:approve:9"],
    "upgrade:reject": ["hh:upgrade:reject:9"],
}
NOT_ROUTED = [
    "hh:access:keep:42:done",  # a decided review pair, greyed out: nothing to press
    "hh:health:page:next",  # the /health pager: an in-memory view, not persistent
    "hh:alerts:silence:12:2h",  # no such choice
    "hh:alerts:pick:5",  # a digest has at most five menus
    "hh:access:approve:",
    "hh:access:approve:12345678901234567890",  # longer than any snowflake
]


@pytest.fixture
async def registered(tmp_path: Path) -> AsyncIterator[set[type[PersistentItem[Any]]]]:
    """The persistent component classes the cogs register, loaded into a real OpsBot."""
    async with offline_bot(tmp_path) as bot:
        yield set(bot.persistent_items)


def routed(classes: set[type[PersistentItem[Any]]], custom_id: str) -> list[str]:
    """The classes whose template discord.py matches against a pressed custom_id (fullmatch)."""
    return sorted(
        cls.__name__ for cls in classes if cls.__discord_ui_compiled_template__.fullmatch(custom_id)
    )


async def test_every_old_custom_id_is_routed_to_exactly_one_component_of_its_action(
    registered: set[type[PersistentItem[Any]]],
) -> None:
    for action, custom_ids in OLD_IDS.items():
        for custom_id in custom_ids:
            names = routed(registered, custom_id)
            assert len(names) == 1, f"{custom_id} is routed to {names or 'nothing'}"
            (name,) = names
            cls = next(c for c in registered if c.__name__ == name)
            assert cls.action == action, f"{custom_id} reaches {name} ({cls.action})"


async def test_every_registered_component_has_an_action_of_the_table_and_old_ids(
    registered: set[type[PersistentItem[Any]]],
) -> None:
    assert {cls.action for cls in registered} == set(OLD_IDS)
    assert {cls.action for cls in registered} <= set(PERMISSIONS)
    for cls in registered:
        assert issubclass(cls, PersistentButton | PersistentSelect), cls


async def test_what_is_not_a_persistent_component_is_routed_nowhere(
    registered: set[type[PersistentItem[Any]]],
) -> None:
    for custom_id in NOT_ROUTED:
        assert routed(registered, custom_id) == [], custom_id


async def test_a_press_on_an_old_message_rebuilds_the_component_with_its_id(
    registered: set[type[PersistentItem[Any]]],
) -> None:
    """What discord.py does on a press: the component from the message, then `from_custom_id`."""
    for cls in registered:
        for custom_id in OLD_IDS[cls.action]:
            item: discord.ui.Item[Any]
            if issubclass(cls, PersistentSelect):
                options = [discord.SelectOption(label="a", value="1")]
                item = discord.ui.Select(custom_id=custom_id, options=options)
            else:
                item = discord.ui.Button(label="old label", custom_id=custom_id)
            match = cls.__discord_ui_compiled_template__.fullmatch(custom_id)
            assert match is not None
            rebuilt = await cls.from_custom_id(cast(Any, None), item, match)
            assert rebuilt.custom_id == custom_id
            assert rebuilt.action == cls.action
            number = re.search(r":([0-9]+)(?::[0-9]+h)?$", custom_id)
            assert number is not None
            assert rebuilt.key.get("id", rebuilt.key.get("part")) == number[1]


async def test_new_components_carry_the_old_ids(
    registered: set[type[PersistentItem[Any]]],
) -> None:
    """Built the way the cogs build them, a component has the id an older version gave it."""
    built = {
        cls.action: cls.build(7, label="x").custom_id
        for cls in registered
        if issubclass(cls, PersistentButton) and cls.__module__ != "cogs.alerts.views"
    }
    for action, custom_id in built.items():
        area, verb = action.split(":")
        assert custom_id == f"hh:{area}:{verb}:7"
        assert routed(registered, custom_id) != []
    assert AckButton(12).custom_id == "hh:alerts:ack:12"
    assert [SilenceButton(12, h).custom_id for h in (1, 4, 24)] == OLD_IDS["alerts:silence"]
    assert ExpireButton(12).custom_id == "hh:alerts:expire:12"
    assert IncidentButton(12).custom_id == "hh:alerts:incident:12"
    assert [PickGroupSelect(p).custom_id for p in range(5)] == OLD_IDS["alerts:pick"]


def test_a_class_without_an_action_matches_nothing_and_a_template_names_its_action() -> None:
    class Abstract(PersistentButton):
        pass

    class Named(PersistentButton, template=r"hh:test:verb:(?P<id>[0-9]+):x"):
        pass

    assert Abstract.__discord_ui_compiled_template__.fullmatch("hh:test:verb:1") is None
    assert Named.action == "test:verb"
    with pytest.raises(TypeError):

        class Wrong(PersistentButton, template=r"no:prefix"):
            pass
