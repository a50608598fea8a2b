"""Test helpers for the staff second factor (piaowu.accounts.two_factor).

`client.force_login(staff)` in this suite signs staff in *fully* — password and second factor —
(the autouse `_force_login_passes_second_factor` fixture in tests/conftest.py), so tests of
what staff may do need no change. Tests of the second factor itself sign in through the real
pages, or with `password_only_login` for a session that has not passed it yet.
"""

from __future__ import annotations

from typing import Any

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from piaowu.accounts.models import User
from piaowu.accounts.two_factor import TOTP_DEVICE_NAME, is_staff_user

#: Django's own `Client.force_login`, before the suite's fixture wraps it.
_plain_force_login = Client.force_login


def confirmed_totp(user: User) -> TOTPDevice:
    """The user's confirmed authenticator (created if missing)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=True)
    return device


def totp_code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code the user's app shows now (or `steps_ahead` 30-second steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def password_only_login(client: Client, user: User) -> None:
    """Sign `user` in as a password login does, without the second factor."""
    _plain_force_login(client, user)


def verify_session(client: Client, user: User) -> None:
    """Mark the client's signed-in session as having passed the second factor."""
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = confirmed_totp(user).persistent_id
    session.save()


def force_login_with_second_factor(client: Client, user: Any, backend: str | None = None) -> None:
    """`Client.force_login` for this suite: staff also pass the second factor."""
    _plain_force_login(client, user, backend)
    if is_staff_user(user):
        verify_session(client, user)
