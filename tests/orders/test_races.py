"""Real concurrency on PostgreSQL: payment confirmation (or cancellation) racing expiry of the
same order, in threads with their own connections lined up on a barrier.

The control run switches the conditional update off (`PIAOWU_ORDERS_UNSAFE_TRANSITIONS`) and
must let two transitions out of `awaiting_payment` both win — otherwise a green race test would
prove nothing. It races cancel against expiry: for payment against expiry the inventory's own
hold guards (`hold_convert` refuses a released hold, `hold_release` a converted one) roll the
loser back even without the order's guard.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from piaowu.inventory.models import SeatState
from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.services import order_cancel, order_expire_overdue, order_mark_paid
from piaowu.orders.states import OrderState
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

Checkout = Callable[..., Order]


def rival_vs_expiry(order: Order, rival: str) -> list[Any]:
    def act() -> str:
        own = Order.objects.get(pk=order.pk)
        if rival == "pay":
            order_mark_paid(order=own)
            return "paid" if own.state == OrderState.PAID else own.state
        order_cancel(order=own)
        return "cancelled"

    def expire() -> str:
        # The sweeper runs just after the deadline, while the buyer's payment lands just
        # before it (its hold is still valid by the real clock).
        expired = order_expire_overdue(now=order.payment_deadline + dt.timedelta(seconds=1))
        return "expired" if expired else "nothing"

    return race([act, expire])


def exits(order: Order) -> int:
    return OrderHistory.objects.filter(order=order, from_state="awaiting_payment").count()


@pytest.mark.parametrize("rival", ["pay", "cancel"])
def test_payment_or_cancel_racing_expiry_has_one_winner(
    transactional_db: None, checkout: Checkout, rival: str
) -> None:
    for _ in range(3):
        order = checkout()
        results = rival_vs_expiry(order, rival)
        order.refresh_from_db()
        winners = [r for r in results if r in {"paid", "cancelled", "expired"}]
        assert len(winners) == 1, results
        assert set(results) - set(winners) <= {
            "nothing",
            "order_not_payable",
            "order_state_changed",
            "illegal_transition",
        }
        assert order.state == winners[0]
        assert exits(order) == 1
        seats = set(
            SeatState.objects.filter(
                session=order.session, seat__code__in=["M-1-5", "M-1-6"]
            ).values_list("state", flat=True)
        )
        assert seats == ({"sold"} if order.state == OrderState.PAID else {"available"}), seats


def test_control_without_the_conditional_update_lets_both_win(
    transactional_db: None, checkout: Checkout, settings: Any
) -> None:
    # The control only has to show that the race can happen; thread scheduling may line the
    # threads up harmlessly once, so allow a few attempts.
    for _ in range(5):
        settings.PIAOWU_ORDERS_UNSAFE_TRANSITIONS = False
        order = checkout()
        settings.PIAOWU_ORDERS_UNSAFE_TRANSITIONS = True
        results = rival_vs_expiry(order, "cancel")
        if exits(order) == 2:
            break
    assert sorted(results) == ["cancelled", "expired"], results
    assert exits(order) == 2  # two transitions out of the same state: the bug the guard stops
