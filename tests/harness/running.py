"""The whole Application, in this process, against the Discord emulator: one way to start it.

    async with running_app(world, tmp_path, extra="[github]\\n...") as app:
        ...

It writes a config pointing at the emulator, migrates, gives the world's operators their grants
(`seed=False` for a test of the bootstrap), points discord.py at the emulator, starts
the app, waits until the bot is ready (commands synced, READY received, the client's own ready),
and on the way out stops the app and restores discord.py's real URLs. e2e tests and `bench/` use it.

The same `tmp_path` twice is a restart: the same database, a new process's worth of app. Options:
`wait_ready=False` when Discord is meant to be unreachable (the app must run without it), and
`start=False` for a test that starts the app itself (`await app.run()`, to see how a start ends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import discord

from bot.app import LOGIN_BACKOFF, Application
from bot.config import load_settings
from bot.domain.permissions import PERMISSIONS
from bot.domain.ports import Clock
from bot.domain.roles import OpsRole
from bot.storage import migrations
from cogs import EXTENSIONS
from tests.harness.databases import sqlite_url
from tests.harness.seeding import seed_grants
from tests.harness.waiting import until
from tests.harness.world import GUILD_ID, TOKEN, World, config_text, free_port

GUILD_READY_TIMEOUT = 0.5
"""How long discord.py waits after the last GUILD_CREATE before it is ready. Its default (2 s) is
for bots in many guilds whose GUILD_CREATEs stream in; the emulator sends its one guild right
after READY, so in a test the 2 s are idle time paid at every start (a third of the e2e suite)."""


@asynccontextmanager
async def running_app(
    world: World,
    tmp_path: Path,
    *,
    extra: str = "",
    discord_extra: str = "",
    clock: Clock | None = None,
    database_url: str | None = None,
    web_port: int | None = None,
    environ: Mapping[str, str] | None = None,
    extensions: tuple[str, ...] = EXTENSIONS,
    permissions: Mapping[str, frozenset[OpsRole] | None] = PERMISSIONS,
    login_backoff: tuple[float, ...] = LOGIN_BACKOFF,
    wait_ready: bool = True,
    seed: bool = True,
    start: bool = True,
) -> AsyncIterator[Application]:
    path = tmp_path / "config.toml"
    url = database_url or sqlite_url(tmp_path / "hh-opsbot.db")
    port = web_port or free_port()
    path.write_text(
        config_text(
            world, database_url=url, web_port=port, extra=extra, discord_extra=discord_extra
        )
    )
    settings = load_settings(path, environ={"HH_DISCORD__TOKEN": TOKEN, **(environ or {})})
    app = Application(
        settings.settings,
        clock=clock,
        extensions=extensions,
        permissions=permissions,
        login_backoff=login_backoff,
    )
    app.bot._connection.guild_ready_timeout = GUILD_READY_TIMEOUT
    await migrations.upgrade(app.database.engine)
    if seed:
        await seed_grants(world, app.database, app.clock)
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    try:
        if start:
            await app.start()
        if start and wait_ready:
            await world.emulator.wait_for_commands(GUILD_ID, timeout=30)
            await world.emulator.wait_ready(timeout=30)
            await until(app.discord_ready, 15, "the bot's own ready")
        yield app
    finally:
        await app.shutdown()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
