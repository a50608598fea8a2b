"""Reads about refunds (AFT-1, AFT-2): what an order's tickets would give back now, a buyer's
refunds and their progress, and staff's organizer-scoped lists.

Who may see a refund: exactly who may see its order (`orders.selectors.order_get_for_buyer`:
the buying account, the browser that bought it, or a guest who looked it up by code + phone).
Anyone else gets `refund_not_found`, like an unknown id. Staff see the refunds of organizers
where they hold `Perm.ORDERS_VIEW`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Prefetch, Q, QuerySet
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.accounts.permissions import Perm, organizer_ids_with
from piaowu.aftersales.models import Refund, RefundHistory, RefundItem
from piaowu.aftersales.policy import Quote
from piaowu.aftersales.services.refunds import REFUNDABLE_ORDER_STATES, refund_quote
from piaowu.core.errors import DomainError, NotFound
from piaowu.orders.models import Order
from piaowu.orders.selectors import order_get_for_buyer
from piaowu.tickets.models import Ticket

#: The steps of a refund's progress as the customer sees them, in order.
PROGRESS_STEPS = (
    Refund.State.REQUESTED,
    Refund.State.APPROVED,
    Refund.State.PROCESSING,
    Refund.State.SUCCEEDED,
)


def _not_found() -> NotFound:
    return NotFound("refund", _("No such refund."))


def _refunds() -> QuerySet[Refund]:
    return Refund.objects.select_related(
        "order__session__event", "order__session__venue", "payment"
    ).prefetch_related(
        Prefetch(
            "items",
            queryset=RefundItem.objects.select_related("ticket__seat__section", "ticket__tier"),
        ),
        Prefetch("history", queryset=RefundHistory.objects.order_by("at", "id")),
    )


def refund_get_for_buyer(
    *,
    public_id: str,
    customer: User | None,
    holder_key: str,
    granted: Iterable[str] = (),
) -> Refund:
    """A refund of an order the caller may see, with its items and history; else
    `refund_not_found`."""
    refund = _refunds().filter(public_id=public_id).first() if public_id else None
    if refund is None:
        raise _not_found()
    try:
        order_get_for_buyer(
            public_id=refund.order.public_id,
            customer=customer,
            holder_key=holder_key,
            granted=granted,
            details=False,
        )
    except NotFound:
        raise _not_found() from None
    return refund


def refunds_for_order(order: Order) -> list[Refund]:
    """The order's refunds, newest first, with items and history."""
    return list(_refunds().filter(order=order).order_by("-created_at", "-id"))


def refunds_for_customer(customer: User) -> QuerySet[Refund]:
    """The refunds of the customer's orders, newest first."""
    return _refunds().filter(order__customer=customer).order_by("-created_at", "-id")


def refunds_for_staff(*, user: User, perm: Perm = Perm.ORDERS_VIEW) -> QuerySet[Refund]:
    """Refunds of the organizers where `user` holds `perm`, newest first."""
    refunds = _refunds().order_by("-created_at", "-id")
    allowed = organizer_ids_with(user, perm)
    if allowed is not None:
        refunds = refunds.filter(order__session__event__organizer_id__in=allowed)
    return refunds


def refund_get_for_staff(*, public_id: str, user: User, perm: Perm = Perm.ORDERS_VIEW) -> Refund:
    """A refund of an organizer where `user` holds `perm`; else `refund_not_found`."""
    refund = refunds_for_staff(user=user, perm=perm).filter(public_id=public_id).first()
    if refund is None:
        raise _not_found()
    return refund


def order_tickets(order: Order, *, ids: Iterable[str] = ()) -> list[Ticket]:
    """The order's tickets (all, or those with these public ids or serials), seat and tier
    loaded, in order. Unknown ids are left out: the caller compares counts."""
    tickets = Ticket.objects.filter(order=order).select_related(
        "order_line", "seat__section", "tier"
    )
    wanted = [i for i in ids if i]
    if wanted:
        tickets = tickets.filter(Q(public_id__in=wanted) | Q(serial__in=wanted))
    return list(tickets.order_by("id"))


@dataclass(frozen=True)
class RefundOptions:
    """What the order page and the refund page need: whether a refund can be asked for now
    and the quote of every valid ticket (each with its amount, fee and any refusal)."""

    paid: bool
    quote: Quote | None
    void_tickets: list[Ticket]

    @property
    def refundable_count(self) -> int:
        if self.quote is None:
            return 0
        return sum(1 for item in self.quote.items if not item.refusal)

    @property
    def can_refund(self) -> bool:
        return self.refundable_count > 0


def order_refund_options(order: Order) -> RefundOptions:
    """The refund quote of every valid ticket of `order` at this moment."""
    if order.state not in REFUNDABLE_ORDER_STATES:
        return RefundOptions(paid=False, quote=None, void_tickets=[])
    tickets = order_tickets(order)
    valid = [t for t in tickets if t.state == Ticket.State.VALID]
    void = [t for t in tickets if t.state != Ticket.State.VALID]
    return RefundOptions(
        paid=True,
        quote=refund_quote(order=order, tickets=valid) if valid else None,
        void_tickets=void,
    )


def refund_progress(refund: Refund) -> list[tuple[str, str, bool, bool]]:
    """The progress bar: (state, label, reached, current) per step. A rejected or failed
    refund ends at its last reached step, then shows that outcome."""
    labels = dict(Refund.State.choices)
    reached_states = {entry.to_state for entry in refund.history.all()} | {refund.state}
    steps: list[str] = [str(step) for step in PROGRESS_STEPS]
    if refund.state in (Refund.State.REJECTED, Refund.State.FAILED):
        steps = [s for s in steps if s in reached_states] + [str(refund.state)]
    return [
        (str(step), str(labels[step]), step in reached_states, step == refund.state)
        for step in steps
    ]


def refund_sign_in_required(order: Order, customer: User | None) -> bool:
    """Whether this caller must first sign in to ask for a refund of `order`: an order bought
    with an account is refunded by that account only (a guest who looked it up by code and
    phone may see it, not refund it). A guest order is refunded by whoever may see it — the
    money can only go back to the payment that paid it."""
    if order.customer_id is None:
        return False
    return customer is None or not customer.is_authenticated or customer.pk != order.customer_id


def require_refund_requester(order: Order, customer: User | None) -> None:
    """`refund_sign_in_required` (403) unless this caller may ask for a refund of `order`."""
    if refund_sign_in_required(order, customer):
        error = DomainError(
            "refund_sign_in_required",
            _("Sign in with the account that bought this order to refund it."),
        )
        error.status = 403
        raise error
