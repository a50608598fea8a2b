"""The waitlist (候补): join a sold-out session's waitlist, list your entries with their place in
the queue, leave it.

Every endpoint needs a signed-in customer (401 `unauthorized`). The rules live in
`aftersales.services.waitlist` (see docs/aftersales.md); this module parses, calls and renders.
Mutating calls check the CSRF token when a session cookie comes with them and take an optional
`Idempotency-Key`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from piaowu.accounts.models import User
from piaowu.aftersales.models import WaitlistEntry
from piaowu.aftersales.selectors.waitlist import (
    waitlist_entries_for_customer,
    waitlist_entry_get_for_customer,
    waitlist_position,
)
from piaowu.aftersales.services.waitlist import waitlist_cancel, waitlist_join
from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.holds import SIGNED_IN_ERRORS, csrf_check, errors_doc, request_customer
from piaowu.api.v1.orders import utc_iso
from piaowu.api.v1.schemas import MoneyOut
from piaowu.catalog.selectors import sales_channel_for, session_get
from piaowu.core.errors import DomainError
from piaowu.core.money import Money

router = Router(tags=["waitlist"])

JOIN_ERRORS: dict[str, str] = {
    **SIGNED_IN_ERRORS,
    "session_not_found": "404 — no visible session with this id.",
    "waitlist_off": "400 — the session has no waitlist.",
    "waitlist_tier_invalid": "400 — the session sells no active tier with this code "
    "(details.tier).",
    "sales_closed": "400 — the session is not on sale (details.sales_state).",
    "waitlist_closed": "400 — the waitlist closed (details.closed_at).",
    "invalid_quantity": "400 — quantity below the tier's minimum or over the limit "
    "(details.minimum, details.limit).",
    "waitlist_deadline_invalid": "400 — `wait_until` is less than 30 minutes away or after "
    "the waitlist closes (details.latest).",
    "waitlist_not_sold_out": "400 — enough tickets are on sale; buy them directly "
    "(details.available).",
    "waitlist_already_joined": "409 — you have an open entry for this session (details.entry).",
    "invalid_phone": "400 — prepaid: `contact_phone` is not valid (details.field).",
    "invalid_email": "400 — prepaid: `contact_email` is not valid (details.field).",
    "channel_not_found": "404 — the organizer sells nothing online.",
    "channel_inactive": "400 — the organizer's online sales channel is closed.",
    "deposit_amount_invalid": "400 — prepaid: the tier is free; there is nothing to pay.",
    **IDEMPOTENCY_ERRORS,
}
CANCEL_ERRORS: dict[str, str] = {
    **SIGNED_IN_ERRORS,
    "waitlist_entry_not_found": "404 — no waitlist entry with this id is yours.",
    "waitlist_not_open": "409 — the entry was already fulfilled, cancelled, refunded or "
    "expired (details.state).",
    "waitlist_state_changed": "409 — the entry changed meanwhile (e.g. its deposit was just "
    "paid); reload it (details.state).",
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


# --- Shapes -----------------------------------------------------------------------------------


class WaitlistJoinIn(Schema):
    tier: str = Field(..., min_length=1, max_length=40, description="The tier's code.")
    quantity: int = Field(
        ..., ge=-1000, le=1000, description="How many tickets (1 to the per-customer limit)."
    )
    contact_phone: str = Field("", max_length=32, description="Prepaid: for the deposit order.")
    contact_email: str = Field("", max_length=254, description="Prepaid: for the deposit order.")
    wait_until: dt.datetime | None = Field(
        None,
        description="Stop waiting earlier than the waitlist closes (ISO 8601 with an offset).",
    )


class WaitlistSessionOut(Schema):
    id: str
    event_title: str
    starts_at: str
    venue: str


class WaitlistTierOut(Schema):
    code: str
    name: str


class WaitlistOrderOut(Schema):
    id: str
    code: str
    state: str
    total: MoneyOut


class WaitlistOfferOut(Schema):
    hold: str = Field(..., description="The hold kept for you (`GET /holds/{id}`).")
    expires_at: str
    checkout_url: str = Field(..., description="The page to check the offer out on.")


class WaitlistEntryOut(Schema):
    id: str
    session: WaitlistSessionOut
    tier: WaitlistTierOut
    quantity: int
    mode: str = Field(..., description="`offer` or `prepaid`.")
    state: str = Field(
        ...,
        description="`awaiting_payment` (prepaid: pay the deposit order), `waiting`, `offered`, "
        "`fulfilled`, `expired`, `cancelled` or `refunded`.",
    )
    position: int | None = Field(
        None, description="1 for the head of the queue; null once the entry is closed."
    )
    unit_price: MoneyOut
    deadline: str = Field(..., description="Waits until then at the latest.")
    deposit_order: WaitlistOrderOut | None = Field(
        None,
        description="Prepaid: the order you pay up front (no tickets; pay it with "
        "`POST /orders/{id}/payments`).",
    )
    offer: WaitlistOfferOut | None = Field(None, description="Offer mode, while offered.")
    order: WaitlistOrderOut | None = Field(None, description="The order with your tickets.")
    created_at: str
    fulfilled_at: str | None


class WaitlistPage(Page[WaitlistEntryOut]):
    pass


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    money = Money(Decimal(amount), currency).quantized()
    return {"amount": str(money.amount), "currency": money.currency}


def _order_out(order: Any) -> dict[str, Any] | None:
    if order is None:
        return None
    return {
        "id": order.public_id,
        "code": order.code,
        "state": order.state,
        "total": _money(order.total_amount, order.currency),
    }


def entry_out(entry: WaitlistEntry) -> dict[str, Any]:
    session = entry.session
    offer = None
    if entry.state == WaitlistEntry.State.OFFERED and entry.offer_hold is not None:
        offer = {
            "hold": entry.offer_hold.public_id,
            "expires_at": utc_iso(entry.offer_expires_at),
            "checkout_url": reverse("web:waitlist_checkout", args=[entry.public_id]),
        }
    return {
        "id": entry.public_id,
        "session": {
            "id": session.public_id,
            "event_title": session.event.tr("title"),
            "starts_at": utc_iso(session.starts_at),
            "venue": session.venue.tr("name"),
        },
        "tier": {"code": entry.tier.code, "name": entry.tier.tr("name")},
        "quantity": entry.quantity,
        "mode": entry.mode,
        "state": entry.state,
        "position": waitlist_position(entry),
        "unit_price": _money(entry.unit_price, entry.currency),
        "deadline": utc_iso(entry.deadline),
        "deposit_order": _order_out(entry.deposit_order),
        "offer": offer,
        "order": _order_out(entry.order),
        "created_at": utc_iso(entry.created_at),
        "fulfilled_at": utc_iso(entry.fulfilled_at),
    }


def _signed_in(request: HttpRequest) -> User:
    customer = request_customer(request)
    if customer is None:
        error = DomainError("unauthorized", _("Sign in first."))
        error.status = 401
        raise error
    return customer


# --- Endpoints --------------------------------------------------------------------------------


@router.post(
    "/sessions/{session_id}/waitlist",
    response={201: WaitlistEntryOut, **MUTATION_RESPONSES},
    summary="Join a sold-out session's waitlist",
    description=(
        "For a tier with fewer tickets left than `quantity`, in the session's waitlist mode. "
        "*Offer*: when tickets come back you get a hold for a while (`offer`) and a message; "
        "check it out before it expires or it passes to the next in line. *Prepaid*: the "
        "entry awaits payment of `deposit_order` (quantity × price); once paid, tickets that "
        "come back are bought for you in queue order; not fulfilled by `deadline` → refunded "
        "in full. One open entry per session." + errors_doc(JOIN_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def waitlist_join_endpoint(
    request: HttpRequest, session_id: str, payload: WaitlistJoinIn
) -> Status | HttpResponse:
    csrf_check(request)

    def join() -> tuple[int, dict[str, Any]]:
        customer = _signed_in(request)
        session = session_get(session_id)
        tier = next(
            (t for t in session.price_tiers.all() if t.code == payload.tier and t.is_active), None
        )
        if tier is None:
            raise DomainError(
                "waitlist_tier_invalid",
                _("This ticket type is not sold for this session."),
                {"tier": payload.tier},
            )
        entry = waitlist_join(
            session=session,
            tier=tier,
            customer=customer,
            quantity=payload.quantity,
            channel=sales_channel_for(session),
            contact_phone=payload.contact_phone,
            contact_email=payload.contact_email,
            wait_until=payload.wait_until,
        )
        entry = waitlist_entry_get_for_customer(public_id=entry.public_id, customer=customer)
        return 201, entry_out(entry)

    return run_idempotent(request, join)


@router.get(
    "/waitlist",
    response={200: WaitlistPage, 400: ErrorOut, 401: ErrorOut},
    summary="Your waitlist entries",
    description="Newest first, in every state, with your place in each queue."
    + errors_doc(SIGNED_IN_ERRORS, ("unauthorized", "invalid_input")),
)
def waitlist_list(request: HttpRequest, query: Query[PageQuery]) -> dict[str, Any]:
    rows, count, has_next = paginate(
        waitlist_entries_for_customer(_signed_in(request)), query.page, query.page_size
    )
    return page_body(
        [entry_out(row) for row in rows],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


@router.get(
    "/waitlist/{entry_id}",
    response={200: WaitlistEntryOut, 401: ErrorOut, 404: ErrorOut},
    summary="One of your waitlist entries",
    description="Its state and place in the queue."
    + errors_doc(CANCEL_ERRORS, ("unauthorized", "waitlist_entry_not_found")),
)
def waitlist_detail(request: HttpRequest, entry_id: str) -> dict[str, Any]:
    customer = _signed_in(request)
    return entry_out(waitlist_entry_get_for_customer(public_id=entry_id, customer=customer))


@router.post(
    "/waitlist/{entry_id}/cancel",
    response={200: WaitlistEntryOut, **MUTATION_RESPONSES},
    summary="Leave the waitlist",
    description=(
        "While the entry is open. Prepaid: a paid deposit is refunded in full (an unpaid "
        "deposit order is cancelled). Offer: tickets held for you are given back."
        + errors_doc(CANCEL_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def waitlist_cancel_endpoint(request: HttpRequest, entry_id: str) -> Status | HttpResponse:
    csrf_check(request)

    def cancel() -> tuple[int, dict[str, Any]]:
        customer = _signed_in(request)
        entry = waitlist_entry_get_for_customer(public_id=entry_id, customer=customer)
        waitlist_cancel(entry=entry, actor=customer)
        entry = waitlist_entry_get_for_customer(public_id=entry_id, customer=customer)
        return 200, entry_out(entry)

    return run_idempotent(request, cancel)
