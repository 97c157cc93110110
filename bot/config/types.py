"""The value types every section shares: Discord ids (also from env lists), durations ("2m"),
http(s) URLs, and the strict `Section` base (an unknown key is an error)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)
from pydantic_core import PydanticCustomError


def _snowflake(value: object) -> int:
    """Discord ids are positive 64-bit integers; TOML gives int, the environment gives str."""
    if isinstance(value, bool):
        raise PydanticCustomError("snowflake", "must be a Discord id (integer)")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 0 < value < 2**63:
        raise PydanticCustomError("snowflake", "must be a Discord id (integer)")
    return value


def _env_list(problem: str) -> Callable[[object], object]:
    """Environment lists arrive as JSON (`[1, 2]`, `["a", "b"]`) or comma-separated."""

    def parse(value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    raise PydanticCustomError("list", problem) from None
            return [part for part in (p.strip() for p in text.split(",")) if part]
        return value

    return parse


_id_list = _env_list("must be a list of Discord ids (JSON or comma-separated)")


_str_list = _env_list("must be a list (JSON or comma-separated)")


Snowflake = Annotated[int, BeforeValidator(_snowflake)]


SnowflakeList = Annotated[list[Snowflake], BeforeValidator(_id_list)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("url", "must be an http(s):// URL")
    if parts.username or parts.password:
        raise PydanticCustomError(
            "url", "must not hold credentials: use the *_user/*_password keys"
        )
    return value.rstrip("/")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _duration(value: object) -> object:
    """Seconds as a number, or a string such as `90s`, `2m`, `1h` (as Alertmanager writes them)."""
    if isinstance(value, bool):
        raise PydanticCustomError("duration", "must be a duration such as 90, 90s, 2m or 1h")
    if isinstance(value, str):
        found = _DURATION.match(value)
        if not found:
            raise PydanticCustomError("duration", "must be a duration such as 90, 90s, 2m or 1h")
        return float(found.group(1)) * _UNITS[found.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]
