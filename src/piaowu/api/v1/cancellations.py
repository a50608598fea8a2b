"""Staff: cancel a session (and follow its bulk refund), reschedule a session.

Every endpoint needs a signed-in staff member holding `catalog.manage` at the session's
organizer: anonymous callers get 401 `unauthorized`, anyone else 403 `forbidden`; an unknown
session is 404 `session_not_found`. The rules live in `aftersales.services.cancellations` (see
docs/aftersales.md); this module parses, calls and renders. Mutating calls check the CSRF token
when a session cookie comes with them and take an optional `Idempotency-Key`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status

from piaowu.accounts.models import User
from piaowu.accounts.permissions import Perm, require_perm
from piaowu.aftersales.models import SessionCancellation, SessionReschedule
from piaowu.aftersales.selectors.cancellations import (
    CancellationProgress,
    cancellation_for_session,
    cancellation_progress,
    session_for_staff,
)
from piaowu.aftersales.services.cancellations import (
    DEFAULT_FREE_REFUND_DAYS,
    MAX_FREE_REFUND_DAYS,
    MAX_REASON_LENGTH,
    session_cancel,
    session_cancellation_run,
    session_reschedule,
)
from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.v1.holds import csrf_check, errors_doc, request_customer
from piaowu.api.v1.orders import utc_iso
from piaowu.api.v1.schemas import MoneyOut
from piaowu.catalog.models import Session
from piaowu.core.errors import DomainError, NotFound
from piaowu.core.money import Money

router = Router(tags=["cancellations (staff)"])

#: Orders one "resume now" call refunds at most (the job does the rest).
RESUME_LIMIT = 200

CANCELLATION_ERRORS: dict[str, str] = {
    "unauthorized": "401 — sign in as staff first.",
    "forbidden": "403 — you do not hold `catalog.manage` at the session's organizer (or a "
    "session cookie came without its CSRF token).",
    "session_not_found": "404 — no session with this id.",
    "cancellation_not_found": "404 — the session is not cancelled.",
    "invalid_input": "400 — the body is not valid (details.fields).",
    "reason_required": "400 — say why (customers are told; details.field).",
    "session_already_cancelled": "409 — the session is already cancelled.",
    "session_cancelled": "409 — a cancelled session cannot be rescheduled.",
    "session_changed": "409 — someone else cancelled or moved the session at the same moment.",
    "reschedule_in_past": "400 — the new start is not in the future (details.field).",
    "reschedule_ends_before_start": "400 — the new end is not after the new start (details.field).",
    "reschedule_unchanged": "400 — the session already takes place at these times.",
    "reschedule_before_sales_open": "400 — the new time is before the session's sales open "
    "(details.sales_open_at).",
    "invalid_free_refund_days": "400 — `free_refund_days` is not between 0 and details.max.",
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


class CancelIn(Schema):
    reason: str = Field(..., max_length=MAX_REASON_LENGTH, description="Why; every holder is told.")


class RescheduleIn(Schema):
    starts_at: dt.datetime = Field(
        ..., description="The new start; without an offset it is wall-clock time at the venue."
    )
    ends_at: dt.datetime = Field(..., description="The new end (same rule).")
    reason: str = Field(..., max_length=MAX_REASON_LENGTH, description="Why; holders are told.")
    free_refund_days: int = Field(
        DEFAULT_FREE_REFUND_DAYS,
        description=f"Holders may refund without a fee for this many days (0–"
        f"{MAX_FREE_REFUND_DAYS}; never past the new start).",
    )


class RefundCountOut(Schema):
    state: str = Field(
        ...,
        description="`approved`, `processing`, `succeeded`, `failed` (the provider gave "
        "up; staff retry it) …",
    )
    label: str
    count: int
    amounts: list[MoneyOut] = Field(..., description="Per currency.")


class FailedRefundOut(Schema):
    refund: str = Field(..., description="The refund number.")
    order: str = Field(..., description="The order code.")
    amount: MoneyOut
    attempts: int
    last_error: str


class StuckOrderOut(Schema):
    id: str
    code: str
    state: str


class CancellationOut(Schema):
    id: str
    session: str
    state: str = Field(..., description="`running` (refunding) or `done`.")
    reason: str
    requested_at: str
    finished_at: str | None
    orders_total: int = Field(..., description="Paid orders to refund: done + remaining.")
    orders_done: int
    orders_remaining: int
    orders_unpaid: int = Field(..., description="Orders awaiting payment not cancelled yet.")
    percent: int
    refunds: list[RefundCountOut]
    failed: list[FailedRefundOut] = Field(..., description="At most 50.")
    stuck: list[StuckOrderOut] = Field(
        ..., description="Orders still to refund, at most 50 (the job retries them)."
    )


class RescheduleOut(Schema):
    id: int
    session: str
    old_starts_at: str
    old_ends_at: str
    starts_at: str
    ends_at: str
    free_refund_until: str
    reason: str


# --- Filling them -----------------------------------------------------------------------------


def _money(value: Money) -> dict[str, str]:
    value = value.quantized()
    return {"amount": str(value.amount), "currency": value.currency}


def cancellation_out(progress: CancellationProgress) -> dict[str, Any]:
    cancellation = progress.cancellation
    return {
        "id": cancellation.public_id,
        "session": cancellation.session.public_id,
        "state": cancellation.state,
        "reason": cancellation.reason,
        "requested_at": utc_iso(cancellation.created_at),
        "finished_at": utc_iso(cancellation.finished_at),
        "orders_total": progress.total,
        "orders_done": progress.done,
        "orders_remaining": progress.remaining,
        "orders_unpaid": progress.unpaid,
        "percent": progress.percent,
        "refunds": [
            {
                "state": r.state,
                "label": r.label,
                "count": r.count,
                "amounts": [_money(m) for m in r.amounts],
            }
            for r in progress.refunds
        ],
        "failed": [
            {
                "refund": r.number,
                "order": r.order.code,
                "amount": _money(Money(r.amount, r.currency)),
                "attempts": r.attempts,
                "last_error": r.last_error,
            }
            for r in progress.failed
        ],
        "stuck": [{"id": o.public_id, "code": o.code, "state": o.state} for o in progress.stuck],
    }


def reschedule_out(reschedule: SessionReschedule) -> dict[str, Any]:
    return {
        "id": reschedule.pk,
        "session": reschedule.session.public_id,
        "old_starts_at": utc_iso(reschedule.old_starts_at),
        "old_ends_at": utc_iso(reschedule.old_ends_at),
        "starts_at": utc_iso(reschedule.new_starts_at),
        "ends_at": utc_iso(reschedule.new_ends_at),
        "free_refund_until": utc_iso(reschedule.free_refund_until),
        "reason": reschedule.reason,
    }


# --- The caller -------------------------------------------------------------------------------


def _manager(request: HttpRequest, session_id: str) -> tuple[User, Session]:
    """The signed-in user and the session, if they may manage its organizer's catalog."""
    user = request_customer(request)
    if user is None:
        error = DomainError("unauthorized", _("Sign in first."))
        error.status = 401
        raise error
    session = session_for_staff(session_id)
    require_perm(user, session.event.organizer_id, Perm.CATALOG_MANAGE)
    return user, session


