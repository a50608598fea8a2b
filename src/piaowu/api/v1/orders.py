"""Orders: buy in one request or check out a hold, read, look up and cancel.

Who may see an order: the signed-in account that bought it, the browser whose holder key bought
it (`api.v1.holds.holder_key`), or a browser that looked it up by code + phone
(`POST /orders/lookup` remembers the order in the Django session, `piaowu_orders`). Anyone else
gets 404 `order_not_found`, exactly like an unknown id. The rules live in `orders.services` and
`orders.selectors`; this module parses, calls and renders. Mutating calls check the CSRF token
when a session cookie comes with them and take an optional `Idempotency-Key`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.holds import (
    HOLD_ERRORS,
    HoldIn,
    csrf_check,
    errors_doc,
    holder_key,
    own_hold,
    request_customer,
)
from piaowu.api.v1.schemas import MoneyOut
from piaowu.catalog.selectors import sales_channel_for_sale, session_get_for_sale
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.inventory.holders import (
    HOLDER_SESSION_KEY,
    grant_order,
    granted_order_ids,
    new_anonymous_key,
)
from piaowu.orders.models import Order
from piaowu.orders.selectors import order_get_for_buyer, order_lookup, orders_for_customer
from piaowu.orders.services import (
    normalize_phone,
    order_cancel,
    order_checkout,
    order_has_details,
    order_purchase,
)
from piaowu.payments.models import Payment

router = Router(tags=["orders"])


CHECKOUT_ERRORS: dict[str, str] = {
    "contact_required": "400 — a guest must give `contact_phone` (details.field).",
    "invalid_phone": "400 — `contact_phone` is not a phone number (details.field).",
    "channel_not_found": "404 — the organizer sells nothing online.",
    "channel_inactive": "400 — the organizer's online sales channel is closed.",
    "channel_mismatch": "400 — the sales channel does not sell this session.",
    "invalid_email": "400 — `contact_email` is not an e-mail address (details.field).",
    "mixed_currency": "400 — tickets in different currencies cannot be bought together.",
}
PURCHASE_ERRORS: dict[str, str] = {**HOLD_ERRORS, **CHECKOUT_ERRORS}
HOLD_CHECKOUT_ERRORS: dict[str, str] = {
    "hold_not_found": "404 — no hold with this id is yours.",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "invalid_input": "400 — the body is not valid (details.fields).",
    "hold_expired": "400 — the hold expired or was released (details.hold).",
    "hold_converted": "400 — the hold was already bought by another checkout.",
    "hold_empty": "400 — the hold holds no tickets.",
    "hold_not_yours": "403 — the hold belongs to someone else.",
    **CHECKOUT_ERRORS,
    **IDEMPOTENCY_ERRORS,
}
ORDER_ERRORS: dict[str, str] = {
    "order_not_found": "404 — no order with this id is yours.",
    "unauthorized": "401 — sign in to list your orders.",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "illegal_transition": "400 — only an order awaiting payment can be cancelled (details.from).",
    "order_state_changed": "409 — the order was just paid or expired (details.state).",
    "invalid_input": "400 — the body is not valid (details.fields).",
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


class ContactIn(Schema):
    contact_phone: str = Field("", max_length=32, description="Required for guests.")
    contact_email: str = Field("", max_length=254)


class PurchaseIn(HoldIn):
    """One of the three forms of a hold (`seats`; `best_available`; `tier` with `quantity`),
    plus the buyer's contact."""

    contact_phone: str = Field("", max_length=32, description="Required for guests.")
    contact_email: str = Field("", max_length=254)


class LookupIn(Schema):
    code: str = Field(..., min_length=1, max_length=16, description="The order code.")
    phone: str = Field(..., min_length=1, max_length=32, description="The phone given at checkout.")


class PaymentOut(Schema):
    id: str
    provider: str
    status: str = Field(
        ..., description="`started`, `paid`, `failed`, `closed`, `refunding` or `refunded`."
    )
    amount: MoneyOut
    redirect_url: str | None = Field(None, description="Send the buyer here to pay.")
    qr_code_payload: str | None = Field(None, description="Or show this as a QR code.")


class OrderSessionOut(Schema):
    id: str
    event_title: str
    starts_at: str
    venue: str


class OrderLineOut(Schema):
    seat: str | None
    tier: str
    tier_name: str
    unit_price: MoneyOut
    quantity: int


