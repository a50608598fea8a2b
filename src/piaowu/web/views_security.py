"""Sign-in security pages: the staff second factor, the lockout answer, password change.

Staff sign in with their password on the login page (or the admin's); a staff session then
passes this page before any staff permission applies: enrolment (scan a QR code, confirm a
code, note 10 recovery codes shown once) the first time, a code from the authenticator app or
a recovery code afterwards. Rules live in `piaowu.accounts.two_factor`.
"""

from __future__ import annotations

import base64
from typing import Any

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordChangeView
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from piaowu.accounts.models import User
from piaowu.accounts.two_factor import (
    is_staff_user,
    recovery_codes_left,
    recovery_codes_regenerate,
    session_is_verified,
    totp_device_of,
    two_factor_enrolment_confirm,
    two_factor_enrolment_start,
    two_factor_verify,
)
from piaowu.core.errors import DomainError
from piaowu.web.views import _safe_next


class TwoFactorCodeForm(Form):
    code = forms.CharField(
        label=gettext_lazy("Verification code"),
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}
        ),
    )


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User) and user.is_authenticated  # login_required
    return user


def _qr_svg(device: TOTPDevice) -> str:
    # The otpauth:// URI as an inline SVG: no image request, nothing for the CSP to allow.
    return segno.make(device.config_url, error="m").svg_inline(scale=5, dark="#111")


def _secret_text(device: TOTPDevice) -> str:
    """The key in base32 in groups of four, for typing into an app by hand."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _verified_login(request: HttpRequest, device: Any) -> None:
    # The session gains staff rights: give it a new key, as a password login does.
    request.session.cycle_key()
    otp_login(request, device)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    next_url = _safe_next(request, reverse("admin:index"))
    if not is_staff_user(user):
        return redirect(_safe_next(request, reverse("web:home")))
    if totp_device_of(user) is None:
        return _enrol(request, user, next_url)
    if session_is_verified(user):
        return _status(request, user, next_url)
    form = TwoFactorCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = two_factor_verify(user=user, code=form.cleaned_data["code"])
        except DomainError as exc:
            form.add_error("code", str(exc.message))
        else:
            _verified_login(request, device)
            return redirect(next_url)
    context = {"form": form, "next": next_url}
    status = 400 if form.errors else 200
    return render(request, "web/two_factor_verify.html", context, status=status)


def _enrol(request: HttpRequest, user: User, next_url: str) -> HttpResponse:
    device = two_factor_enrolment_start(user=user)
    form = TwoFactorCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = two_factor_enrolment_confirm(user=user, code=form.cleaned_data["code"])
        except DomainError as exc:
            form.add_error("code", str(exc.message))
        else:
            _verified_login(request, device)
            return render(
                request, "web/two_factor_recovery.html", {"codes": codes, "next": next_url}
            )
    context = {
        "form": form,
        "next": next_url,
        "qr_svg": mark_safe(_qr_svg(device)),  # noqa: S308  (segno's own SVG markup)
        "secret": _secret_text(device),
        "otpauth_uri": device.config_url,
        "issuer": settings.OTP_TOTP_ISSUER,
    }
    status = 400 if form.errors else 200
    return render(request, "web/two_factor_enrol.html", context, status=status)


def _status(request: HttpRequest, user: User, next_url: str) -> HttpResponse:
    if request.method == "POST" and request.POST.get("action") == "new-recovery-codes":
        codes = recovery_codes_regenerate(user=user)
        return render(request, "web/two_factor_recovery.html", {"codes": codes, "next": next_url})
    context = {"codes_left": recovery_codes_left(user), "next": next_url}
    return render(request, "web/two_factor_status.html", context)


def lockout(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the answer to a locked sign-in (too many wrong passwords for
    this account from this address, or for this account from everywhere)."""
    capped = bool(getattr(request, "piaowu_account_capped", False))
    minutes = (
        settings.PIAOWU_LOGIN_FAILURE_WINDOW_SECONDS // 60
        if capped
        else int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    )
    context = {"minutes": minutes, "capped": capped}
    return render(request, "web/lockout.html", context, status=429)


class WebPasswordChangeView(PasswordChangeView):
    """Django's password change: it keeps this session (update_session_auth_hash) while every
    other session of the account stops working (their auth hash no longer matches)."""

    template_name = "web/password_change.html"
    success_url = reverse_lazy("web:home")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(
            self.request,
            _("Your password was changed. Other devices signed in to this account are signed out."),
        )
        return response
