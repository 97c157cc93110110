"""minisign signatures verified in Python with `cryptography` (no external binary at runtime).
The formats, the key and signature parsing and the errors are in `bot/domain/minisign.py`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot.domain.minisign import PublicKey, Signature, SignatureError, Verified


def verify(message: bytes, signature_file: bytes, trusted_keys: Iterable[PublicKey]) -> Verified:
    """Verify `message` against a `.minisig`; raise `SignatureError` saying why not."""
    sig = Signature.parse(signature_file)
    candidates = {k for k in trusted_keys if k.key_id == sig.key_id}
    if not candidates:
        raise SignatureError(f"signed by unknown key {sig.key_id_text} (not in trusted_keys)")
    if len(candidates) > 1:
        raise SignatureError(
            f"two trusted keys share key id {sig.key_id_text}: fix [upgrades] trusted_keys"
        )
    (key,) = candidates
    public = Ed25519PublicKey.from_public_bytes(key.key)
    signed = hashlib.blake2b(message, digest_size=64).digest() if sig.prehashed else message
    try:
        public.verify(sig.signature, signed)
    except InvalidSignature:
        raise SignatureError(
            f"signature does not match the manifest (key {key.id_text}): tampered or wrong file"
        ) from None
    try:
        public.verify(sig.global_signature, sig.signature + sig.trusted_comment.encode("utf-8"))
    except InvalidSignature:
        raise SignatureError(
            f"trusted comment signature invalid (key {key.id_text}): the comment was edited"
        ) from None
    return Verified(
        key_id=key.id_text, trusted_comment=sig.trusted_comment, prehashed=sig.prehashed
    )
