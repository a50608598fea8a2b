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
    "not_reserved_seating": "409 (seat map) or 400 (holding seats) — the session sells "
    "general admission or daily capacity and has no seat map.",
    "forbidden": "403 — you may not do this (or a session cookie came without its CSRF token).",
    "unauthorized": "401 — sign in first.",
    # Holding (inventory.services)
    "sales_closed": "400 — not on sale now (details.sales_state).",
    "not_quota_session": "400 — a tier and quantity for a reserved-seating session.",
    "no_seats": "400 — no seats chosen.",
    "seat_not_in_session": "400 — unknown seat codes (details.seats).",
    "seat_blocked": "400 — seats not for sale (details.seats).",
    "seat_not_for_sale": "400 — seats without a price tier (details.seats).",
    "seat_taken": "400 — someone else holds or bought these seats (details.seats).",
    "couple_pair_required": "400 — couple seats without their partner (details.seats).",
    "stranded_seat": "400 — the choice would leave a single empty seat (details.seats).",
    "over_limit": "400 — more than the per-order or per-customer limit (details.limit).",
    "under_minimum": "400 — fewer than a tier's per-order minimum (details.minimum).",
    "invalid_quantity": "400 — quantity out of range.",
    "tier_required": "400 — general admission needs a tier.",
    "tier_not_found": "400 — no active tier with this code (details.tier).",
    "not_enough_seats": "400 — not enough adjacent seats left (details.quantity).",
    "sold_out": "400 — not enough admissions left (details.available).",
    "hold_not_found": "404 — no hold with this id is yours.",
    "hold_expired": "400 — the hold expired or was released (details.hold).",
    "hold_converted": "400 — the hold was already bought.",
    "already_extended": "400 — a hold can be extended only once.",
    # Orders (orders.services, orders.selectors)
    "order_not_found": "404 — no order with this id is yours (or the code and phone do not match).",
    "order_not_payable": "409 — the order was cancelled, expired or paid (details.state).",
    "order_state_changed": "409 — someone else changed the order first; reload it (details.state).",
    "illegal_transition": "400 — the order cannot make this change in its state "
    "(details.from, details.to).",
    "hold_not_yours": "403 — the hold belongs to someone else.",
    "hold_empty": "400 — the hold holds no tickets.",
    "contact_required": "400 — a guest must give a phone number (details.field).",
    "invalid_email": "400 — `contact_email` is not an e-mail address (details.field).",
    "invalid_phone": "400 — the phone number is not valid (details.field).",
    "mixed_currency": "400 — tickets in different currencies cannot be bought together.",
    "channel_not_found": "404 — the organizer has no sales channel for this.",
    "channel_mismatch": "400 — the sales channel does not sell this session.",
    "channel_inactive": "400 — the sales channel is closed.",
    # Payments (payments.services, payments.providers)
    "payment_provider_unavailable": "400 — this payment method is not enabled (details.provider).",
    "payment_provider_not_found": "404 — notifications for a provider that is not enabled.",
    "payment_provider_error": "502 — the payment provider refused or could not be reached "
    "(details.reason).",
    "payment_currency_unsupported": "400 — the payment method does not take this currency.",
    "payment_amount_invalid": "400 — nothing to pay (the order is free).",
    "payment_reference_used": "400 — the provider already has another payment with this reference.",
    # Idempotency-Key (api.idempotency)
    "invalid_idempotency_key": "400 — the `Idempotency-Key` is empty or longer than 255 "
    "characters.",
    "idempotency_key_in_progress": "409 — the first request with this key is still running; "
    "retry shortly.",
    "idempotency_key_reused": "422 — this key was already used for a different request.",
    # Tickets (tickets.services, api/v1/tickets.py, api/v1/printing.py)
    "ticket_not_found": "404 — no ticket with this id is yours (or that you may print).",
    "order_not_paid": "409 — the order is not paid (yet); it has no tickets (details.state).",
    "no_valid_tickets": "409 — every ticket of the order was refunded or exchanged.",
    "ticket_void": "409 — the ticket is void (refunded or exchanged): no QR, no printing.",
    "ticket_reissue_limit": "400 — the ticket was reissued / reprinted too many times.",
    "invalid_layout": "400 — `layout` is not `thermal80` or `a4` (details.allowed).",
    "invalid_device": "400 — `device` is empty or not printable text (details.field).",
    "redemption_code_invalid": "400 — not a redemption code we issued (the last character "
    "is a check character, so a typo is caught).",
    "redemption_code_used": "400 — the code was already redeemed (details.code).",
    "redemption_code_expired": "400 — the code's redeem-by date has passed (details.valid_until).",
    "redemption_wrong_event": "400 — the session is not of the code's event (details.event).",
    "redemption_tier_missing": "400 — the session has no ticket type of the code's tier "
    "(details.tier).",
    "redemption_one_ticket": "400 — a code is worth one ticket: `seats` names exactly one seat.",
    "redemption_seat_wrong_tier": "400 — the chosen seat is not of the code's tier "
    "(details.seats, details.tier).",
    # Check-in (checkin.services, api/v1/checkin.py); a scan's answer is never an error
    "device_unauthorized": "401 — no `Authorization: Device <token>` header and no signed-in "
    "staff, or the token is unknown or its device was switched off.",
    "device_wrong_venue": "403 — the device belongs to another venue than the gate / session.",
    "gate_not_found": "404 — no gate with this id (details.gate).",
    "gate_wrong_venue": "400 — the gate is not at the session's venue.",
    "gate_inactive": "400 — the gate is closed (details.gate).",
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
