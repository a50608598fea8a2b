"""Refunds: the quote before confirming, asking for a refund, following it; and staff refunding
on a customer's behalf, approving, rejecting and retrying.

Who may see an order's quote and refunds: whoever may see the order (`api.v1.orders`: the
buying account, the browser that bought it, a guest who looked it up by code + phone). Asking
for a refund of an order bought with an account needs that account signed in
(`refund_sign_in_required`); a guest order may be refunded by whoever may see it — the money
only ever goes back to the payment that paid it. Anyone else gets 404, like an unknown id.

Staff (a signed-in session) act at organizers where they hold `Perm.ORDERS_REFUND`; they see
the orders and refunds of organizers where they hold `Perm.ORDERS_VIEW` (others: 404). The
rules live in `aftersales.services.refunds` and `aftersales.selectors.refunds`; this module
parses, calls and renders. Mutating calls check the CSRF token when a session cookie comes with
them and take an optional `Idempotency-Key`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund
from piaowu.aftersales.policy import Quote
from piaowu.aftersales.selectors.refunds import (
    order_tickets,
    refund_get_for_buyer,
    refund_get_for_staff,
    refund_progress,
    refunds_for_customer,
    refunds_for_order,
    refunds_for_staff,
    require_refund_requester,
)
from piaowu.aftersales.services.refunds import (
    refund_approve,
    refund_quote,
    refund_reject,
    refund_request,
    refund_retry,
)
from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.holds import csrf_check, errors_doc, holder_key, request_customer
from piaowu.api.v1.orders import own_order, utc_iso
from piaowu.api.v1.schemas import MoneyOut
from piaowu.core.errors import DomainError, NotFound
from piaowu.core.money import Money
from piaowu.inventory.holders import granted_order_ids
from piaowu.orders.models import Order
from piaowu.orders.selectors import orders_search_for_staff
from piaowu.tickets.models import Ticket

router = Router(tags=["refunds"])

REFUND_ERRORS: dict[str, str] = {
    "order_not_found": "404 — no order with this id is yours (staff: at your organizers).",
    "refund_not_found": "404 — no refund with this id is yours (staff: at your organizers).",
    "unauthorized": "401 — sign in first.",
    "forbidden": "403 — you may not refund at this organizer, or a session cookie came "
    "without its CSRF token (`X-CSRFToken`).",
    "refund_sign_in_required": "403 — the order was bought with an account: sign in with it "
    "to ask for a refund.",
    "invalid_input": "400 — the body is not valid (details.fields).",
    "order_not_refundable": "409 — the order is not paid, or has no payment (details.state).",
    "refund_tickets_invalid": "400 — no tickets, a ticket twice, or a ticket of another order.",
    "refund_reason_required": "400 — staff must say why (refund on behalf, reject).",
    "refund_not_allowed": "400 — too close to the start for the refund rule, or the session "
    "has no refund rule (details.ticket: the serial).",
    "channel_not_refundable": "400 — the order's sales channel may not refund online "
    "(details.ticket).",
    "ticket_used": "400 — the ticket was admitted at a gate (details.ticket).",
    "ticket_transferred": "400 — the ticket was transferred to someone else (details.ticket).",
    "ticket_void": "409 — the ticket was already refunded or exchanged (details.ticket).",
    "refund_in_progress": "409 — a refund or exchange of the ticket is under way (details.ticket).",
    "refund_exceeds_payment": "409 — together with earlier refunds this would give back more "
    "than was paid (details.amount).",
    "refund_state_changed": "409 — the refund was just changed by someone else, or is not in "
    "a state for this (details.state).",
    **IDEMPOTENCY_ERRORS,
}
MUTATION_RESPONSES: dict[int, Any] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    422: ErrorOut,
}
REQUEST_ERRORS = (
    "order_not_found",
    "forbidden",
    "refund_sign_in_required",
    "invalid_input",
    "order_not_refundable",
    "refund_tickets_invalid",
    "refund_not_allowed",
    "channel_not_refundable",
    "ticket_used",
    "ticket_transferred",
    "ticket_void",
    "refund_in_progress",
    "refund_exceeds_payment",
    *IDEMPOTENCY_ERRORS,
)
STAFF_ACTION_ERRORS = (
    "unauthorized",
    "refund_not_found",
    "forbidden",
    "refund_state_changed",
    *IDEMPOTENCY_ERRORS,
)


# --- Shapes -----------------------------------------------------------------------------------


class RefusalOut(Schema):
    code: str
    message: str


class TicketQuoteOut(Schema):
    id: str
    serial: str
    seat: str | None = Field(None, description="The seat code; null for general admission.")
    tier: str
    tier_name: str
    price: MoneyOut
    fee: MoneyOut
    amount: MoneyOut = Field(..., description="What comes back for this ticket: price − fee.")
    refundable: bool
    refusal: RefusalOut | None = Field(None, description="Why it cannot be refunded now.")


class QuoteOut(Schema):
    order: str
    refundable: bool = Field(..., description="Every ticket quoted may be refunded now.")
    needs_approval: bool = Field(..., description="Staff approve the request before it is paid.")
    fee_percent: str | None = Field(None, description="The rule's fee now; null: no refunds.")
    rule: list[str] = Field(..., description="The refund rule, as sentences to show.")
    gross: MoneyOut
    fee: MoneyOut
    amount: MoneyOut = Field(..., description="What the refund of these tickets gives back.")
    tickets: list[TicketQuoteOut]


class RefundIn(Schema):
    tickets: list[str] | None = Field(
        None,
        max_length=100,
        description="Ticket ids or serials of this order; omitted: every valid ticket.",
    )
    reason: str = Field("", max_length=200)


class StaffRefundIn(Schema):
    tickets: list[str] | None = Field(None, max_length=100)
    reason: str = Field(..., min_length=1, max_length=200, description="Why (audited).")
    waive_fee: bool = Field(False, description="Give back the full price.")


class RejectIn(Schema):
    reason: str = Field(..., min_length=1, max_length=200, description="Shown to the customer.")


class RefundTicketOut(Schema):
    id: str
    serial: str
    seat: str | None
    price: MoneyOut
    fee: MoneyOut


class RefundStepOut(Schema):
    state: str
    label: str
    reached: bool
    current: bool


class RefundHistoryOut(Schema):
    from_state: str
    to_state: str
    at: str
    note: str


class RefundOut(Schema):
    id: str
    number: str = Field(..., description="The refund request number the provider sees.")
    order: str
    order_code: str
    kind: str = Field(
        ..., description="`customer`, `staff`, `cancellation`, `exchange` or `waitlist`."
    )
    state: str = Field(
        ...,
        description="`requested`, `approved`, `processing`, `succeeded`, `failed` or `rejected`.",
    )
    state_label: str
    gross: MoneyOut
    fee: MoneyOut
    amount: MoneyOut
    reason: str
    created_at: str
    succeeded_at: str | None
    tickets: list[RefundTicketOut]
    progress: list[RefundStepOut]
    history: list[RefundHistoryOut]
    attempts: int | None = Field(None, description="Staff only: provider attempts.")
    last_error: str | None = Field(None, description="Staff only: the provider's last error.")


class RefundPage(Page[RefundOut]):
    pass


class RefundListQuery(PageQuery):
    as_staff: bool = Field(
        False, description="Staff: the refunds of your organizers instead of your own."
    )
    state: str | None = Field(None, max_length=10, description="Only refunds in this state.")


class QuoteQuery(Schema):
    tickets: list[str] = Field(
        default_factory=list, description="Ticket ids or serials; none: every valid ticket."
    )


# --- Filling them -----------------------------------------------------------------------------


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    money = Money(Decimal(amount), currency).quantized()
    return {"amount": str(money.amount), "currency": money.currency}


def quote_out(order: Order, quote: Quote) -> dict[str, Any]:
    currency = quote.currency
    return {
        "order": order.public_id,
        "refundable": quote.ok,
        "needs_approval": quote.needs_approval,
        "fee_percent": None if quote.fee_percent is None else str(quote.fee_percent),
        "rule": quote.rule_lines,
        "gross": _money(quote.gross.amount, currency),
        "fee": _money(quote.fee.amount, currency),
        "amount": _money(quote.amount.amount, currency),
        "tickets": [
            {
                "id": item.ticket.public_id,
                "serial": item.ticket.serial,
                "seat": item.ticket.seat.code if item.ticket.seat is not None else None,
                "tier": item.ticket.tier.code,
                "tier_name": item.ticket.tier.tr("name"),
                "price": _money(item.gross, currency),
                "fee": _money(item.fee, currency),
                "amount": _money(item.amount, currency),
                "refundable": not item.refusal,
                "refusal": (
                    {"code": item.refusal, "message": item.refusal_message}
                    if item.refusal
                    else None
                ),
            }
            for item in quote.items
        ],
    }


#: History notes the customer sees: their own reason, and why staff refused.
CUSTOMER_NOTES = frozenset({Refund.State.REQUESTED, Refund.State.REJECTED})


def refund_out(refund: Refund, *, staff: bool = False) -> dict[str, Any]:
    """A refund with its tickets, progress and history (prefetched by the selectors)."""
    currency = refund.currency
    labels = dict(Refund.State.choices)
    return {
        "id": refund.public_id,
        "number": refund.number,
        "order": refund.order.public_id,
        "order_code": refund.order.code,
        "kind": refund.kind,
        "state": refund.state,
        "state_label": str(labels[refund.state]),
        "gross": _money(refund.gross_amount, currency),
        "fee": _money(refund.fee_amount, currency),
        "amount": _money(refund.amount, currency),
        "reason": refund.reason,
        "created_at": utc_iso(refund.created_at),
        "succeeded_at": utc_iso(refund.succeeded_at),
        "tickets": [
            {
                "id": item.ticket.public_id,
                "serial": item.ticket.serial,
                "seat": item.ticket.seat.code if item.ticket.seat is not None else None,
                "price": _money(item.gross_amount, currency),
                "fee": _money(item.fee_amount, currency),
            }
            for item in refund.items.all()
        ],
        "progress": [
            {"state": state, "label": label, "reached": reached, "current": current}
            for state, label, reached, current in refund_progress(refund)
        ],
        "history": [
            {
                "from_state": entry.from_state,
                "to_state": entry.to_state,
                "at": utc_iso(entry.at),
                "note": entry.note if staff or entry.to_state in CUSTOMER_NOTES else "",
            }
            for entry in refund.history.all()
        ],
        "attempts": refund.attempts if staff else None,
        "last_error": refund.last_error if staff else None,
    }


# --- Who is asking ----------------------------------------------------------------------------


def _signed_in(request: HttpRequest) -> User:
    user = request_customer(request)
    if user is None:
        error = DomainError("unauthorized", _("Sign in first."))
        error.status = 401
        raise error
    return user


def _tickets(order: Order, ids: list[str] | None) -> list[Ticket] | None:
    """The chosen tickets of `order` (None: every valid ticket); an id that is not one of the
    order's tickets is `refund_tickets_invalid`."""
    if ids is None:
        return None
    if len(set(ids)) != len(ids):
        raise DomainError("refund_tickets_invalid", _("Choose the tickets to refund, each once."))
    tickets = order_tickets(order, ids=ids)
    if len(tickets) != len(ids) or not tickets:
        raise DomainError(
            "refund_tickets_invalid",
            _("Some of these tickets do not belong to this order."),
            {"tickets": ids},
        )
    return tickets


