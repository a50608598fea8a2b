"""Personal data at rest (SEC-4): AES-GCM encryption with a rotatable key ring, a keyed HMAC
"blind index" for looking a value up without decrypting every row, and the masks shown to
everyone who may not see the whole value.

Keys come from the environment:

* `PIAOWU_DATA_KEYS` — comma-separated `kid:base64key` (32-byte keys), the first one current.
  Old keys stay listed so existing values decrypt; `rotate()` re-encrypts a value under the
  current key. Without it (the embedded demo) one key is derived from `SECRET_KEY`.
* `PIAOWU_INDEX_KEY` — base64 32-byte key of the blind index (derived from `SECRET_KEY` when
  unset). It cannot rotate without rebuilding every index column, so keep it stable.

A stored value reads `kid$base64(nonce ‖ ciphertext ‖ tag)`; the *context* (e.g. `user.phone`)
is authenticated as associated data, so a value copied into another column does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

NONCE_BYTES = 12
KEY_BYTES = 32
SEPARATOR = "$"


class CryptoError(ValueError):
    """A stored value cannot be decrypted (unknown key id, tampered, wrong context)."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    current: str
    keys: dict[str, bytes]
    index_key: bytes


def _derived(label: bytes) -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), label, hashlib.sha256).digest()


def _decode_key(kid: str, encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError(f"data key {kid!r} is not base64") from exc
    if len(key) != KEY_BYTES:
        raise CryptoError(f"data key {kid!r} must be {KEY_BYTES} bytes")
    return key


def parse_keys(spec: str) -> tuple[str, dict[str, bytes]]:
    """`kid:base64,kid:base64` → (current kid, keys). Raises `CryptoError` on a bad spec."""
    keys: dict[str, bytes] = {}
    current = ""
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kid, sep, encoded = part.partition(":")
        if not sep or not kid or SEPARATOR in kid:
            raise CryptoError("PIAOWU_DATA_KEYS entries look like kid:base64key")
        if kid in keys:
            raise CryptoError(f"data key {kid!r} listed twice")
        keys[kid] = _decode_key(kid, encoded)
        current = current or kid
    if not keys:
        raise CryptoError("PIAOWU_DATA_KEYS lists no key")
    return current, keys


@lru_cache(maxsize=4)
def _ring(spec: str, index_spec: str, secret: str) -> KeyRing:
    if spec:
        current, keys = parse_keys(spec)
    else:
        current, keys = "s0", {"s0": _derived(b"piaowu data key")}
    index_key = _decode_key("index", index_spec) if index_spec else _derived(b"piaowu index key")
    return KeyRing(current=current, keys=keys, index_key=index_key)


def key_ring() -> KeyRing:
    spec = getattr(settings, "PIAOWU_DATA_KEYS", None) or os.environ.get("PIAOWU_DATA_KEYS", "")
    index_spec = getattr(settings, "PIAOWU_INDEX_KEY", None) or os.environ.get(
        "PIAOWU_INDEX_KEY", ""
    )
    return _ring(spec, index_spec, settings.SECRET_KEY)


def encrypt(value: str, *, context: str) -> str:
    """Encrypt under the current key; the empty string stays empty (nothing to hide)."""
    if not value:
        return ""
    ring = key_ring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.keys[ring.current]).encrypt(nonce, value.encode(), context.encode())
    return ring.current + SEPARATOR + base64.b64encode(nonce + sealed).decode()


def decrypt(token: str, *, context: str) -> str:
    if not token:
        return ""
    kid, sep, body = token.partition(SEPARATOR)
    key = key_ring().keys.get(kid)
    if not sep or key is None:
        raise CryptoError(f"unknown data key {kid!r}")
    try:
        raw = base64.b64decode(body, validate=True)
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise CryptoError("stored value does not decrypt") from exc
    return plain.decode()


def needs_rotation(token: str) -> bool:
    return bool(token) and token.partition(SEPARATOR)[0] != key_ring().current


def rotate(token: str, *, context: str) -> str:
    """The same value under the current key (unchanged if it already is)."""
    if not needs_rotation(token):
        return token
    return encrypt(decrypt(token, context=context), context=context)


def blind_index(value: str, *, context: str) -> str:
    """A keyed HMAC of a normalised value: equal values give equal indexes, and nobody without
    the index key can test a guess against it."""
    digest = hmac.new(
        key_ring().index_key, context.encode() + b"\0" + value.encode(), hashlib.sha256
    )
    return digest.hexdigest()


def mask_phone(phone: str) -> str:
    """138****5678: the first three and last four digits (shorter numbers: last four only)."""
    if not phone:
        return ""
    if len(phone) >= 11:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * max(len(phone) - 4, 0) + phone[-4:]


def mask_id_number(number: str) -> str:
    """110***********1234: the first three and last four characters."""
    if not number:
        return ""
    if len(number) <= 7:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_name(name: str) -> str:
    """张*, 欧阳** , J*** S****: keep the first character of each word."""
    words = name.split()
    if len(words) > 1:
        return " ".join(w[0] + "*" * (len(w) - 1) for w in words)
    return name[:1] + "*" * (len(name) - 1) if name else ""
