"""End-to-end fixtures: the Hyper Hash guild on the Discord emulator, the app running against it
(`tests/harness/running.py`), and the outside world's servers more than one module needs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Application
from bot.domain.permissions import CORE, PERMISSIONS
from cogs import EXTENSIONS
from tests.harness.databases import sqlite_url
from tests.harness.mail import Inbox, smtp_server
from tests.harness.running import running_app
from tests.harness.world import World, config_text, free_port, new_world


@pytest.fixture
async def world() -> AsyncIterator[World]:
    world = await new_world()
    try:
        yield world
    finally:
        await world.emulator.stop()


@pytest.fixture
def config_extra() -> str:
    """TOML appended to the config: a module overrides it, a test parametrizes it (`LAB`)."""
    return ""


@pytest.fixture
def config_path(world: World, tmp_path: Path, config_extra: str) -> Path:
    """A config file pointing at the emulator, for a bot started as a process of its own."""
    path = tmp_path / "config.toml"
    url = sqlite_url(tmp_path / "hh-opsbot.db")
    path.write_text(config_text(world, database_url=url, web_port=free_port(), extra=config_extra))
    return path


# In-process: the whole Application (bot, web, scheduler, outbox) plus a test-only extension.
TABLE = {
    **PERMISSIONS,
    "boom": None,
    "reject": None,
    "shout": None,
    "buttons": None,
    "test:press": CORE,
}
POLICY_EXTENSIONS = (*EXTENSIONS, "tests.e2e.policy_cog")


@pytest.fixture
def policy_options() -> dict[str, Any]:
    """`running_app`'s options for the app with the test-only extension (`policy_cog.py`)."""
    return {"extensions": POLICY_EXTENSIONS, "permissions": TABLE}


@pytest.fixture
async def app(
    world: World, tmp_path: Path, config_extra: str, policy_options: dict[str, Any]
) -> AsyncIterator[Application]:
    async with running_app(world, tmp_path, extra=config_extra, **policy_options) as application:
        yield application


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A loopback SMTP server: its inbox and port (`smtp_section(port)` is the config)."""
    with smtp_server() as server:
        yield server
