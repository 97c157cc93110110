"""The gateway websocket: IDENTIFY/RESUME, dispatches filtered by intents, outages, members coming
and going.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
from collections.abc import Iterable

from aiohttp import WSMsgType, web

from tests.harness.emulator.state import EmulatorState
from tests.harness.emulator.wire import (
    INTENT_GUILD_MEMBERS,
    INTENT_GUILDS,
    Json,
    _Session,
)


class Gateway(EmulatorState):
    """The `gateway` layer of `DiscordEmulator`: what the module docstring describes."""

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

    @property
    def dispatched_sequence(self) -> int:
        """The sequence number of the last DISPATCH queued for the bot (0 before an IDENTIFY):
        once the bot's own `ws.sequence` has reached it, the bot has read every event sent."""
        return self._session.seq if self._session is not None else 0

    async def wait_resumed(self, timeout: float = 10) -> None:
        """After close_gateway: the bot RESUMEd and RESUMED went out."""
        await self._wait_until(
            lambda: not self._awaiting_resume and self._connected(), timeout, "RESUME"
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

    def set_gateway_outage(self, status: int | None) -> None:
        """While set, new gateway connections are refused with ``status`` (after close_gateway,
        the bot cannot reconnect); None restores service."""
        self._gateway_outage = status

    async def _member_updated(self, user_id: int) -> None:
        payload = {**self._member_payload(user_id), "guild_id": str(self.guild_id)}
        self._notify()
        await self._send_dispatch("GUILD_MEMBER_UPDATE", payload, intent=INTENT_GUILD_MEMBERS)

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
