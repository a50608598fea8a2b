"""System checks: the staff second factor and the sign-in limits are only as good as their
wiring, and a settings edit that drops a middleware or backend would switch them off silently."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

REQUIRED_MIDDLEWARE = {
    "django_otp.middleware.OTPMiddleware": "piaowu.E001",
    "axes.middleware.AxesMiddleware": "piaowu.E002",
}


@register("security")
def check_staff_security_wiring(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors: list[Error] = []
    middleware = list(settings.MIDDLEWARE)
    for path, code in REQUIRED_MIDDLEWARE.items():
        if path not in middleware:
            errors.append(Error(f"{path} must be in MIDDLEWARE.", id=code))
    auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
    otp = "django_otp.middleware.OTPMiddleware"
    if auth in middleware and otp in middleware and middleware.index(otp) < middleware.index(auth):
        errors.append(Error(f"{otp} must come after {auth}.", id="piaowu.E003"))
    backends = list(settings.AUTHENTICATION_BACKENDS)
    if not backends or backends[0] != "axes.backends.AxesStandaloneBackend":
        errors.append(
            Error(
                "axes.backends.AxesStandaloneBackend must be the first AUTHENTICATION_BACKENDS.",
                id="piaowu.E004",
            )
        )
    if "piaowu.accounts.login_guard.FailureCapBackend" not in backends:
        errors.append(
            Error(
                "piaowu.accounts.login_guard.FailureCapBackend must be in AUTHENTICATION_BACKENDS.",
                id="piaowu.E005",
            )
        )
    return errors
