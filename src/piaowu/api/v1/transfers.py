"""Ticket transfers: offer one of your tickets to someone by phone or e-mail, cancel the offer,
accept a ticket with the code you were sent, list the transfers you sent and received.

Every endpoint needs a signed-in customer (401 `unauthorized`). The rules live in
`aftersales.services.transfers` (see docs/aftersales.md); this module parses, calls and
renders. Mutating calls check the CSRF token when a session cookie comes with them and take an
optional `Idempotency-Key`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from piaowu.accounts.models import User
from piaowu.aftersales.models import Transfer
from piaowu.aftersales.selectors.transfers import (
    transfer_get_for_sender,
    transfer_state,
    transfers_received,
    transfers_sent,
)
from piaowu.aftersales.services.transfers import (
    accept_url,
    transfer_accept,
    transfer_cancel,
    transfer_offer,
)
from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.holds import (
    SIGNED_IN_ERRORS,
    csrf_check,
    errors_doc,
    holder_key,
    request_customer,
)
from piaowu.api.v1.orders import utc_iso
from piaowu.api.v1.tickets import TicketOut, ticket_out
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.inventory.holders import granted_order_ids
from piaowu.tickets.selectors import seat_label, ticket_get_for_buyer

router = Router(tags=["transfers"])

_TICKET_RULES: dict[str, str] = {
    "ticket_void": "409 — the ticket is void (refunded or exchanged).",
    "order_not_paid": "409 — the ticket's order is not paid (details.state).",
    "ticket_used": "409 — the ticket was already admitted at a gate.",
    "ticket_in_refund": "409 — the ticket is in a refund that is under way.",
    "ticket_in_exchange": "409 — the ticket is in an exchange that is under way.",
    "transfers_not_allowed": "400 — the session does not allow transfers.",
    "transfer_cutoff_passed": "400 — transfers closed `transfer_cutoff_hours` before the "
    "start (details.cutoff).",
}
OFFER_ERRORS: dict[str, str] = {
    **SIGNED_IN_ERRORS,
    "ticket_not_found": "404 — no ticket with this id is yours.",
    "ticket_not_yours": "403 — you do not hold this ticket (e.g. you transferred it away).",
    "invalid_contact": "400 — `receiver_contact` is neither a phone number nor an e-mail "
    "address (details.field).",
    "invalid_receiver_name": "400 — `receiver_name` is empty or too long (details.field).",
    "transfer_to_self": "400 — the contact is your own.",
    "transfer_pending": "409 — the ticket already has a pending transfer; cancel it first.",
    **_TICKET_RULES,
    **IDEMPOTENCY_ERRORS,
}
CANCEL_ERRORS: dict[str, str] = {
    **SIGNED_IN_ERRORS,
    "transfer_not_found": "404 — no transfer with this id was sent by you.",
    "transfer_not_pending": "409 — the transfer was accepted, cancelled or expired "
    "(details.state).",
    **IDEMPOTENCY_ERRORS,
}
ACCEPT_ERRORS: dict[str, str] = {
    **SIGNED_IN_ERRORS,
    "transfer_code_invalid": "404 — no transfer has this code.",
    "transfer_to_self": "400 — you sent this transfer yourself.",
    "transfer_expired": "409 — the offer expired (details.expires_at).",
    "transfer_cancelled": "409 — the sender cancelled the offer.",
    "transfer_code_used": "409 — someone else already accepted with this code.",
    "transfer_already_accepted": "409 — you already accepted this ticket (details.ticket).",
    **_TICKET_RULES,
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


class TransferOfferIn(Schema):
    receiver_name: str = Field(
        ..., max_length=80, description="Who will use the ticket (the new attendee name)."
    )
    receiver_contact: str = Field(
        ...,
        max_length=254,
        description="Their mobile phone number (the code goes by SMS) or e-mail address.",
    )


class TransferAcceptIn(Schema):
    code: str = Field(..., min_length=1, max_length=40, description="The code you were sent.")


class TransferTicketOut(Schema):
    id: str
    serial: str
    seat: str | None = Field(None, description="Row and seat; null for general admission.")
    tier_name: str


class TransferSessionOut(Schema):
    id: str
    event_title: str
    starts_at: str
    venue: str


class TransferOut(Schema):
    id: str
    state: str = Field(
        ...,
        description="`pending`, `accepted`, `cancelled` or `expired` (a pending transfer past "
        "`expires_at` reads `expired` at once).",
    )
    ticket: TransferTicketOut
    session: TransferSessionOut
    sender_name: str
    receiver_name: str
    receiver_contact: str
    expires_at: str
    accepted_at: str | None
    created_at: str
    accept_url: str | None = Field(
        None,
        description="For the sender while pending: the link the receiver got, to share "
        "yourself if the message did not arrive.",
    )


class TransferAcceptOut(Schema):
    transfer: TransferOut
    ticket: TicketOut


class TransferPage(Page[TransferOut]):
    pass


def transfer_out(transfer: Transfer, *, for_sender: bool) -> dict[str, Any]:
    ticket = transfer.ticket
    session = ticket.session
    state = transfer_state(transfer, clock.now())
    return {
        "id": transfer.public_id,
        "state": state,
        "ticket": {
            "id": ticket.public_id,
            "serial": ticket.serial,
            "seat": seat_label(ticket),
            "tier_name": ticket.tier.tr("name"),
        },
        "session": {
            "id": session.public_id,
            "event_title": session.event.tr("title"),
            "starts_at": utc_iso(session.starts_at),
            "venue": session.venue.tr("name"),
        },
        "sender_name": str(transfer.sender),
        "receiver_name": transfer.receiver_name,
        "receiver_contact": transfer.receiver_contact,
        "expires_at": utc_iso(transfer.expires_at),
        "accepted_at": utc_iso(transfer.accepted_at),
        "created_at": utc_iso(transfer.created_at),
        "accept_url": (
            accept_url(transfer) if for_sender and state == Transfer.State.PENDING else None
        ),
    }


def _signed_in(request: HttpRequest) -> User:
    customer = request_customer(request)
    if customer is None:
        error = DomainError("unauthorized", _("Sign in first."))
        error.status = 401
        raise error
    return customer


def _page(items: Any, query: PageQuery, *, for_sender: bool) -> dict[str, Any]:
    rows, count, has_next = paginate(items, query.page, query.page_size)
    return page_body(
        [transfer_out(row, for_sender=for_sender) for row in rows],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


# --- Endpoints --------------------------------------------------------------------------------


@router.post(
    "/tickets/{ticket_id}/transfers",
    response={201: TransferOut, **MUTATION_RESPONSES},
    summary="Offer one of your tickets to someone",
    description=(
        "The receiver gets a link and a code by SMS (a phone number) or e-mail; the ticket "
        "moves when they accept, signed in. The offer expires at the session's transfer "
        "cut-off or after 48 hours, whichever comes first. One pending transfer per ticket."
        + errors_doc(OFFER_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def transfers_offer(
    request: HttpRequest, ticket_id: str, payload: TransferOfferIn
) -> Status | HttpResponse:
    csrf_check(request)

    def offer() -> tuple[int, dict[str, Any]]:
        sender = _signed_in(request)
        ticket = ticket_get_for_buyer(
            public_id=ticket_id,
            customer=sender,
            holder_key=holder_key(request),
            granted=granted_order_ids(request.session),
        )
        transfer = transfer_offer(
            ticket=ticket,
            sender=sender,
            receiver_contact=payload.receiver_contact,
            receiver_name=payload.receiver_name,
        )
        transfer = transfer_get_for_sender(public_id=transfer.public_id, user=sender)
        return 201, transfer_out(transfer, for_sender=True)

    return run_idempotent(request, offer)


@router.post(
    "/transfers/accept",
    response={200: TransferAcceptOut, **MUTATION_RESPONSES},
    summary="Accept a ticket with the code you were sent",
    description=(
        "The ticket becomes yours, in the name the sender gave, with a fresh QR code; the "
        "sender's copy stops working. Of two people accepting the same code only one gets it."
        + errors_doc(ACCEPT_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def transfers_accept(request: HttpRequest, payload: TransferAcceptIn) -> Status | HttpResponse:
    csrf_check(request)

    def accept() -> tuple[int, dict[str, Any]]:
        receiver = _signed_in(request)
        transfer = transfer_accept(code=payload.code, receiver=receiver)
        return 200, {
            "transfer": transfer_out(transfer, for_sender=False),
            "ticket": ticket_out(transfer.ticket),
        }

    return run_idempotent(request, accept)


@router.post(
    "/transfers/{transfer_id}/cancel",
    response={200: TransferOut, **MUTATION_RESPONSES},
    summary="Cancel a transfer you offered",
    description="While nobody has accepted it; the ticket and its QR stay yours."
    + errors_doc(CANCEL_ERRORS),
    openapi_extra=idempotency_openapi(),
)
def transfers_cancel(request: HttpRequest, transfer_id: str) -> Status | HttpResponse:
    csrf_check(request)

    def cancel() -> tuple[int, dict[str, Any]]:
        sender = _signed_in(request)
        transfer = transfer_get_for_sender(public_id=transfer_id, user=sender)
        transfer_cancel(transfer=transfer, actor=sender)
        transfer = transfer_get_for_sender(public_id=transfer_id, user=sender)
        return 200, transfer_out(transfer, for_sender=True)

    return run_idempotent(request, cancel)


@router.get(
    "/transfers/sent",
    response={200: TransferPage, 400: ErrorOut, 401: ErrorOut},
    summary="Transfers you offered",
    description="Newest first, in every state."
    + errors_doc(SIGNED_IN_ERRORS, ("unauthorized", "invalid_input")),
)
def transfers_sent_list(request: HttpRequest, query: Query[PageQuery]) -> dict[str, Any]:
    return _page(transfers_sent(_signed_in(request)), query, for_sender=True)


@router.get(
    "/transfers/received",
    response={200: TransferPage, 400: ErrorOut, 401: ErrorOut},
    summary="Tickets transferred to you",
    description="The transfers you accepted, newest first; the tickets themselves are in "
    "`GET /tickets`." + errors_doc(SIGNED_IN_ERRORS, ("unauthorized", "invalid_input")),
)
def transfers_received_list(request: HttpRequest, query: Query[PageQuery]) -> dict[str, Any]:
    return _page(transfers_received(_signed_in(request)), query, for_sender=False)
