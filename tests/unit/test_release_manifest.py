"""The release manifest model: what a valid manifest is, and a clear reason when it is not."""

from __future__ import annotations

import itertools
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


# -- the version scheme: Semantic Versioning 2.0.0 (security issue, item 7) --------------------

SEMVER_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.2.0",
    "1.10.0",
    "2.0.0",
    "10.0.0",
]
"""semver.org §11's own example, then numbers that sort wrongly as text."""


def test_versions_order_by_semantic_version_precedence() -> None:
    from bot.domain.releases import ReleaseVersion

    parsed = [ReleaseVersion.parse(v) for v in SEMVER_ORDER]
    assert sorted(reversed(parsed)) == parsed
    assert [str(v) for v in parsed] == SEMVER_ORDER
    for lower, higher in itertools.pairwise(parsed):
        assert lower < higher and not higher <= lower
    # Build metadata does not count: same precedence, not newer.
    assert ReleaseVersion.parse("2.0.0+build.7") == ReleaseVersion.parse("2.0.0")
    assert not ReleaseVersion.parse("2.0.0+b") > ReleaseVersion.parse("2.0.0+a")


@pytest.mark.parametrize(
    "version",
    [
        *("v2.0.0", "2.0", "2", "02.0.0", "2.0.0-", "2.0.0-01", "2.0.0+", "2.0.0_1"),
        *("2.0.0-é", "２.0.0", "2.0.0\n", " 2.0.0"),
    ],
)
def test_a_manifest_version_must_be_a_semantic_version(version: str) -> None:
    with pytest.raises(ManifestError, match=r"version: .*semantic version"):
        parse(manifest(version=version))


@pytest.mark.parametrize("version", ["2.0.0", "2.0.0-rc.1", "2.0.0+build.7", "0.9.12-beta.2+x"])
def test_semantic_versions_are_accepted(version: str) -> None:
    assert parse(manifest(version=version)).version == version


# -- the trusted comment names the release (security issue, item 13) ---------------------------


def test_the_trusted_comment_rule_reads_whitespace_separated_tokens() -> None:
    from bot.domain.minisign import SignatureError
    from bot.domain.releases import require_named_release

    require_named_release("version:2.0.0", "2.0.0")
    require_named_release("timestamp:1\tfile:manifest.json\tversion:2.0.0\thashed", "2.0.0")
    require_named_release("version:2.0.0+b.1", "2.0.0+b.1")
    for comment in ("", "2.0.0", "release 2.0.0", "version: 2.0.0", "hhversion:2.0.0"):
        with pytest.raises(SignatureError, match=r"must name the release: add `version:2\.0\.0`"):
            require_named_release(comment, "2.0.0")
    with pytest.raises(SignatureError, match=r"names version 2\.0\.0\+b\.1, the manifest is"):
        require_named_release("version:2.0.0+b.1", "2.0.0")
    with pytest.raises(SignatureError, match="names version ˋxˋ") as long:
        require_named_release("version:`x`", "2.0.0")
    huge = "version:" + "9" * 5000
    with pytest.raises(SignatureError) as long:
        require_named_release(huge, "2.0.0")
    assert len(long.value.user_message) < 400
