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
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import re
import secrets
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import BodyPartReader, WSMsgType, web

__all__ = [
    "CommandNotSynced",
    "DiscordEmulator",
    "InteractionNotAcknowledged",
    "InteractionNotCompleted",
    "InteractionResult",
    "RecordedRequest",
]

Json = dict[str, Any]
_T = TypeVar("_T")

DISCORD_EPOCH_MS = 1_420_070_400_000
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

# Message flags.
SUPPRESS_EMBEDS = 1 << 2
HAS_THREAD = 1 << 5
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15
_SENDABLE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
_EDITABLE_FLAGS = SUPPRESS_EMBEDS | IS_COMPONENTS_V2

# Gateway intents that gate the events the emulator generates itself.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12

# Permission bits.
ADMINISTRATOR = 1 << 3
MANAGE_MESSAGES = 1 << 13
MENTION_EVERYONE = 1 << 17
MANAGE_ROLES = 1 << 28
MANAGE_THREADS = 1 << 34
CREATE_PRIVATE_THREADS = 1 << 36
ALL_PERMISSIONS = (1 << 53) - 1
EVERYONE_PERMISSIONS = (
    (1 << 6)  # add reactions
    | (1 << 10)  # view channel
    | (1 << 11)  # send messages
    | (1 << 14)  # embed links
    | (1 << 15)  # attach files
    | (1 << 16)  # read message history
    | (1 << 31)  # use application commands
    | (1 << 35)  # create public threads
    | (1 << 38)  # send messages in threads
)
BOT_PERMISSIONS = (
    EVERYONE_PERMISSIONS
    | MANAGE_MESSAGES
    | MENTION_EVERYONE
    | MANAGE_ROLES
    | MANAGE_THREADS
    | CREATE_PRIVATE_THREADS
)

_THREAD_TYPES = frozenset({10, 11, 12})
_MESSAGEABLE_TYPES = frozenset({0, 1, 2, 3, 5, 10, 11, 12, 13})
_SELECT_TYPES = frozenset({3, 5, 6, 7, 8})
_API_PREFIX = re.compile(r"^/api/v(?:9|10)(/.*)$")
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_EVERYONE_MENTION = re.compile(r"@(?:everyone|here)\b")
_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
_GENERIC_LIMIT = (50, 1.0)


class InteractionNotAcknowledged(AssertionError):
    """The bot did not answer an interaction inside the acknowledgement window (Discord's 3 s)."""

    def __init__(self, name: str, window: float) -> None:
        super().__init__(f"bot did not acknowledge interaction {name!r} within {window:.2f}s")
        self.name = name
        self.window = window


class InteractionNotCompleted(AssertionError):
    """A deferred interaction was never finished by an edit of @original or a followup."""

    def __init__(self, result: InteractionResult, timeout: float) -> None:
        super().__init__(
            f"interaction {result.interaction_id} was deferred (type {result.type}) but got no "
            f"edit or followup within {timeout:.1f}s"
        )
        self.result = result


class CommandNotSynced(LookupError):
    """``invoke_command`` named a command the bot never registered, so Discord could not send it."""


@dataclass
class InteractionResult:
    """What the bot did with one interaction; stays live, later edits/followups update it."""

    type: int
    acknowledged_in: float
    message: Json | None = None
    ephemeral: bool = False
    followups: list[Json] = field(default_factory=list)
    allowed_mentions: Json | None = None
    interaction_id: int = 0
    token: str = ""
    modal: Json | None = None
    edits: int = 0
    choices: list[Json] | None = None
    """An autocomplete's answer (callback type 8): the choices offered, maybe none."""

    @property
    def sent(self) -> Json:
        """The message the bot answered with; fails the test when there is none."""
        assert self.message is not None, "the bot sent no message for this interaction"
        return self.message

    def __post_init__(self) -> None:
        # A plain attribute, not a field: keeps dataclasses.asdict()/replace() usable.
        self._changed: asyncio.Event = asyncio.Event()

    def _touch(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for_followups(self, count: int = 1, timeout: float = 10) -> list[Json]:
        """Wait until at least ``count`` followups were sent (they may come after the ack)."""
        async with asyncio.timeout(timeout):
            while len(self.followups) < count:
                await self._changed.wait()
        return list(self.followups)

    async def wait_for_edit(self, count: int = 1, timeout: float = 10) -> Json:
        """Wait until the original response was edited ``count`` times; returns the message."""
        async with asyncio.timeout(timeout):
            while self.edits < count:
                await self._changed.wait()
        assert self.message is not None
        return self.message


ROLE_ADD = r"/guilds/\d+/members/\d+/roles/\d+"
"""Path pattern of a role addition (PUT) or removal (DELETE), for ``hold_requests``."""


class RequestHold:
    """REST calls that wait until the test releases them (see ``DiscordEmulator.hold_requests``).

    Lets a test line up concurrent handlers at a chosen point: ``waiting`` counts the calls
    held so far; ``release()`` lets them (and every later match) through."""

    def __init__(self, method: str, path: str) -> None:
        self.method = method.upper()
        self.path = re.compile(path)
        self.waiting = 0
        self._open = asyncio.Event()

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self.path.fullmatch(path) is not None

    async def wait(self) -> None:
        if self._open.is_set():
            return
        self.waiting += 1
        await self._open.wait()

    def release(self) -> None:
        self._open.set()


@dataclass(frozen=True)
class RecordedRequest:
    """One REST request as the emulator saw it, for assertions beyond (method, path, status)."""

    method: str
    path: str
    status: int
    query: dict[str, str]
    body: Any
    reason: str | None
    at: float


class _HTTPError(Exception):
    """Raised by handlers to answer with a Discord-shaped error body."""

    def __init__(self, status: int, body: Json | None, headers: dict[str, str] | None = None):
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, message: str, code: int) -> _HTTPError:
    return _HTTPError(status, {"message": message, "code": code})


class _FormErrors:
    """Collects errors in Discord's nested ``Invalid Form Body`` (50035) shape."""

    def __init__(self) -> None:
        self.tree: Json = {}

    def add(self, path: Iterable[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_length(self, path: Iterable[str | int], value: Any, limit: int) -> None:
        if isinstance(value, str | list) and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def required(self, path: Iterable[str | int], value: Any) -> bool:
        if value is None or value == "":
            self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
            return False
        return True

    def raise_if_any(self) -> None:
        if self.tree:
            raise _HTTPError(
                400, {"code": 50035, "errors": self.tree, "message": "Invalid Form Body"}
            )


@dataclass
class _Upload:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class _Call:
    """A parsed REST request handed to a route handler."""

    request: web.Request
    params: dict[str, str]
    body: Any = None
    files: list[_Upload] = field(default_factory=list)

    def id(self, name: str) -> int:
        return int(self.params[name])

    def flag(self, name: str) -> bool:
        return self.request.query.get(name, "").lower() in {"1", "true"}

    def object(self) -> Json:
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise _error(400, "The request body contains invalid JSON.", 50109)
        return self.body


@dataclass
class _Window:
    """A fixed rate-limit window: ``limit`` requests per ``period`` seconds."""

    limit: int
    period: float
    start: float = -math.inf
    count: int = 0

    def roll(self, now: float) -> None:
        if now >= self.start + self.period:
            self.start, self.count = now, 0

    def reset_after(self, now: float) -> float:
        return max(0.0, self.start + self.period - now)


@dataclass
class _ForcedLimit:
    """A 429 a test asked for: the next ``times`` calls of one route, whatever their windows."""

    retry_after: float
    times: int
    scope: str
    is_global: bool
    when: Callable[[Any], bool] | None = None


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[_Call], Awaitable[web.Response]]
    auth: bool = True
    channel_limited: bool = False

    @property
    def bucket(self) -> str:
        return f"{zlib.crc32(f'{self.method} {self.pattern.pattern}'.encode()):08x}"


@dataclass
class _Interaction:
    id: int
    token: str
    kind: int  # 2 application command, 3 message component, 4 autocomplete, 5 modal submit
    name: str
    channel_id: int
    user_id: int
    source_message_id: int | None = None
    sent_at: float = 0.0
    expired: bool = False
    completed: bool = False
    result: InteractionResult | None = None
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    acked: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Session:
    session_id: str
    intents: int
    seq: int = 0
    ws: web.WebSocketResponse | None = None
    ready: bool = False
    history: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=2000))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _ceil3(value: float) -> float:
    return math.ceil(value * 1000) / 1000


