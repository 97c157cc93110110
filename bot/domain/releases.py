"""Release manifests (manual §8): what Hyper Hash publishes, signed, for node agents to apply."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from bot.domain.errors import InvalidInput

MAX_MANIFEST_BYTES = 256 * 1024
"""A manifest is a few kilobytes; the fetch refuses anything bigger."""


def display_url(url: str, limit: int = 600) -> str:
    """A URL as stored, audited and shown: no credentials, no query string or fragment."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}"[:limit]


class ManifestError(InvalidInput):
    """The manifest is not a valid release manifest; the message names the field."""


class ReleaseComponent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=1, max_length=512, pattern=r"^https?://")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class ReleaseManifest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")
    released_at: AwareDatetime
    channel: Literal["stable", "beta"]
    components: list[ReleaseComponent] = Field(min_length=1, max_length=50)
    notes: str = Field(default="", max_length=20000)

    @classmethod
    def parse(cls, data: bytes) -> ReleaseManifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError("manifest too large")
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ManifestError("manifest is not valid JSON") from None
        if not isinstance(raw, dict):
            raise ManifestError("manifest must be a JSON object")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'manifest'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise ManifestError(f"malformed manifest: {problems}") from None


class RolloutState(StrEnum):
    UPGRADED = "upgraded"
    PENDING = "pending"
    UNHEALTHY = "unhealthy"
    """Running the release but not healthy: rollback expected (manual §8)."""
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Release:
    id: int
    version: str
    channel: str
    released_at: datetime
    manifest: str
    key_id: str
    trusted_comment: str
    source: str
    announced_by: int | None
    announced_by_name: str
    announced_at: datetime
    approved_by: int | None = None
    approved_by_name: str | None = None
    approved_at: datetime | None = None

    @property
    def parsed(self) -> ReleaseManifest:
        return ReleaseManifest.parse(self.manifest.encode("utf-8"))


@dataclass(frozen=True)
class RolloutSnapshot:
    """One `/upgrade status` count of a release's rollout: kept for `/upgrade history`."""

    release_id: int
    at: datetime
    total: int
    upgraded: int
    pending: int
    unhealthy: int
    unreachable: int

    @property
    def percent(self) -> float:
        return 100.0 * self.upgraded / self.total if self.total else 0.0


@dataclass(frozen=True)
class ReleaseAssets:
    """A published release carrying a manifest and its signature (GitHub releases poll)."""

    tag: str
    manifest_url: str
    signature_url: str
