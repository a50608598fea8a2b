"""Reads about tickets: an order's tickets, the QR text of a ticket, its rotation secret, what a
buyer's e-ticket shows, and redemption codes."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.catalog.models import Event, Session
from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound
from piaowu.orders.models import Order
from piaowu.orders.selectors import order_get_for_buyer
from piaowu.tickets import codec
from piaowu.tickets.models import RedemptionCode, Ticket

_TICKET_RELATED = (
    "order",
    "session__event",
    "session__venue",
    "tier",
    "seat__section",
    "signing_key",
)


def tickets_for_order(order: Order) -> QuerySet[Ticket]:
    return order.tickets.select_related(
        "session__event", "session__venue", "tier", "seat__section", "signing_key"
    ).order_by("id")


def ticket_claims(ticket: Ticket) -> codec.Claims:
    return codec.Claims(
        kid=ticket.signing_key.kid,
        token=ticket.token,
        session_id=ticket.session_id,
        seat_id=ticket.seat_id or 0,
        tier_id=ticket.tier_id,
        valid_from=int(ticket.valid_from.timestamp()),
        valid_until=int(ticket.valid_until.timestamp()),
        secret_version=ticket.secret_version,
        rotating=ticket.rotating,
    )


def ticket_qr_text(ticket: Ticket) -> str:
    """The static QR text of the ticket's current secret version (Ed25519 signatures are
    deterministic, so this is the same text every time until the version changes)."""
    return codec.encode(ticket_claims(ticket), bytes(ticket.signing_key.private_key))


def ticket_rotation_secret(ticket: Ticket) -> bytes:
    """The per-ticket secret a rotating ticket's page computes its time codes from. Only the
    ticket holder's page may receive it."""
    key = codec.rotation_key(bytes(ticket.signing_key.private_key), ticket.session_id)
    return codec.ticket_rotation_secret(key, ticket.token, ticket.secret_version)


# --- A buyer's tickets -----------------------------------------------------------------------


def tickets_for_buyer_order(
    *, order_public_id: str, customer: User | None, holder_key: str, granted: Iterable[str] = ()
) -> tuple[Order, list[Ticket]]:
    """The order and its tickets, if the caller may see the order
    (`orders.selectors.order_get_for_buyer`); else `order_not_found`."""
    order = order_get_for_buyer(
        public_id=order_public_id, customer=customer, holder_key=holder_key, granted=granted
    )
    return order, list(tickets_for_order(order).select_related("order"))


def ticket_get_for_buyer(
    *, public_id: str, customer: User | None, holder_key: str, granted: Iterable[str] = ()
) -> Ticket:
    """A ticket whose order the caller may see, or that was transferred to the caller; anything
    else is `ticket_not_found`, like an unknown id. Whether it shows its QR: `ticket_held_by`."""
    ticket = (
        Ticket.objects.select_related(*_TICKET_RELATED).filter(public_id=public_id).first()
        if public_id
        else None
    )
    if ticket is None:
        raise _ticket_not_found()
    if customer is not None and ticket.holder_id == customer.pk:
        return ticket
    try:
        order_get_for_buyer(
            public_id=ticket.order.public_id,
            customer=customer,
            holder_key=holder_key,
            granted=granted,
        )
    except NotFound:
        raise _ticket_not_found() from None
    return ticket


def ticket_held_by(ticket: Ticket, customer: User | None) -> bool:
    """Whether the caller — who may see the ticket's order, or is its holder — holds the ticket
    now, and so may see its QR: a ticket its buyer transferred to someone else (`holder`) shows
    its QR to that holder only."""
    return ticket.holder_id is None or (customer is not None and ticket.holder_id == customer.pk)


def _ticket_not_found() -> NotFound:
    return NotFound("ticket", _("No such ticket."))


