"""Webhooks: interaction followups and edits, and the channel webhooks (an Alertmanager relay posts
through one).
"""

from __future__ import annotations

import asyncio
import copy
import secrets

from aiohttp import web

from tests.harness.emulator.interactions import Interactions
from tests.harness.emulator.wire import (
    _SENDABLE_FLAGS,
    EPHEMERAL,
    LOADING,
    Json,
    _Call,
    _error,
    _json_response,
    _Window,
)


class Webhooks(Interactions):
    """The `webhooks` layer of `DiscordEmulator`: what the module docstring describes."""

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
