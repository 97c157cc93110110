"""Release manifests (manual §8): what Hyper Hash publishes, signed, for node agents to apply."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from bot.domain.errors import InvalidInput
from bot.domain.minisign import SignatureError

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


_NUMBER = r"0|[1-9][0-9]*"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*"
SEMVER = re.compile(
    rf"(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
"""Semantic Versioning 2.0.0 (semver.org), ASCII only: MAJOR.MINOR.PATCH[-pre-release][+build]."""
SEMVER_HINT = "MAJOR.MINOR.PATCH[-pre-release][+build], e.g. 2.0.0 or 2.1.0-rc.1"


_PreReleaseKey = tuple[int, tuple[tuple[int, int, str], ...]]
"""Numeric identifiers (0, n, "") sort before alphanumeric ones (1, 0, text); fewer first."""
_PrecedenceKey = tuple[int, int, int, _PreReleaseKey]


@dataclass(frozen=True, eq=False)
class ReleaseVersion:
    """A release's version, ordered by semantic-version precedence (semver.org §11): numbers
    compare as numbers, a pre-release comes before its release (2.0.0-rc.1 < 2.0.0), and build
    metadata does not count (2.0.0+b equals 2.0.0: not newer)."""

    text: str
    key: _PrecedenceKey = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> ReleaseVersion:
        match = SEMVER.fullmatch(text)
        if match is None:
            raise ValueError(f"not a semantic version ({SEMVER_HINT})")
        pre = match["pre"]
        pre_key: _PreReleaseKey = (
            (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
            if pre
            else (1, ())  # a release comes after each of its pre-releases
        )
        return cls(text, (int(match["major"]), int(match["minor"]), int(match["patch"]), pre_key))

    @classmethod
    def parse_or_none(cls, text: str) -> ReleaseVersion | None:
        try:
            return cls.parse(text)
        except ValueError:
            return None

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReleaseVersion) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __lt__(self, other: ReleaseVersion) -> bool:
        return self.key < other.key

    def __le__(self, other: ReleaseVersion) -> bool:
        return self.key <= other.key

    def __gt__(self, other: ReleaseVersion) -> bool:
        return self.key > other.key

    def __ge__(self, other: ReleaseVersion) -> bool:
        return self.key >= other.key


COMMENT_VERSION = "version:"
"""The trusted comment names the release it signs: a whitespace-separated token
`version:<the manifest's version>` (e.g. `minisign -S ... -t "version:2.0.0"`)."""


def require_named_release(trusted_comment: str, version: str) -> None:
    """A signature is for one release: its (signed) trusted comment must carry the token
    `version:<version>`, exactly, and no `version:` token naming anything else. Otherwise a
    valid signature made for another purpose, or a comment that names no release, is refused."""
    named = [
        token[len(COMMENT_VERSION) :]
        for token in trusted_comment.split()
        if token.startswith(COMMENT_VERSION) and len(token) > len(COMMENT_VERSION)
    ]
    wanted = f"`{COMMENT_VERSION}{version}`"
    other = next((n for n in named if n != version), None)
    if other is not None:
        shown = other.replace("`", "ˋ")[:64]
        raise SignatureError(
            f"the signature's trusted comment names version {shown}, the manifest is "
            f"{version}: signed for another release (the comment must hold {wanted})"
        )
    if not named:
        raise SignatureError(
            f"the signature's trusted comment must name the release: add {wanted} to it "
            f'(minisign -S ... -t "{COMMENT_VERSION}{version}")'
        )


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

    version: str = Field(min_length=1, max_length=64)
    released_at: AwareDatetime
    channel: Literal["stable", "beta"]
    components: list[ReleaseComponent] = Field(min_length=1, max_length=50)
    notes: str = Field(default="", max_length=20000)

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if ReleaseVersion.parse_or_none(value) is None:
            raise PydanticCustomError(
                "semver", "must be a semantic version ({hint})", {"hint": SEMVER_HINT}
            )
        return value

    @property
    def release_version(self) -> ReleaseVersion:
        return ReleaseVersion.parse(self.version)

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
    rolled_back_from: str | None = None
    """A rollback: the newest version announced when Core Ops announced this older one with
    `rollback:true` (None for an upgrade)."""
    rejected_by: int | None = None
    rejected_by_name: str | None = None
    rejected_at: datetime | None = None
    """A Core Ops member rejected the rollout before anyone approved it: it never rolls out."""

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


class ReleaseRepository(Protocol):
    async def add(self, **values: Any) -> Release | None:
        """The recorded release; None when that version is already recorded."""
        ...

    async def get(self, release_id: int, *, for_update: bool = False) -> Release | None: ...

    async def by_version(self, version: str) -> Release | None: ...

    async def by_source(self, source: str) -> Release | None: ...

    async def versions(self) -> list[str]:
        """Every recorded version, in no particular order."""
        ...

    async def latest(self) -> Release | None:
        """The release announced last (after a rollback: the version rolled back to)."""
        ...

    async def recent(self, limit: int = 10) -> list[Release]: ...

    async def approve(
        self, release_id: int, *, by: int | None, by_name: str, at: datetime
    ) -> None: ...

    async def reject(
        self, release_id: int, *, by: int | None, by_name: str, at: datetime
    ) -> None: ...

    async def add_snapshot(self, snapshot: RolloutSnapshot) -> None: ...

    async def snapshots(self, release_id: int, limit: int = 50) -> list[RolloutSnapshot]: ...
