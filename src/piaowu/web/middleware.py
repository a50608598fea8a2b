"""Staff pages wait for the second factor.

A staff member signed in with a password only is sent from the console (`/admin/`,
`/console/`) to the two-factor page, which enrols or verifies them and brings them back. The
permission check (`piaowu.accounts.permissions`) refuses unverified sessions on its own — this
middleware turns that refusal into the next step instead of a bare "forbidden" page. The API is
left to the permission check: it answers 403 with `second_factor_required`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from piaowu.accounts.two_factor import needs_second_factor

GUARDED_PREFIXES = ("/admin/", "/console/")
OPEN_PATHS = ("/admin/logout/",)


def guarded(path: str) -> bool:
    return path.startswith(GUARDED_PREFIXES) and not path.startswith(OPEN_PATHS)


def second_factor_redirect(request: HttpRequest) -> HttpResponse | None:
    """A redirect to the two-factor page if `request` is a staff page of an unverified session."""
    if not guarded(request.path) or not needs_second_factor(request.user):
        return None
    target = request.get_full_path()
    if target.startswith("/admin/login/"):
        target = reverse("admin:index")
    return HttpResponseRedirect(f"{reverse('web:two_factor')}?{urlencode({'next': target})}")


class StaffSecondFactorMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self.__acall__(request)
        return second_factor_redirect(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if guarded(request.path):  # only staff pages pay for the user lookup
            redirect = await sync_to_async(second_factor_redirect)(request)
            if redirect is not None:
                return redirect
        response: HttpResponse = await self.get_response(request)
        return response