def _cancellation_of(session: Session) -> SessionCancellation:
    cancellation = cancellation_for_session(session)
    if cancellation is None:
        raise NotFound(
            "cancellation", _("This session is not cancelled."), {"session": session.public_id}
        )
    return cancellation


# --- Endpoints --------------------------------------------------------------------------------


@router.post(
    "/sessions/{session_id}/cancellation",
    response={201: CancellationOut, **MUTATION_RESPONSES},
    summary="Cancel a session (staff)",
    description="Sales stop at once; orders awaiting payment are cancelled; every paid order is "
    "then refunded in full (no fee, whatever the refund rule) by a background job, in "
    "batches, resuming after any interruption. Every holder is told once. Answers the "
    "cancellation's progress."
    + errors_doc(
        CANCELLATION_ERRORS,
        (
            "unauthorized",
            "forbidden",
            "session_not_found",
            "invalid_input",
            "reason_required",
            "session_already_cancelled",
            *IDEMPOTENCY_ERRORS,
        ),
    ),
    openapi_extra=idempotency_openapi(),
)
def cancellation_create(
    request: HttpRequest, session_id: str, payload: CancelIn
) -> Status | HttpResponse:
    csrf_check(request)
    user, session = _manager(request, session_id)

    def cancel() -> tuple[int, Any]:
        cancellation = session_cancel(session=session, actor=user, reason=payload.reason)
        return 201, cancellation_out(cancellation_progress(cancellation))

    return run_idempotent(request, cancel)


