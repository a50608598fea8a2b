"""POST /api/v1/sessions/{id}/holds, GET/DELETE /api/v1/holds/{id}, POST …/extend.

A hold belongs to the caller's *holder key*: `user:<id>` when signed in, otherwise an anonymous
key kept in the Django session (created with the first hold). Someone else's hold answers 404
`hold_not_found`, exactly like a hold that does not exist. The rules live in
`piaowu.inventory.services`; this module only parses, calls and renders. The mutating calls
check Django's CSRF token (`X-CSRFToken` header) when a session cookie names the holder, and
take an optional `Idempotency-Key` (`piaowu.api.idempotency`). The orders API reuses the
caller helpers below (`holder_key`, `own_hold`, `csrf_check`, `request_customer`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status
from ninja.utils import check_csrf
from pydantic import model_validator

from piaowu.accounts.models import User
from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import (
    IDEMPOTENCY_ERRORS,
    idempotency_openapi,
    run_idempotent,
)
from piaowu.api.v1.schemas import MoneyOut
from piaowu.catalog.models import Session
from piaowu.catalog.selectors import session_get_for_sale
from piaowu.core import clock
from piaowu.core.errors import NotFound, PermissionDenied
from piaowu.core.money import Money
from piaowu.inventory.holders import HOLDER_SESSION_KEY, holder_key_for, new_anonymous_key
from piaowu.inventory.models import Hold
from piaowu.inventory.selectors import hold_for_holder
from piaowu.inventory.services import (
    hold_best_available,
    hold_extend,
    hold_quantity,
    hold_release,
    hold_seats,
)

router = Router(tags=["holds"])

MAX_SEATS_PER_REQUEST = 50
MAX_QUANTITY = 100

# Error codes of each endpoint, for the OpenAPI descriptions (stable; see inventory.services).
HOLD_ERRORS: dict[str, str] = {
    "session_not_found": "404 — no visible session with this id.",
    "invalid_input": "400 — the body is not one of the three forms (details.fields).",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "sales_closed": "400 — not on sale now (details.sales_state).",
    "not_reserved_seating": "400 — `seats` for a session without a seat map.",
    "not_quota_session": "400 — `tier`+`quantity` for a reserved-seating session.",
    "no_seats": "400 — `seats` is empty.",
    "seat_not_in_session": "400 — unknown seat codes (details.seats).",
    "seat_blocked": "400 — seats not for sale (details.seats).",
    "seat_not_for_sale": "400 — seats without a price tier (details.seats).",
    "seat_taken": "400 — someone else holds or bought these seats; nothing was held "
    "(details.seats names the taken ones).",
    "couple_pair_required": "400 — couple seats without their partner (details.seats).",
    "stranded_seat": "400 — the choice would leave a single empty seat (details.seats).",
    "over_limit": "400 — more than a tier's per-order or the per-customer limit "
    "(details.limit, details.requested).",
    "under_minimum": "400 — fewer than a tier's per-order minimum (details.minimum).",
    "invalid_quantity": "400 — quantity out of range.",
    "tier_required": "400 — best available for general admission needs a tier.",
    "tier_not_found": "400 — no active tier with this code (details.tier).",
    "not_enough_seats": "400 — no `quantity` adjacent seats left (details.quantity).",
    "sold_out": "400 — not enough admissions left (details.available).",
}
HOLD_LIFE_ERRORS: dict[str, str] = {
    "hold_not_found": "404 — no hold with this id is yours.",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "hold_expired": "400 — the hold expired or was released (details.hold).",
    "hold_converted": "400 — the hold was already bought.",
    "already_extended": "400 — a hold can be extended only once.",
}
HOLD_ERRORS.update(IDEMPOTENCY_ERRORS)
HOLD_LIFE_ERRORS.update(IDEMPOTENCY_ERRORS)


#: What any signed-in customer's POST may answer before its own rules run.
SIGNED_IN_ERRORS: dict[str, str] = {
    "unauthorized": "401 — sign in first.",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "invalid_input": "400 — the body is not valid (details.fields).",
}


def errors_doc(codes: dict[str, str], only: tuple[str, ...] | None = None) -> str:
    """The "Errors:" list of an endpoint's OpenAPI description."""
    items = [(c, t) for c, t in codes.items() if only is None or c in only]
    return "\n\nErrors:\n\n" + "\n".join(f"- `{code}`: {text}" for code, text in items)


