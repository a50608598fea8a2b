"""Tickets: a buyer's e-tickets, and redemption codes.

Who may see a ticket: whoever may see its order (`api.v1.orders` — the signed-in buyer, the
browser whose holder key bought it, or a browser that looked the order up by code + phone).
Anyone else gets 404, exactly like an unknown id. A ticket shows its static QR text (`qr`, null
once void) and, for a session with rotating codes, the per-ticket rotation secret the page
computes the changing part from (see docs/tickets.md); both are for the holder only.

`POST /redemptions` turns a redemption code into a free order of one ticket, paid at once; the
browser that redeemed may read it like any order it bought. It takes an optional
`Idempotency-Key`; a code redeemed twice (or at the same instant) answers
`redemption_code_used`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from piaowu.aftersales.selectors.transfers import tickets_held_by
from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.holds import HOLD_ERRORS, csrf_check, errors_doc, holder_key, request_customer
from piaowu.api.v1.orders import CHECKOUT_ERRORS, OrderOut, order_out, utc_iso
from piaowu.catalog.models import Session
from piaowu.catalog.selectors import sales_channel_for, session_get
from piaowu.core.errors import DomainError
from piaowu.inventory.holders import granted_order_ids
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import (
    redeemable_sessions_for,
    redemption_code_get,
    seat_label,
    ticket_eticket,
    ticket_get_for_buyer,
    ticket_held_by,
    tickets_for_buyer_order,
)
from piaowu.tickets.services import redemption_redeem

router = Router(tags=["tickets"])


#: The error codes of this module's endpoints (also listed in `api.errors.ERROR_CODES`).
TICKET_ERRORS: dict[str, str] = {
    "ticket_not_found": "404 — no ticket with this id is yours.",
    "redemption_code_invalid": "400 — not a redemption code we issued (a typo: the last "
    "character is a check character).",
    "redemption_code_used": "400 — the code was already redeemed (details.code).",
    "redemption_code_expired": "400 — the code's redeem-by date has passed (details.valid_until).",
    "redemption_wrong_event": "400 — the session is not of the code's event (details.event).",
    "redemption_tier_missing": "400 — the session has no ticket type of the code's tier "
    "(details.tier); `GET /redemptions/{code}/sessions` lists the ones that do.",
    "redemption_one_ticket": "400 — a code is worth one ticket: `seats` names exactly one seat.",
    "redemption_seat_wrong_tier": "400 — the chosen seat is not of the code's tier "
    "(details.seats, details.tier).",
}
_ORDER_VISIBILITY: dict[str, str] = {
    "order_not_found": "404 — no order with this id is yours.",
}
REDEEM_ERRORS: dict[str, str] = {
    "session_not_found": "404 — no visible session with this id.",
    "invalid_input": "400 — the body is not valid (details.fields).",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    **{code: text for code, text in TICKET_ERRORS.items() if code.startswith("redemption_")},
    **{
        code: HOLD_ERRORS[code]
        for code in (
            "sales_closed",
            "seat_not_in_session",
            "seat_blocked",
            "seat_not_for_sale",
            "seat_taken",
            "couple_pair_required",
            "stranded_seat",
            "over_limit",
            "not_enough_seats",
            "sold_out",
        )
    },
    **CHECKOUT_ERRORS,
    **IDEMPOTENCY_ERRORS,
}
SESSIONS_ERRORS: dict[str, str] = {
    code: TICKET_ERRORS[code]
    for code in ("redemption_code_invalid", "redemption_code_used", "redemption_code_expired")
}


# --- Shapes -----------------------------------------------------------------------------------


class TicketSessionOut(Schema):
    id: str
    event_title: str
    starts_at: str
    ends_at: str
    venue: str


class RotatingOut(Schema):
    secret: str = Field(
        ..., description="The per-ticket rotation secret, RFC 4648 base32 without padding."
    )
    step_seconds: int = Field(..., description="The time code changes every this many seconds.")


class TicketOut(Schema):
    id: str
    serial: str = Field(..., description="`XXXX-XXXX-XXXX`, to read out or type at a gate.")
    state: str = Field(..., description="`valid` or `void`.")
    session: TicketSessionOut
    seat: str | None = Field(None, description="Row and seat; null for general admission.")
    section: str | None
    entrance: str | None
    tier: str
    tier_name: str
    valid_from: str = Field(..., description="Doors open (UTC).")
    valid_until: str = Field(..., description="Admission closes (UTC).")
    attendee_name: str | None
    held: bool = Field(
        True,
        description="Whether you hold the ticket: false for one you transferred to someone "
        "else (its `qr` is then null; the new holder has a fresh one).",
    )
    qr: str | None = Field(
        None,
        description="The QR text (`PW1…`); null when the ticket is void or not `held`. For a "
        'rotating ticket show `qr + ":" + time code` instead (see `rotating`).',
    )
    rotating: RotatingOut | None = Field(
        None,
        description="Only for a rotating ticket: the time code for step `t = floor(unix time / "
        "step_seconds)` is base32 of the first 5 bytes of HMAC-SHA256(secret, t as 8 "
        "big-endian bytes).",
    )


class RedemptionIn(Schema):
    code: str = Field(..., min_length=1, max_length=40, description="`XXXX-XXXX-XXXX`.")
    session: str = Field(..., min_length=1, max_length=40, description="Session id.")
    contact_phone: str = Field("", max_length=32, description="Required for guests.")
    contact_email: str = Field("", max_length=254)
    seats: list[str] | None = Field(
        None,
        max_length=5,
        description="One seat code to choose the seat; else the best available seat of the "
        "code's tier (or one admission for general admission).",
    )


class RedemptionOut(Schema):
    order: OrderOut
    tickets: list[TicketOut]


class RedeemableSessionOut(Schema):
    id: str
    event_title: str
    starts_at: str
    venue: str


class RedeemableOut(Schema):
    code: str
    tier: str
    event: str = Field(..., description="Event id.")
    event_title: str
    valid_until: str
    sessions: list[RedeemableSessionOut]


# --- Filling them -----------------------------------------------------------------------------


class TicketPage(Page[TicketOut]):
    pass


def ticket_out(ticket: Ticket, *, held: bool = True) -> dict[str, Any]:
    """A ticket as its holder sees it (session, tier, seat prefetched by the selectors);
    `held=False`: as its buyer sees it after transferring it away (no QR)."""
    session = ticket.session
    shown = ticket_eticket(ticket, held=held)
    seat = ticket.seat
    section = seat.section if seat is not None else None
    return {
        "id": ticket.public_id,
        "serial": ticket.serial,
        "state": ticket.state,
        "session": {
            "id": session.public_id,
            "event_title": session.event.tr("title"),
            "starts_at": utc_iso(session.starts_at),
            "ends_at": utc_iso(session.ends_at),
            "venue": session.venue.tr("name"),
        },
        "seat": seat_label(ticket),
        "section": section.tr("name") if section is not None else None,
        "entrance": (section.entrance or None) if section is not None else None,
        "tier": ticket.tier.code,
        "tier_name": ticket.tier.tr("name"),
        "valid_from": utc_iso(ticket.valid_from),
        "valid_until": utc_iso(ticket.valid_until),
        "attendee_name": ticket.attendee_name or None,
        "held": held,
        "qr": shown.qr,
        "rotating": (
            {"secret": shown.rotation_secret, "step_seconds": shown.step_seconds}
            if shown.rotation_secret is not None
            else None
        ),
    }


def _buyer(request: HttpRequest) -> dict[str, Any]:
    return {
        "customer": request_customer(request),
        "holder_key": holder_key(request),
        "granted": granted_order_ids(request.session),
    }


def _session_out(session: Session) -> dict[str, Any]:
    return {
        "id": session.public_id,
        "event_title": session.event.tr("title"),
        "starts_at": utc_iso(session.starts_at),
        "venue": session.venue.tr("name"),
    }


# --- Endpoints --------------------------------------------------------------------------------


@router.get(
    "/orders/{order_id}/tickets",
    response={200: list[TicketOut], 404: ErrorOut},
    summary="The tickets of one of your orders",
    description="One per seat or admission once the order is paid (none before), void ones "
    "included with `qr` null." + errors_doc(_ORDER_VISIBILITY),
)
def order_tickets(request: HttpRequest, order_id: str) -> list[dict[str, Any]]:
    _order, tickets = tickets_for_buyer_order(order_public_id=order_id, **_buyer(request))
    customer = request_customer(request)
    return [ticket_out(ticket, held=ticket_held_by(ticket, customer)) for ticket in tickets]


@router.get(
    "/tickets",
    response={200: TicketPage, 400: ErrorOut, 401: ErrorOut},
    summary="The tickets you hold",
    description="The signed-in customer's tickets, soonest session first: those bought that "
    "were not transferred away, and those transferred to them. Void ones included with `qr` "
    "null." + errors_doc({"unauthorized": "401 — sign in to list your tickets."}),
)
def tickets_mine(request: HttpRequest, query: Query[PageQuery]) -> dict[str, Any]:
    customer = request_customer(request)
    if customer is None:
        error = DomainError("unauthorized", _("Sign in first."))
        error.status = 401
        raise error
    tickets, count, has_next = paginate(tickets_held_by(customer), query.page, query.page_size)
    return page_body(
        [ticket_out(ticket) for ticket in tickets],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


@router.get(
    "/tickets/{ticket_id}",
    response={200: TicketOut, 404: ErrorOut},
    summary="One of your tickets",
    description="With its QR text (and rotation secret for a rotating ticket)."
    + errors_doc(TICKET_ERRORS, ("ticket_not_found",)),
)
def ticket_detail(request: HttpRequest, ticket_id: str) -> dict[str, Any]:
    ticket = ticket_get_for_buyer(public_id=ticket_id, **_buyer(request))
    return ticket_out(ticket, held=ticket_held_by(ticket, request_customer(request)))


@router.get(
    "/redemptions/{code}/sessions",
    response={200: RedeemableOut, 400: ErrorOut},
    summary="Sessions a redemption code can be used for",
    description="The on-sale sessions of the code's event that sell its tier. The code may be "
    "typed in any case, with or without dashes." + errors_doc(SESSIONS_ERRORS),
)
def redemption_sessions(request: HttpRequest, code: str) -> dict[str, Any]:
    row = redemption_code_get(code)
    batch = row.batch
    return {
        "code": row.code,
        "tier": batch.tier_code,
        "event": batch.event.public_id,
        "event_title": batch.event.tr("title"),
        "valid_until": utc_iso(batch.valid_until),
        "sessions": [
            _session_out(session)
            for session in redeemable_sessions_for(batch.event, batch.tier_code)
        ],
    }


@router.post(
    "/redemptions",
    response={
        201: RedemptionOut,
        400: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        422: ErrorOut,
    },
    summary="Redeem a code for a ticket",
    description=(
        "One ticket of the code's tier for the session — the chosen seat (`seats`: one code), "
        "the best available seat, or one admission — as an order of price 0 that is paid at "
        "once, with its ticket. The code is used in the same step; nothing is held if anything "
        "is refused." + errors_doc(REDEEM_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def redemptions_redeem(request: HttpRequest, payload: RedemptionIn) -> Status | HttpResponse:
    csrf_check(request)

    def redeem() -> tuple[int, dict[str, Any]]:
        session = session_get(payload.session)
        order = redemption_redeem(
            code=payload.code,
            session=session,
            channel=sales_channel_for(session),
            holder_key=holder_key(request, create=True),
            customer=request_customer(request),
            contact_phone=payload.contact_phone,
            contact_email=payload.contact_email,
            seat_codes=payload.seats,
        )
        order, tickets = tickets_for_buyer_order(order_public_id=order.public_id, **_buyer(request))
        return 201, {
            "order": order_out(order),
            "tickets": [ticket_out(ticket) for ticket in tickets],
        }

    return run_idempotent(request, redeem)
