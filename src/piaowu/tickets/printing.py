"""Paper tickets: the print log, and reprints that void the earlier paper.

The first print of a ticket is logged as such; every later print is a *reprint*: it reissues
the ticket (`tickets.services.ticket_reissue` bumps its secret version), so the code on every
earlier paper — and any screenshot of the e-ticket — stops verifying at the gate. Exactly one
print of a ticket is its first print: the ticket's row is locked for the few statements that
decide and log it (a per-ticket lock, never wider).

Who may print: staff holding `orders.sell` at the ticket's organizer. The staff lookups below
answer `order_not_found` / `ticket_not_found` for anything else, exactly like an unknown id,
so other organizers cannot probe ids.

Race tests only: `PIAOWU_TICKETS_UNSAFE_PRINTS` drops the row lock, and
`PIAOWU_TICKETS_PRINT_RACE_PAUSE` (seconds) pauses between the "printed before?" check and the
log row, so the control run shows two "first" prints of one ticket.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.accounts.permissions import Perm, organizer_ids_with
from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound
from piaowu.orders.models import Order
from piaowu.tickets.models import PrintLog, Ticket, TicketHistory
from piaowu.tickets.services import ticket_reissue

LAYOUTS: tuple[str, ...] = tuple(PrintLog.Layout.values)
DEVICE_MAX_LENGTH = 80


def _ticket_void(ticket: Ticket) -> DomainError:
    error = DomainError(
        "ticket_void",
        _("This ticket is void (refunded or exchanged) and cannot be printed."),
        {"serial": ticket.serial},
    )
    error.status = 409
    return error


def ticket_print_record(
    *, ticket: Ticket, layout: str, device: str, actor: User | None
) -> PrintLog:
    """Log a paper print of `ticket` and return the log row. A ticket's first print keeps its
    code; any further print reissues it first (`reprint=True`, new secret version), so the
    earlier paper no longer admits. Errors: `invalid_layout`, `invalid_device`, `ticket_void`
    (409), `ticket_reissue_limit`."""
    if layout not in LAYOUTS:
        raise DomainError(
            "invalid_layout",
            _("Unknown print layout."),
            {"layout": layout, "allowed": list(LAYOUTS)},
        )
    device = device.strip()
    if not device or len(device) > DEVICE_MAX_LENGTH or not device.isprintable():
        raise DomainError(
            "invalid_device",
            _("Name the printer or terminal (1 to %(max)s characters).")
            % {"max": DEVICE_MAX_LENGTH},
            {"field": "device"},
        )
    now = clock.now()
    with transaction.atomic():
        # The lock makes "has it been printed?" and the log row one step per ticket.
        tickets = Ticket.objects.select_related("signing_key").filter(pk=ticket.pk)
        if not getattr(settings, "PIAOWU_TICKETS_UNSAFE_PRINTS", False):
            tickets = tickets.select_for_update(of=("self",))
        locked = tickets.first()
        if locked is None:
            raise NotFound("ticket", _("No such ticket."))
        if locked.state != Ticket.State.VALID:
            raise _ticket_void(locked)
        reprint = PrintLog.objects.filter(ticket=locked).exists()
        pause = float(getattr(settings, "PIAOWU_TICKETS_PRINT_RACE_PAUSE", 0))
        if pause:
            time.sleep(pause)  # tests only: widen the window a missing lock would leave open
        if reprint:
            locked = ticket_reissue(ticket=locked, actor=actor, reason=f"reprint ({layout})")
        log = PrintLog.objects.create(
            ticket=locked,
            secret_version=locked.secret_version,
            layout=layout,
            device=device,
            actor=actor,
            reprint=reprint,
            at=now,
        )
        TicketHistory.objects.create(
            ticket=locked,
            action="reprinted" if reprint else "printed",
            secret_version=locked.secret_version,
            actor=actor,
            reason=f"{layout} on {device}"[:200],
            at=now,
        )
    # The caller's object follows the new version (its QR text changes on a reprint).
    ticket.secret_version = locked.secret_version
    ticket.signing_key = locked.signing_key
    ticket.state = locked.state
    return log


def ticket_print(*, ticket: Ticket, layout: str, device: str, actor: User | None) -> Ticket:
    """Log a paper print (see `ticket_print_record`) and return the ticket as printed."""
    ticket_print_record(ticket=ticket, layout=layout, device=device, actor=actor)
    return ticket


# --- Staff reads ------------------------------------------------------------------------------


def _sellable_organizers(user: User | None) -> set[int] | None:
    return organizer_ids_with(user, Perm.ORDERS_SELL)


def order_get_for_printing(*, user: User | None, public_id: str) -> Order:
    """An order whose tickets `user` may print; else `order_not_found`."""
    allowed = _sellable_organizers(user)
    orders = Order.objects.select_related("session__event", "session__venue").filter(
        public_id=public_id
    )
    if allowed is not None:
        orders = orders.filter(session__event__organizer_id__in=allowed)
    order = orders.first()
    if order is None:
        raise NotFound("order", _("No such order."))
    return order


def order_find_for_printing(*, user: User | None, code: str) -> Order:
    """The order with this code among those `user` may print; else `order_not_found`."""
    allowed = _sellable_organizers(user)
    orders = Order.objects.filter(code=code.strip().upper())
    if allowed is not None:
        orders = orders.filter(session__event__organizer_id__in=allowed)
    order = orders.first() if code.strip() else None
    if order is None:
        raise NotFound("order", _("No such order."))
    return order


def ticket_get_for_printing(*, user: User | None, public_id: str) -> Ticket:
    """A ticket `user` may print; else `ticket_not_found`."""
    allowed = _sellable_organizers(user)
    tickets = Ticket.objects.select_related(
        "order", "session__event", "session__venue", "tier", "seat__section", "signing_key"
    ).filter(public_id=public_id)
    if allowed is not None:
        tickets = tickets.filter(organizer_id__in=allowed)
    ticket = tickets.first()
    if ticket is None:
        raise NotFound("ticket", _("No such ticket."))
    return ticket


def prints_for_order(order: Order) -> QuerySet[PrintLog]:
    """The order's print log, newest first."""
    return (
        PrintLog.objects.filter(ticket__order=order)
        .select_related("ticket", "actor")
        .order_by("-at", "-id")
    )


def print_get_for_printing(*, user: User | None, print_id: int) -> PrintLog:
    """A print log row of a ticket `user` may print; else `print_not_found`."""
    allowed = _sellable_organizers(user)
    prints = PrintLog.objects.select_related(
        "ticket__order",
        "ticket__session__event",
        "ticket__session__venue",
        "ticket__tier",
        "ticket__seat__section",
        "ticket__signing_key",
    ).filter(pk=print_id)
    if allowed is not None:
        prints = prints.filter(ticket__organizer_id__in=allowed)
    log = prints.first()
    if log is None:
        raise NotFound("print", _("No such print."))
    return log
