"""REST for application commands: the bulk overwrite with Discord's validation, and waiting for a
sync.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from tests.harness.emulator.rest_guild import RestGuild
from tests.harness.emulator.wire import (
    _COMMAND_NAME,
    Json,
    _Call,
    _error,
    _FormErrors,
    _json_response,
)


class RestCommands(RestGuild):
    """The `rest_commands` layer of `DiscordEmulator`: what the module docstring describes."""

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
                # Discord takes a bitfield as an integer or a string and answers with a string.
                "default_member_permissions": _permissions(
                    command.get("default_member_permissions")
                ),
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


def _permissions(value: Any) -> str | None:
    return None if value is None else str(int(value))
