"""Every API error has one shape: `{"code", "message", "details"}`.

The handlers are installed in one place (`install_error_handlers`), so a router never builds an
error body itself: it raises `DomainError` (or lets a selector raise `NotFound`).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from piaowu.core.errors import DomainError

# Documented in the OpenAPI description (see `ERROR_CODES_DOC`). Codes are stable.
ERROR_CODES: dict[str, str] = {
    "invalid_input": "400 — a parameter has the wrong type or is out of range "
    "(details.fields names each one).",
    "invalid_filter": "400 — a search filter is not valid (details.fields names each one).",
    "event_not_found": "404 — no visible event with this id.",
    "session_not_found": "404 — no visible session with this id.",
    "venue_not_found": "404 — no active venue with this id.",
    "not_found": "404 — no such resource.",
    "not_reserved_seating": "409 — the session sells general admission or daily capacity and "
    "has no seat map.",
    "forbidden": "403 — you may not do this.",
    "unauthorized": "401 — sign in first.",
}

ERROR_CODES_DOC = "\n".join(f"- `{code}`: {text}" for code, text in ERROR_CODES.items())


class ErrorOut(Schema):
    code: str
    message: str
    details: dict[str, Any]


def error_response(
    api: NinjaAPI,
    request: HttpRequest,
    *,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> HttpResponse:
    body = {"code": code, "message": message, "details": details or {}}
    return api.create_response(request, body, status=status)


# Pydantic error types → a message in the user's language; others keep pydantic's English.
def _validation_message(error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    if kind == "missing":
        return _("This field is required.")
    if kind in {"int_parsing", "int_from_float", "int_type"}:
        return _("Enter a whole number.")
    if kind in {"less_than_equal", "less_than"}:
        return _("At most %(n)s.") % {"n": ctx.get("le", ctx.get("lt"))}
    if kind in {"greater_than_equal", "greater_than"}:
        return _("At least %(n)s.") % {"n": ctx.get("ge", ctx.get("gt"))}
    if kind == "string_too_long":
        return _("At most %(n)s characters.") % {"n": ctx.get("max_length")}
    return str(error.get("msg", _("Not valid.")))


def validation_details(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"fields": {name: message}}` from Ninja's errors (location prefix such as "query"
    dropped; nested names joined with dots)."""
    fields: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in {"query", "path", "body", "form", "header", "cookie", "file"}:
            loc = loc[1:]
        # Query[Schema] parameters carry the schema's argument name first; keep the field.
        name = loc[-1] if loc else "__all__"
        fields.setdefault(name, _validation_message(error))
    return {"fields": fields}


def install_error_handlers(api: NinjaAPI) -> None:
    """Replace Ninja's defaults (422 `{"detail": …}`) with our error shape."""

    def on_domain_error(request: HttpRequest, exc: object) -> HttpResponse:
        assert isinstance(exc, DomainError)  # Ninja's handler type also admits the class
        return error_response(
            api,
            request,
            status=exc.status,
            code=exc.code,
            message=str(exc.message),
            details=exc.details,
        )

    def on_validation_error(request: HttpRequest, exc: object) -> HttpResponse:
        assert isinstance(exc, ValidationError)  # Ninja's handler type also admits the class
        return error_response(
            api,
            request,
            status=400,
            code="invalid_input",
            message=_("Some parameters are not valid."),
            details=validation_details(list(exc.errors)),
        )

    def on_not_found(request: HttpRequest, exc: object) -> HttpResponse:
        return error_response(
            api, request, status=404, code="not_found", message=_("No such resource.")
        )

    def on_authentication_error(request: HttpRequest, exc: object) -> HttpResponse:
        assert isinstance(exc, AuthenticationError)  # Ninja's handler type also admits the class
        return error_response(
            api, request, status=exc.status_code, code="unauthorized", message=_("Sign in first.")
        )

    def on_http_error(request: HttpRequest, exc: object) -> HttpResponse:
        assert isinstance(exc, HttpError)  # Ninja's handler type also admits the class
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(
            exc.status_code, "http_error"
        )
        return error_response(api, request, status=exc.status_code, code=code, message=str(exc))

    api.add_exception_handler(DomainError, on_domain_error)
    api.add_exception_handler(ValidationError, on_validation_error)
    api.add_exception_handler(Http404, on_not_found)
    api.add_exception_handler(AuthenticationError, on_authentication_error)
    api.add_exception_handler(HttpError, on_http_error)