@dataclass(frozen=True, slots=True)
class ETicket:
    """What a ticket holder's e-ticket shows. `qr` is None for a void ticket (and for a caller
    who does not hold the ticket). A rotating ticket's page shows
    `qr + ":" + codec.rotating_code(secret, now // step_seconds)`, the time code computed in
    the page from `rotation_secret` (base32, no padding)."""

    qr: str | None
    rotating: bool
    rotation_secret: str | None
    step_seconds: int | None


def ticket_eticket(ticket: Ticket, *, held: bool = True) -> ETicket:
    """The e-ticket of `ticket` — only for its holder (the caller checked; `held=False`: not
    the holder, no QR): a rotating ticket's secret lets anyone who has it make valid time
    codes."""
    if ticket.state != Ticket.State.VALID or not held:
        return ETicket(qr=None, rotating=ticket.rotating, rotation_secret=None, step_seconds=None)
    qr = ticket_qr_text(ticket)
    if not ticket.rotating:
        return ETicket(qr=qr, rotating=False, rotation_secret=None, step_seconds=None)
    secret = base64.b32encode(ticket_rotation_secret(ticket)).decode("ascii").rstrip("=")
    return ETicket(
        qr=qr,
        rotating=True,
        rotation_secret=secret,
        step_seconds=int(settings.PIAOWU_ROTATING_QR_STEP_SECONDS),
    )


def seat_label(ticket: Ticket) -> str | None:
    """ "Row 1, seat 5" in the active language; None for an admission without a seat."""
    seat = ticket.seat
    if seat is None:
        return None
    return _("Row %(row)s, seat %(number)s") % {"row": seat.row_label, "number": seat.number_label}


# --- Redemption codes ------------------------------------------------------------------------


def redemption_code_get(code: str, *, now: datetime | None = None) -> RedemptionCode:
    """The unused, unexpired code for what a person typed (any case, with or without dashes,
    O/0 and I/L/1 alike). Errors: `redemption_code_invalid` (not a code we issued),
    `redemption_code_used`, `redemption_code_expired`."""
    canonical = codec.normalize_serial(code) if isinstance(code, str) else None
    row = (
        RedemptionCode.objects.select_related("batch__event").filter(code=canonical).first()
        if canonical
        else None
    )
    if row is None:
        raise DomainError("redemption_code_invalid", _("This is not a valid redemption code."))
    if row.redeemed_at is not None:
        raise DomainError(
            "redemption_code_used", _("This code has already been redeemed."), {"code": row.code}
        )
    if row.batch.valid_until <= (now or clock.now()):
        raise DomainError(
            "redemption_code_expired",
            _("This code expired on %(date)s.")
            % {"date": f"{timezone.localtime(row.batch.valid_until):%Y-%m-%d}"},
            {"code": row.code, "valid_until": row.batch.valid_until.isoformat()},
        )
    return row


def redeemable_sessions(code: str) -> QuerySet[Session]:
    """The sessions `code` can be redeemed for now: on sale, of the code's event, having an
    active tier with the code's tier code. Empty for an unknown, used or expired code."""
    try:
        row = redemption_code_get(code)
    except DomainError:
        return Session.objects.none()
    return redeemable_sessions_for(row.batch.event, row.batch.tier_code)


def redeemable_sessions_for(event: Event, tier_code: str) -> QuerySet[Session]:
    now = clock.now()
    return (
        Session.objects.filter(
            event=event,
            status=Session.Status.SCHEDULED,
            sales_open_at__lte=now,
            sales_close_at__gt=now,
            price_tiers__code=tier_code,
            price_tiers__is_active=True,
        )
        .exclude(event__status__in=[Event.Status.DRAFT, Event.Status.CANCELLED])
        .select_related("event", "venue")
        .distinct()
        .order_by("starts_at", "id")
    )


def redemption_codes(batch_id: int) -> QuerySet[RedemptionCode]:
    """A batch's codes with their orders, in code order (the CSV download)."""
    return RedemptionCode.objects.filter(batch_id=batch_id).select_related("order").order_by("code")
