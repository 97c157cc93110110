"""Discord's wire constants and the emulator's small records (requests, holds,
interaction results, routes, sessions).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

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
