"""Exchanges (改签): what moving some tickets of an order to another session (or tier) of the
same event would cost, start it, read it, give up an exchange that awaits payment.

Who may: whoever may see the order (`api.v1.orders.own_order`: the account that bought it, the
browser that bought it or looked it up by code + phone); anyone else gets 404
`order_not_found` / `exchange_not_found`. The rules live in `aftersales.services.exchanges` and
`aftersales.selectors.exchanges` (see docs/aftersales.md); this module parses, calls and
renders. Mutating calls check the CSRF token when a session cookie comes with them and take an
optional `Idempotency-Key`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status

from piaowu.aftersales.models import Exchange
from piaowu.aftersales.selectors.exchanges import (
    ExchangeOption,
    exchange_get,
    exchange_quote,
    exchange_state,
)
from piaowu.aftersales.services.exchanges import exchange_cancel, exchange_start
from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.v1.holds import HOLD_ERRORS, csrf_check, errors_doc, request_customer
from piaowu.api.v1.orders import own_order, utc_iso
from piaowu.catalog.selectors import session_get_for_sale
from piaowu.core.errors import NotFound
from piaowu.core.money import Money
from piaowu.inventory.holders import grant_order
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import seat_label

router = Router(tags=["exchanges"])

_COMMON: dict[str, str] = {
    "order_not_found": "404 — no order with this id is yours.",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "invalid_input": "400 — the body or a parameter is not valid (details.fields).",
}
_TICKETS: dict[str, str] = {
    "order_not_exchangeable": "409 — the order is not paid (details.state).",
    "exchange_tickets_invalid": "400 — tickets not of this order, named twice, or none left.",
    "ticket_void": "409 — a ticket was refunded or exchanged already (details.ticket: serial).",
    "ticket_used": "409 — a ticket was admitted at a gate (details.ticket).",
    "ticket_transferred": "400 — a ticket was transferred to someone else (details.ticket).",
    "transfer_pending": "409 — a ticket has a pending transfer (details.ticket).",
    "refund_in_progress": "409 — a ticket is in a refund under way (details.ticket).",
    "exchange_in_progress": "409 — a ticket is in another exchange awaiting payment.",
    "exchange_not_allowed": "400 — the event's rule does not allow exchanges (or it has none).",
    "exchange_cutoff_passed": "400 — the rule no longer allows refunds, so no exchanges either.",
}
START_ERRORS: dict[str, str] = {
    **_COMMON,
    "session_not_found": "404 — no session on sale with this id.",
    **_TICKETS,
    "exchange_other_event": "400 — the session is of another event.",
    "exchange_same_tier": "400 — the tickets already are of this tier of this session.",
    "exchange_tier_not_found": "400 — no active tier with this code (details.tier).",
    "tier_required": "400 — give `tier` (or `seats` for a reserved-seating session).",
    "exchange_currency_mismatch": "400 — the tier is sold in another currency.",
    "exchange_quantity_mismatch": "400 — `seats` names another number of seats than tickets "
    "(details.tickets, details.seats).",
    "exchange_target_sold_out": "409 — not enough left in the session; nothing changed "
    "(details.reason: `sold_out` or `not_enough_seats`).",
    **{
        code: HOLD_ERRORS[code]
        for code in (
            "sales_closed",
            "seat_not_in_session",
            "seat_blocked",
            "seat_taken",
            "stranded_seat",
            "over_limit",
            "not_reserved_seating",
        )
    },
    "channel_inactive": "400 — the sales channel is closed.",
    **IDEMPOTENCY_ERRORS,
}
CANCEL_ERRORS: dict[str, str] = {
    "exchange_not_found": "404 — no exchange with this id is yours.",
    "forbidden": _COMMON["forbidden"],
    "exchange_not_pending": "409 — the exchange completed or was abandoned (details.state).",
    **IDEMPOTENCY_ERRORS,
}
MUTATION_RESPONSES: dict[int, Any] = {
    400: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    422: ErrorOut,
}


# --- Shapes -----------------------------------------------------------------------------------


class MoneyOut(Schema):
    amount: str
    currency: str


class ExchangeTicketOut(Schema):
    id: str
    serial: str
    seat: str | None = Field(None, description="Row and seat; null for general admission.")
    tier: str
    tier_name: str
    price: MoneyOut


class ExchangeSessionOut(Schema):
    id: str
    starts_at: str
    venue: str


class ExchangeOptionOut(Schema):
    session: ExchangeSessionOut
    tier: str
    tier_name: str
    unit_price: MoneyOut
    quantity: int
    new_value: MoneyOut
    fee: MoneyOut
    difference: MoneyOut = Field(..., description="new value + fee − old value.")
    upgrade: bool = Field(
        ...,
        description="True: the new order is paid in full (`pay_now`) and the old tickets are "
        "refunded minus the fee (`refund`) once it is paid. False: done at once, `refund` back.",
    )
    pay_now: MoneyOut
    refund: MoneyOut
    available: int | None = Field(None, description="Tickets (or free seats) left.")
    sold_out: bool


class RefusalOut(Schema):
    code: str
    message: str
    ticket: str | None = Field(None, description="The serial of the ticket refused.")


class ExchangeQuoteOut(Schema):
    order: str
    tickets: list[ExchangeTicketOut]
    old_value: MoneyOut
    fee: MoneyOut
    fee_percent: str
    refusal: RefusalOut | None = Field(
        None, description="Why these tickets cannot be exchanged now (null: they can)."
    )
    options: list[ExchangeOptionOut]


class ExchangeStartIn(Schema):
    """The session and `tier` (best available for reserved seating) — or, for reserved seating,
    the `seats` by code instead. `tickets`: the ticket ids to exchange (default: every valid
    ticket of the order)."""

    session: str = Field(..., max_length=40)
    tier: str | None = Field(None, max_length=40)
    seats: list[str] | None = Field(None, min_length=1, max_length=20)
    tickets: list[str] | None = Field(None, min_length=1, max_length=50)


class ExchangeRefundOut(Schema):
    number: str
    amount: MoneyOut
    state: str = Field(
        ..., description="`approved`, `processing`, `succeeded`, `failed` (staff retry it)."
    )


class ExchangeOut(Schema):
    id: str
    state: str = Field(
        ...,
        description="`awaiting_payment` (pay `to_order`), `completed` or `abandoned` (the new "
        "order was cancelled or not paid in time; the old tickets are unchanged).",
    )
    from_order: str
    to_order: str | None
    tickets: list[str] = Field(..., description="Serials of the tickets given up.")
    old_value: MoneyOut
    new_value: MoneyOut
    fee: MoneyOut
    difference: MoneyOut = Field(..., description="new value + fee − old value.")
    refund: ExchangeRefundOut | None
    pay_url: str | None = Field(
        None, description="While awaiting payment: the page where the new order is paid."
    )
    created_at: str
    completed_at: str | None


# --- Filling them -----------------------------------------------------------------------------


def _money(amount: Decimal | Money, currency: str = "") -> dict[str, str]:
    money = amount if isinstance(amount, Money) else Money(Decimal(amount), currency)
    money = money.quantized()
    return {"amount": str(money.amount), "currency": money.currency}


def _ticket_out(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.public_id,
        "serial": ticket.serial,
        "seat": seat_label(ticket),
        "tier": ticket.tier.code,
        "tier_name": ticket.tier.tr("name"),
        "price": _money(ticket.order_line.unit_price, ticket.order_line.currency),
    }


def _option_out(option: ExchangeOption) -> dict[str, Any]:
    session = option.session
    return {
        "session": {
            "id": session.public_id,
            "starts_at": utc_iso(session.starts_at),
            "venue": session.venue.tr("name"),
        },
        "tier": option.tier.code,
        "tier_name": option.tier.tr("name"),
        "unit_price": _money(option.tier.price, option.tier.currency),
        "quantity": option.quantity,
        "new_value": _money(option.new_value),
        "fee": _money(option.fee),
        "difference": _money(option.difference),
        "upgrade": option.upgrade,
        "pay_now": _money(option.pay_now),
        "refund": _money(option.refund),
        "available": option.available,
        "sold_out": option.sold_out,
    }


def exchange_out(exchange: Exchange) -> dict[str, Any]:
    state = exchange_state(exchange)
    to_order = exchange.to_order
    refund = exchange.refund
    currency = exchange.currency
    awaiting = state == Exchange.State.AWAITING_PAYMENT and to_order is not None
    return {
        "id": exchange.public_id,
        "state": state,
        "from_order": exchange.from_order.public_id,
        "to_order": to_order.public_id if to_order is not None else None,
        "tickets": sorted(item.ticket.serial for item in exchange.items.all()),
        "old_value": _money(exchange.old_value, currency),
        "new_value": _money(exchange.new_value, currency),
        "fee": _money(exchange.fee_amount, currency),
        "difference": _money(exchange.difference, currency),
        "refund": (
            {
                "number": refund.number,
                "amount": _money(refund.amount, refund.currency),
                "state": refund.state,
            }
            if refund is not None
            else None
        ),
        "pay_url": (
            reverse("web:order", kwargs={"public_id": to_order.public_id})
            if awaiting and to_order is not None
            else None
        ),
        "created_at": utc_iso(exchange.created_at),
        "completed_at": utc_iso(exchange.completed_at),
    }


def _own_exchange(request: HttpRequest, exchange_id: str) -> Exchange:
    """The exchange if this caller may see the order it came from; else `exchange_not_found`."""
    exchange = exchange_get(exchange_id)
    try:
        own_order(request, exchange.from_order.public_id, details=False)
    except NotFound:
        raise NotFound("exchange", _("No such exchange.")) from None
    return exchange


# --- Endpoints --------------------------------------------------------------------------------


@router.get(
    "/orders/{order_id}/exchange-options",
    response={200: ExchangeQuoteOut, 400: ErrorOut, 404: ErrorOut},
    summary="Where tickets can be exchanged to, and at what cost",
    description=(
        "Prices moving `tickets` (comma-separated ticket ids; default every valid ticket) of "
        "the order into each tier of each session of its event on sale now. `refusal` says "
        "why they cannot be exchanged now (the options are listed anyway)."
        + errors_doc(_COMMON, ("order_not_found", "invalid_input"))
    ),
)
def exchange_options(
    request: HttpRequest, order_id: str, tickets: str | None = None
) -> dict[str, Any]:
    order = own_order(request, order_id, details=False)
    ticket_ids = [t for t in (tickets or "").split(",") if t.strip()] if tickets else None
    quote = exchange_quote(order=order, ticket_ids=ticket_ids)
    refusal = quote.refusal
    return {
        "order": order.public_id,
        "tickets": [_ticket_out(t) for t in quote.tickets],
        "old_value": _money(quote.old_value),
        "fee": _money(quote.fee),
        "fee_percent": format(quote.terms.fee_percent.normalize(), "f"),
        "refusal": (
            {
                "code": refusal.code,
                "message": refusal.message,
                "ticket": refusal.ticket.serial if refusal.ticket is not None else None,
            }
            if refusal is not None
            else None
        ),
        "options": [_option_out(option) for option in quote.options],
    }


@router.post(
    "/orders/{order_id}/exchanges",
    response={201: ExchangeOut, **MUTATION_RESPONSES},
    summary="Exchange tickets for another session or tier",
    description=(
        "Holds the new seats first; if they cannot be held nothing changes. When the new "
        "tickets plus the fee cost no more than the old, the exchange completes at once (state "
        "`completed`, the rest refunded); otherwise it awaits payment of its new order "
        "(`to_order`, in full; pay it like any order) and completes when that is paid, "
        "refunding the old tickets minus the fee." + errors_doc(START_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def exchanges_start(
    request: HttpRequest, order_id: str, payload: ExchangeStartIn
) -> Status | HttpResponse:
    csrf_check(request)

    def start() -> tuple[int, dict[str, Any]]:
        order = own_order(request, order_id, details=False)
        exchange = exchange_start(
            order=order,
            session=session_get_for_sale(payload.session),
            ticket_ids=payload.tickets,
            tier_code=payload.tier if payload.seats is None else None,
            seat_codes=payload.seats,
            actor=request_customer(request),
        )
        if exchange.to_order is not None:
            grant_order(request.session, exchange.to_order.public_id)
        return 201, exchange_out(exchange_get(exchange.public_id))

    return run_idempotent(request, start, atomic=True)


@router.get(
    "/exchanges/{exchange_id}",
    response={200: ExchangeOut, 404: ErrorOut},
    summary="An exchange of your tickets",
    description="With the refund it made, if any."
    + errors_doc(CANCEL_ERRORS, ("exchange_not_found",)),
)
def exchanges_detail(request: HttpRequest, exchange_id: str) -> dict[str, Any]:
    return exchange_out(_own_exchange(request, exchange_id))


@router.post(
    "/exchanges/{exchange_id}/cancel",
    response={200: ExchangeOut, **MUTATION_RESPONSES},
    summary="Give up an exchange that awaits payment",
    description="Its new order is cancelled and its seats released; the old tickets were never "
    "touched." + errors_doc(CANCEL_ERRORS),
    openapi_extra=idempotency_openapi(),
)
def exchanges_cancel(request: HttpRequest, exchange_id: str) -> Status | HttpResponse:
    csrf_check(request)

    def cancel() -> tuple[int, dict[str, Any]]:
        exchange = _own_exchange(request, exchange_id)
        exchange_cancel(exchange=exchange, actor=request_customer(request))
        return 200, exchange_out(exchange_get(exchange_id))

    return run_idempotent(request, cancel)
