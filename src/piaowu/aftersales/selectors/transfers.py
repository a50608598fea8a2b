"""Reads about ticket transfers (TKT-8): who holds a ticket now, the tickets a customer holds,
the transfers they sent and received, and a transfer by its code (the receiver's link).

A ticket's holder is `Ticket.holder`, or — while that is empty — the order's buyer. A pending
transfer whose `expires_at` has passed counts as expired at once (`transfer_state`), whether or
not the `aftersales.transfers_expire_overdue` job has tidied it up yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.aftersales.models import Transfer
from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound
from piaowu.tickets.models import Ticket

_TICKET_RELATED = (
    "order",
    "session__event",
    "session__venue",
    "tier",
    "seat__section",
    "signing_key",
)
_TRANSFER_RELATED = (*(f"ticket__{name}" for name in _TICKET_RELATED), "sender", "receiver")


def ticket_holder_id(ticket: Ticket) -> int | None:
    """The id of the user who holds `ticket` now: its holder, else the order's buyer (None for
    a guest's order: nobody can transfer it)."""
    if ticket.holder_id is not None:
        return int(ticket.holder_id)
    customer_id = ticket.order.customer_id
    return int(customer_id) if customer_id is not None else None


def ticket_transferred_away(ticket: Ticket) -> bool:
    """Whether the buyer gave `ticket` to someone else (its QR is then for that holder only)."""
    return ticket.holder_id is not None and ticket.holder_id != ticket.order.customer_id


def tickets_held_by(user: User) -> QuerySet[Ticket]:
    """The tickets `user` holds: those they bought that were not transferred away, plus those
    transferred to them — soonest session first, void ones included (they show as void)."""
    return (
        Ticket.objects.filter(Q(holder=user) | Q(holder__isnull=True, order__customer=user))
        .select_related(*_TICKET_RELATED)
        .order_by("session__starts_at", "order_id", "id")
    )


def transfer_state(transfer: Transfer, now: datetime | None = None) -> str:
    """The transfer's state as of `now`: a pending one past its expiry is `expired`."""
    if transfer.state == Transfer.State.PENDING and transfer.expires_at <= (now or clock.now()):
        return str(Transfer.State.EXPIRED)
    return str(transfer.state)


def transfers_sent(user: User) -> QuerySet[Transfer]:
    """The transfers `user` offered, newest first."""
    return (
        Transfer.objects.filter(sender=user)
        .select_related(*_TRANSFER_RELATED)
        .order_by("-created_at", "-id")
    )


def transfers_received(user: User) -> QuerySet[Transfer]:
    """The transfers `user` accepted, newest first."""
    return (
        Transfer.objects.filter(receiver=user)
        .select_related(*_TRANSFER_RELATED)
        .order_by("-accepted_at", "-id")
    )


def transfer_pending_for_ticket(ticket: Ticket, now: datetime | None = None) -> Transfer | None:
    """The ticket's pending transfer that has not expired yet, if any."""
    return (
        Transfer.objects.filter(
            ticket=ticket, state=Transfer.State.PENDING, expires_at__gt=now or clock.now()
        )
        .select_related("sender")
        .first()
    )


def transfers_pending_by_ticket(
    ticket_ids: Iterable[int], now: datetime | None = None
) -> dict[int, Transfer]:
    """Each of these tickets' pending, unexpired transfer (one query), by ticket id."""
    rows = Transfer.objects.filter(
        ticket_id__in=list(ticket_ids),
        state=Transfer.State.PENDING,
        expires_at__gt=now or clock.now(),
    )
    return {int(row.ticket_id): row for row in rows}


def transfer_get_for_sender(*, public_id: str, user: User) -> Transfer:
    """A transfer `user` sent; anyone else's (or an unknown id) is `transfer_not_found`."""
    transfer = (
        Transfer.objects.filter(public_id=public_id, sender=user)
        .select_related(*_TRANSFER_RELATED)
        .first()
        if public_id
        else None
    )
    if transfer is None:
        raise NotFound("transfer", _("No such transfer."))
    return transfer


_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def normalize_transfer_code(code: str) -> str:
    """What a person typed or a link carried, as stored: upper case, no spaces or dashes, and
    O / I / L read as 0 / 1 (codes are Crockford base32, which has no O, I or L)."""
    return "".join(ch for ch in str(code).upper() if ch.isalnum()).translate(_LOOKALIKES)


def transfer_get_by_code(code: str) -> Transfer:
    """The transfer a code names, in any state (the caller tells the receiver what became of
    it). An unknown code is `transfer_code_invalid` (404)."""
    canonical = normalize_transfer_code(code)
    transfer = (
        Transfer.objects.filter(code=canonical).select_related(*_TRANSFER_RELATED).first()
        if canonical
        else None
    )
    if transfer is None:
        error = DomainError(
            "transfer_code_invalid",
            _("This transfer code is not valid. Check the link or the code you were sent."),
        )
        error.status = 404
        raise error
    return transfer
