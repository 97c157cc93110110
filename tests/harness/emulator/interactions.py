"""Interactions: a test invokes a command, clicks, selects or submits a modal; the bot answers
within the real acknowledgement window.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets

from aiohttp import web

from tests.harness.emulator.rest_commands import RestCommands
from tests.harness.emulator.wire import (
    _SELECT_TYPES,
    _SENDABLE_FLAGS,
    ATTACHMENT_SIZE_LIMIT,
    EPHEMERAL,
    LOADING,
    CommandNotSynced,
    InteractionNotAcknowledged,
    InteractionNotCompleted,
    InteractionResult,
    Json,
    _Call,
    _error,
    _FormErrors,
    _Interaction,
    _json_response,
    _walk_components,
)


class Interactions(RestCommands):
    """The `interactions` layer of `DiscordEmulator`: what the module docstring describes."""

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
