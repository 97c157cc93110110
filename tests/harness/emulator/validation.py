"""Discord's limits on what a message may carry (content, embeds, components, mentions, files),
answered with Discord's own form errors.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.harness.emulator.gateway import Gateway
from tests.harness.emulator.wire import (
    _EVERYONE_MENTION,
    _ROLE_MENTION,
    _SELECT_TYPES,
    _USER_MENTION,
    IS_COMPONENTS_V2,
    MENTION_EVERYONE,
    Json,
    _error,
    _FormErrors,
    _Upload,
    _walk_components,
)


class Validation(Gateway):
    """The `validation` layer of `DiscordEmulator`: what the module docstring describes."""

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