# --- Shapes -----------------------------------------------------------------------------------


class BestAvailableIn(Schema):
    quantity: int = Field(..., ge=1, le=MAX_QUANTITY)
    tier: str | None = Field(None, max_length=40)


class HoldIn(Schema):
    """Exactly one of: `seats`; `best_available`; `tier` with `quantity`."""

    seats: list[str] | None = Field(
        None, min_length=1, max_length=MAX_SEATS_PER_REQUEST, description="Seat codes."
    )
    best_available: BestAvailableIn | None = None
    tier: str | None = Field(None, max_length=40, description="Tier code (GA / daily).")
    quantity: int | None = Field(None, ge=1, le=MAX_QUANTITY)

    @model_validator(mode="after")
    def one_form(self) -> HoldIn:
        forms = [
            self.seats is not None,
            self.best_available is not None,
            self.tier is not None or self.quantity is not None,
        ]
        if sum(forms) != 1:
            raise ValueError("Send exactly one of: seats; best_available; tier with quantity.")
        if forms[2] and (self.tier is None or self.quantity is None):
            raise ValueError("tier and quantity go together.")
        if self.seats is not None and any(len(code) > 40 for code in self.seats):
            raise ValueError("A seat code has at most 40 characters.")
        return self


class HoldItemOut(Schema):
    seat: str | None
    tier: str
    tier_name: str
    unit_price: MoneyOut
    quantity: int


class HoldOut(Schema):
    id: str
    session: str
    status: str = Field(..., description="`active`, `expired`, `released` or `converted`.")
    expires_at: str
    extended: bool
    items: list[HoldItemOut]
    total: MoneyOut


def hold_out(hold: Hold) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    total: Money | None = None
    for item in sorted(hold.items.all(), key=lambda i: (i.tier.sort_order, i.pk)):
        unit = Money(Decimal(item.tier.price), item.tier.currency).quantized()
        line = Money(unit.amount * item.quantity, unit.currency)
        total = line if total is None else total + line
        items.append(
            {
                "seat": item.seat.code if item.seat is not None else None,
                "tier": item.tier.code,
                "tier_name": item.tier.tr("name"),
                "unit_price": {"amount": str(unit.amount), "currency": unit.currency},
                "quantity": item.quantity,
            }
        )
    total = (total or Money.of(0)).quantized()
    status = hold.status
    if status == Hold.Status.ACTIVE and hold.expires_at < clock.now():
        status = "expired"
    return {
        "id": hold.public_id,
        "session": hold.session.public_id,
        "status": status,
        "expires_at": hold.expires_at.isoformat().replace("+00:00", "Z"),
        "extended": hold.extended,
        "items": items,
        "total": {"amount": str(total.amount), "currency": total.currency},
    }


# --- The caller -------------------------------------------------------------------------------


def request_customer(request: HttpRequest) -> User | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, User) and user.is_authenticated else None


def holder_key(request: HttpRequest, *, create: bool = False) -> str:
    """`user:<id>` when signed in; else the anonymous key of the Django session ("" if none
    yet and not `create`)."""
    return holder_key_for(user=request_customer(request), session=request.session, create=create)


def csrf_check(request: HttpRequest) -> None:
    """Browsers (a session cookie names the holder) must send the CSRF token; a client
    without cookies holds for a fresh anonymous key, so a forged request could not touch
    anyone's holds."""
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return
    if check_csrf(request) is not None:
        raise PermissionDenied(_("The security token is missing or wrong; reload the page."))


def own_hold(request: HttpRequest, hold_id: str) -> Hold:
    key = holder_key(request)
    hold = hold_for_holder(hold_id, key) if key else None
    if hold is None:
        raise NotFound("hold", _("No such reservation."), {"hold": hold_id})
    return hold


