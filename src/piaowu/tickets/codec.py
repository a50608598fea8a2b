"""The ticket QR payload: compact, signed with Ed25519, verifiable offline.

Text form (all characters in the QR alphanumeric set, so it also survives a USB scanner typing
into a field): ``PW1`` + base32 (RFC 4648, no padding) of the 100-byte signed blob, and for a
rotating ticket ``:`` + an 8-character time code. 163/172 characters fit a version 7 QR at
error-correction level M (45×45 modules), which a phone camera reads at arm's length.

Blob (big-endian), the first 36 bytes are what is signed:

====== ===== ===========================================================
offset bytes field
====== ===== ===========================================================
0      1     format version (1)
1      1     flags (bit 0: rotating — a static scan of this ticket is refused)
2      4     key id (the organizer key that signed it)
6      8     ticket token (random 63-bit, unique)
14     4     session id
18     4     seat id (0: a general-admission / daily admission)
22     4     price tier id
26     4     valid from (Unix seconds)
30     4     valid until (Unix seconds)
34     2     secret version (a reprint, exchange or refund bumps or voids it)
36     64    Ed25519 signature over bytes 0–35
====== ===== ===========================================================

Rotating code: ``per_ticket = HMAC-SHA256(rotation_key, token ‖ version)`` where
``rotation_key = HMAC-SHA256(private key, "piaowu-rotate" ‖ session id)`` (so a gate can be given
one session's rotation key without the signing key), and the code for 15-second step ``t`` is the
first 5 bytes of ``HMAC-SHA256(per_ticket, t as 8 bytes)`` in base32. Only the holder's page gets
``per_ticket``; gates get ``rotation_key`` in their session pack. See docs/tickets.md.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "PW1"
FORMAT_VERSION = 1
FLAG_ROTATING = 1
_CLAIMS = struct.Struct(">BB4sQIIIIIH")
CLAIMS_SIZE = _CLAIMS.size  # 36
SIGNATURE_SIZE = 64
BLOB_SIZE = CLAIMS_SIZE + SIGNATURE_SIZE
ROTATING_CODE_CHARS = 8
MAX_TEXT = len(PREFIX) + 160 + 1 + ROTATING_CODE_CHARS
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class CodeError(ValueError):
    """The text is not a Piaowu ticket code (malformed, truncated, wrong format version)."""


@dataclass(frozen=True, slots=True)
class Claims:
    kid: str  # 8 hex characters
    token: int
    session_id: int
    seat_id: int  # 0 for an admission without a seat
    tier_id: int
    valid_from: int  # Unix seconds
    valid_until: int
    secret_version: int
    rotating: bool = False

    def pack(self) -> bytes:
        return _CLAIMS.pack(
            FORMAT_VERSION,
            FLAG_ROTATING if self.rotating else 0,
            bytes.fromhex(self.kid),
            self.token,
            self.session_id,
            self.seat_id,
            self.tier_id,
            self.valid_from,
            self.valid_until,
            self.secret_version,
        )


@dataclass(frozen=True, slots=True)
class ParsedCode:
    claims: Claims
    signed: bytes  # the 36 signed bytes
    signature: bytes
    rotating_code: str | None  # the time code a rotating QR carries after ":"

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, self.signed)
        except InvalidSignature:
            return False
        return True


def new_key_pair() -> tuple[bytes, bytes]:
    """(private, public) as 32 raw bytes each."""
    private = Ed25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def new_kid() -> str:
    return os.urandom(4).hex()


def new_token() -> int:
    return int.from_bytes(os.urandom(8), "big") >> 1  # fits a signed 64-bit column


def encode(claims: Claims, private_key: bytes) -> str:
    """The static QR text of a ticket."""
    signed = claims.pack()
    signature = Ed25519PrivateKey.from_private_bytes(private_key).sign(signed)
    return PREFIX + base64.b32encode(signed + signature).decode("ascii").rstrip("=")


def parse(text: str) -> ParsedCode:
    """Split and unpack a scanned text; raises `CodeError` for anything that is not one of
    ours. Does not verify the signature (the caller picks the key by `claims.kid`)."""
    # A USB scanner may add a newline or a tab; allow a little before stripping it.
    if not isinstance(text, str) or len(text) > MAX_TEXT + 8:
        raise CodeError("too long")
    text = text.strip().upper()
    if len(text) > MAX_TEXT:
        raise CodeError("too long")
    if not text.startswith(PREFIX):
        raise CodeError("not a ticket code")
    body, sep, code = text[len(PREFIX) :].partition(":")
    if sep and (len(code) != ROTATING_CODE_CHARS or not _is_base32(code)):
        raise CodeError("bad rotating code")
    if not _is_base32(body):
        raise CodeError("not base32")
    try:
        blob = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError) as exc:
        raise CodeError("not base32") from exc
    if len(blob) != BLOB_SIZE:
        raise CodeError("wrong length")
    signed, signature = blob[:CLAIMS_SIZE], blob[CLAIMS_SIZE:]
    version, flags, kid, token, session, seat, tier, start, end, secret = _CLAIMS.unpack(signed)
    if version != FORMAT_VERSION:
        raise CodeError("unknown format version")
    if flags & ~FLAG_ROTATING:
        raise CodeError("unknown flags")
    claims = Claims(
        kid=kid.hex(),
        token=token,
        session_id=session,
        seat_id=seat,
        tier_id=tier,
        valid_from=start,
        valid_until=end,
        secret_version=secret,
        rotating=bool(flags & FLAG_ROTATING),
    )
    return ParsedCode(claims, signed, signature, code if sep else None)


_BASE32 = re.compile(r"[A-Z2-7]+")


def _is_base32(text: str) -> bool:
    # A compiled pattern: a generator over 160 characters was most of a parse's time.
    return _BASE32.fullmatch(text) is not None


# --- Rotating codes --------------------------------------------------------------------------


def rotation_key(private_key: bytes, session_id: int) -> bytes:
    return hmac.new(
        private_key, b"piaowu-rotate" + struct.pack(">I", session_id), "sha256"
    ).digest()


def ticket_rotation_secret(rotation_key: bytes, token: int, secret_version: int) -> bytes:
    return hmac.new(rotation_key, struct.pack(">QH", token, secret_version), "sha256").digest()


def rotating_code(ticket_secret: bytes, step: int) -> str:
    digest = hmac.new(ticket_secret, struct.pack(">Q", step), "sha256").digest()
    return base64.b32encode(digest[:5]).decode("ascii")


def rotating_code_valid(
    ticket_secret: bytes, code: str, now: float, step_seconds: int, tolerance_steps: int
) -> bool:
    step = int(now // step_seconds)
    return any(
        hmac.compare_digest(rotating_code(ticket_secret, step + delta), code)
        for delta in range(-tolerance_steps, tolerance_steps + 1)
    )


# --- Human serials ---------------------------------------------------------------------------


def new_serial() -> str:
    """12 Crockford base32 characters, the last a check character, shown as XXXX-XXXX-XXXX."""
    raw = int.from_bytes(os.urandom(7), "big")
    chars = [_CROCKFORD[(raw >> (5 * i)) & 31] for i in range(11)]
    chars.append(_check_char(chars))
    text = "".join(chars)
    return f"{text[:4]}-{text[4:8]}-{text[8:]}"


def normalize_serial(text: str) -> str | None:
    """The canonical serial for what a person typed (any case, with or without dashes or
    spaces, O for 0, I/L for 1), or None if it cannot be one (wrong length, bad check char)."""
    if not isinstance(text, str) or len(text) > 32:
        return None
    cleaned = text.upper().replace("-", "").replace(" ", "")
    cleaned = cleaned.replace("O", "0").replace("I", "1").replace("L", "1")
    if len(cleaned) != 12 or any(c not in _CROCKFORD for c in cleaned):
        return None
    if _check_char(list(cleaned[:11])) != cleaned[11]:
        return None
    return f"{cleaned[:4]}-{cleaned[4:8]}-{cleaned[8:]}"


def _check_char(chars: list[str]) -> str:
    # Odd weights modulo 32: any single wrong character changes the sum (an odd weight times a
    # difference of 1..31 is never a multiple of 32), and most swaps of neighbours do too.
    total = sum((2 * i + 1) * _CROCKFORD.index(c) for i, c in enumerate(chars))
    return _CROCKFORD[total % 32]
