"""Customer service: a signed-in customer's cases (open, read, write, close, rate) and the FAQ.

Only the customer who opened a case sees it: anyone else gets 404 `case_not_found`, exactly like
an unknown id; anonymous callers get 401 `unauthorized`. Staff handle cases in the console. The
rules live in `aftersales.services.cases` and `aftersales.selectors.cases`; this module parses,
calls and renders. Mutating calls check the CSRF token when a session cookie comes with them
and take an optional `Idempotency-Key`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from piaowu.accounts.models import User
from piaowu.aftersales.models import Case
from piaowu.aftersales.selectors.cases import (
    case_can_reopen,
    case_get_for_customer,
    case_messages_for_customer,
    cases_for_customer,
    faq_entries,
)
from piaowu.aftersales.services.cases import (
    MAX_MESSAGE_LENGTH,
    MAX_RATING_COMMENT_LENGTH,
    MAX_SUBJECT_LENGTH,
    RATING_MAX,
    RATING_MIN,
    case_close_by_customer,
    case_message,
    case_open,
    case_rate,
)
from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.holds import csrf_check, errors_doc, request_customer
from piaowu.api.v1.orders import utc_iso
from piaowu.core.errors import DomainError

router = Router(tags=["customer service"])

CASE_ERRORS: dict[str, str] = {
    "unauthorized": "401 — sign in first.",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "case_not_found": "404 — no case with this id is yours.",
    "order_not_found": "404 — `order` is not one of your orders (details.field).",
    "invalid_input": "400 — the body is not valid (details.fields).",
    "invalid_kind": "400 — `kind` is not one of the kinds (details.allowed).",
    "subject_required": "400 — the subject is empty (details.field).",
    "message_required": "400 — the message is empty (details.field).",
    "text_too_long": "400 — a text is too long (details.field, details.max).",
    "too_many_open_cases": "400 — you have too many open cases (details.limit).",
    "case_closed": "400 — the case is closed: it was rated, or closed more than "
    "`details.reopen_days` days ago; open a new case.",
    "case_not_closed": "400 — only a closed case can be rated (details.state).",
    "invalid_rating": "400 — the rating is not between details.min and details.max.",
    "case_already_rated": "409 — you have already rated this case.",
    "case_state_changed": "409 — the case was changed at the same moment; reload it.",
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


class CaseOpenIn(Schema):
    kind: str = Field(
        ..., description="`feedback`, `complaint`, `refund_dispute` or `question`.", max_length=20
    )
    subject: str = Field(..., max_length=MAX_SUBJECT_LENGTH)
    message: str = Field(..., max_length=MAX_MESSAGE_LENGTH)
    order: str = Field("", max_length=40, description="Optional: the id of one of your orders.")


class CaseMessageIn(Schema):
    message: str = Field(..., max_length=MAX_MESSAGE_LENGTH)


class CaseRatingIn(Schema):
    rating: int = Field(..., description=f"{RATING_MIN} (poor) to {RATING_MAX} (excellent).")
    comment: str = Field("", max_length=MAX_RATING_COMMENT_LENGTH)


class CaseOrderOut(Schema):
    id: str
    code: str


class CaseMessageOut(Schema):
    sender: str = Field(..., description="`customer` (you) or `staff` (customer service).")
    body: str
    at: str


class CaseOut(Schema):
    id: str
    number: str = Field(..., description="Quote it when you call us.")
    kind: str
    kind_label: str
    subject: str
    state: str = Field(
        ..., description="`open`, `in_progress`, `waiting_customer` (your turn) or `closed`."
    )
    state_label: str
    order: CaseOrderOut | None
    created_at: str
    updated_at: str
    first_response_due: str = Field(..., description="We answer first by then.")
    first_responded_at: str | None
    closed_at: str | None
    rating: int | None
    rating_comment: str
    can_rate: bool = Field(..., description="Closed and not rated yet.")
    can_write: bool = Field(
        ..., description="A message is taken (it reopens a recently closed case)."
    )


class CaseDetailOut(CaseOut):
    messages: list[CaseMessageOut] = Field(..., description="Oldest first.")


class CasePage(Page[CaseOut]):
    pass


class FaqOut(Schema):
    id: int
    question: str
    answer: str


# --- Filling them -----------------------------------------------------------------------------


def case_out(case: Case) -> dict[str, Any]:
    order = case.order
    closed = case.state == Case.State.CLOSED
    return {
        "id": case.public_id,
        "number": case.number,
        "kind": case.kind,
        "kind_label": str(case.get_kind_display()),
        "subject": case.subject,
        "state": case.state,
        "state_label": str(case.get_state_display()),
        "order": {"id": order.public_id, "code": order.code} if order is not None else None,
        "created_at": utc_iso(case.created_at),
        "updated_at": utc_iso(case.updated_at),
        "first_response_due": utc_iso(case.first_response_due),
        "first_responded_at": utc_iso(case.first_responded_at),
        "closed_at": utc_iso(case.closed_at),
        "rating": case.rating,
        "rating_comment": case.rating_comment,
        "can_rate": closed and case.rating is None,
        "can_write": not closed or case_can_reopen(case),
    }


def case_detail_out(case: Case) -> dict[str, Any]:
    return {
        **case_out(case),
        "messages": [
            {
                "sender": "staff" if message.from_staff else "customer",
                "body": message.body,
                "at": utc_iso(message.at),
            }
            for message in case_messages_for_customer(case)
        ],
    }


# --- Callers ----------------------------------------------------------------------------------


def _customer(request: HttpRequest) -> User:
    """The signed-in caller; anonymous callers get 401 `unauthorized`."""
    customer = request_customer(request)
    if customer is None:
        error = DomainError("unauthorized", _("Sign in first."))
        error.status = 401
        raise error
    return customer


def _own_case(request: HttpRequest, case_id: str) -> Case:
    return case_get_for_customer(public_id=case_id, customer=_customer(request))


# --- Endpoints --------------------------------------------------------------------------------


@router.get(
    "/cases",
    response={200: CasePage, 400: ErrorOut, 401: ErrorOut},
    summary="Your service cases",
    description="The signed-in customer's cases, newest first."
    + errors_doc(CASE_ERRORS, ("unauthorized", "invalid_input")),
)
def cases_list(request: HttpRequest, query: Query[PageQuery]) -> dict[str, Any]:
    customer = _customer(request)
    cases, count, has_next = paginate(cases_for_customer(customer), query.page, query.page_size)
    return page_body(
        [case_out(case) for case in cases],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


@router.post(
    "/cases",
    response={201: CaseDetailOut, **MUTATION_RESPONSES},
    summary="Open a service case",
    description=(
        "Feedback, a complaint, a refund dispute or a question, optionally about one of your "
        "orders. Complaints and refund disputes are answered on a shorter clock; "
        "`first_response_due` says by when."
        + errors_doc(
            CASE_ERRORS,
            (
                "unauthorized",
                "forbidden",
                "invalid_input",
                "invalid_kind",
                "subject_required",
                "message_required",
                "text_too_long",
                "order_not_found",
                "too_many_open_cases",
                *IDEMPOTENCY_ERRORS,
            ),
        )
    ),
    openapi_extra=idempotency_openapi(),
)
def cases_open(request: HttpRequest, payload: CaseOpenIn) -> Status | HttpResponse:
    csrf_check(request)
    customer = _customer(request)

    def open_case() -> tuple[int, dict[str, Any]]:
        case = case_open(
            customer=customer,
            kind=payload.kind,
            subject=payload.subject,
            message=payload.message,
            order_id=payload.order,
        )
        return 201, case_detail_out(_own_case(request, case.public_id))

    return run_idempotent(request, open_case, atomic=True)


@router.get(
    "/cases/{case_id}",
    response={200: CaseDetailOut, 401: ErrorOut, 404: ErrorOut},
    summary="One of your service cases",
    description="With the conversation (customer service's internal notes are not shown)."
    + errors_doc(CASE_ERRORS, ("unauthorized", "case_not_found")),
)
def cases_detail(request: HttpRequest, case_id: str) -> dict[str, Any]:
    return case_detail_out(_own_case(request, case_id))


@router.post(
    "/cases/{case_id}/messages",
    response={201: CaseDetailOut, **MUTATION_RESPONSES},
    summary="Write on your case",
    description=(
        "Answers customer service: a case waiting for you goes back to them. A closed case "
        "opens again if it was closed recently and not rated (`can_write`)."
        + errors_doc(
            CASE_ERRORS,
            (
                "unauthorized",
                "forbidden",
                "case_not_found",
                "invalid_input",
                "message_required",
                "text_too_long",
                "case_closed",
                "case_state_changed",
                *IDEMPOTENCY_ERRORS,
            ),
        )
    ),
    openapi_extra=idempotency_openapi(),
)
def cases_message(
    request: HttpRequest, case_id: str, payload: CaseMessageIn
) -> Status | HttpResponse:
    csrf_check(request)
    customer = _customer(request)

    def write() -> tuple[int, dict[str, Any]]:
        case = _own_case(request, case_id)
        case_message(case=case, customer=customer, body=payload.message)
        return 201, case_detail_out(_own_case(request, case_id))

    return run_idempotent(request, write, atomic=True)


@router.post(
    "/cases/{case_id}/close",
    response={200: CaseDetailOut, **MUTATION_RESPONSES},
    summary="Close your case",
    description="Your problem is solved; you may rate the case next. Closing a closed case "
    "changes nothing."
    + errors_doc(
        CASE_ERRORS,
        ("unauthorized", "forbidden", "case_not_found", "case_state_changed", *IDEMPOTENCY_ERRORS),
    ),
    openapi_extra=idempotency_openapi(),
)
def cases_close(request: HttpRequest, case_id: str) -> Status | HttpResponse:
    csrf_check(request)
    customer = _customer(request)

    def close() -> tuple[int, dict[str, Any]]:
        case = case_close_by_customer(case=_own_case(request, case_id), customer=customer)
        return 200, case_detail_out(case)

    return run_idempotent(request, close, atomic=True)


@router.post(
    "/cases/{case_id}/rating",
    response={200: CaseDetailOut, **MUTATION_RESPONSES},
    summary="Rate your closed case",
    description=f"Once, from {RATING_MIN} to {RATING_MAX}, with an optional comment."
    + errors_doc(
        CASE_ERRORS,
        (
            "unauthorized",
            "forbidden",
            "case_not_found",
            "invalid_input",
            "invalid_rating",
            "text_too_long",
            "case_not_closed",
            "case_already_rated",
            *IDEMPOTENCY_ERRORS,
        ),
    ),
    openapi_extra=idempotency_openapi(),
)
def cases_rate(request: HttpRequest, case_id: str, payload: CaseRatingIn) -> Status | HttpResponse:
    csrf_check(request)
    customer = _customer(request)

    def rate() -> tuple[int, dict[str, Any]]:
        case = case_rate(
            case=_own_case(request, case_id),
            customer=customer,
            rating=payload.rating,
            comment=payload.comment,
        )
        return 200, case_detail_out(case)

    return run_idempotent(request, rate, atomic=True)


@router.get(
    "/faq",
    response={200: list[FaqOut]},
    summary="Frequently asked questions",
    description="The published questions and answers in page order, in the request's language "
    "(English when asked for and written, else Chinese).",
)
def faq_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [
        {"id": item.id, "question": item.question, "answer": item.answer} for item in faq_entries()
    ]
