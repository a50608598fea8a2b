"""The operator console's admin site: a session must have passed the staff second factor.

Signing in with a password is only the first step; until `request.user.is_verified()` the
admin answers as to a stranger (its login page), and `StaffSecondFactorMiddleware` sends a
signed-in staff member to the two-factor page first. Organizer-scoped admins also check
through `piaowu.accounts.permissions`, which holds nothing for an unverified session.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from piaowu.accounts.two_factor import session_is_verified


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Piaowu 票务"
    site_title = "Piaowu"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and session_is_verified(request.user)