# --- Endpoints --------------------------------------------------------------------------------


@router.post(
    "/sessions/{session_id}/holds",
    response={
        201: HoldOut,
        400: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        422: ErrorOut,
    },
    summary="Hold seats or admissions",
    description=(
        'The body is one of `{"seats": ["A-1-5", …]}` (these seats, all or none), '
        '`{"best_available": {"quantity": n, "tier": code or null}}` (adjacent seats, central '
        'and near the front) or `{"tier": code, "quantity": n}` (general admission / daily). '
        "Answers 201 with the hold; it expires at `expires_at` unless bought first."
        + errors_doc(HOLD_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def holds_create(request: HttpRequest, session_id: str, payload: HoldIn) -> Status | HttpResponse:
    csrf_check(request)

    def create() -> tuple[int, dict[str, Any]]:
        session = session_get_for_sale(session_id)
        key = holder_key(request)
        # A new anonymous key is kept in the Django session only if the hold succeeds.
        fresh = not key
        if fresh:
            key = new_anonymous_key()
        hold = _hold(session, payload, key, request_customer(request), fresh=fresh)
        if fresh:
            request.session[HOLDER_SESSION_KEY] = key
        # Rendered from the hold in hand (its items are in memory): nothing is read back.
        return 201, hold_out(hold)

    # The key row is written in the hold's own transaction.
    return run_idempotent(request, create, atomic=True)


def _hold(
    session: Session, payload: HoldIn, key: str, customer: User | None, *, fresh: bool = False
) -> Hold:
    if payload.seats is not None:
        return hold_seats(
            session=session,
            seat_codes=payload.seats,
            holder_key=key,
            customer=customer,
            fresh_holder=fresh,
        )
    if payload.best_available is not None:
        return hold_best_available(
            session=session,
            quantity=payload.best_available.quantity,
            tier_code=payload.best_available.tier or None,
            holder_key=key,
            customer=customer,
            fresh_holder=fresh,
        )
    assert payload.tier is not None and payload.quantity is not None  # by the validator
    return hold_quantity(
        session=session,
        tier_code=payload.tier,
        quantity=payload.quantity,
        holder_key=key,
        customer=customer,
        fresh_holder=fresh,
    )


@router.get(
    "/holds/{hold_id}",
    response={200: HoldOut, 404: ErrorOut},
    summary="One of your holds",
    description="Your hold with its items, total and expiry."
    + errors_doc(HOLD_LIFE_ERRORS, ("hold_not_found",)),
)
def holds_detail(request: HttpRequest, hold_id: str) -> dict[str, Any]:
    return hold_out(own_hold(request, hold_id))


@router.post(
    "/holds/{hold_id}/extend",
    response={
        200: HoldOut,
        400: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        422: ErrorOut,
    },
    summary="Extend a hold once",
    description="Adds ten minutes to an active, unexpired hold, once."
    + errors_doc(HOLD_LIFE_ERRORS),
    openapi_extra=idempotency_openapi(),
)
def holds_extend(request: HttpRequest, hold_id: str) -> Status | HttpResponse:
    csrf_check(request)

    def extend() -> tuple[int, dict[str, Any]]:
        hold = own_hold(request, hold_id)
        hold_extend(hold=hold)
        return 200, hold_out(hold)

    return run_idempotent(request, extend)


@router.delete(
    "/holds/{hold_id}",
    response={204: None, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut},
    summary="Release a hold",
    description="Gives the seats or admissions back at once; releasing again is harmless."
    + errors_doc(
        HOLD_LIFE_ERRORS, ("hold_not_found", "forbidden", "hold_converted", *IDEMPOTENCY_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def holds_release(request: HttpRequest, hold_id: str) -> Status | HttpResponse:
    csrf_check(request)

    def release() -> tuple[int, None]:
        hold_release(hold=own_hold(request, hold_id))
        return 204, None

    return run_idempotent(request, release)
