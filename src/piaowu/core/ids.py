"""Opaque public ids: ULIDs (time-ordered, 26 Crockford base32 chars), never sequential ints."""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_code(length: int = 10) -> str:
    """A short random code for people to read out (no I, L, O, U to confuse)."""
    raw = int.from_bytes(os.urandom(length), "big")
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[raw & 31])
        raw >>= 5
    return "".join(chars)
