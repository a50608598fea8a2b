"""Brute-force limits on password sign-in, beside django-axes.

django-axes locks one account from one address after `AXES_FAILURE_LIMIT` failures
(`AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]`). An attacker with many addresses
is not stopped by that, so this module also caps the failures of one account over all addresses:
after `PIAOWU_LOGIN_FAILURES_PER_ACCOUNT` failures within `PIAOWU_LOGIN_FAILURE_WINDOW_SECONDS`
(counted from the first), the account refuses every password — the right one too — until the
window ends. The counter lives in the cache (Redis in production), keyed by a keyed hash of the
normalised e-mail so the cache holds no addresses in clear.

Every sign-in form (customer site, admin) goes through `django.contrib.auth.authenticate`, so
both count: `FailureCapBackend` refuses, `count_failure` (on `user_login_failed`) counts.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.crypto import salted_hmac


def normalise_username(value: object) -> str:
    return str(value or "").strip().lower()


def axes_username(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str:
    """AXES_USERNAME_CALLABLE: the e-mail as the account is keyed (case and spaces ignored)."""
    if credentials:
        value = credentials.get("username") or credentials.get("email")
    elif request is not None:
        value = request.POST.get("username") or request.POST.get("email")
    else:
        value = ""
    return normalise_username(value)


def _key(username: str) -> str:
    digest = salted_hmac("piaowu.login-failures", username).hexdigest()[:32]
    return f"piaowu:login-failures:{digest}"


def failures_of(username: str) -> int:
    return int(cache.get(_key(normalise_username(username))) or 0)


def account_capped(username: str) -> bool:
    """Whether `username` reached the per-account failure cap of the current window."""
    return bool(username) and failures_of(username) >= settings.PIAOWU_LOGIN_FAILURES_PER_ACCOUNT


def count_failure(username: str) -> int:
    """Count one failed sign-in of `username`; the window starts at the first failure."""
    username = normalise_username(username)
    if not username:
        return 0
    key = _key(username)
    cache.add(key, 0, timeout=settings.PIAOWU_LOGIN_FAILURE_WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.PIAOWU_LOGIN_FAILURE_WINDOW_SECONDS)
        return 1


def on_user_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """`user_login_failed` receiver (connected in `AccountsConfig.ready`)."""
    count_failure(axes_username(request, credentials))


class FailureCapBackend:
    """An authentication backend that authenticates nobody: placed after axes' backend and
    before the model backend, it stops the chain for an account over the cap. The request is
    flagged so `AxesMiddleware` answers with the lockout page."""

    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> None:
        if account_capped(axes_username(request, credentials)):
            if request is not None:
                request.axes_locked_out = True  # type: ignore[attr-defined]
                request.piaowu_account_capped = True  # type: ignore[attr-defined]
            raise PermissionDenied("too many failed sign-ins for this account")
        return None
