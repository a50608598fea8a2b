"""Personal data at rest: AES-GCM with a key ring, the blind index and the masks."""

from __future__ import annotations

import base64

import pytest
from django.test import override_settings

from piaowu.core import crypto


def _key(byte: int) -> str:
    return base64.b64encode(bytes([byte]) * 32).decode()


def test_a_value_round_trips_and_is_not_stored_in_the_clear() -> None:
    token = crypto.encrypt("13812345678", context="user.phone")
    assert "13812345678" not in token
    assert crypto.decrypt(token, context="user.phone") == "13812345678"


def test_the_same_value_encrypts_differently_each_time() -> None:
    assert crypto.encrypt("x", context="c") != crypto.encrypt("x", context="c")


def test_a_value_copied_into_another_column_does_not_decrypt() -> None:
    token = crypto.encrypt("110101199003071234", context="attendee.id_number")
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(token, context="user.phone")


def test_a_tampered_value_does_not_decrypt() -> None:
    token = crypto.encrypt("13812345678", context="user.phone")
    kid, _, body = token.partition("$")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(kid + "$" + base64.b64encode(bytes(raw)).decode(), context="user.phone")


def test_empty_stays_empty() -> None:
    assert crypto.encrypt("", context="c") == ""
    assert crypto.decrypt("", context="c") == ""


def test_rotation_keeps_old_values_readable_and_re_encrypts_them_under_the_new_key() -> None:
    with override_settings(PIAOWU_DATA_KEYS=f"k1:{_key(1)}"):
        old = crypto.encrypt("13812345678", context="user.phone")
    with override_settings(PIAOWU_DATA_KEYS=f"k2:{_key(2)},k1:{_key(1)}"):
        assert crypto.needs_rotation(old)
        assert crypto.decrypt(old, context="user.phone") == "13812345678"
        new = crypto.rotate(old, context="user.phone")
        assert new.startswith("k2$")
        assert not crypto.needs_rotation(new)
        assert crypto.decrypt(new, context="user.phone") == "13812345678"
    with override_settings(PIAOWU_DATA_KEYS=f"k2:{_key(2)}"), pytest.raises(crypto.CryptoError):
        crypto.decrypt(old, context="user.phone")


@pytest.mark.parametrize(
    "spec",
    [
        "k1",
        "k1:not-base64!",
        f"k1:{base64.b64encode(b'short').decode()}",
        f"a:{_key(1)},a:{_key(2)}",
    ],
)
def test_bad_key_specs_are_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(crypto.CryptoError):
        crypto.parse_keys(spec)


def test_the_blind_index_matches_equal_values_only_and_depends_on_the_key() -> None:
    a = crypto.blind_index("13812345678", context="user.phone")
    assert a == crypto.blind_index("13812345678", context="user.phone")
    assert a != crypto.blind_index("13812345679", context="user.phone")
    assert a != crypto.blind_index("13812345678", context="attendee.id_number")
    with override_settings(PIAOWU_INDEX_KEY=_key(7)):
        assert a != crypto.blind_index("13812345678", context="user.phone")


def test_masks() -> None:
    assert crypto.mask_phone("13812345678") == "138****5678"
    assert crypto.mask_phone("+8613812345678") == "+86*******5678"
    assert crypto.mask_phone("5678") == "5678"
    assert crypto.mask_id_number("110101199003071234") == "110***********1234"
    assert crypto.mask_id_number("E1234567") == "E12*4567"
    assert crypto.mask_name("张三") == "张*"
    assert crypto.mask_name("John Smith") == "J*** S****"