def _own_refund(request: HttpRequest, refund_id: str) -> Refund:
    return refund_get_for_buyer(
        public_id=refund_id,
        customer=request_customer(request),
        holder_key=holder_key(request),
        granted=granted_order_ids(request.session),
    )


def _staff_order(request: HttpRequest, order_id: str) -> Order:
    order = orders_search_for_staff(user=_signed_in(request)).filter(public_id=order_id).first()
    if order is None:
        raise NotFound("order", _("No such order."))
    return order


def _staff_refund(request: HttpRequest, refund_id: str) -> Refund:
    return refund_get_for_staff(public_id=refund_id, user=_signed_in(request))


# --- Customers --------------------------------------------------------------------------------


@router.get(
    "/orders/{order_id}/refund-quote",
    response={200: QuoteOut, 400: ErrorOut, 404: ErrorOut},
    summary="What a refund would give back",
    description=(
        "The refund rule in force and, ticket by ticket, the price, the fee and what comes "
        "back if the tickets (`?tickets=<id or serial>&tickets=…`; none: every valid ticket) "
        "were refunded now; a ticket that cannot be refunded says why (`refusal`). Nothing "
        "is written." + errors_doc(REFUND_ERRORS, ("order_not_found", "refund_tickets_invalid"))
    ),
)
def refunds_quote(request: HttpRequest, order_id: str, query: Query[QuoteQuery]) -> dict[str, Any]:
    order = own_order(request, order_id, details=False)
    tickets = _tickets(order, query.tickets or None)
    return quote_out(order, refund_quote(order=order, tickets=tickets))


