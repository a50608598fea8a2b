"""The QR payload and the human serial: round trips, tampering, bad input, check characters.

Pure functions: no database."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import itertools
import string

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from piaowu.tickets import codec

PRIVATE, PUBLIC = codec.new_key_pair()
OTHER_PRIVATE, OTHER_PUBLIC = codec.new_key_pair()
CLAIMS = codec.Claims(
    kid="a1b2c3d4",
    token=(1 << 62) + 12345,
    session_id=4021,
    seat_id=881234,
    tier_id=77,
    valid_from=1_780_000_000,
    valid_until=1_780_020_000,
    secret_version=3,
)


def public(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def blob_of(text: str) -> bytes:
    body = text[len(codec.PREFIX) :].partition(":")[0]
    return base64.b32decode(body + "=" * (-len(body) % 8))


def text_of(blob: bytes) -> str:
    return codec.PREFIX + base64.b32encode(blob).decode("ascii").rstrip("=")


def accepted(text: str, key: bytes = PUBLIC) -> bool:
    """What a verifier concludes: parsed and signed by `key`."""
    try:
        parsed = codec.parse(text)
    except codec.CodeError:
        return False
    return parsed.verify(public(key))


# --- Round trip ------------------------------------------------------------------------------


def test_round_trip() -> None:
    text = codec.encode(CLAIMS, PRIVATE)
    parsed = codec.parse(text)
    assert parsed.claims == CLAIMS
    assert parsed.rotating_code is None
    assert parsed.verify(public(PUBLIC))


def test_the_text_fits_the_qr_alphanumeric_set_and_a_version_7_code() -> None:
    text = codec.encode(CLAIMS, PRIVATE)
    assert len(text) == len(codec.PREFIX) + 160
    assert set(text) <= set(string.ascii_uppercase + "234567" + "1")  # "PW1" + base32


def test_lower_case_and_surrounding_whitespace_are_accepted() -> None:
    text = codec.encode(CLAIMS, PRIVATE)
    assert codec.parse(f"  {text.lower()}\r\n").claims == CLAIMS


def test_a_rotating_code_carries_its_time_code() -> None:
    claims = dataclasses.replace(CLAIMS, rotating=True)
    secret = codec.ticket_rotation_secret(codec.rotation_key(PRIVATE, 4021), claims.token, 3)
    code = codec.rotating_code(secret, 1000)
    text = codec.encode(claims, PRIVATE) + ":" + code
    parsed = codec.parse(text + "\n")  # a USB scanner's newline after the longest form
    assert parsed.claims.rotating and parsed.rotating_code == code
    assert parsed.verify(public(PUBLIC))
    assert codec.rotating_code_valid(secret, code, 1000 * 15 + 7, 15, 2)
    assert codec.rotating_code_valid(secret, code, 1002 * 15, 15, 2)
    assert not codec.rotating_code_valid(secret, code, 1003 * 15, 15, 2)
    other = codec.ticket_rotation_secret(codec.rotation_key(PRIVATE, 4021), claims.token, 4)
    assert not codec.rotating_code_valid(other, code, 1000 * 15, 15, 2)  # reissued: new secret


# --- Tampering -------------------------------------------------------------------------------


def test_every_single_bit_flip_is_caught() -> None:
    """One bit flipped anywhere in the 100-byte blob: the text no longer parses or no longer
    verifies — never a valid ticket with other claims."""
    blob = blob_of(codec.encode(CLAIMS, PRIVATE))
    for bit in range(len(blob) * 8):
        tampered = bytearray(blob)
        tampered[bit // 8] ^= 1 << (7 - bit % 8)
        assert not accepted(text_of(bytes(tampered))), bit


@pytest.mark.parametrize("field", ["token", "session_id", "seat_id", "tier_id", "valid_until"])
def test_changed_claims_with_the_old_signature_do_not_verify(field: str) -> None:
    blob = blob_of(codec.encode(CLAIMS, PRIVATE))
    changed = dataclasses.replace(CLAIMS, **{field: getattr(CLAIMS, field) + 1})
    forged = text_of(changed.pack() + blob[codec.CLAIMS_SIZE :])
    assert codec.parse(forged).claims == changed
    assert not accepted(forged)


def test_a_static_code_cannot_be_made_rotating_or_back() -> None:
    blob = bytearray(blob_of(codec.encode(CLAIMS, PRIVATE)))
    blob[1] |= codec.FLAG_ROTATING
    assert not accepted(text_of(bytes(blob)))


def test_another_key_does_not_verify() -> None:
    text = codec.encode(CLAIMS, PRIVATE)
    assert not accepted(text, OTHER_PUBLIC)
    assert not accepted(codec.encode(CLAIMS, OTHER_PRIVATE), PUBLIC)


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PW1",
        "PW1:",
        "hello world",
        "https://example.com/?t=PW1AAAA",
        "PW2" + "A" * 160,
        "PW1" + "A" * 159,
        "PW1" + "A" * 161,
        "PW1" + "A" * 168,  # 105 bytes
        "PW1" + "A" * 160 + ":ABC",
        "PW1" + "A" * 160 + ":ABCDEFGH1",
        "PW1" + "A" * 160 + ":ABCDEFG!",
        "PW1" + "0" * 160,
        "PW1" + "é" * 160,
        "PW1" + "A" * 1000,
        "\x00" * 50,
    ],
)
def test_garbage_is_a_code_error(text: str) -> None:
    with pytest.raises(codec.CodeError):
        codec.parse(text)


def test_truncated_codes_are_code_errors() -> None:
    text = codec.encode(CLAIMS, PRIVATE)
    for end in range(len(text)):
        with pytest.raises(codec.CodeError):
            codec.parse(text[:end])


def test_a_wrong_format_version_or_unknown_flag_is_a_code_error() -> None:
    blob = blob_of(codec.encode(CLAIMS, PRIVATE))
    with pytest.raises(codec.CodeError, match="format version"):
        codec.parse(text_of(b"\x02" + blob[1:]))
    with pytest.raises(codec.CodeError, match="flags"):
        codec.parse(text_of(blob[:1] + b"\x02" + blob[2:]))


def test_non_text_is_a_code_error() -> None:
    with pytest.raises(codec.CodeError):
        codec.parse(None)  # type: ignore[arg-type]
    with pytest.raises(codec.CodeError):
        codec.parse(b"PW1AAAA")  # type: ignore[arg-type]


# --- Properties ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_raises_only_code_error_on_arbitrary_text(text: str) -> None:
    with contextlib.suppress(codec.CodeError):
        codec.parse(text)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcxyz:= -", max_size=200).map(
        lambda tail: "PW1" + tail
    )
)
def test_parse_raises_only_code_error_on_near_misses(text: str) -> None:
    with contextlib.suppress(codec.CodeError):
        codec.parse(text)


claims_strategy = st.builds(
    codec.Claims,
    kid=st.binary(min_size=4, max_size=4).map(bytes.hex),
    token=st.integers(0, 2**63 - 1),
    session_id=st.integers(0, 2**32 - 1),
    seat_id=st.integers(0, 2**32 - 1),
    tier_id=st.integers(0, 2**32 - 1),
    valid_from=st.integers(0, 2**32 - 1),
    valid_until=st.integers(0, 2**32 - 1),
    secret_version=st.integers(0, 2**16 - 1),
    rotating=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(claims_strategy)
def test_arbitrary_claims_round_trip(claims: codec.Claims) -> None:
    parsed = codec.parse(codec.encode(claims, PRIVATE))
    assert parsed.claims == claims
    assert parsed.verify(public(PUBLIC))
    assert not parsed.verify(public(OTHER_PUBLIC))


# --- Serials ---------------------------------------------------------------------------------


def test_new_serials_are_canonical_and_distinct() -> None:
    serials = {codec.new_serial() for _ in range(2000)}
    assert len(serials) == 2000
    for serial in itertools.islice(serials, 200):
        assert len(serial) == 14 and serial[4] == serial[9] == "-"
        assert codec.normalize_serial(serial) == serial


def test_typed_serials_are_normalised() -> None:
    serial = _serial_with("01")
    plain = serial.replace("-", "")
    variants = [
        plain,
        plain.lower(),
        " ".join([plain[:4], plain[4:8], plain[8:]]),
        serial.replace("0", "O").replace("1", "I"),
        serial.replace("0", "o").replace("1", "l"),
        serial.replace("1", "L"),
        f"  {serial}  ",
    ]
    for typed in variants:
        assert codec.normalize_serial(typed) == serial, typed


def _serial_with(chars: str) -> str:
    for _ in range(10_000):
        serial = codec.new_serial()
        if all(c in serial for c in chars):
            return serial
    raise AssertionError("no serial with those characters")


def test_the_check_character_catches_every_single_character_change() -> None:
    for _ in range(50):
        serial = codec.new_serial()
        plain = serial.replace("-", "")
        for position in range(12):
            for replacement in codec._CROCKFORD:
                if replacement == plain[position]:
                    continue
                changed = plain[:position] + replacement + plain[position + 1 :]
                assert codec.normalize_serial(changed) is None, (serial, position, replacement)


@pytest.mark.parametrize(
    "text", ["", "ABCD", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMNP", "ABCD-EFGH-JKU!", "x" * 100]
)
def test_bad_serials_are_none(text: str) -> None:
    assert codec.normalize_serial(text) is None


def test_non_text_serial_is_none() -> None:
    assert codec.normalize_serial(None) is None  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_normalize_serial_never_raises(text: str) -> None:
    result = codec.normalize_serial(text)
    assert result is None or codec.normalize_serial(result) == result
