"""REST for the guild, its members and roles, users, the application and the gateway endpoints."""

from __future__ import annotations

import copy

from aiohttp import web

from tests.harness.emulator.rest_messages import RestMessages
from tests.harness.emulator.wire import (
    _THREAD_TYPES,
    MANAGE_ROLES,
    _Call,
    _error,
    _json_response,
)


class RestGuild(RestMessages):
    """The `rest_guild` layer of `DiscordEmulator`: what the module docstring describes."""

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
