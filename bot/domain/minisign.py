"""minisign keys and signature files, parsed (pure). The Ed25519 check itself is in
`bot/integrations/minisign.py` (a crypto backend is not domain code).

Formats (jedisct1/minisign, src/minisign.c):
- public key line: base64("Ed" + key id (8 bytes) + Ed25519 public key (32 bytes)); minisign
  prints the key id as a little-endian 64-bit number in upper-case hex (not zero-padded).
- `.minisig` file: an `untrusted comment: ...` line; base64(algorithm (2) + key id (8) +
  signature (64)), where the algorithm is "Ed" (legacy: the signature covers the message) or
  "ED" (prehashed: it covers BLAKE2b-512 of the message); a `trusted comment: ...` line; and
  base64(global signature (64)) over (signature + trusted comment text).

Verification: the key id names exactly one trusted key, the signature covers the (pre)hashed
message, and the global signature covers the trusted comment. Anything else is a
`SignatureError` with a reason an operator can act on.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.errors import DomainError

SIGALG_LEGACY = b"Ed"
SIGALG_PREHASHED = b"ED"
KEYNUM_BYTES = 8
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "
MAX_SIGNATURE_FILE = 4096
"""A `.minisig` is a few hundred bytes; anything bigger is not one."""


class SignatureError(DomainError):
    """A signature or a key that cannot be trusted; the message says why (never a secret)."""


def key_id_text(key_id: bytes) -> str:
    """The key id as minisign prints it: the little-endian 64-bit number in upper-case hex,
    without zero padding (`%" PRIX64`), so a key id may be shorter than 16 digits."""
    return f"{int.from_bytes(key_id, 'little'):X}"


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes
    key: bytes

    @property
    def id_text(self) -> str:
        return key_id_text(self.key_id)

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """The base64 line of a minisign public key file (a whole file is accepted too)."""
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith("untrusted comment:")]
        if len(lines) != 1:
            raise SignatureError("a minisign public key is one base64 line")
        raw = _b64(lines[0], "public key")
        if len(raw) != 2 + KEYNUM_BYTES + PUBLIC_KEY_BYTES or raw[:2] != SIGALG_LEGACY:
            raise SignatureError("not a minisign Ed25519 public key")
        return cls(key_id=raw[2 : 2 + KEYNUM_BYTES], key=raw[2 + KEYNUM_BYTES :])


@dataclass(frozen=True)
class Signature:
    algorithm: bytes
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes

    @property
    def key_id_text(self) -> str:
        return key_id_text(self.key_id)

    @property
    def prehashed(self) -> bool:
        return self.algorithm == SIGALG_PREHASHED

    @classmethod
    def parse(cls, data: bytes) -> Signature:
        if len(data) > MAX_SIGNATURE_FILE:
            raise SignatureError("signature file too large to be a minisign signature")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureError("signature file is not text") from None
        lines = text.splitlines()
        if len(lines) < 4:
            raise SignatureError("signature file truncated (expected 4 lines)")
        untrusted, sig_line, trusted, global_line = (line.rstrip("\r") for line in lines[:4])
        if not untrusted.startswith("untrusted comment:"):
            raise SignatureError("signature file does not start with an untrusted comment")
        raw = _b64(sig_line.strip(), "signature")
        if len(raw) != 2 + KEYNUM_BYTES + SIGNATURE_BYTES:
            raise SignatureError("signature truncated or malformed")
        algorithm = raw[:2]
        if algorithm not in (SIGALG_LEGACY, SIGALG_PREHASHED):
            raise SignatureError("unsupported signature algorithm")
        if not trusted.startswith(TRUSTED_PREFIX):
            raise SignatureError("signature file has no trusted comment")
        global_signature = _b64(global_line.strip(), "global signature")
        if len(global_signature) != SIGNATURE_BYTES:
            raise SignatureError("global signature truncated or malformed")
        return cls(
            algorithm=algorithm,
            key_id=raw[2 : 2 + KEYNUM_BYTES],
            signature=raw[2 + KEYNUM_BYTES :],
            trusted_comment=trusted[len(TRUSTED_PREFIX) :],
            global_signature=global_signature,
        )


@dataclass(frozen=True)
class Verified:
    key_id: str
    trusted_comment: str
    prehashed: bool


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what} is not valid base64 (truncated or malformed)") from None


def first_shared_key_id(keys: Sequence[PublicKey]) -> tuple[int, int, str] | None:
    """(first index, second index, key id) of two entries under one key id, if any: a key id
    must name one key, or which one vouches for a release is left to chance."""
    seen: dict[bytes, int] = {}
    for index, key in enumerate(keys):
        if key.key_id in seen:
            return seen[key.key_id], index, key.id_text
        seen[key.key_id] = index
    return None
