"""The order state machine — the one place that knows which state may follow which.

Every service changes an order's state through `transition`, which

* refuses a step the table does not allow (`illegal_transition`, details `from`, `to`);
* writes the new state with one conditional statement,
  `UPDATE order SET state=<to> WHERE id=… AND state=<from>`, and checks the row count: of two
  concurrent transitions out of the same state only the first to commit changes a row; the
  other (PostgreSQL re-evaluates its WHERE after the first commits) changes none and gets
  `order_state_changed` (details `from`, `to`, `state`: the state it found);
* appends an `OrderHistory` row (never updated or deleted).

It must run inside the caller's transaction, so the history row and whatever else the service
writes (the hold's conversion, its release) commit or roll back with the state change.

`PIAOWU_ORDERS_UNSAFE_TRANSITIONS` (tests only) swaps the conditional update for a
read-then-write with a pause in between, so race tests can show their control run really lets
two transitions win.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from piaowu.core import clock
from piaowu.core.errors import DomainError

if TYPE_CHECKING:
    from piaowu.accounts.models import User
    from piaowu.orders.models import Order

UNSAFE_PAUSE_SECONDS = 0.05


class OrderState(models.TextChoices):
    AWAITING_PAYMENT = "awaiting_payment", _("Awaiting payment")
    PAID = "paid", _("Paid")
    FULFILLED = "fulfilled", _("Fulfilled")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")
    REFUNDED = "refunded", _("Refunded")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")


S = OrderState

TRANSITIONS: dict[str, frozenset[str]] = {
    S.AWAITING_PAYMENT: frozenset({S.PAID, S.CANCELLED, S.EXPIRED}),
    S.PAID: frozenset({S.FULFILLED, S.REFUNDED, S.PARTIALLY_REFUNDED}),
    S.FULFILLED: frozenset({S.REFUNDED, S.PARTIALLY_REFUNDED}),
    # A second partial refund keeps the state; the last one makes it refunded.
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REFUNDED: frozenset(),
}

# States in which the buyer's money has been received (paying again changes nothing).
PAID_STATES = frozenset({S.PAID, S.FULFILLED, S.REFUNDED, S.PARTIALLY_REFUNDED})
# States an order can never leave.
FINAL_STATES = frozenset(state for state, nexts in TRANSITIONS.items() if not nexts)


def can_transition(from_state: str, to_state: str) -> bool:
    return to_state in TRANSITIONS.get(from_state, frozenset())


def _unsafe() -> bool:
    return bool(getattr(settings, "PIAOWU_ORDERS_UNSAFE_TRANSITIONS", False))


def transition(
    order: Order,
    to: str,
    *,
    actor: User | None = None,
    reason: str = "",
    fields: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Order:
    """Move `order` from its current (in-memory) state to `to`; `fields` are written with it.

    Errors: `illegal_transition` (details `from`, `to`), `order_state_changed` (409; someone
    else changed the order first; details `from`, `to`, `state`).
    """
    from piaowu.orders.models import Order, OrderHistory

    from_state = order.state
    if not can_transition(from_state, to):
        raise DomainError(
            "illegal_transition",
            gettext("An order in state %(from)s cannot become %(to)s.")
            % {"from": from_state, "to": to},
            {"from": from_state, "to": to},
        )
    now = now or clock.now()
    values: dict[str, Any] = {"state": to, "updated_at": now, **(fields or {})}
    with transaction.atomic():
        if _unsafe():
            # TEST-ONLY control: read, pause, then write without the state condition.
            seen = Order.objects.filter(pk=order.pk).values_list("state", flat=True).first()
            time.sleep(UNSAFE_PAUSE_SECONDS)
            changed = (
                Order.objects.filter(pk=order.pk).update(**values) if seen == from_state else 0
            )
        else:
            changed = Order.objects.filter(pk=order.pk, state=from_state).update(**values)
        if changed != 1:
            current = Order.objects.filter(pk=order.pk).values_list("state", flat=True).first()
            error = DomainError(
                "order_state_changed",
                gettext("This order was just changed by someone else; please reload it."),
                {"from": from_state, "to": to, "state": current},
            )
            error.status = 409
            raise error
        OrderHistory.objects.create(
            order=order,
            from_state=from_state,
            to_state=to,
            actor=actor,
            reason=reason[:200],
            at=now,
        )
    for name, value in values.items():
        setattr(order, name, value)
    return order
