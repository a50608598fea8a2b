"""Tickets as files for the buyer (PDF, calendar) and paper prints for staff.

`GET /orders/{id}/tickets.pdf` and `…/tickets.ics`: the same buyers who may read the order
(`api.v1.orders.own_order`: their account, their browser's holder key, or a code + phone
lookup in this browser) — anyone else gets 404 `order_not_found`; an order not paid (yet) is
409 `order_not_paid`.

`POST /tickets/{id}/prints`: staff with `orders.sell` at the ticket's organizer log a paper
print and get the QR text to print. The first print of a ticket keeps its code; any later
print is a reprint that reissues the ticket, so every earlier paper stops admitting. Takes an
`Idempotency-Key`: a retried print answers the first print instead of reprinting again (only
the print's id is stored with the key, never the QR text: a replay reads the print log again,
and a print since superseded by a reprint answers `superseded: true` without a code).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status

from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import (
    HEADER,
    IDEMPOTENCY_ERRORS,
    idempotency_openapi,
    idempotency_scope,
)
from piaowu.api.v1.holds import csrf_check, errors_doc, request_customer
from piaowu.api.v1.orders import own_order
from piaowu.core.errors import DomainError
from piaowu.core.idempotency import idempotent, request_fingerprint
from piaowu.tickets.delivery import order_calendar_ics, order_tickets_pdf
from piaowu.tickets.models import PrintLog, Ticket
from piaowu.tickets.printing import (
    DEVICE_MAX_LENGTH,
    print_get_for_printing,
    ticket_get_for_printing,
    ticket_print_record,
)
from piaowu.tickets.selectors import ticket_qr_text

router = Router(tags=["printing"])

PRINTING_ERRORS: dict[str, str] = {
    "order_not_found": "404 — no order with this id is yours.",
    "order_not_paid": "409 — the order is not paid (yet); it has no tickets (details.state).",
    "no_valid_tickets": "409 — every ticket of the order was refunded or exchanged.",
    "ticket_not_found": "404 — no ticket with this id that you may print.",
    "ticket_void": "409 — the ticket is void (refunded or exchanged) and cannot be printed.",
    "ticket_reissue_limit": "400 — the ticket was reprinted too many times.",
    "invalid_layout": "400 — `layout` is not `thermal80` or `a4` (details.allowed).",
    "invalid_device": "400 — `device` is empty or not printable text (details.field).",
    "unauthorized": "401 — sign in as staff first.",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "invalid_input": "400 — the body is not valid (details.fields).",
    **IDEMPOTENCY_ERRORS,
}

FILE_ERRORS = ("order_not_found", "order_not_paid", "no_valid_tickets")


def _file_openapi(media_type: str, description: str) -> dict[str, Any]:
    return {
        "responses": {
            "200": {
                "description": description,
                "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    }


def _file(content: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"  # a ticket is a bearer credential
    return response


@router.get(
    "/orders/{order_id}/tickets.pdf",
    response={404: ErrorOut, 409: ErrorOut},
    summary="Your tickets as PDF",
    description="One page per valid ticket: the QR code (for a rotating-code session, where "
    "to find the live code instead), serial, event, time in the venue's time zone, venue, "
    "seat or general admission, ticket type and order code."
    + errors_doc(PRINTING_ERRORS, FILE_ERRORS),
    openapi_extra=_file_openapi("application/pdf", "The PDF."),
)
def order_tickets_pdf_get(request: HttpRequest, order_id: str) -> HttpResponse:
    order = own_order(request, order_id)
    return _file(order_tickets_pdf(order), "application/pdf", f"tickets-{order.code}.pdf")


@router.get(
    "/orders/{order_id}/tickets.ics",
    response={404: ErrorOut, 409: ErrorOut},
    summary="Your session as a calendar entry",
    description="An iCalendar file with one event: the session's start and end (UTC) and the "
    "venue's address." + errors_doc(PRINTING_ERRORS, ("order_not_found", "order_not_paid")),
    openapi_extra=_file_openapi("text/calendar", "The iCalendar file."),
)
def order_tickets_ics_get(request: HttpRequest, order_id: str) -> HttpResponse:
    order = own_order(request, order_id)
    return _file(
        order_calendar_ics(order), "text/calendar; charset=utf-8", f"tickets-{order.code}.ics"
    )


class PrintIn(Schema):
    layout: PrintLog.Layout = Field(..., description="`thermal80` (80 mm receipt) or `a4`.")
    device: str = Field(
        ...,
        min_length=1,
        max_length=DEVICE_MAX_LENGTH,
        description="The printer or terminal, for the print log.",
    )


class PrintOut(Schema):
    id: int = Field(..., description="The print log entry.")
    ticket: str
    serial: str
    reprint: bool = Field(..., description="True when this print voided an earlier paper.")
    secret_version: int
    layout: str
    device: str
    printed_at: str
    rotating: bool = Field(
        ..., description="A rotating-code session: print no QR, the holder shows the live code."
    )
    superseded: bool = Field(
        ..., description="A later reprint (or a refund) voided this print: do not hand it out."
    )
    qr_text: str | None = Field(
        ...,
        description="The text to print as a QR code; null for a rotating-code ticket or a "
        "superseded print.",
    )


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@router.post(
    "/tickets/{ticket_id}/prints",
    response={
        201: PrintOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        422: ErrorOut,
    },
    summary="Print a ticket (staff)",
    description="Logs a paper print and answers what to print. The first print of a ticket "
    "keeps its code; every later print is a reprint: the ticket gets a new secret version, "
    "so the earlier paper (and old screenshots) no longer admit."
    + errors_doc(
        PRINTING_ERRORS,
        (
            "unauthorized",
            "forbidden",
            "invalid_input",
            "ticket_not_found",
            "ticket_void",
            "ticket_reissue_limit",
            "invalid_layout",
            "invalid_device",
            *IDEMPOTENCY_ERRORS,
        ),
    ),
    openapi_extra=idempotency_openapi(),
)
def ticket_prints_create(
    request: HttpRequest, ticket_id: str, payload: PrintIn
) -> Status | HttpResponse:
    csrf_check(request)
    user = request_customer(request)
    if user is None:
        error = DomainError("unauthorized", _("Sign in first."))
        error.status = 401
        raise error

    def create() -> tuple[int, dict[str, Any]]:
        ticket = ticket_get_for_printing(user=user, public_id=ticket_id)
        log = ticket_print_record(
            ticket=ticket, layout=payload.layout, device=payload.device, actor=user
        )
        return 201, {"print_id": log.pk}

    key = request.headers.get(HEADER)
    if key is None:
        _status, body = create()
    else:
        _status, body = idempotent(
            scope=idempotency_scope(request),
            key=key,
            fingerprint=request_fingerprint(
                request.method or "", request.get_full_path(), request.body
            ),
            compute=create,
        )
    return Status(201, print_out(print_get_for_printing(user=user, print_id=body["print_id"])))


def print_out(log: PrintLog) -> dict[str, Any]:
    ticket = log.ticket
    superseded = log.secret_version != ticket.secret_version or ticket.state != Ticket.State.VALID
    return {
        "id": log.pk,
        "ticket": ticket.public_id,
        "serial": ticket.serial,
        "reprint": log.reprint,
        "secret_version": log.secret_version,
        "layout": log.layout,
        "device": log.device,
        "printed_at": _utc(log.at),
        "rotating": ticket.rotating,
        "superseded": superseded,
        "qr_text": None if superseded or ticket.rotating else ticket_qr_text(ticket),
    }
