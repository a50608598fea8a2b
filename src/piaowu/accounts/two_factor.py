"""Staff two-factor authentication: TOTP devices and one-time recovery codes (django-otp).

Staff (superusers, `is_staff` users — every active organizer membership sets it — and anyone
with an active membership) must confirm each signed-in session with a second factor before any
staff permission applies (`piaowu.accounts.permissions`). The session's proof is django-otp's:
`django_otp.login(request, device)` stores the device in the session and
`OTPMiddleware` installs `request.user.is_verified()`.

A user object that did not come through a request (a job, the CLI, a service called from a
test) carries no `is_verified` and is not asked for one: the second factor guards sessions.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from piaowu.accounts.models import Membership, User
from piaowu.core.errors import DomainError

#: How many recovery codes a staff member receives (each works once).
RECOVERY_CODE_COUNT = 10
TOTP_DEVICE_NAME = "authenticator"
RECOVERY_DEVICE_NAME = "recovery codes"


def is_staff_user(user: Any) -> bool:
    """Whether `user` works for an organizer or the platform (and so needs a second factor)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser or user.is_staff:
        return True
    return Membership.objects.filter(user_id=user.pk, is_active=True).exists()


def session_is_verified(user: Any) -> bool:
    """False only for a request's user whose session has not passed the second factor."""
    is_verified = getattr(user, "is_verified", None)
    return is_verified is None or bool(is_verified())


def needs_second_factor(user: Any) -> bool:
    """A signed-in staff member whose session still has to pass the second factor."""
    return is_staff_user(user) and not session_is_verified(user)


# --- Reads --------------------------------------------------------------------------------------


def totp_device_of(user: User) -> TOTPDevice | None:
    """The user's confirmed authenticator, if enrolled."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


# --- Writes -------------------------------------------------------------------------------------


def _normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def two_factor_enrolment_start(*, user: User) -> TOTPDevice:
    """The unconfirmed authenticator to show as a QR code (the same one until confirmed, so
    reloading the page does not change the secret). `DomainError`: already_enrolled."""
    if totp_device_of(user) is not None:
        raise DomainError(
            "already_enrolled", _("Two-factor authentication is already set up for this account.")
        )
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def two_factor_enrolment_confirm(*, user: User, code: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the pending authenticator with a current code and issue fresh recovery codes.

    Returns the device (for `django_otp.login`) and the recovery codes in clear — shown once,
    never stored in clear anywhere else. `DomainError`: already_enrolled, enrolment_not_started,
    invalid_code (also after too many wrong codes: the device throttles itself).
    """
    if totp_device_of(user) is not None:
        raise DomainError(
            "already_enrolled", _("Two-factor authentication is already set up for this account.")
        )
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        raise DomainError(
            "enrolment_not_started", _("Start the two-factor set-up again: scan the new code.")
        )
    if not device.verify_token(_normalise(code)):
        raise DomainError("invalid_code", _("The code is not correct. Enter the current code."))
    with transaction.atomic():
        TOTPDevice.objects.filter(pk=device.pk, confirmed=False).update(confirmed=True)
        device.confirmed = True
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        codes = _recovery_codes_replace(user)
    return device, codes


def _recovery_codes_replace(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    codes: set[str] = set()
    while len(codes) < RECOVERY_CODE_COUNT:
        codes.add(StaticToken.random_token())
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return sorted(codes)


def recovery_codes_regenerate(*, user: User) -> list[str]:
    """Replace the user's recovery codes (the old ones stop working). Needs an authenticator."""
    if totp_device_of(user) is None:
        raise DomainError("not_enrolled", _("Set up two-factor authentication first."))
    with transaction.atomic():
        return _recovery_codes_replace(user)


def two_factor_verify(*, user: User, code: str) -> TOTPDevice | StaticDevice:
    """The device that accepts `code`: a current authenticator code (6 digits, each usable
    once) or an unused recovery code, which is spent by a single conditional DELETE — two
    requests racing with one code cannot both pass. Wrong codes slow the device down
    (django-otp throttling). `DomainError`: not_enrolled, invalid_code, too_many_attempts."""
    totp = totp_device_of(user)
    if totp is None:
        raise DomainError("not_enrolled", _("Set up two-factor authentication first."))
    token = _normalise(code)
    if token.isdigit() and len(token) == totp.digits:
        device: TOTPDevice | StaticDevice = totp
        allowed, _details = totp.verify_is_allowed()
        if allowed and totp.verify_token(token):
            return totp
    else:
        static = StaticDevice.objects.filter(user=user, confirmed=True).first()
        if static is None:
            raise DomainError("invalid_code", _("The code is not correct."))
        device = static
        allowed, _details = static.verify_is_allowed()
        if allowed:
            spent, _rows = StaticToken.objects.filter(device=static, token=token).delete()
            if spent:
                static.throttle_reset(commit=False)
                static.set_last_used_timestamp(commit=False)
                static.save()
                return static
            static.throttle_increment()
    if not allowed:
        raise DomainError(
            "too_many_attempts",
            _("Too many wrong codes. Wait a little and try again."),
            {"device": device.persistent_id},
        )
    raise DomainError("invalid_code", _("The code is not correct."))


def two_factor_reset(*, user: User) -> None:
    """Remove the user's authenticator and recovery codes (lost phone): the next sign-in
    enrols again. For platform operators acting on a verified request."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