@router.get(
    "/sessions/{session_id}/cancellation",
    response={200: CancellationOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
    summary="A cancellation's progress (staff)",
    description="Counted from the orders and refunds themselves: refunded, remaining, unpaid; "
    "refunds by state; refunds the provider gave up on; orders still to refund."
    + errors_doc(
        CANCELLATION_ERRORS,
        ("unauthorized", "forbidden", "session_not_found", "cancellation_not_found"),
    ),
)
def cancellation_get(request: HttpRequest, session_id: str) -> dict[str, Any]:
    _user, session = _manager(request, session_id)
    return cancellation_out(cancellation_progress(_cancellation_of(session)))


@router.post(
    "/sessions/{session_id}/cancellation/resume",
    response={200: CancellationOut, **MUTATION_RESPONSES},
    summary="Refund the next orders of a cancellation now (staff)",
    description=f"Runs the refunds at once for up to {RESUME_LIMIT} orders instead of waiting "
    "for the job (safe at any time, also while the job runs). Answers the progress."
    + errors_doc(
        CANCELLATION_ERRORS,
        ("unauthorized", "forbidden", "session_not_found", "cancellation_not_found"),
    ),
)
def cancellation_resume(request: HttpRequest, session_id: str) -> dict[str, Any]:
    csrf_check(request)
    _user, session = _manager(request, session_id)
    cancellation = _cancellation_of(session)
    session_cancellation_run(cancellation=cancellation, limit=RESUME_LIMIT)
    return cancellation_out(cancellation_progress(cancellation))


@router.post(
    "/sessions/{session_id}/reschedules",
    response={201: RescheduleOut, **MUTATION_RESPONSES},
    summary="Reschedule a session (staff)",
    description="Moves the session (its sales close moves with its start), moves the valid "
    "tickets' admission window, tells every holder, and lets holders refund without a fee "
    "for `free_refund_days`."
    + errors_doc(
        CANCELLATION_ERRORS,
        (
            "unauthorized",
            "forbidden",
            "session_not_found",
            "invalid_input",
            "reason_required",
            "session_cancelled",
            "session_changed",
            "reschedule_in_past",
            "reschedule_ends_before_start",
            "reschedule_unchanged",
            "reschedule_before_sales_open",
            "invalid_free_refund_days",
            *IDEMPOTENCY_ERRORS,
        ),
    ),
    openapi_extra=idempotency_openapi(),
)
def reschedule_create(
    request: HttpRequest, session_id: str, payload: RescheduleIn
) -> Status | HttpResponse:
    csrf_check(request)
    user, session = _manager(request, session_id)

    def reschedule() -> tuple[int, Any]:
        row = session_reschedule(
            session=session,
            new_starts_at=payload.starts_at,
            new_ends_at=payload.ends_at,
            actor=user,
            reason=payload.reason,
            free_refund_days=payload.free_refund_days,
        )
        return 201, reschedule_out(row)

    return run_idempotent(request, reschedule)
