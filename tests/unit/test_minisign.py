"""minisign verification in Python against signatures made by the real `minisign` binary."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from bot.domain.minisign import PublicKey, SignatureError
from bot.integrations.minisign import verify
from tests.fakes.minisign_tool import KeyPair, generate, require_minisign

MANIFEST = b'{"version": "1.4.0", "channel": "stable"}\n'


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate(tmp_path_factory.mktemp("minisign-a"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate(tmp_path_factory.mktemp("minisign-b"))


def test_public_key_line_parses_with_the_id_minisign_prints(keys: KeyPair) -> None:
    key = PublicKey.parse(keys.public_line)
    assert key.id_text == keys.key_id
    assert PublicKey.parse(keys.public_file.read_text()) == key


def test_valid_prehashed_signature_is_accepted(keys: KeyPair) -> None:
    sig = keys.sign(MANIFEST, comment="timestamp:1 file:manifest.json hh 1.4.0")
    assert sig.splitlines()[1].startswith(b"RU")  # "ED": prehashed, minisign's default
    result = verify(MANIFEST, sig, [PublicKey.parse(keys.public_line)])
    assert result.key_id == keys.key_id
    assert result.trusted_comment == "timestamp:1 file:manifest.json hh 1.4.0"
    assert result.prehashed


def test_valid_legacy_signature_is_accepted(keys: KeyPair) -> None:
    sig = keys.sign(MANIFEST, comment="legacy", legacy=True)
    assert sig.splitlines()[1].startswith(b"RW")  # "Ed": legacy, signs the message itself
    result = verify(MANIFEST, sig, [PublicKey.parse(keys.public_line)])
    assert not result.prehashed and result.key_id == keys.key_id


def test_the_binary_agrees_on_what_we_accept(keys: KeyPair) -> None:
    sig = keys.sign(MANIFEST)
    d = keys.directory
    (d / "check.json").write_bytes(MANIFEST)
    (d / "check.json.minisig").write_bytes(sig)
    binary = require_minisign()
    done = subprocess.run(
        [binary, "-V", "-p", str(keys.public_file), "-m", str(d / "check.json")],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0
    verify(MANIFEST, sig, [PublicKey.parse(keys.public_line)])


@pytest.mark.parametrize("legacy", [False, True])
def test_tampered_manifest_is_refused(keys: KeyPair, legacy: bool) -> None:
    sig = keys.sign(MANIFEST, legacy=legacy)
    with pytest.raises(SignatureError, match="does not match the manifest"):
        verify(MANIFEST.replace(b"1.4.0", b"1.4.1"), sig, [PublicKey.parse(keys.public_line)])


def test_wrong_key_is_refused_as_unknown(keys: KeyPair, other_keys: KeyPair) -> None:
    sig = keys.sign(MANIFEST)
    with pytest.raises(SignatureError, match=f"unknown key {keys.key_id}"):
        verify(MANIFEST, sig, [PublicKey.parse(other_keys.public_line)])


def test_signature_by_another_key_under_a_trusted_id_is_refused(
    keys: KeyPair, other_keys: KeyPair
) -> None:
    """Same key id, different Ed25519 key: the signature itself must not verify."""
    sig = keys.sign(MANIFEST)
    impostor = PublicKey.parse(other_keys.public_line)
    trusted_id = PublicKey.parse(keys.public_line).key_id
    with pytest.raises(SignatureError, match="does not match"):
        verify(MANIFEST, sig, [PublicKey(key_id=trusted_id, key=impostor.key)])


def test_unknown_key_id_is_refused(keys: KeyPair) -> None:
    lines = keys.sign(MANIFEST).splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    raw[2:10] = bytes(8)
    lines[1] = base64.b64encode(bytes(raw))
    with pytest.raises(SignatureError, match="unknown key 0 "):
        verify(MANIFEST, b"\n".join(lines) + b"\n", [PublicKey.parse(keys.public_line)])


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda s: s[: len(s) // 2], id="half-file"),
        pytest.param(lambda s: b"\n".join(s.splitlines()[:2]), id="two-lines"),
        pytest.param(
            lambda s: b"\n".join(
                [*s.splitlines()[:1], s.splitlines()[1][:-8], *s.splitlines()[2:]]
            ),
            id="short-signature-line",
        ),
        pytest.param(lambda s: s[:-20], id="short-global-signature"),
        pytest.param(lambda s: b"", id="empty"),
    ],
)
def test_truncated_signature_is_refused(keys: KeyPair, cut: object) -> None:
    sig = keys.sign(MANIFEST)
    assert callable(cut)
    with pytest.raises(SignatureError, match=r"truncated|malformed|base64"):
        verify(MANIFEST, cut(sig), [PublicKey.parse(keys.public_line)])


def test_edited_trusted_comment_is_refused(keys: KeyPair) -> None:
    sig = keys.sign(MANIFEST, comment="release 1.4.0 stable")
    edited = sig.replace(
        b"trusted comment: release 1.4.0 stable", b"trusted comment: release 9.9.9 stable"
    )
    assert edited != sig
    with pytest.raises(SignatureError, match="trusted comment"):
        verify(MANIFEST, edited, [PublicKey.parse(keys.public_line)])


def test_garbage_public_key_is_refused() -> None:
    with pytest.raises(SignatureError):
        PublicKey.parse("not base64 at all!")
    with pytest.raises(SignatureError):
        PublicKey.parse(base64.b64encode(b"Ed" + bytes(10)).decode())


def test_key_ids_read_as_minisign_prints_them() -> None:
    from bot.domain.minisign import key_id_text

    assert key_id_text(bytes.fromhex("3d188453741d3451")) == "51341D745384183D"
    assert key_id_text(bytes.fromhex("2779c72f40ce9b00")) == "9BCE402FC77927", "no zero padding"


def test_signature_file_made_elsewhere_verifies_from_disk(keys: KeyPair, tmp_path: Path) -> None:
    """A signature written by the binary next to the file, read back as bytes."""
    sig = keys.sign(MANIFEST, comment="x")
    (tmp_path / "m.minisig").write_bytes(sig)
    verify(MANIFEST, (tmp_path / "m.minisig").read_bytes(), [PublicKey.parse(keys.public_line)])


def test_two_trusted_keys_under_one_key_id_are_refused(keys: KeyPair, other_keys: KeyPair) -> None:
    """Which of the two would vouch for the release? Neither: a configuration error."""
    trusted = PublicKey.parse(keys.public_line)
    twin = PublicKey(key_id=trusted.key_id, key=PublicKey.parse(other_keys.public_line).key)
    sig = keys.sign(MANIFEST)
    for order in ([trusted, twin], [twin, trusted]):
        with pytest.raises(SignatureError, match=f"two trusted keys share key id {keys.key_id}"):
            verify(MANIFEST, sig, order)
    verify(MANIFEST, sig, [trusted, trusted])  # the same key twice is still one key
