"""The release manifest model: what a valid manifest is, and a clear reason when it is not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.domain.releases import MAX_MANIFEST_BYTES, ManifestError, ReleaseManifest


def manifest(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "1.4.0",
        "released_at": "2026-11-27T12:00:00Z",
        "channel": "stable",
        "components": [
            {
                "name": "hh-node-agent",
                "version": "1.4.0",
                "url": "https://releases.hyperhash.invalid/hh-node-agent-1.4.0.tar.gz",
                "sha256": "ab" * 32,
            }
        ],
        "notes": "## Changes\n- faster template refresh",
    }
    base.update(overrides)
    return base


def parse(data: dict[str, Any]) -> ReleaseManifest:
    return ReleaseManifest.parse(json.dumps(data).encode())


def test_valid_manifest_parses() -> None:
    m = parse(manifest())
    assert m.version == "1.4.0" and m.channel == "stable"
    assert m.components[0].sha256 == "ab" * 32
    assert m.released_at.tzinfo is not None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"channel": "nightly"}, "channel"),
        ({"version": ""}, "version"),
        ({"released_at": "2026-11-27T12:00:00"}, "released_at"),
        ({"components": []}, "components"),
        (
            {"components": [{"name": "x", "version": "1", "url": "ftp://x", "sha256": "ab" * 32}]},
            "url",
        ),
        (
            {"components": [{"name": "x", "version": "1", "url": "https://x", "sha256": "zz"}]},
            "sha256",
        ),
    ],
)
def test_malformed_manifest_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError, match=field):
        parse(manifest(**overrides))


def test_missing_field_is_refused() -> None:
    data = manifest()
    del data["version"]
    with pytest.raises(ManifestError, match="version"):
        parse(data)


@pytest.mark.parametrize(
    "raw", [b"not json", b"[1, 2]", b"\xff\xfe", b"x" * (MAX_MANIFEST_BYTES + 1)]
)
def test_not_a_manifest_is_refused(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        ReleaseManifest.parse(raw)


def test_display_url_drops_credentials_query_and_fragment() -> None:
    from bot.domain.releases import display_url

    assert (
        display_url("https://user:pw@127.0.0.1:8443/r/manifest.json?token=abc#x")
        == "https://127.0.0.1:8443/r/manifest.json"
    )
    assert display_url("http://[bad") == "(invalid URL)"