class OrderOut(Schema):
    id: str
    code: str = Field(..., description="Quote it with the phone to find the order again.")
    state: str = Field(
        ...,
        description="`awaiting_payment`, `paid`, `fulfilled`, `cancelled`, `expired`, "
        "`refunded` or `partially_refunded`.",
    )
    contact_phone: str = Field(..., description="Masked: `138****8000`.")
    session: OrderSessionOut
    total: MoneyOut
    payment_deadline: str
    paid_at: str | None
    created_at: str
    lines: list[OrderLineOut]
    payments: list[PaymentOut]


class OrderPage(Page[OrderOut]):
    pass


# --- Filling them -----------------------------------------------------------------------------


def utc_iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with `Z`, like `hold_out` (JSON-ready, so idempotent replays store it)."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    money = Money(Decimal(amount), currency).quantized()
    return {"amount": str(money.amount), "currency": money.currency}


def mask_phone(phone: str) -> str:
    """`13800138000` → `138****8000`: enough for the buyer to recognise, not to reuse."""
    digits = normalize_phone(phone)
    if len(digits) <= 7:
        return "*" * max(len(digits) - 2, 0) + digits[-2:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def payment_out(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.public_id,
        "provider": payment.provider,
        "status": payment.status,
        "amount": _money(payment.amount, payment.currency),
        "redirect_url": payment.redirect_url or None,
        "qr_code_payload": payment.qr_code_payload or None,
    }


def order_out(order: Order) -> dict[str, Any]:
    """An order as the buyer sees it (lines and payments prefetched by the selectors)."""
    session = order.session
    lines = sorted(order.lines.all(), key=lambda line: (line.tier.sort_order, line.pk))
    payments = sorted(order.payments.all(), key=lambda payment: (payment.created_at, payment.pk))
    return {
        "id": order.public_id,
        "code": order.code,
        "state": order.state,
        "contact_phone": mask_phone(order.contact_phone),
        "session": {
            "id": session.public_id,
            "event_title": session.event.tr("title"),
            "starts_at": utc_iso(session.starts_at),
            "venue": session.venue.tr("name"),
        },
        "total": _money(order.total_amount, order.currency),
        "payment_deadline": utc_iso(order.payment_deadline),
        "paid_at": utc_iso(order.paid_at),
        "created_at": utc_iso(order.created_at),
        "lines": [
            {
                "seat": line.seat.code if line.seat is not None else None,
                "tier": line.tier.code,
                "tier_name": line.tier.tr("name"),
                "unit_price": _money(line.unit_price, line.currency),
                "quantity": line.quantity,
            }
            for line in lines
        ],
        "payments": [payment_out(payment) for payment in payments],
    }


# --- The caller's orders ----------------------------------------------------------------------


def _granted(request: HttpRequest) -> list[str]:
    return granted_order_ids(request.session)


def _grant(request: HttpRequest, order_id: str) -> None:
    grant_order(request.session, order_id)


def own_order(request: HttpRequest, order_id: str, *, details: bool = True) -> Order:
    """The order if this caller may see it (see the module docstring); else `order_not_found`.
    `details=False`: without lines and payments (to act on it, not to show it)."""
    return order_get_for_buyer(
        public_id=order_id,
        customer=request_customer(request),
        holder_key=holder_key(request),
        granted=_granted(request),
        details=details,
    )


def created_order_out(request: HttpRequest, order: Order) -> dict[str, Any]:
    """The answer for an order a service just made (its lines in memory); an order it found
    instead (checking out the same hold again) is read with its details."""
    if order_has_details(order):
        return order_out(order)
    return order_out(own_order(request, order.public_id))


def _unauthorized() -> DomainError:
    error = DomainError("unauthorized", _("Sign in first."))
    error.status = 401
    return error


# --- Endpoints --------------------------------------------------------------------------------


@router.post(
    "/sessions/{session_id}/orders",
    response={201: OrderOut, **MUTATION_RESPONSES},
    summary="Buy in one request",
    description=(
        "Holds and checks out in one step: the order awaits payment until `payment_deadline`, "
        "or nothing was held. The body is one of the three forms of `POST …/holds` — "
        '`{"seats": […]}`, `{"best_available": {"quantity": n, "tier": code or null}}`, '
        '`{"tier": code, "quantity": n}` (for a reserved-seating session: best available in '
        'that tier) — plus `"contact_phone"` (required for guests) and `"contact_email"`.'
        + errors_doc(PURCHASE_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def orders_purchase(
    request: HttpRequest, session_id: str, payload: PurchaseIn
) -> Status | HttpResponse:
    csrf_check(request)

    def purchase() -> tuple[int, dict[str, Any]]:
        session = session_get_for_sale(session_id)
        channel = sales_channel_for_sale(session)
        key = holder_key(request)
        # A new anonymous buyer's key goes into the Django session only once the purchase
        # succeeded: a refused (e.g. sold-out) request writes no session row.
        fresh = not key
        if fresh:
            key = new_anonymous_key()
        customer = request_customer(request)
        if payload.seats is not None:
            choice: dict[str, Any] = {"seat_codes": payload.seats}
        elif payload.best_available is not None:
            choice = {
                "quantity": payload.best_available.quantity,
                "tier_code": payload.best_available.tier or None,
            }
        else:
            choice = {"quantity": payload.quantity, "tier_code": payload.tier}
        order = order_purchase(
            session=session,
            channel=channel,
            holder_key=key,
            customer=customer,
            contact_phone=payload.contact_phone,
            contact_email=payload.contact_email,
            fresh_holder=fresh,
            **choice,
        )
        if fresh:
            request.session[HOLDER_SESSION_KEY] = key
        return 201, created_order_out(request, order)

    # The key row is written in the purchase's own transaction (one short transaction).
    return run_idempotent(request, purchase, atomic=True)


@router.post(
    "/holds/{hold_id}/checkout",
    response={201: OrderOut, **MUTATION_RESPONSES},
    summary="Check out a hold",
    description=(
        "Turns your hold into an order awaiting payment; the seats stay yours until "
        "`payment_deadline`. Checking out the same hold again answers the same order."
        + errors_doc(HOLD_CHECKOUT_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def holds_checkout(request: HttpRequest, hold_id: str, payload: ContactIn) -> Status | HttpResponse:
    csrf_check(request)

    def checkout() -> tuple[int, dict[str, Any]]:
        hold = own_hold(request, hold_id)
        order = order_checkout(
            hold=hold,
            channel=sales_channel_for_sale(hold.session),
            holder_key=holder_key(request),
            customer=request_customer(request),
            contact_phone=payload.contact_phone,
            contact_email=payload.contact_email,
        )
        return 201, created_order_out(request, order)

    return run_idempotent(request, checkout, atomic=True)


@router.get(
    "/orders",
    response={200: OrderPage, 400: ErrorOut, 401: ErrorOut},
    summary="Your orders",
    description="The signed-in buyer's orders, newest first."
    + errors_doc(ORDER_ERRORS, ("unauthorized", "invalid_input")),
)
def orders_list(request: HttpRequest, query: Query[PageQuery]) -> dict[str, Any]:
    customer = request_customer(request)
    if customer is None:
        raise _unauthorized()
    orders, count, has_next = paginate(orders_for_customer(customer), query.page, query.page_size)
    return page_body(
        [order_out(order) for order in orders],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


# Declared before "/orders/{order_id}", which would otherwise catch "lookup" (405).
@router.post(
    "/orders/lookup",
    response={200: OrderOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut},
    summary="Find an order by code and phone",
    description=(
        "For guests: the order whose code and checkout phone match. This browser may then "
        "read, cancel and pay it (the id is remembered in its session). A wrong phone is the "
        "same `order_not_found` as an unknown code. Repeating a lookup changes nothing, so "
        "it needs no `Idempotency-Key`."
        + errors_doc(ORDER_ERRORS, ("order_not_found", "forbidden", "invalid_input"))
    ),
)
def orders_lookup(request: HttpRequest, payload: LookupIn) -> dict[str, Any]:
    csrf_check(request)
    order = order_lookup(code=payload.code, phone=payload.phone)
    _grant(request, order.public_id)
    return order_out(order)


@router.get(
    "/orders/{order_id}",
    response={200: OrderOut, 404: ErrorOut},
    summary="One of your orders",
    description="With its lines and payment attempts."
    + errors_doc(ORDER_ERRORS, ("order_not_found",)),
)
def orders_detail(request: HttpRequest, order_id: str) -> dict[str, Any]:
    return order_out(own_order(request, order_id))


@router.post(
    "/orders/{order_id}/cancel",
    response={200: OrderOut, **MUTATION_RESPONSES},
    summary="Cancel an order awaiting payment",
    description="The seats go back on sale at once."
    + errors_doc(
        ORDER_ERRORS,
        (
            "order_not_found",
            "forbidden",
            "illegal_transition",
            "order_state_changed",
            *IDEMPOTENCY_ERRORS,
        ),
    ),
    openapi_extra=idempotency_openapi(),
)
def orders_cancel(request: HttpRequest, order_id: str) -> Status | HttpResponse:
    csrf_check(request)

    def cancel() -> tuple[int, dict[str, Any]]:
        order = own_order(request, order_id)
        order_cancel(order=order, actor=request_customer(request), reason="cancelled by the buyer")
        return 200, order_out(own_order(request, order_id))

    return run_idempotent(request, cancel)
