"""Loopback Discord API emulator (REST + gateway websocket) for end-to-end tests.

Why it exists: the real discord.py client is the thing under test, so instead of mocking its
methods we let it talk to a fake Discord over 127.0.0.1 in the real wire format (JSON REST under
``/api/v10`` and a JSON-text gateway websocket). Point the client at it before ``start()``::

    discord.http.Route.BASE = emu.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emu.gateway_url)

(or ``with emu.patch_discord_py(): ...``). A bot in a subprocess needs the same two values
through its configuration.

Fidelity choices worth knowing (see also the project design notes):

- JSON responses carry ``Content-Type: application/json`` exactly; discord.py ignores the body
  otherwise. 429s carry ``Via`` or discord.py treats them as a Cloudflare ban.
- discord.py honours ``X-RateLimit-*`` headers and pre-emptively waits, so an honestly advertised
  limit never produces a 429. The per-channel message limit is therefore modelled as Discord's
  *shared* per-resource limit (``X-RateLimit-Scope: shared``): the headers describe the per-route
  bucket and the channel limit is enforced on top, so the client really receives 429s and must
  retry. ``advertise_channel_limit=True`` advertises it instead (the client then throttles itself).
  ``rate_limit(method, path, retry_after)`` answers a route's next calls with a 429 of the given
  ``Retry-After`` (a long one is what made discord.py sleep for minutes); ``stall(method, path)``
  leaves its next calls unanswered until ``release_stalled()`` (a hung Discord).
- Gateway events the bot did not ask for through its intents are not sent, as on the real gateway
  (e.g. no MESSAGE_CREATE without GUILD_MESSAGES). ``dispatch()`` sends anything, unfiltered.
- The interaction acknowledgement window is real time, measured from the moment the
  INTERACTION_CREATE frame is written; late callbacks get ``404 Unknown interaction (10062)``.

Layout: `DiscordEmulator` is one class composed of layers, one module each, each layer
subclassing the one below so that it can call down (never up): `state` (the world) ->
`gateway` -> `validation` (Discord's limits) -> `ratelimit` (REST plumbing, 429s, stalls, holds)
-> `rest_messages` -> `rest_guild` -> `rest_commands` -> `interactions` -> `webhooks` -> this
facade (lifecycle and the route table). `wire` holds the constants and small records.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web

from tests.harness.emulator.webhooks import Webhooks
from tests.harness.emulator.wire import (
    ATTACHMENT_SIZE_LIMIT,
    EPHEMERAL,
    LOADING,
    ROLE_ADD,
    CommandNotSynced,
    InteractionNotAcknowledged,
    InteractionNotCompleted,
    InteractionResult,
    Json,
    RecordedRequest,
    RequestHold,
    _Call,
    _Route,
)

__all__ = [
    "EPHEMERAL",
    "LOADING",
    "ROLE_ADD",
    "CommandNotSynced",
    "DiscordEmulator",
    "InteractionNotAcknowledged",
    "InteractionNotCompleted",
    "InteractionResult",
    "Json",
    "RecordedRequest",
    "RequestHold",
]


class DiscordEmulator(Webhooks):
    """A single-guild fake Discord: REST API and gateway on one loopback port.

    Observation attributes: ``commands`` (scope -> last bulk overwrite, global under 0),
    ``messages`` (channel -> non-ephemeral messages, edits applied), ``requests`` ((method, path
    relative to /api/v10 without query, status) for every REST call), ``request_log`` (same with
    query, body and audit-log reason), ``rate_limited_count`` (429s sent), ``identify_payloads``,
    ``resume_count``, ``gateway_connections``, ``channels``, ``roles``, ``users``, ``files``.
    """

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve REST under /api/v10 and the gateway under /gateway on one port."""
        app = web.Application(client_max_size=4 * ATTACHMENT_SIZE_LIMIT)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._handle_http)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self._base = f"{host}:{bound_port}"

    async def stop(self) -> None:
        """Drop gateway connections and the HTTP server; idempotent."""
        self.release_stalled()
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"emulator stopping")
        self._sockets.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def patch_discord_py(self) -> Iterator[None]:
        """Point an in-process discord.py at this emulator, restoring the real URLs afterwards."""
        import discord.gateway
        import discord.http
        import yarl

        old = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old

    def _build_routes(self) -> list[_Route]:
        snowflake = r"(?P<{}>\d+)"
        ch, gu = snowflake.format("channel"), snowflake.format("guild")
        msg, user = snowflake.format("message"), snowflake.format("user")
        app, role = snowflake.format("app"), snowflake.format("role")
        token = r"(?P<token>[^/]+)"
        table: list[tuple[str, str, Callable[[_Call], Awaitable[web.Response]], bool, bool]] = [
            ("GET", "/users/@me", self._get_me, True, False),
            ("POST", "/users/@me/channels", self._create_dm, True, False),
            ("GET", f"/users/{user}", self._get_user, True, False),
            ("GET", "/oauth2/applications/@me", self._get_app, True, False),
            ("GET", "/applications/@me", self._get_app, True, False),
            ("GET", "/gateway", self._get_gateway, False, False),
            ("GET", "/gateway/bot", self._get_gateway_bot, True, False),
            ("GET", f"/applications/{app}/commands", self._get_commands, True, False),
            ("PUT", f"/applications/{app}/commands", self._put_commands, True, False),
            ("GET", f"/applications/{app}/guilds/{gu}/commands", self._get_commands, True, False),
            ("PUT", f"/applications/{app}/guilds/{gu}/commands", self._put_commands, True, False),
            (
                "POST",
                rf"/interactions/(?P<interaction>\d+)/{token}/callback",
                self._interaction_callback,
                False,
                False,
            ),
            ("POST", f"/webhooks/{app}/{token}", self._webhook_execute, False, False),
            (
                "GET",
                rf"/webhooks/{app}/{token}/messages/(?P<message>@original|\d+)",
                self._webhook_get,
                False,
                False,
            ),
            (
                "PATCH",
                rf"/webhooks/{app}/{token}/messages/(?P<message>@original|\d+)",
                self._webhook_edit,
                False,
                False,
            ),
            (
                "DELETE",
                rf"/webhooks/{app}/{token}/messages/(?P<message>@original|\d+)",
                self._webhook_delete,
                False,
                False,
            ),
            ("GET", f"/channels/{ch}", self._get_channel, True, False),
            ("GET", f"/channels/{ch}/messages", self._list_messages, True, False),
            ("POST", f"/channels/{ch}/messages", self._create_message, True, True),
            ("GET", f"/channels/{ch}/messages/pins", self._list_pins, True, False),
            ("PUT", f"/channels/{ch}/messages/pins/{msg}", self._put_pin, True, False),
            ("PUT", f"/channels/{ch}/pins/{msg}", self._put_pin, True, False),
            ("GET", f"/channels/{ch}/messages/{msg}", self._get_message, True, False),
            ("PATCH", f"/channels/{ch}/messages/{msg}", self._edit_message, True, True),
            ("DELETE", f"/channels/{ch}/messages/{msg}", self._delete_message, True, False),
            ("POST", f"/channels/{ch}/typing", self._typing, True, False),
            ("POST", f"/channels/{ch}/threads", self._create_thread, True, False),
            ("POST", f"/channels/{ch}/messages/{msg}/threads", self._create_thread, True, False),
            ("GET", f"/guilds/{gu}", self._get_guild, True, False),
            ("GET", f"/guilds/{gu}/channels", self._get_guild_channels, True, False),
            ("GET", f"/guilds/{gu}/roles", self._get_roles, True, False),
            ("GET", f"/guilds/{gu}/members", self._list_members, True, False),
            ("GET", f"/guilds/{gu}/members/{user}", self._get_member, True, False),
            ("PATCH", f"/guilds/{gu}/members/{user}", self._edit_member, True, False),
            (
                "PUT",
                f"/guilds/{gu}/members/{user}/roles/{role}",
                self._add_member_role,
                True,
                False,
            ),
            (
                "DELETE",
                f"/guilds/{gu}/members/{user}/roles/{role}",
                self._remove_member_role,
                True,
                False,
            ),
        ]
        return [
            _Route(method, re.compile(pattern), handler, auth, limited)
            for method, pattern, handler, auth, limited in table
        ]