def _json_response(
    status: int, body: Json | list[Any] | None, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with the exact content type discord.py checks for; 204 when there is no body."""
    if body is None:
        return web.Response(status=204, headers=headers)
    data = json.dumps(body, separators=(",", ":")).encode()
    return web.Response(body=data, status=status, headers=headers, content_type="application/json")


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise _error(400, "The request body contains invalid JSON.", 50109) from None


def _walk_components(components: Iterable[Json]) -> Iterator[Json]:
    """Every component in a (v1 or v2) tree, depth first."""
    for component in components:
        if not isinstance(component, dict):
            continue
        yield component
        yield from _walk_components(component.get("components") or [])
        for key in ("component", "accessory"):
            child = component.get(key)
            if isinstance(child, dict):
                yield from _walk_components([child])


class DiscordEmulator:
    """A single-guild fake Discord: REST API and gateway on one loopback port.

    Observation attributes: ``commands`` (scope -> last bulk overwrite, global under 0),
    ``messages`` (channel -> non-ephemeral messages, edits applied), ``requests`` ((method, path
    relative to /api/v10 without query, status) for every REST call), ``request_log`` (same with
    query, body and audit-log reason), ``rate_limited_count`` (429s sent), ``identify_payloads``,
    ``resume_count``, ``gateway_connections``, ``channels``, ``roles``, ``users``, ``files``.
    """

    def __init__(
        self,
        *,
        token: str = "test-token",
        application_id: int = 900000000000000001,
        bot_user_id: int = 900000000000000001,
        guild_id: int = 800000000000000001,
        guild_name: str = "Hyper Hash",
        ack_timeout: float = 3.0,
        channel_rate_limit: tuple[int, float] = (5, 5.0),
        advertise_channel_limit: bool = False,
        owner_id: int | None = None,
        heartbeat_interval: float = 41.25,
        bot_name: str = "hh-opsbot",
    ) -> None:
        self.token = token
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.guild_id = guild_id
        self.guild_name = guild_name
        self.ack_timeout = ack_timeout
        self.channel_rate_limit = channel_rate_limit
        self.advertise_channel_limit = advertise_channel_limit
        self.heartbeat_interval = heartbeat_interval

        # World. Public dicts are the emulator's own state: read them, do not mutate them.
        self.users: dict[int, Json] = {}
        self.roles: dict[int, Json] = {}
        self.channels: dict[int, Json] = {}
        self._members: dict[int, Json] = {}  # member objects without "user"
        self.files: dict[int, bytes] = {}  # attachment id -> uploaded bytes

        # Observation.
        self.commands: dict[int, list[Json]] = {}
        self.messages: dict[int, list[Json]] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.request_log: list[RecordedRequest] = []
        self.rate_limited_count = 0
        self.webhook_executions = 0
        self.channel_webhooks: dict[int, Json] = {}
        self.identify_payloads: list[Json] = []
        self.resume_count = 0
        self.gateway_connections = 0

        self._increment = 0
        self._last_snowflake = 0
        self._message_index: dict[int, Json] = {}
        self._message_payloads: dict[int, list[Json]] = {}
        self._command_ids: dict[tuple[int, int, str], int] = {}
        self._dm_channels: dict[int, int] = {}
        self._pins: dict[int, list[tuple[int, str]]] = {}
        self.closed_dms: set[int] = set()
        """Users whose DMs are closed to the bot: sending them a DM is refused (403, 50007)."""
        self._interactions: dict[int, _Interaction] = {}
        self._by_token: dict[str, _Interaction] = {}
        self._modals: dict[str, Json] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self._channel_windows: dict[int, _Window] = {}
        self._rest_outage: int | None = None
        self._forced_limits: dict[tuple[str, str], _ForcedLimit] = {}
        self._stalls: dict[tuple[str, str], tuple[int, Callable[[Any], bool] | None]] = {}
        self._stall_release = asyncio.Event()
        self.stalled_count = 0
        """REST calls left unanswered by ``stall()`` so far."""
        self._holds: list[RequestHold] = []
        self._gateway_outage: int | None = None
        self._session: _Session | None = None
        self._awaiting_resume = False
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base: str | None = None
        self._routes = self._build_routes()

        self.users[bot_user_id] = {
            "id": str(bot_user_id),
            "username": bot_name,
            "global_name": None,
            "discriminator": "0001",
            "avatar": None,
            "bot": True,
            "public_flags": 0,
            "flags": 0,
        }
        # Guild + application owner (has every permission). Generated by default so it can never
        # collide with the user ids a test picks for its members.
        self.owner_id = owner_id if owner_id is not None else self._snowflake()
        self.users.setdefault(
            self.owner_id,
            {
                "id": str(self.owner_id),
                "username": "hh-owner",
                "global_name": "HH Owner",
                "discriminator": "0",
                "avatar": None,
                "public_flags": 0,
            },
        )
        self.roles[guild_id] = self._role_object(guild_id, "@everyone", 0, EVERYONE_PERMISSIONS)
        self.bot_role_id = self._snowflake()
        self.roles[self.bot_role_id] = self._role_object(
            self.bot_role_id, bot_name, 100, BOT_PERMISSIONS, managed=True
        )
        self.roles[self.bot_role_id]["tags"] = {"bot_id": str(bot_user_id)}
        self._members[bot_user_id] = self._member_object([self.bot_role_id])

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

    @property
    def api_base(self) -> str:
        if self._base is None:
            raise RuntimeError("emulator not started")
        return f"http://{self._base}/api/v10"

    @property
    def gateway_url(self) -> str:
        if self._base is None:
            raise RuntimeError("emulator not started")
        return f"ws://{self._base}/gateway"

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

    # ------------------------------------------------------------------ world

    def add_role(
        self,
        name: str,
        role_id: int | None = None,
        *,
        permissions: int = 0,
        position: int | None = None,
        mentionable: bool = False,
        color: int = 0,
    ) -> int:
        """Create a guild role; by default stacked above the last one but below the bot's."""
        rid = role_id if role_id is not None else self._snowflake()
        if position is None:
            position = 1 + max(
                (r["position"] for r in self.roles.values() if int(r["id"]) != self.bot_role_id),
                default=0,
            )
        self.roles[rid] = self._role_object(
            rid, name, position, permissions, mentionable=mentionable, color=color
        )
        return rid

    def add_channel(
        self,
        name: str,
        channel_id: int | None = None,
        type: int = 0,
        *,
        parent_id: int | None = None,
        topic: str | None = None,
    ) -> int:
        """Create a guild channel (0 text, 2 voice, 4 category, 5 announcement, 15 forum)."""
        cid = channel_id if channel_id is not None else self._snowflake()
        position = sum(1 for c in self.channels.values() if c.get("guild_id") and c["type"] == type)
        channel: Json = {
            "id": str(cid),
            "type": type,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": position,
            "permission_overwrites": [],
            "parent_id": str(parent_id) if parent_id else None,
            "nsfw": False,
            "flags": 0,
        }
        if type in (0, 5, 15):
            channel.update(topic=topic, rate_limit_per_user=0, last_message_id=None)
        if type in (2, 13):
            channel.update(bitrate=64000, user_limit=0, rtc_region=None, last_message_id=None)
        if type == 15:
            channel.update(available_tags=[], default_reaction_emoji=None, default_sort_order=None)
        self.channels[cid] = channel
        return cid

    def add_member(self, user_id: int, name: str, roles: Iterable[int] = ()) -> None:
        """Add (or replace) a guild member; call before the bot connects, or use member_join."""
        role_ids = list(roles)
        unknown = [r for r in role_ids if r not in self.roles]
        if unknown:
            raise ValueError(f"unknown role ids {unknown}")
        self.users[user_id] = {
            "id": str(user_id),
            "username": name,
            "global_name": name,
            "discriminator": "0",
            "avatar": None,
            "public_flags": 0,
        }
        self._members[user_id] = self._member_object(role_ids)

    def member(self, user_id: int) -> Json:
        """The member object (with ``user``) exactly as the API returns it."""
        return self._member_payload(user_id)

    @property
    def members(self) -> dict[int, Json]:
        """Snapshot of all guild members, bot included."""
        return {uid: self._member_payload(uid) for uid in self._members}

    def permissions_for(self, user_id: int) -> int:
        """Guild-level permissions (no channel overwrites are modelled)."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self._members.get(user_id)
        if member is None:
            return 0
        perms = int(self.roles[self.guild_id]["permissions"])
        for rid in member["roles"]:
            perms |= int(self.roles[int(rid)]["permissions"])
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    async def member_join(self, user_id: int, name: str, roles: Iterable[int] = ()) -> None:
        """A user joins the guild: world updated and GUILD_MEMBER_ADD sent."""
        self.add_member(user_id, name, roles)
        payload = {**self._member_payload(user_id), "guild_id": str(self.guild_id)}
        await self._send_dispatch("GUILD_MEMBER_ADD", payload, intent=INTENT_GUILD_MEMBERS)

    async def member_leave(self, user_id: int) -> None:
        """A member leaves: world updated and GUILD_MEMBER_REMOVE sent."""
        self._members.pop(user_id)
        payload = {"guild_id": str(self.guild_id), "user": copy.deepcopy(self.users[user_id])}
        await self._send_dispatch("GUILD_MEMBER_REMOVE", payload, intent=INTENT_GUILD_MEMBERS)

    async def set_member_roles(self, user_id: int, roles: Iterable[int]) -> None:
        """Someone else (an admin in the UI) changes a member's roles: GUILD_MEMBER_UPDATE sent."""
        role_ids = [str(r) for r in roles]
        unknown = [r for r in role_ids if int(r) not in self.roles]
        if unknown:
            raise ValueError(f"unknown role ids {unknown}")
        self._members[user_id]["roles"] = role_ids
        await self._member_updated(user_id)

    # ------------------------------------------------------------------ observation

    async def wait_ready(self, timeout: float = 10) -> None:
        """The bot IDENTIFY'd and READY + GUILD_CREATE went out."""
        await self._wait_until(
            lambda: self._session is not None and self._session.ready, timeout, "IDENTIFY/READY"
        )

    async def wait_resumed(self, timeout: float = 10) -> None:
        """After close_gateway: the bot RESUMEd and RESUMED went out."""
        await self._wait_until(
            lambda: not self._awaiting_resume and self._connected(), timeout, "RESUME"
        )

    async def wait_for_commands(
        self, guild_id: int | None = None, timeout: float = 10
    ) -> list[Json]:
        """Commands bulk-overwritten for ``guild_id`` (None = global, like ``tree.sync()``)."""
        key = guild_id or 0
        found = await self._wait_until(
            lambda: self.commands.get(key), timeout, f"command sync for scope {key}"
        )
        assert found is not None
        return copy.deepcopy(found)

    async def wait_for_messages(
        self, channel_id: int, count: int, timeout: float = 10
    ) -> list[Json]:
        """Wait until a channel holds at least ``count`` messages."""
        found = await self._wait_until(
            lambda: len(self.messages.get(channel_id, [])) >= count,
            timeout,
            f"{count} messages in channel {channel_id}",
        )
        assert found
        return copy.deepcopy(self.messages[channel_id])

    def dm_messages(self, user_id: int) -> list[Json]:
        """Messages the bot sent to a user by DM (empty if it never opened a DM with them)."""
        cid = self._dm_channels.get(user_id)
        return list(self.messages.get(cid, [])) if cid is not None else []

    def get_message(self, message_id: int) -> Json | None:
        """Any message the emulator knows (ephemeral ones included), as last edited."""
        msg = self._message_index.get(message_id)
        return copy.deepcopy(msg) if msg is not None else None

    def message_payloads(self, message_id: int) -> list[Json]:
        """Raw create/edit payloads for a message, e.g. to assert ``allowed_mentions``."""
        return copy.deepcopy(self._message_payloads.get(message_id, []))

    # ------------------------------------------------------------------ driving the bot

    async def invoke_command(
        self,
        name: str,
        user_id: int,
        *,
        channel_id: int | None = None,
        options: list[Json] | None = None,
        timeout: float = 10,
        dm: bool = False,
    ) -> InteractionResult:
        """Send a slash-command INTERACTION_CREATE and wait for the bot's answer.

        ``dm=True`` sends it from the user's DM with the bot (no guild, ``user`` not ``member``),
        as Discord does for a command used outside the server."""
        command, scope = self._find_command(name)
        self._require_member(user_id)
        cid = self._dm_channel(user_id) if dm else self._target_channel(channel_id)
        opts = copy.deepcopy(options or [])
        self._check_options(command.get("options") or [], opts, f"/{name}")
        data: Json = {"id": command["id"], "name": command["name"], "type": command.get("type", 1)}
        if opts:
            data["options"] = opts
        resolved = self._resolve_options(opts)
        if resolved:
            data["resolved"] = resolved
        if scope and not dm:
            data["guild_id"] = str(scope)
        record = self._new_interaction(2, f"/{name}", cid, user_id)
        return await self._run_interaction(record, self._interaction_payload(record, data), timeout)

    async def autocomplete(
        self,
        name: str,
        user_id: int,
        *,
        options: list[Json],
        channel_id: int | None = None,
        timeout: float = 10,
    ) -> InteractionResult:
        """Send an autocomplete INTERACTION_CREATE (type 4), as Discord does while a member types
        into an option declared with ``autocomplete``. ``options`` are given as for
        ``invoke_command`` (subcommands nested); exactly one leaf carries ``"focused": True`` and
        the text typed so far (always a string); required options may still be missing. The
        bot's answer (callback type 8) is in the result's ``choices``."""
        command, scope = self._find_command(name)
        cid = self._target_channel(channel_id)
        self._require_member(user_id)
        opts = copy.deepcopy(options)
        focused = self._check_partial_options(command.get("options") or [], opts, f"/{name}")
        if focused != 1:
            raise ValueError(f"/{name}: exactly one option must be focused, not {focused}")
        data: Json = {
            "id": command["id"],
            "name": command["name"],
            "type": command.get("type", 1),
            "options": opts,
        }
        if scope:
            data["guild_id"] = str(scope)
        record = self._new_interaction(4, f"autocomplete /{name}", cid, user_id)
        return await self._run_interaction(record, self._interaction_payload(record, data), timeout)

    async def click_button(
        self, custom_id: str, user_id: int, *, message: Json, timeout: float = 10
    ) -> InteractionResult:
        """Click a button on a message the bot sent (it must really carry that custom_id)."""
        return await self._component_interaction(custom_id, user_id, message, None, timeout)

    async def select_menu(
        self, custom_id: str, user_id: int, values: list[str], *, message: Json, timeout: float = 10
    ) -> InteractionResult:
        """Pick ``values`` in a select menu on a message the bot sent."""
        return await self._component_interaction(custom_id, user_id, message, values, timeout)

    async def submit_modal(
        self,
        custom_id: str,
        user_id: int,
        values: dict[str, str],
        *,
        channel_id: int | None = None,
        timeout: float = 10,
    ) -> InteractionResult:
        """Submit a modal the bot showed earlier (callback type 9) with text-input values."""
        modal = self._modals.get(custom_id)
        if modal is None:
            raise ValueError(f"the bot never showed a modal with custom_id {custom_id!r}")
        components: list[Json] = []
        for component in modal.get("components") or []:
            if component.get("type") == 1:
                inner = [
                    {
                        "type": c["type"],
                        "custom_id": c["custom_id"],
                        "value": values.get(c["custom_id"], ""),
                    }
                    for c in component.get("components") or []
                    if c.get("type") == 4
                ]
                components.append({"type": 1, "components": inner})
            elif (
                component.get("type") == 18 and (component.get("component") or {}).get("type") == 4
            ):
                inner_id = component["component"]["custom_id"]
                components.append(
                    {
                        "type": 18,
                        "component": {
                            "type": 4,
                            "custom_id": inner_id,
                            "value": values.get(inner_id, ""),
                        },
                    }
                )
        cid = self._target_channel(channel_id)
        self._require_member(user_id)
        record = self._new_interaction(5, f"modal {custom_id}", cid, user_id)
        data = {"custom_id": custom_id, "components": components}
        return await self._run_interaction(record, self._interaction_payload(record, data), timeout)

    async def pin_message(self, channel_id: int, message_id: int) -> None:
        """Pin a message as a member would; Discord then sends CHANNEL_PINS_UPDATE."""
        msg = self._find_message(channel_id, message_id)
        msg["pinned"] = True
        now = _now_iso()
        self._pins.setdefault(channel_id, []).insert(0, (message_id, now))
        await self._send_dispatch(
            "CHANNEL_PINS_UPDATE",
            {
                "guild_id": str(self.guild_id),
                "channel_id": str(channel_id),
                "last_pin_timestamp": now,
            },
            intent=INTENT_GUILDS,
        )

    async def dispatch(self, event: str, data: Json) -> None:
        """Send any DISPATCH to the bot (buffered and replayed on RESUME if it is disconnected)."""
        if self._session is None:
            raise RuntimeError("no bot has identified with the gateway")
        await self._send_dispatch(event, data, intent=None)

    async def close_gateway(self, code: int = 4000) -> None:
        """Drop the bot's websocket; discord.py should reconnect and RESUME."""
        session = self._session
        if session is None or session.ws is None:
            raise RuntimeError("the bot is not connected to the gateway")
        ws, session.ws = session.ws, None
        self._awaiting_resume = True
        self._notify()
        await ws.close(code=code, message=b"closed by emulator")

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; with ``resumable=False`` the bot must IDENTIFY again."""
        session = self._session
        if session is None or session.ws is None:
            raise RuntimeError("the bot is not connected to the gateway")
        ws = session.ws
        if not resumable:
            self._session = None
        await ws.send_str(json.dumps({"op": 9, "d": resumable, "s": None, "t": None}))

    def hold_requests(self, method: str, path: str) -> RequestHold:
        """Hold REST calls whose method and path (below /api/v10, a regex) match, until released.

        ``hold_requests("PUT", ROLE_ADD)`` holds every role addition."""
        hold = RequestHold(method, path)
        self._holds.append(hold)
        return hold

    def set_rest_outage(self, status: int | None) -> None:
        """While set, every REST call answers ``status``; None restores service."""
        self._rest_outage = status

    def rate_limit(
        self,
        method: str,
        path: str,
        retry_after: float,
        *,
        times: int = 1,
        scope: str = "user",
        is_global: bool = False,
        when: Callable[[Any], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method path`` (relative to /api/v10, e.g.
        ``"/channels/1/messages"``) with a 429 asking for ``retry_after`` seconds, as Discord
        does behind Cloudflare: ``Via``, ``Retry-After``, the X-RateLimit-* headers of an empty
        bucket (``X-RateLimit-Scope``, ``X-RateLimit-Global`` when global) and the JSON body.
        ``when(body)``: only calls whose JSON body it accepts (one post among others)."""
        if retry_after <= 0 or times < 1:
            raise ValueError("retry_after must be positive and times at least 1")
        key = (method.upper(), path)
        self._forced_limits[key] = _ForcedLimit(retry_after, times, scope, is_global, when)

    def stall(
        self, method: str, path: str, *, times: int = 1, when: Callable[[Any], bool] | None = None
    ) -> None:
        """Leave the next ``times`` calls of ``method path`` (those whose JSON body ``when``
        accepts) unanswered until ``release_stalled()`` (or ``stop()``); then they are handled,
        late, as a slow Discord would handle them even after the client gave up."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._stalls[(method.upper(), path)] = (times, when)

    def release_stalled(self) -> None:
        event, self._stall_release = self._stall_release, asyncio.Event()
        event.set()

    async def wait_stalled(self, count: int = 1, timeout: float = 10) -> None:
        """Until ``count`` calls in all have been left hanging by ``stall()``."""
        await self._wait_until(lambda: self.stalled_count >= count, timeout, "a stalled call")

    def set_gateway_outage(self, status: int | None) -> None:
        """While set, new gateway connections are refused with ``status`` (after close_gateway,
        the bot cannot reconnect); None restores service."""
        self._gateway_outage = status

    # ------------------------------------------------------------------ internals: helpers

    def _snowflake(self) -> int:
        value = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (1 << 17)
        self._increment = (self._increment + 1) & 0xFFF
        value |= self._increment
        if value <= self._last_snowflake:
            value = self._last_snowflake + 1
        self._last_snowflake = value
        return value

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_until(self, predicate: Callable[[], _T], timeout: float, what: str) -> _T:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from None

    def _connected(self) -> bool:
        session = self._session
        return session is not None and session.ready and session.ws is not None

    def _role_object(
        self,
        role_id: int,
        name: str,
        position: int,
        permissions: int,
        *,
        managed: bool = False,
        mentionable: bool = False,
        color: int = 0,
    ) -> Json:
        return {
            "id": str(role_id),
            "name": name,
            "color": color,
            "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": managed,
            "mentionable": mentionable,
            "flags": 0,
        }

    def _member_object(self, roles: Iterable[int]) -> Json:
        return {
            "nick": None,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in roles],
            "joined_at": _now_iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def _member_payload(self, user_id: int, *, with_user: bool = True) -> Json:
        member = copy.deepcopy(self._members[user_id])
        if with_user:
            member["user"] = copy.deepcopy(self.users[user_id])
        return member

    def _guild_object(self) -> Json:
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [copy.deepcopy(r) for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
        }

    def _guild_create(self) -> Json:
        guild = self._guild_object()
        guild_channels = [
            copy.deepcopy(c)
            for c in self.channels.values()
            if c.get("guild_id") and c["type"] not in _THREAD_TYPES
        ]
        for channel in guild_channels:
            channel.pop("guild_id", None)
        guild.update(
            joined_at=_now_iso(),
            large=False,
            unavailable=False,
            lazy=True,
            member_count=len(self._members),
            members=[self._member_payload(uid) for uid in self._members],
            channels=guild_channels,
            threads=[
                copy.deepcopy(c) for c in self.channels.values() if c["type"] in _THREAD_TYPES
            ],
            presences=[],
            voice_states=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            embedded_activities=[],
        )
        return guild

    def _app_info(self) -> Json:
        return {
            "id": str(self.application_id),
            "name": self.users[self.bot_user_id]["username"],
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot": copy.deepcopy(self.users[self.bot_user_id]),
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": copy.deepcopy(self.users[self.owner_id]),
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": 1,
        }

    def _channel(self, channel_id: int) -> Json:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise _error(404, "Unknown Channel", 10003)
        return channel

    def _check_guild(self, guild_id: int) -> None:
        if guild_id != self.guild_id:
            raise _error(404, "Unknown Guild", 10004)

    def _require_member(self, user_id: int) -> None:
        if user_id not in self._members:
            raise ValueError(f"user {user_id} is not a member; add_member() first")

    def _target_channel(self, channel_id: int | None) -> int:
        if channel_id is None:
            for cid, channel in self.channels.items():
                if channel["type"] == 0:
                    return cid
            raise ValueError("no text channel exists; add_channel() first")
        target = self.channels.get(channel_id)
        if target is None or not target.get("guild_id"):
            raise ValueError(f"{channel_id} is not a guild channel of the emulator")
        return channel_id

    # ------------------------------------------------------------------ internals: HTTP plumbing

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

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        path_matched = False
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            path_matched = True
        if path_matched:
            raise _error(405, "405: Method Not Allowed", 0)
        raise _error(404, "404: Not Found", 0)

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        """Every REST call: outage, routing, auth, rate limits, handler, headers, recording."""
        loop = asyncio.get_running_loop()
        prefixed = _API_PREFIX.match(request.path)
        path = prefixed.group(1) if prefixed else request.path
        body: Any = None
        bucket, major = "unrouted", ""
        try:
            if prefixed is None:
                raise _error(404, "404: Not Found", 0)
            if self._rest_outage is not None:
                phrase = HTTPStatus(self._rest_outage).phrase
                raise _error(self._rest_outage, f"{self._rest_outage}: {phrase}", 0)
            route, params = self._match(request.method, path)
            bucket = route.bucket
            major = params.get("channel") or params.get("guild") or params.get("app") or ""
            if "token" in params:
                major = f"{major}+{params['token']}"
            if route.auth and request.headers.get("Authorization") != f"Bot {self.token}":
                raise _error(401, "401: Unauthorized", 0)
            call = await self._read_call(request, params)
            body = call.body
            await self._maybe_stall(request.method, path, body)
            for hold in list(self._holds):
                if hold.matches(request.method, path):
                    await hold.wait()
            headers = self._consume_rate_limit(route, path, params, body, loop.time())
            response = await route.handler(call)
            response.headers.update(headers)
        except _HTTPError as exc:
            headers = self._peek_rate_limit(bucket, major, loop.time())
            headers.update(exc.headers)
            response = _json_response(exc.status, exc.body, headers)
        self.requests.append((request.method, path, response.status))
        self.request_log.append(
            RecordedRequest(
                method=request.method,
                path=path,
                status=response.status,
                query=dict(request.query),
                body=body,
                reason=request.headers.get("X-Audit-Log-Reason"),
                at=time.time(),
            )
        )
        return response

    async def _read_call(self, request: web.Request, params: dict[str, str]) -> _Call:
        call = _Call(request, params)
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                raw = bytes(await part.read(decode=False))
                if part.name == "payload_json":
                    call.body = _loads(raw)
                else:
                    call.files.append(
                        _Upload(
                            part.name or "",
                            part.filename or "file",
                            part.headers.get("Content-Type", "application/octet-stream"),
                            raw,
                        )
                    )
            if sum(len(f.data) for f in call.files) > ATTACHMENT_SIZE_LIMIT:
                raise _error(413, "Request entity too large", 40005)
        else:
            raw = await request.read()
            if raw:
                call.body = _loads(raw)
        return call

    def _window_headers(self, window: _Window, now: float, bucket: str) -> dict[str, str]:
        reset_after = _ceil3(window.reset_after(now))
        return {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(max(window.limit - window.count, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    def _generic_window(self, bucket: str, major: str, now: float) -> _Window:
        window = self._windows.setdefault((bucket, major), _Window(*_GENERIC_LIMIT))
        window.roll(now)
        return window

    def _peek_rate_limit(self, bucket: str, major: str, now: float) -> dict[str, str]:
        return self._window_headers(self._generic_window(bucket, major, now), now, bucket)

    def _too_many(
        self,
        window: _Window,
        now: float,
        bucket: str,
        scope: str,
        *,
        retry_after: float | None = None,
        is_global: bool = False,
    ) -> _HTTPError:
        """A 429 for ``window``, or, with ``retry_after``, for a bucket empty until then."""
        self.rate_limited_count += 1
        headers = self._window_headers(window, now, bucket)
        if retry_after is None:
            retry_after = max(_ceil3(window.reset_after(now)), 0.001)
        else:
            headers.update(
                {
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                }
            )
        headers.update(
            {
                "Retry-After": str(math.ceil(retry_after)),
                "Via": "1.1 google",
                "X-RateLimit-Scope": scope,
            }
        )
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
        }
        return _HTTPError(429, body, headers)

    async def _maybe_stall(self, method: str, path: str, body: Any) -> None:
        stall = self._stalls.get((method, path))
        if stall is None:
            return
        left, when = stall
        if when is not None and not when(body):
            return
        if left == 1:
            del self._stalls[(method, path)]
        else:
            self._stalls[(method, path)] = (left - 1, when)
        release = self._stall_release
        self.stalled_count += 1
        self._notify()
        await release.wait()

    def _consume_rate_limit(
        self, route: _Route, path: str, params: dict[str, str], body: Any, now: float
    ) -> dict[str, str]:
        """Apply a 429 the test asked for, the per-route bucket and, for message writes, the
        per-channel limit."""
        major = params.get("channel") or params.get("guild") or params.get("app") or ""
        if "token" in params:
            major = f"{major}+{params['token']}"
        window = self._generic_window(route.bucket, major, now)
        forced = self._forced_limits.get((route.method, path))
        if forced is not None and (forced.when is None or forced.when(body)):
            forced.times -= 1
            if forced.times == 0:
                del self._forced_limits[(route.method, path)]
            raise self._too_many(
                window,
                now,
                route.bucket,
                forced.scope,
                retry_after=forced.retry_after,
                is_global=forced.is_global,
            )
        channel_window: _Window | None = None
        if route.channel_limited:
            cid = int(params["channel"])
            limit, period = self.channel_rate_limit
            channel_window = self._channel_windows.setdefault(cid, _Window(limit, period))
            channel_window.roll(now)
            if channel_window.count >= channel_window.limit:
                if self.advertise_channel_limit:
                    raise self._too_many(channel_window, now, "channel-messages", "user")
                error = self._too_many(channel_window, now, route.bucket, "shared")
                # Shared-scope 429s report the (untouched) per-route bucket, as Discord does.
                error.headers.update(self._window_headers(window, now, route.bucket))
                raise error
        if window.count >= window.limit:
            raise self._too_many(window, now, route.bucket, "user")
        window.count += 1
        if channel_window is not None:
            channel_window.count += 1
            if self.advertise_channel_limit:
                return self._window_headers(channel_window, now, "channel-messages")
        return self._window_headers(window, now, route.bucket)

    # ------------------------------------------------------------------ REST: users, app, gateway

    async def _get_me(self, call: _Call) -> web.Response:
        me = copy.deepcopy(self.users[self.bot_user_id])
        me.update(verified=True, mfa_enabled=False, locale="en-US", email=None, premium_type=0)
        return _json_response(200, me)

    async def _get_user(self, call: _Call) -> web.Response:
        user = self.users.get(call.id("user"))
        if user is None:
            raise _error(404, "Unknown User", 10013)
        return _json_response(200, copy.deepcopy(user))

    async def _create_dm(self, call: _Call) -> web.Response:
        recipient = call.object().get("recipient_id")
        if recipient is None or int(recipient) not in self.users:
            raise _error(400, "Cannot send messages to this user", 50007)
        return _json_response(200, copy.deepcopy(self.channels[self._dm_channel(int(recipient))]))

    def _dm_channel(self, uid: int) -> int:
        cid = self._dm_channels.get(uid)
        if cid is None:
            cid = self._snowflake()
            self._dm_channels[uid] = cid
            self.channels[cid] = {
                "id": str(cid),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [copy.deepcopy(self.users[uid])],
            }
        return cid

    async def _get_app(self, call: _Call) -> web.Response:
        return _json_response(200, self._app_info())

    async def _get_gateway(self, call: _Call) -> web.Response:
        return _json_response(200, {"url": self.gateway_url})

    async def _get_gateway_bot(self, call: _Call) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return _json_response(
            200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}
        )

    # ------------------------------------------------------------------ REST: application commands

    def _command_scope(self, call: _Call) -> int:
        if call.id("app") != self.application_id:
            raise _error(403, "Missing Access", 50001)
        if "guild" in call.params:
            if call.id("guild") != self.guild_id:
                raise _error(403, "Missing Access", 50001)
            return self.guild_id
        return 0

    async def _get_commands(self, call: _Call) -> web.Response:
        scope = self._command_scope(call)
        return _json_response(200, copy.deepcopy(self.commands.get(scope, [])))

    async def _put_commands(self, call: _Call) -> web.Response:
        scope = self._command_scope(call)
        body = call.body if call.body is not None else []
        if not isinstance(body, list):
            raise _error(400, "The request body contains invalid JSON.", 50109)
        errors = _FormErrors()
        seen: set[tuple[int, str]] = set()
        if len(body) > 110:
            errors.max_length((), body, 110)
        for index, command in enumerate(body):
            self._validate_command(errors, index, command, seen)
        errors.raise_if_any()
        stored: list[Json] = []
        for command in body:
            ctype = int(command.get("type", 1))
            key = (scope, ctype, command["name"])
            cid = self._command_ids.setdefault(key, self._snowflake())
            entry: Json = {
                "id": str(cid),
                "application_id": str(self.application_id),
                "version": str(self._snowflake()),
                "type": ctype,
                "name": command["name"],
                "name_localizations": command.get("name_localizations"),
                "description": command.get("description", ""),
                "description_localizations": command.get("description_localizations"),
                "options": copy.deepcopy(command.get("options") or []),
                "default_member_permissions": command.get("default_member_permissions"),
                "nsfw": bool(command.get("nsfw", False)),
                "contexts": command.get("contexts"),
                "integration_types": command.get("integration_types") or [0],
            }
            if scope:
                entry["guild_id"] = str(scope)
            else:
                entry["dm_permission"] = command.get("dm_permission", True)
            stored.append(entry)
        self.commands[scope] = stored
        self._notify()
        return _json_response(200, copy.deepcopy(stored))

    def _validate_command(
        self, errors: _FormErrors, index: int, command: Any, seen: set[tuple[int, str]]
    ) -> None:
        path: tuple[str | int, ...] = (index,)
        if not isinstance(command, dict):
            errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            return
        ctype = int(command.get("type", 1))
        name = command.get("name")
        if not errors.required((*path, "name"), name):
            return
        if ctype == 1:
            if not _COMMAND_NAME.match(str(name)) or str(name) != str(name).lower():
                errors.add(
                    (*path, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            description = command.get("description")
            if errors.required((*path, "description"), description):
                errors.max_length((*path, "description"), description, 100)
            self._validate_options(errors, (*path, "options"), command.get("options") or [])
        else:
            errors.max_length((*path, "name"), name, 32)
        if (ctype, str(name)) in seen:
            errors.add(
                path,
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            )
        seen.add((ctype, str(name)))

    def _validate_options(
        self, errors: _FormErrors, path: tuple[str | int, ...], options: list[Any]
    ) -> None:
        errors.max_length(path, options, 25)
        names: set[str] = set()
        for index, option in enumerate(options):
            where = (*path, index)
            if not isinstance(option, dict):
                errors.add(
                    where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
                )
                continue
            name = str(option.get("name", ""))
            if not _COMMAND_NAME.match(name) or name != name.lower():
                errors.add((*where, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Name is invalid")
            if name in names:
                errors.add(
                    (*where, "name"),
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            names.add(name)
            description = option.get("description")
            if errors.required((*where, "description"), description):
                errors.max_length((*where, "description"), description, 100)
            errors.max_length((*where, "choices"), option.get("choices") or [], 25)
            if option.get("type") in (1, 2):
                self._validate_options(errors, (*where, "options"), option.get("options") or [])

    # ------------------------------------------------------------------ REST: channels & messages

    async def _get_channel(self, call: _Call) -> web.Response:
        return _json_response(200, copy.deepcopy(self._channel(call.id("channel"))))

    async def _list_messages(self, call: _Call) -> web.Response:
        cid = call.id("channel")
        self._channel(cid)
        query = call.request.query
        limit = max(1, min(int(query.get("limit", "50")), 100))
        history = sorted(self.messages.get(cid, []), key=lambda m: int(m["id"]), reverse=True)
        if "before" in query:
            history = [m for m in history if int(m["id"]) < int(query["before"])]
        if "after" in query:
            history = [m for m in history if int(m["id"]) > int(query["after"])][-limit:]
        return _json_response(200, copy.deepcopy(history[:limit]))

    async def _create_message(self, call: _Call) -> web.Response:
        cid = call.id("channel")
        channel = self._channel(cid)
        if channel["type"] not in _MESSAGEABLE_TYPES:
            raise _error(400, "Cannot send messages in a non-text channel", 50008)
        if channel["type"] == 1 and any(
            int(r["id"]) in self.closed_dms for r in channel.get("recipients", [])
        ):
            raise _error(403, "Cannot send messages to this user", 50007)
        payload = call.object()
        nonce = payload.get("nonce")
        if payload.get("enforce_nonce") and nonce is not None:
            # Discord answers a repeated nonce with the message it already created.
            for earlier in reversed(self.messages.get(cid, [])[-200:]):
                if earlier.get("nonce") == nonce:
                    return _json_response(200, copy.deepcopy(earlier))
        flags = int(payload.get("flags") or 0) & _SENDABLE_FLAGS
        msg = await self._post_message(cid, {**payload, "flags": flags}, call.files)
        return _json_response(200, copy.deepcopy(msg))

    def _find_message(self, channel_id: int, message_id: int) -> Json:
        msg = self._message_index.get(message_id)
        if msg is None or int(msg["channel_id"]) != channel_id or msg["flags"] & EPHEMERAL:
            raise _error(404, "Unknown Message", 10008)
        return msg

    async def _list_pins(self, call: _Call) -> web.Response:
        """The paginated pins shape of discord.py 2.6+ (one page here)."""
        channel_id = call.id("channel")
        self._channel(channel_id)
        items = [
            {"pinned_at": at, "message": copy.deepcopy(self._find_message(channel_id, mid))}
            for mid, at in self._pins.get(channel_id, [])
        ]
        return _json_response(200, {"items": items, "has_more": False})

    async def _get_message(self, call: _Call) -> web.Response:
        self._channel(call.id("channel"))
        return _json_response(
            200, copy.deepcopy(self._find_message(call.id("channel"), call.id("message")))
        )

    async def _edit_message(self, call: _Call) -> web.Response:
        msg = self._find_message(call.id("channel"), call.id("message"))
        if int(msg["author"]["id"]) != self.bot_user_id:
            raise _error(403, "Cannot edit a message authored by another user", 50005)
        updated = await self._apply_edit(msg, call.object(), call.files)
        return _json_response(200, copy.deepcopy(updated))

    async def _delete_message(self, call: _Call) -> web.Response:
        msg = self._find_message(call.id("channel"), call.id("message"))
        await self._remove_message(msg)
        return _json_response(204, None)

    async def _typing(self, call: _Call) -> web.Response:
        self._channel(call.id("channel"))
        return _json_response(204, None)

    async def _create_thread(self, call: _Call) -> web.Response:
        parent_id = call.id("channel")
        parent = self._channel(parent_id)
        payload = call.object()
        errors = _FormErrors()
        name = payload.get("name")
        if errors.required(("name",), name):
            errors.max_length(("name",), name, 100)
        errors.raise_if_any()
        source: Json | None = None
        if "message" in call.params:
            source = self._find_message(parent_id, call.id("message"))
            if source.get("thread"):
                raise _error(400, "A thread has already been created for this message", 160004)
            thread_id = int(source["id"])
            thread_type = 11
        else:
            thread_id = self._snowflake()
            thread_type = int(payload.get("type") or 12)
        if parent["type"] not in (0, 5) or thread_type not in _THREAD_TYPES:
            raise _error(400, "Cannot execute action on this channel type", 50024)
        now = _now_iso()
        thread: Json = {
            "id": str(thread_id),
            "guild_id": str(self.guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(self.bot_user_id),
            "type": thread_type,
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": int(payload.get("rate_limit_per_user") or 0),
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": int(payload.get("auto_archive_duration") or 4320),
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
            },
            "member": {
                "id": str(thread_id),
                "user_id": str(self.bot_user_id),
                "join_timestamp": now,
                "flags": 0,
            },
        }
        if thread_type == 12:
            thread["thread_metadata"]["invitable"] = bool(payload.get("invitable", True))
        self.channels[thread_id] = thread
        if source is not None:
            source["thread"] = copy.deepcopy(thread)
            source["flags"] |= HAS_THREAD
        await self._send_dispatch(
            "THREAD_CREATE", {**copy.deepcopy(thread), "newly_created": True}, intent=INTENT_GUILDS
        )
        return _json_response(201, copy.deepcopy(thread))

    # ------------------------------------------------------------------ REST: guild

    async def _get_guild(self, call: _Call) -> web.Response:
        self._check_guild(call.id("guild"))
        guild = self._guild_object()
        if call.flag("with_counts"):
            guild.update(approximate_member_count=len(self._members), approximate_presence_count=0)
        return _json_response(200, guild)

    async def _get_guild_channels(self, call: _Call) -> web.Response:
        self._check_guild(call.id("guild"))
        channels = [
            copy.deepcopy(c)
            for c in self.channels.values()
            if c.get("guild_id") and c["type"] not in _THREAD_TYPES
        ]
        return _json_response(200, channels)

    async def _get_roles(self, call: _Call) -> web.Response:
        self._check_guild(call.id("guild"))
        return _json_response(200, [copy.deepcopy(r) for r in self.roles.values()])

    async def _list_members(self, call: _Call) -> web.Response:
        self._check_guild(call.id("guild"))
        limit = max(1, min(int(call.request.query.get("limit", "1")), 1000))
        after = int(call.request.query.get("after", "0"))
        ids = sorted(uid for uid in self._members if uid > after)[:limit]
        return _json_response(200, [self._member_payload(uid) for uid in ids])

    def _find_member(self, call: _Call) -> int:
        self._check_guild(call.id("guild"))
        uid = call.id("user")
        if uid not in self._members:
            raise _error(404, "Unknown Member", 10007)
        return uid

    async def _get_member(self, call: _Call) -> web.Response:
        return _json_response(200, self._member_payload(self._find_member(call)))

    def _check_can_manage_role(self, role_id: int) -> None:
        role = self.roles.get(role_id)
        if role is None:
            raise _error(404, "Unknown Role", 10011)
        bot_perms = self.permissions_for(self.bot_user_id)
        bot_top = max(
            (self.roles[int(r)]["position"] for r in self._members[self.bot_user_id]["roles"]),
            default=0,
        )
        if (
            not bot_perms & MANAGE_ROLES
            or role["position"] >= bot_top
            or role["managed"]
            or role_id == self.guild_id
        ):
            raise _error(403, "Missing Permissions", 50013)

    async def _member_updated(self, user_id: int) -> None:
        payload = {**self._member_payload(user_id), "guild_id": str(self.guild_id)}
        self._notify()
        await self._send_dispatch("GUILD_MEMBER_UPDATE", payload, intent=INTENT_GUILD_MEMBERS)

    async def _add_member_role(self, call: _Call) -> web.Response:
        uid = self._find_member(call)
        rid = call.id("role")
        self._check_can_manage_role(rid)
        roles = self._members[uid]["roles"]
        if str(rid) not in roles:
            roles.append(str(rid))
            await self._member_updated(uid)
        return _json_response(204, None)

    async def _remove_member_role(self, call: _Call) -> web.Response:
        uid = self._find_member(call)
        rid = call.id("role")
        self._check_can_manage_role(rid)
        roles = self._members[uid]["roles"]
        if str(rid) in roles:
            roles.remove(str(rid))
            await self._member_updated(uid)
        return _json_response(204, None)

    async def _edit_member(self, call: _Call) -> web.Response:
        uid = self._find_member(call)
        payload = call.object()
        member = self._members[uid]
        if "roles" in payload:
            wanted = {str(r) for r in payload["roles"] or []}
            current = set(member["roles"])
            for rid in wanted ^ current:
                self._check_can_manage_role(int(rid))
            member["roles"] = sorted(wanted, key=int)
        if "nick" in payload:
            member["nick"] = payload["nick"]
        await self._member_updated(uid)
        return _json_response(200, self._member_payload(uid))

    # ------------------------------------------------------------------ messages: core

    def _validate_message(self, msg: Json, *, require_content: bool) -> None:
        """Discord's documented message limits, answered with 50035/50006 like the real API."""
        errors = _FormErrors()
        content = msg.get("content")
        errors.max_length(("content",), content, 2000)
        embeds = msg.get("embeds") or []
        errors.max_length(("embeds",), embeds, 10)
        total = 0
        for index, embed in enumerate(embeds):
            total += self._validate_embed(errors, index, embed)
        if total > 6000:
            errors.add(
                ("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            )
        components = msg.get("components") or []
        self._validate_components(
            errors, components, v2=bool(int(msg.get("flags") or 0) & IS_COMPONENTS_V2)
        )
        allowed = msg.get("allowed_mentions")
        if isinstance(allowed, dict):
            parse = allowed.get("parse") or []
            for kind in ("users", "roles"):
                if kind in parse and allowed.get(kind):
                    errors.add(
                        ("allowed_mentions",),
                        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                        f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                    )
        errors.raise_if_any()
        has_body = (
            content or embeds or components or msg.get("attachments") or msg.get("sticker_ids")
        )
        if require_content and not (has_body or msg.get("poll")):
            raise _error(400, "Cannot send an empty message", 50006)

    def _validate_embed(self, errors: _FormErrors, index: int, embed: Any) -> int:
        path: tuple[str | int, ...] = ("embeds", index)
        if not isinstance(embed, dict):
            errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            return 0
        size = 0
        for key, limit in (("title", 256), ("description", 4096)):
            value = embed.get(key) or ""
            errors.max_length((*path, key), value, limit)
            size += len(value)
        fields = embed.get("fields") or []
        errors.max_length((*path, "fields"), fields, 25)
        for fidx, item in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                value = item.get(key)
                if errors.required((*path, "fields", fidx, key), value):
                    errors.max_length((*path, "fields", fidx, key), value, limit)
                    size += len(str(value))
        for key, inner, limit in (("footer", "text", 2048), ("author", "name", 256)):
            value = (embed.get(key) or {}).get(inner) or ""
            errors.max_length((*path, key, inner), value, limit)
            size += len(value)
        return size

    def _validate_components(self, errors: _FormErrors, components: list[Any], *, v2: bool) -> None:
        seen: set[str] = set()
        if v2:
            errors.max_length(("components",), components, 40)
            for index, component in enumerate(_walk_components(components)):
                self._validate_component(errors, ("components", index), component, seen)
            return
        errors.max_length(("components",), components, 5)
        for index, row in enumerate(components):
            path: tuple[str | int, ...] = ("components", index)
            if not isinstance(row, dict) or row.get("type") != 1:
                errors.add(
                    (*path, "type"),
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
                continue
            children = row.get("components") or []
            if not 1 <= len(children) <= 5:
                errors.add(
                    (*path, "components"),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                )
            if len(children) > 1 and any(c.get("type") in _SELECT_TYPES for c in children):
                errors.add(
                    (*path, "components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
            for cidx, child in enumerate(children):
                self._validate_component(errors, (*path, "components", cidx), child, seen)

    def _validate_component(
        self, errors: _FormErrors, path: tuple[str | int, ...], component: Json, seen: set[str]
    ) -> None:
        ctype = component.get("type")
        custom_id = component.get("custom_id")
        if ctype == 2:
            errors.max_length((*path, "label"), component.get("label"), 80)
            if component.get("style") == 5:
                errors.required((*path, "url"), component.get("url"))
            elif component.get("style") != 6:
                errors.required((*path, "custom_id"), custom_id)
        elif ctype in _SELECT_TYPES:
            errors.required((*path, "custom_id"), custom_id)
            errors.max_length((*path, "placeholder"), component.get("placeholder"), 150)
            if ctype == 3:
                errors.max_length((*path, "options"), component.get("options") or [], 25)
        if isinstance(custom_id, str):
            errors.max_length((*path, "custom_id"), custom_id, 100)
            if custom_id in seen:
                errors.add(
                    (*path, "custom_id"),
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(custom_id)

    def _mentions(self, content: str, allowed: Json | None) -> tuple[list[Json], list[str], bool]:
        """Who a message pings, after ``allowed_mentions`` (absent = parse everything)."""
        parse = (
            {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse") or [])
        )
        users_ok = {str(u) for u in (allowed or {}).get("users") or []}
        roles_ok = {str(r) for r in (allowed or {}).get("roles") or []}
        can_mention_all = bool(self.permissions_for(self.bot_user_id) & MENTION_EVERYONE)
        mentions: list[Json] = []
        for uid in dict.fromkeys(_USER_MENTION.findall(content)):
            if ("users" in parse or uid in users_ok) and int(uid) in self.users:
                user = copy.deepcopy(self.users[int(uid)])
                if int(uid) in self._members:
                    user["member"] = self._member_payload(int(uid), with_user=False)
                mentions.append(user)
        roles = [
            rid
            for rid in dict.fromkeys(_ROLE_MENTION.findall(content))
            if ("roles" in parse or rid in roles_ok)
            and int(rid) in self.roles
            and (self.roles[int(rid)]["mentionable"] or can_mention_all)
        ]
        everyone = bool(
            "everyone" in parse and can_mention_all and _EVERYONE_MENTION.search(content)
        )
        return mentions, roles, everyone

    def _attachments(self, files: list[_Upload], payload: Json) -> list[Json]:
        described = {
            str(a.get("id")): a for a in payload.get("attachments") or [] if isinstance(a, dict)
        }
        result: list[Json] = []
        for index, upload in enumerate(files):
            aid = self._snowflake()
            self.files[aid] = upload.data
            meta = described.get(str(index), {})
            filename = meta.get("filename") or upload.filename
            result.append(
                {
                    "id": str(aid),
                    "filename": filename,
                    "description": meta.get("description"),
                    "content_type": upload.content_type,
                    "size": len(upload.data),
                    "url": f"http://{self._base}/attachments/{aid}/{filename}",
                    "proxy_url": f"http://{self._base}/attachments/{aid}/{filename}",
                }
            )
        return result

    async def _post_message(
        self,
        channel_id: int,
        payload: Json,
        files: list[_Upload],
        *,
        interaction: _Interaction | None = None,
        allow_empty: bool = False,
    ) -> Json:
        """Validate, store and announce a new bot message; returns the stored dict."""
        attachments = self._attachments(files, payload)
        candidate = {**payload, "attachments": attachments}
        self._validate_message(candidate, require_content=not allow_empty)
        content = payload.get("content") or ""
        mentions, mention_roles, everyone = self._mentions(content, payload.get("allowed_mentions"))
        mid = self._snowflake()
        msg: Json = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "type": 0,
            "content": content,
            "author": copy.deepcopy(self.users[self.bot_user_id]),
            "embeds": [{"type": "rich", **e} for e in payload.get("embeds") or []],
            "components": copy.deepcopy(payload.get("components") or []),
            "attachments": attachments,
            "mentions": mentions,
            "mention_roles": mention_roles,
            "mention_everyone": everyone,
            "pinned": False,
            "tts": bool(payload.get("tts", False)),
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "flags": int(payload.get("flags") or 0),
        }
        if payload.get("nonce") is not None:
            msg["nonce"] = payload["nonce"]
        reference = payload.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id"):
            referenced = self._message_index.get(int(reference["message_id"]))
            if referenced is None and reference.get("fail_if_not_exists", True):
                raise _HTTPError(
                    400,
                    {
                        "code": 50035,
                        "message": "Invalid Form Body",
                        "errors": {
                            "message_reference": {
                                "_errors": [
                                    {
                                        "code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                                        "message": "Unknown message",
                                    }
                                ]
                            }
                        },
                    },
                )
            msg["type"] = 19
            msg["message_reference"] = {
                "type": 0,
                "message_id": str(reference["message_id"]),
                "channel_id": str(channel_id),
                "guild_id": str(self.guild_id),
            }
            msg["referenced_message"] = copy.deepcopy(referenced)
        if interaction is not None:
            msg["type"] = 20 if interaction.kind == 2 else 0
            msg["webhook_id"] = str(self.application_id)
            msg["application_id"] = str(self.application_id)
            metadata: Json = {
                "id": str(interaction.id),
                "type": interaction.kind,
                "user": copy.deepcopy(self.users[interaction.user_id]),
                "authorizing_integration_owners": {"0": str(self.guild_id)},
            }
            if interaction.kind == 2:
                metadata.update(name=interaction.name.lstrip("/"), command_type=1)
            if interaction.original_id is not None:
                metadata["original_response_message_id"] = str(interaction.original_id)
            if interaction.source_message_id is not None:
                metadata["interacted_message_id"] = str(interaction.source_message_id)
            msg["interaction_metadata"] = metadata
        self._message_index[mid] = msg
        self._message_payloads[mid] = [copy.deepcopy(payload)]
        if not msg["flags"] & EPHEMERAL:
            self.messages.setdefault(channel_id, []).append(msg)
            channel = self.channels.get(channel_id)
            if channel is not None:
                channel["last_message_id"] = str(mid)
                if channel["type"] in _THREAD_TYPES:
                    channel["message_count"] += 1
                    channel["total_message_sent"] += 1
            await self._announce_message("MESSAGE_CREATE", msg)
        self._notify()
        return msg

    async def _apply_edit(
        self, msg: Json, payload: Json, files: list[_Upload], *, finish_loading: bool = False
    ) -> Json:
        """Merge an edit into a stored message (validated as a whole), in place."""
        candidate = copy.deepcopy(msg)
        for key in ("content", "components"):
            if key in payload:
                candidate[key] = copy.deepcopy(payload[key]) or ("" if key == "content" else [])
        if "embeds" in payload:
            candidate["embeds"] = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if payload.get("flags") is not None:
            wanted = int(payload["flags"]) & _EDITABLE_FLAGS
            candidate["flags"] = (candidate["flags"] & ~_EDITABLE_FLAGS) | wanted
        if finish_loading:
            candidate["flags"] &= ~LOADING
        if "attachments" in payload and payload["attachments"] is not None:
            keep = {str(a.get("id")) for a in payload["attachments"] if isinstance(a, dict)}
            candidate["attachments"] = [a for a in candidate["attachments"] if a["id"] in keep]
        candidate["attachments"] = candidate["attachments"] + self._attachments(files, payload)
        check = {**candidate, "allowed_mentions": payload.get("allowed_mentions")}
        self._validate_message(check, require_content=True)
        if "content" in payload or "allowed_mentions" in payload:
            mentions, roles, everyone = self._mentions(
                candidate["content"], payload.get("allowed_mentions")
            )
            candidate.update(mentions=mentions, mention_roles=roles, mention_everyone=everyone)
        candidate["edited_timestamp"] = _now_iso()
        msg.clear()
        msg.update(candidate)
        self._message_payloads.setdefault(int(msg["id"]), []).append(copy.deepcopy(payload))
        if not msg["flags"] & EPHEMERAL:
            await self._announce_message("MESSAGE_UPDATE", msg)
        self._notify()
        return msg

    async def _remove_message(self, msg: Json) -> None:
        mid, cid = int(msg["id"]), int(msg["channel_id"])
        self._message_index.pop(mid, None)
        history = self.messages.get(cid, [])
        if msg in history:
            history.remove(msg)
        if not msg["flags"] & EPHEMERAL:
            payload: Json = {"id": str(mid), "channel_id": str(cid)}
            if self.channels.get(cid, {}).get("guild_id"):
                payload["guild_id"] = str(self.guild_id)
            intent = INTENT_GUILD_MESSAGES if "guild_id" in payload else INTENT_DIRECT_MESSAGES
            await self._send_dispatch("MESSAGE_DELETE", payload, intent=intent)
        self._notify()

    async def _announce_message(self, event: str, msg: Json) -> None:
        payload = copy.deepcopy(msg)
        if self.channels.get(int(msg["channel_id"]), {}).get("guild_id"):
            payload["guild_id"] = str(self.guild_id)
            payload["member"] = self._member_payload(self.bot_user_id, with_user=False)
            await self._send_dispatch(event, payload, intent=INTENT_GUILD_MESSAGES)
        else:
            await self._send_dispatch(event, payload, intent=INTENT_DIRECT_MESSAGES)

    # ------------------------------------------------------------------ interactions

    def _find_command(self, name: str) -> tuple[Json, int]:
        for scope in (self.guild_id, 0):
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command, scope
        raise CommandNotSynced(f"/{name} was never synced (known: {self._known_commands()})")

    def _known_commands(self) -> list[str]:
        return sorted(c["name"] for cmds in self.commands.values() for c in cmds)

    def _check_options(self, defs: list[Json], given: list[Json], where: str) -> None:
        """Refuse option payloads Discord could not produce for the synced command."""
        by_name = {d["name"]: d for d in defs}
        for option in given:
            definition = by_name.get(option.get("name", ""))
            if definition is None:
                raise ValueError(
                    f"{where}: no option {option.get('name')!r} (has {sorted(by_name)})"
                )
            option.setdefault("type", definition["type"])
            if option["type"] != definition["type"]:
                raise ValueError(
                    f"{where} {definition['name']}: type {option['type']} != {definition['type']}"
                )
            if definition["type"] in (1, 2):
                sub = option.setdefault("options", [])
                self._check_options(
                    definition.get("options") or [], sub, f"{where} {definition['name']}"
                )
                continue
            if "value" not in option:
                raise ValueError(f"{where} {definition['name']}: missing value")
            if option["type"] in (6, 7, 8, 9):
                option["value"] = str(option["value"])
            choices = definition.get("choices")
            if choices and option["value"] not in [c["value"] for c in choices]:
                raise ValueError(
                    f"{where} {definition['name']}: {option['value']!r} is not a choice"
                )
        if any(d["type"] in (1, 2) for d in defs):
            if not any(o.get("type") in (1, 2) for o in given):
                raise ValueError(f"{where}: a subcommand is required")
            return
        provided = {o["name"] for o in given}
        missing = [d["name"] for d in defs if d.get("required") and d["name"] not in provided]
        if missing:
            raise ValueError(f"{where}: missing required options {missing}")

    def _check_partial_options(self, defs: list[Json], given: list[Json], where: str) -> int:
        """An autocomplete's options: known names, and the focused one declares autocomplete.
        Returns how many are focused."""
        by_name = {d["name"]: d for d in defs}
        focused = 0
        for option in given:
            definition = by_name.get(option.get("name", ""))
            if definition is None:
                raise ValueError(
                    f"{where}: no option {option.get('name')!r} (has {sorted(by_name)})"
                )
            option.setdefault("type", definition["type"])
            if definition["type"] in (1, 2):
                focused += self._check_partial_options(
                    definition.get("options") or [],
                    option.setdefault("options", []),
                    f"{where} {definition['name']}",
                )
                continue
            if option.get("focused"):
                if not definition.get("autocomplete"):
                    raise ValueError(f"{where} {definition['name']}: no autocomplete declared")
                option["value"] = str(option.get("value", ""))
                focused += 1
        return focused

    def _resolve_options(self, options: list[Json]) -> Json:
        resolved: Json = {}

        def add_user(uid: int) -> None:
            if uid not in self.users:
                raise ValueError(f"unknown user {uid}")
            resolved.setdefault("users", {})[str(uid)] = copy.deepcopy(self.users[uid])
            if uid in self._members:
                member = self._member_payload(uid, with_user=False)
                member["permissions"] = str(self.permissions_for(uid))
                resolved.setdefault("members", {})[str(uid)] = member

        def add_role(rid: int) -> None:
            resolved.setdefault("roles", {})[str(rid)] = copy.deepcopy(self.roles[rid])

        def walk(items: list[Json]) -> None:
            for option in items:
                kind = option.get("type")
                if kind in (1, 2):
                    walk(option.get("options") or [])
                    continue
                if kind not in (6, 7, 8, 9):
                    continue
                oid = int(option["value"])
                if kind == 6 or (kind == 9 and oid in self.users):
                    add_user(oid)
                elif kind == 8 or (kind == 9 and oid in self.roles):
                    if oid not in self.roles:
                        raise ValueError(f"unknown role {oid}")
                    add_role(oid)
                elif kind == 7:
                    channel = copy.deepcopy(self._channel_or_value_error(oid))
                    channel["permissions"] = str(self.permissions_for(self.bot_user_id))
                    resolved.setdefault("channels", {})[str(oid)] = channel
                else:
                    raise ValueError(f"unknown mentionable {oid}")

        walk(options)
        return resolved

    def _channel_or_value_error(self, channel_id: int) -> Json:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}")
        return channel

    def _new_interaction(
        self, kind: int, name: str, channel_id: int, user_id: int, source: int | None = None
    ) -> _Interaction:
        return _Interaction(
            id=self._snowflake(),
            token=secrets.token_urlsafe(48),
            kind=kind,
            name=name,
            channel_id=channel_id,
            user_id=user_id,
            source_message_id=source,
        )

    def _interaction_payload(
        self, record: _Interaction, data: Json, message: Json | None = None
    ) -> Json:
        channel = copy.deepcopy(self.channels[record.channel_id])
        if channel["type"] == 1:
            return self._dm_interaction_payload(record, data, channel)
        channel["permissions"] = str(self.permissions_for(record.user_id))
        member = self._member_payload(record.user_id)
        member["permissions"] = str(self.permissions_for(record.user_id))
        payload: Json = {
            "id": str(record.id),
            "application_id": str(self.application_id),
            "type": record.kind,
            "data": data,
            "guild_id": str(self.guild_id),
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
            "channel_id": str(record.channel_id),
            "channel": channel,
            "member": member,
            "token": record.token,
            "version": 1,
            "app_permissions": str(self.permissions_for(self.bot_user_id)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if message is not None:
            payload["message"] = message
        return payload

    def _dm_interaction_payload(self, record: _Interaction, data: Json, channel: Json) -> Json:
        return {
            "id": str(record.id),
            "application_id": str(self.application_id),
            "type": record.kind,
            "data": data,
            "channel_id": str(record.channel_id),
            "channel": channel,
            "user": copy.deepcopy(self.users[record.user_id]),
            "token": record.token,
            "version": 1,
            "app_permissions": "0",
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"1": str(record.user_id)},
            "context": 1,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }

    async def _component_interaction(
        self,
        custom_id: str,
        user_id: int,
        message: Json,
        values: list[str] | None,
        timeout: float,
    ) -> InteractionResult:
        mid = int(message["id"])
        current = self._message_index.get(mid)
        if current is None:
            raise ValueError(f"message {mid} is unknown to the emulator (deleted?)")
        component = next(
            (
                c
                for c in _walk_components(current.get("components") or [])
                if c.get("custom_id") == custom_id
            ),
            None,
        )
        if component is None:
            raise ValueError(f"message {mid} has no component with custom_id {custom_id!r}")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled; Discord would not send a click")
        wants_select = values is not None
        if wants_select != (component.get("type") in _SELECT_TYPES):
            raise ValueError(f"component {custom_id!r} has type {component.get('type')}")
        self._require_member(user_id)
        cid = int(current["channel_id"])
        record = self._new_interaction(3, f"component {custom_id}", cid, user_id, source=mid)
        data: Json = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = list(values)
        payload = self._interaction_payload(record, data, copy.deepcopy(current))
        return await self._run_interaction(record, payload, timeout)

    async def _run_interaction(
        self, record: _Interaction, payload: Json, timeout: float
    ) -> InteractionResult:
        """Send INTERACTION_CREATE, enforce the ack window, then wait for deferred completion."""
        await self._wait_until(self._connected, timeout, "the bot's gateway connection")
        loop = asyncio.get_running_loop()
        self._interactions[record.id] = record
        self._by_token[record.token] = record
        record.sent_at = loop.time()
        await self._send_dispatch("INTERACTION_CREATE", payload, intent=None)
        remaining = self.ack_timeout - (loop.time() - record.sent_at)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(record.acked.wait(), max(remaining, 0.0))
        result = record.result
        if result is None:
            record.expired = True
            self._notify()
            raise InteractionNotAcknowledged(record.name, self.ack_timeout)
        if not record.completed:
            try:
                await self._wait_until(lambda: record.completed, timeout, "deferred completion")
            except TimeoutError as exc:
                raise InteractionNotCompleted(result, timeout) from exc
        return result

    async def _interaction_callback(self, call: _Call) -> web.Response:
        record = self._interactions.get(call.id("interaction"))
        if record is None or record.token != call.params["token"]:
            raise _error(404, "Unknown interaction", 10062)
        now = asyncio.get_running_loop().time()
        if record.expired or now - record.sent_at > self.ack_timeout:
            record.expired = True
            raise _error(404, "Unknown interaction", 10062)
        if record.result is not None:
            raise _error(400, "Interaction has already been acknowledged.", 40060)
        body = call.object()
        rtype = int(body.get("type") or 0)
        data = body.get("data") or {}
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}[record.kind]
        if rtype not in allowed:
            errors = _FormErrors()
            errors.add(
                ("type",), "INTERACTION_RESPONSE_TYPE_INVALID", f"Invalid response type {rtype}"
            )
            errors.raise_if_any()
        if rtype in (6, 7) and record.source_message_id is None:
            raise _error(400, "Interaction has no message to update", 50035)
        result = InteractionResult(
            type=rtype, acknowledged_in=0.0, interaction_id=record.id, token=record.token
        )
        resource: Json = {"type": rtype}
        if rtype == 4:
            flags = int(data.get("flags") or 0) & (_SENDABLE_FLAGS | EPHEMERAL)
            msg = await self._post_message(
                record.channel_id, {**data, "flags": flags}, call.files, interaction=record
            )
            record.original_id = int(msg["id"])
            record.completed = True
            result.message = copy.deepcopy(msg)
            result.allowed_mentions = data.get("allowed_mentions")
            resource["message"] = copy.deepcopy(msg)
        elif rtype == 5:
            flags = (int(data.get("flags") or 0) & EPHEMERAL) | LOADING
            msg = await self._post_message(
                record.channel_id,
                {"content": "", "flags": flags},
                [],
                interaction=record,
                allow_empty=True,
            )
            record.original_id = int(msg["id"])
            result.message = copy.deepcopy(msg)
            resource["message"] = copy.deepcopy(msg)
        elif rtype == 6:
            record.original_id = record.source_message_id
        elif rtype == 7:
            assert record.source_message_id is not None
            source = self._message_index[record.source_message_id]
            msg = await self._apply_edit(source, data, call.files)
            record.original_id = record.source_message_id
            record.completed = True
            result.message = copy.deepcopy(msg)
            result.allowed_mentions = data.get("allowed_mentions")
            resource["message"] = copy.deepcopy(msg)
        elif rtype == 8:
            choices = data.get("choices")
            errors = _FormErrors()
            if not isinstance(choices, list) or len(choices) > 25:
                errors.add(("data", "choices"), "BASE_TYPE_BAD_LENGTH", "Must be 25 or fewer.")
            else:
                for index, choice in enumerate(choices):
                    path = ("data", "choices", index)
                    if errors.required((*path, "name"), choice.get("name")):
                        errors.max_length((*path, "name"), choice.get("name"), 100)
                    if isinstance(choice.get("value"), str):
                        errors.max_length((*path, "value"), choice["value"], 100)
            errors.raise_if_any()
            result.choices = copy.deepcopy(choices)
            record.completed = True
        else:  # 9: modal
            errors = _FormErrors()
            if errors.required(("data", "custom_id"), data.get("custom_id")):
                errors.max_length(("data", "custom_id"), data.get("custom_id"), 100)
            if errors.required(("data", "title"), data.get("title")):
                errors.max_length(("data", "title"), data.get("title"), 45)
            if not 1 <= len(data.get("components") or []) <= 5:
                errors.add(
                    ("data", "components"),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                )
            errors.raise_if_any()
            self._modals[data["custom_id"]] = copy.deepcopy(data)
            record.completed = True
            result.modal = copy.deepcopy(data)
        if record.original_id is not None:
            original = self._message_index.get(record.original_id)
            result.ephemeral = bool(original and original["flags"] & EPHEMERAL)
        result.acknowledged_in = asyncio.get_running_loop().time() - record.sent_at
        record.result = result
        record.acked.set()
        self._notify()
        if not call.flag("with_response"):
            return _json_response(204, None)
        summary: Json = {"id": str(record.id), "type": record.kind}
        if "message" in resource:
            summary.update(
                response_message_id=resource["message"]["id"],
                response_message_loading=rtype == 5,
                response_message_ephemeral=result.ephemeral,
            )
        return _json_response(200, {"interaction": summary, "resource": resource})

    def _webhook_record(self, call: _Call) -> _Interaction:
        record = self._by_token.get(call.params["token"])
        if call.id("app") != self.application_id or record is None or record.result is None:
            raise _error(404, "Unknown Webhook", 10015)
        return record

    def _webhook_message(self, record: _Interaction, ref: str) -> Json:
        mid = record.original_id if ref == "@original" else int(ref)
        if mid is None or (mid != record.original_id and mid not in record.followup_ids):
            raise _error(404, "Unknown Message", 10008)
        msg = self._message_index.get(mid)
        if msg is None:
            raise _error(404, "Unknown Message", 10008)
        return msg

    def _complete(self, record: _Interaction, msg: Json, payload: Json) -> None:
        result = record.result
        assert result is not None
        if not record.completed:
            record.completed = True
            result.allowed_mentions = payload.get("allowed_mentions")
        result.message = copy.deepcopy(msg)
        result.ephemeral = bool(msg["flags"] & EPHEMERAL)

    async def _webhook_execute(self, call: _Call) -> web.Response:
        hook = self.channel_webhooks.get(call.id("app"))
        if hook is not None:
            return await self._channel_webhook_execute(call, hook)
        record = self._webhook_record(call)
        result = record.result
        assert result is not None
        payload = call.object()
        original = self._message_index.get(record.original_id or 0)
        if result.type == 5 and original is not None and original["flags"] & LOADING:
            # Discord turns the first followup after a deferral into the deferred message.
            msg = await self._apply_edit(original, payload, call.files, finish_loading=True)
            self._complete(record, msg, payload)
        else:
            flags = int(payload.get("flags") or 0) & (_SENDABLE_FLAGS | EPHEMERAL)
            msg = await self._post_message(
                record.channel_id, {**payload, "flags": flags}, call.files, interaction=record
            )
            if not record.completed:
                self._complete(record, msg, payload)
        record.followup_ids.append(int(msg["id"]))
        result.followups.append(copy.deepcopy(msg))
        result._touch()
        self._notify()
        if call.flag("wait"):
            return _json_response(200, copy.deepcopy(msg))
        return _json_response(204, None)

    async def _channel_webhook_execute(self, call: _Call, hook: Json) -> web.Response:
        """A channel webhook (e.g. Alertmanager's discord_configs): posts into its channel,
        under the same per-channel message limit as the bot's own posts."""
        if call.params["token"] != hook["token"]:
            raise _error(401, "Invalid Webhook Token", 50027)
        cid = int(hook["channel_id"])
        now = asyncio.get_running_loop().time()
        limit, period = self.channel_rate_limit
        window = self._channel_windows.setdefault(cid, _Window(limit, period))
        window.roll(now)
        if window.count >= window.limit:
            raise self._too_many(window, now, "channel-webhook", "shared")
        window.count += 1
        payload = call.object()
        flags = int(payload.get("flags") or 0) & _SENDABLE_FLAGS
        msg = await self._post_message(cid, {**payload, "flags": flags}, call.files)
        msg["author"] = {
            "id": str(hook["id"]),
            "username": payload.get("username") or hook["name"],
            "discriminator": "0000",
            "avatar": None,
            "bot": True,
        }
        msg["webhook_id"] = str(hook["id"])
        self.webhook_executions += 1
        if call.flag("wait"):
            return _json_response(200, copy.deepcopy(msg))
        return _json_response(204, None)

    def add_webhook(self, channel_id: int, name: str = "Alertmanager") -> str:
        """Create a channel webhook; returns its execute URL (``/webhooks/{id}/{token}``)."""
        self._channel(channel_id)
        webhook_id = self._snowflake()
        token = secrets.token_urlsafe(48)
        self.channel_webhooks[webhook_id] = {
            "id": webhook_id,
            "token": token,
            "channel_id": channel_id,
            "name": name,
        }
        return f"{self.api_base}/webhooks/{webhook_id}/{token}"

    async def _webhook_get(self, call: _Call) -> web.Response:
        record = self._webhook_record(call)
        return _json_response(
            200, copy.deepcopy(self._webhook_message(record, call.params["message"]))
        )

    async def _webhook_edit(self, call: _Call) -> web.Response:
        record = self._webhook_record(call)
        result = record.result
        assert result is not None
        target = self._webhook_message(record, call.params["message"])
        payload = call.object()
        msg = await self._apply_edit(target, payload, call.files, finish_loading=True)
        mid = int(msg["id"])
        if mid == record.original_id:
            self._complete(record, msg, payload)
            result.edits += 1
        result.followups[:] = [
            copy.deepcopy(msg) if int(f["id"]) == mid else f for f in result.followups
        ]
        result._touch()
        self._notify()
        return _json_response(200, copy.deepcopy(msg))

    async def _webhook_delete(self, call: _Call) -> web.Response:
        record = self._webhook_record(call)
        await self._remove_message(self._webhook_message(record, call.params["message"]))
        return _json_response(204, None)

    # ------------------------------------------------------------------ gateway

    async def _send_dispatch(self, event: str, data: Json, *, intent: int | None) -> bool:
        """Queue a DISPATCH in the session history and write it if the bot is connected."""
        session = self._session
        if session is None or (intent is not None and not session.intents & intent):
            return False
        session.seq += 1
        frame = json.dumps(
            {"op": 0, "s": session.seq, "t": event, "d": data}, separators=(",", ":")
        )
        session.history.append((session.seq, frame))
        ws = session.ws
        if ws is None or ws.closed:
            return False
        try:
            await ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            return False  # replayed on RESUME
        return True

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        """One gateway connection: HELLO, heartbeats, IDENTIFY/RESUME, member requests."""
        if self._gateway_outage is not None:
            return web.Response(status=self._gateway_outage, text="gateway unavailable")
        ws = web.WebSocketResponse(timeout=1.0, compress=False, max_msg_size=1 << 22)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.gateway_connections += 1
        identified: _Session | None = None
        try:
            hello = {"heartbeat_interval": int(self.heartbeat_interval * 1000), "_trace": ["emu"]}
            await ws.send_str(json.dumps({"op": 10, "d": hello, "s": None, "t": None}))
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                try:
                    packet = json.loads(frame.data)
                    op, data = packet["op"], packet.get("d")
                except (ValueError, KeyError, TypeError):
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
                elif op == 2:
                    identified = await self._identify(ws, data)
                elif op == 6:
                    identified = await self._resume(ws, data)
                elif op == 8:
                    if identified is None:
                        await ws.close(code=4003, message=b"Not authenticated.")
                        break
                    await self._request_members(data)
                elif op not in (3, 4):
                    await ws.close(code=4001, message=b"Unknown opcode.")
                    break
        finally:
            self._sockets.discard(ws)
            if self._session is not None and self._session.ws is ws:
                self._session.ws = None
            self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> _Session | None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        self.identify_payloads.append(copy.deepcopy(data))
        session = _Session(session_id=secrets.token_hex(16), intents=int(data.get("intents", 0)))
        session.ws = ws
        self._session = session
        self._awaiting_resume = False
        me = copy.deepcopy(self.users[self.bot_user_id])
        me.update(verified=True, mfa_enabled=False, email=None, flags=0)
        ready = {
            "v": 10,
            "user": me,
            "user_settings": {},
            "session_type": "normal",
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "application": {"id": str(self.application_id), "flags": 0},
            "_trace": ["emu"],
        }
        await self._send_dispatch("READY", ready, intent=None)
        await self._send_dispatch("GUILD_CREATE", self._guild_create(), intent=INTENT_GUILDS)
        session.ready = True
        self._notify()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> _Session | None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        session = self._session
        if session is None or data.get("session_id") != session.session_id:
            await ws.send_str(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
            return None
        if session.ws is not None and session.ws is not ws:
            with contextlib.suppress(Exception):
                await session.ws.close(code=4000)
        last = int(data.get("seq") or 0)
        while True:  # replay until caught up; dispatches made meanwhile land in history
            pending = [(s, f) for s, f in session.history if s > last]
            if not pending:
                break
            for seq, frame in pending:
                await ws.send_str(frame)
                last = seq
        session.ws = ws
        await self._send_dispatch("RESUMED", {"_trace": ["emu"]}, intent=None)
        self.resume_count += 1
        self._awaiting_resume = False
        self._notify()
        return session

    async def _request_members(self, data: Json) -> None:
        user_ids = [int(u) for u in (data.get("user_ids") or [])]
        query = str(data.get("query") or "").lower()
        limit = int(data.get("limit") or 0) or len(self._members)
        if user_ids:
            found = [uid for uid in user_ids if uid in self._members]
        else:
            found = [
                uid
                for uid in self._members
                if self.users[uid]["username"].lower().startswith(query)
            ][:limit]
        chunk: Json = {
            "guild_id": str(self.guild_id),
            "members": [self._member_payload(uid) for uid in found],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in user_ids if u not in self._members],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch("GUILD_MEMBERS_CHUNK", chunk, intent=None)
