"""REST for channels and messages: create, edit, delete, pins, threads, DMs, and what a test reads
back.
"""

from __future__ import annotations

import copy

from aiohttp import web

from tests.harness.emulator.ratelimit import RateLimits
from tests.harness.emulator.wire import (
    _EDITABLE_FLAGS,
    _MESSAGEABLE_TYPES,
    _SENDABLE_FLAGS,
    _THREAD_TYPES,
    EPHEMERAL,
    HAS_THREAD,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    LOADING,
    Json,
    _Call,
    _error,
    _FormErrors,
    _HTTPError,
    _Interaction,
    _json_response,
    _now_iso,
    _Upload,
)


class RestMessages(RateLimits):
    """The `rest_messages` layer of `DiscordEmulator`: what the module docstring describes."""

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

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        """Delete a message as a moderator would (MESSAGE_DELETE follows)."""
        await self._remove_message(self._find_message(channel_id, message_id))

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

    async def _put_pin(self, call: _Call) -> web.Response:
        """PUT /channels/{id}/messages/pins/{message_id} (and the older /pins/ path): idempotent."""
        channel_id, message_id = call.id("channel"), call.id("message")
        msg = self._find_message(channel_id, message_id)
        if not msg.get("pinned"):
            await self.pin_message(channel_id, message_id)
        return _json_response(204, None)

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
