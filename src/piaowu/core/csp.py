"""Content-Security-Policy for every response (Django 5.2 has none built in).

Scripts run only from our own origin or, for the few one-line inline scripts of the templates
(the `js` class on <html>, print-on-load), with the request's nonce: a template writes
`<script nonce="{{ request.csp_nonce }}">`. Styles allow inline `style` attributes: the
templates colour posters and price tiers with CSS variables and the console's seat-map SVG
carries its own styles; no script can be injected through them. Frames, plugins and other
origins' scripts are refused. Extra image origins (a poster CDN) come from
`PIAOWU_CSP_IMG_SRC`; `PIAOWU_CSP_REPORT_ONLY=1` only reports instead of blocking.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"
REPORT_ONLY_HEADER = "Content-Security-Policy-Report-Only"


def policy(nonce: str) -> str:
    img_src = " ".join(["'self'", "data:", *settings.PIAOWU_CSP_IMG_SRC])
    directives = [
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src {img_src}",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    """Gives each request a fresh `csp_nonce` and each response the policy (unless a view set
    its own header). Sync and async alike: it adds no thread hop to the async hot paths."""

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
        nonce = self._nonce(request)
        return self._finish(self.get_response(request), nonce)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        nonce = self._nonce(request)
        return self._finish(await self.get_response(request), nonce)

    @staticmethod
    def _nonce(request: HttpRequest) -> str:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        return nonce

    @staticmethod
    def _finish(response: HttpResponse, nonce: str) -> HttpResponse:
        if HEADER not in response and REPORT_ONLY_HEADER not in response:
            header = REPORT_ONLY_HEADER if settings.PIAOWU_CSP_REPORT_ONLY else HEADER
            response[header] = policy(nonce)
        return response