@router.post(
    "/orders/{order_id}/refunds",
    response={201: RefundOut, **MUTATION_RESPONSES},
    summary="Ask for a refund",
    description=(
        "Refunds some (`tickets`) or all valid tickets of a paid order under the refund rule, "
        "exactly as the quote said. Approved at once unless the rule needs staff approval "
        "(`requested`); an approved refund is paid back through the payment that paid the "
        "order (`processing` → `succeeded`; the provider is retried with backoff). The "
        "tickets stop working and their seats go back on sale when it is approved."
        + errors_doc(REFUND_ERRORS, REQUEST_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def refunds_request(
    request: HttpRequest, order_id: str, payload: RefundIn
) -> Status | HttpResponse:
    csrf_check(request)

    def ask() -> tuple[int, dict[str, Any]]:
        order = own_order(request, order_id, details=False)
        customer = request_customer(request)
        require_refund_requester(order, customer)
        refund = refund_request(
            order=order,
            tickets=_tickets(order, payload.tickets),
            actor=customer,
            kind=Refund.Kind.CUSTOMER,
            reason=payload.reason.strip(),
        )
        return 201, refund_out(_own_refund(request, refund.public_id))

    return run_idempotent(request, ask)


@router.get(
    "/orders/{order_id}/refunds",
    response={200: list[RefundOut], 404: ErrorOut},
    summary="An order's refunds",
    description="Newest first, each with its progress."
    + errors_doc(REFUND_ERRORS, ("order_not_found",)),
)
def refunds_of_order(request: HttpRequest, order_id: str) -> list[dict[str, Any]]:
    order = own_order(request, order_id, details=False)
    return [refund_out(refund) for refund in refunds_for_order(order)]


@router.get(
    "/refunds",
    response={200: RefundPage, 400: ErrorOut, 401: ErrorOut},
    summary="Your refunds (staff: your organizers' refunds)",
    description=(
        "The signed-in customer's refunds, newest first; with `as_staff=true` the refunds of "
        "the organizers where you may view orders, optionally in one `state` (e.g. "
        "`requested`: waiting for approval, `failed`: to retry)."
        + errors_doc(REFUND_ERRORS, ("unauthorized", "invalid_input"))
    ),
)
def refunds_list(request: HttpRequest, query: Query[RefundListQuery]) -> dict[str, Any]:
    user = _signed_in(request)
    refunds = refunds_for_staff(user=user) if query.as_staff else refunds_for_customer(user)
    if query.state:
        refunds = refunds.filter(state=query.state)
    rows, count, has_next = paginate(refunds, query.page, query.page_size)
    return page_body(
        [refund_out(refund, staff=query.as_staff) for refund in rows],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


@router.get(
    "/refunds/{refund_id}",
    response={200: RefundOut, 404: ErrorOut},
    summary="One refund and its progress",
    description=(
        "With its tickets, its progress (`requested` → `approved` → `processing` → "
        "`succeeded`, or `rejected` / `failed`) and its history. Staff of the organizer see "
        "it too, with the provider's attempts and last error."
        + errors_doc(REFUND_ERRORS, ("refund_not_found",))
    ),
)
def refunds_detail(request: HttpRequest, refund_id: str) -> dict[str, Any]:
    try:
        return refund_out(_own_refund(request, refund_id))
    except NotFound:
        user = request_customer(request)
        if user is None:
            raise
        return refund_out(refund_get_for_staff(public_id=refund_id, user=user), staff=True)


# --- Staff ------------------------------------------------------------------------------------


@router.post(
    "/orders/{order_id}/refunds/on-behalf",
    response={201: RefundOut, **MUTATION_RESPONSES},
    summary="Staff: refund on the customer's behalf",
    description=(
        "Refunds some (`tickets`) or all valid tickets of an order at your organizer, with a "
        "`reason` (audited). Staff are not bound by the rule's time limit or channels, need no "
        "approval and may waive the fee; a used ticket is never refunded. Needs the refund "
        "permission (`forbidden` otherwise)."
        + errors_doc(REFUND_ERRORS, ("unauthorized", "refund_reason_required", *REQUEST_ERRORS))
    ),
    openapi_extra=idempotency_openapi(),
)
def refunds_on_behalf(
    request: HttpRequest, order_id: str, payload: StaffRefundIn
) -> Status | HttpResponse:
    csrf_check(request)

    def refund() -> tuple[int, dict[str, Any]]:
        order = _staff_order(request, order_id)
        done = refund_request(
            order=order,
            tickets=_tickets(order, payload.tickets),
            actor=_signed_in(request),
            kind=Refund.Kind.STAFF,
            reason=payload.reason.strip(),
            waive_fee=payload.waive_fee,
        )
        return 201, refund_out(_staff_refund(request, done.public_id), staff=True)

    return run_idempotent(request, refund)


def _staff_action(request: HttpRequest, refund_id: str, act: Any) -> Status | HttpResponse:
    csrf_check(request)

    def run() -> tuple[int, dict[str, Any]]:
        refund = _staff_refund(request, refund_id)
        act(refund, _signed_in(request))
        return 200, refund_out(_staff_refund(request, refund_id), staff=True)

    return run_idempotent(request, run)


@router.post(
    "/refunds/{refund_id}/approve",
    response={200: RefundOut, **MUTATION_RESPONSES},
    summary="Staff: approve a requested refund",
    description=(
        "The tickets stop working, their seats go back on sale and the money is paid back."
        + errors_doc(
            REFUND_ERRORS,
            (*STAFF_ACTION_ERRORS, "refund_exceeds_payment", "ticket_void", "ticket_used"),
        )
    ),
    openapi_extra=idempotency_openapi(),
)
def refunds_approve(request: HttpRequest, refund_id: str) -> Status | HttpResponse:
    return _staff_action(
        request, refund_id, lambda refund, user: refund_approve(refund=refund, actor=user)
    )


@router.post(
    "/refunds/{refund_id}/reject",
    response={200: RefundOut, **MUTATION_RESPONSES},
    summary="Staff: reject a requested refund",
    description=(
        "With a `reason` the customer sees; the tickets stay valid and may be asked for again."
        + errors_doc(REFUND_ERRORS, (*STAFF_ACTION_ERRORS, "invalid_input"))
    ),
    openapi_extra=idempotency_openapi(),
)
def refunds_reject(
    request: HttpRequest, refund_id: str, payload: RejectIn
) -> Status | HttpResponse:
    reason = payload.reason.strip()
    return _staff_action(
        request,
        refund_id,
        lambda refund, user: refund_reject(refund=refund, actor=user, reason=reason),
    )


@router.post(
    "/refunds/{refund_id}/retry",
    response={200: RefundOut, **MUTATION_RESPONSES},
    summary="Staff: retry a failed refund",
    description=(
        "Asks the provider again with the same refund number, so a refund the provider did "
        "make meanwhile is not made twice." + errors_doc(REFUND_ERRORS, STAFF_ACTION_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def refunds_retry(request: HttpRequest, refund_id: str) -> Status | HttpResponse:
    return _staff_action(
        request, refund_id, lambda refund, user: refund_retry(refund=refund, actor=user)
    )
