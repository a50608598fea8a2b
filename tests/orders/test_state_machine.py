"""Random sequences of checkout / pay / cancel / expire / pay-again, checked against a model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import Session
from piaowu.core.errors import DomainError
from piaowu.inventory.selectors import session_seat_states
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import (
    order_cancel,
    order_checkout,
    order_expire_overdue,
    order_mark_paid,
)
from piaowu.orders.states import TRANSITIONS
from tests.orders.conftest import PHONE, Clock, web_channel


def test_random_order_lifecycles_keep_the_invariants(
    organizer: Organizer,
    reserved_session: Callable[..., Session],
    clock: Clock,
    settings: Any,
) -> None:
    settings.PIAOWU_INVENTORY_STRANDED_RULE = False
    channel = web_channel(organizer)
    session = reserved_session(rows=4, seats_per_row=40)
    free_seats = [f"M-{row}-{n}" for row in range(1, 5) for n in range(1, 41)]

    class OrderLifecycles(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            clock.offset = dt.timedelta()
            self.session = session
            self.orders: list[Order] = []
            self.expected: dict[int, str] = {}
            self.transitions: dict[int, int] = {}
            self.seats: dict[int, str] = {}

        def _move(self, order: Order, state: str) -> None:
            self.expected[order.pk] = state
            self.transitions[order.pk] += 1

        @rule()
        def checkout(self) -> None:
            if not free_seats:
                return
            seat = free_seats.pop(0)
            holder = f"buyer-{seat}"
            hold = hold_seats(session=self.session, seat_codes=[seat], holder_key=holder)
            order = order_checkout(
                hold=hold, channel=channel, holder_key=holder, contact_phone=PHONE
            )
            again = order_checkout(
                hold=hold, channel=channel, holder_key=holder, contact_phone=PHONE
            )
            assert again.pk == order.pk
            self.orders.append(order)
            self.expected[order.pk] = "awaiting_payment"
            self.transitions[order.pk] = 0
            self.seats[order.pk] = seat

        @rule(data=st.data())
        def pay(self, data: st.DataObject) -> None:
            if not self.orders:
                return
            order = data.draw(st.sampled_from(self.orders))
            before = self.expected[order.pk]
            try:
                order_mark_paid(order=Order.objects.get(pk=order.pk))
            except DomainError as exc:
                assert exc.code == "order_not_payable"
                assert before in {"cancelled", "expired"}
                return
            if before == "awaiting_payment":
                self._move(order, "paid")
            assert before in {"awaiting_payment", "paid"}

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if not self.orders:
                return
            order = data.draw(st.sampled_from(self.orders))
            before = self.expected[order.pk]
            try:
                order_cancel(order=Order.objects.get(pk=order.pk))
            except DomainError as exc:
                assert exc.code == "illegal_transition"
                assert before != "awaiting_payment"
                return
            if before == "cancelled":
                return  # cancelling again is harmless and changes nothing
            assert before == "awaiting_payment"
            self._move(order, "cancelled")

        @rule(minutes=st.sampled_from([1, 16]))
        def let_time_pass_and_expire(self, minutes: int) -> None:
            clock.shift(dt.timedelta(minutes=minutes))
            now = clock()
            due = [
                o
                for o in self.orders
                if self.expected[o.pk] == "awaiting_payment" and o.payment_deadline < now
            ]
            assert order_expire_overdue() == len(due)
            for order in due:
                self._move(order, "expired")

        def teardown(self) -> None:
            # Leave nothing awaiting payment for the next example's expiry count.
            for order in self.orders:
                if self.expected[order.pk] == "awaiting_payment":
                    order_cancel(order=Order.objects.get(pk=order.pk))

        @invariant()
        def states_match_and_are_legal(self) -> None:
            for order in self.orders:
                order.refresh_from_db()
                assert order.state in TRANSITIONS
                assert order.state == self.expected[order.pk]

        @invariant()
        def history_counts_the_transitions(self) -> None:
            for order in self.orders:
                # The first row records the creation.
                assert order.history.count() == 1 + self.transitions[order.pk]

        @invariant()
        def seats_are_sold_iff_paid(self) -> None:
            seat_states = session_seat_states(self.session)
            for order in self.orders:
                state = seat_states[self.seats[order.pk]]
                expected = {
                    "paid": "sold",
                    "awaiting_payment": "held",
                    "cancelled": "available",
                    "expired": "available",
                }[self.expected[order.pk]]
                assert state == expected, (order.code, self.expected[order.pk], state)

    run_state_machine_as_test(
        OrderLifecycles,
        settings=hypothesis_settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


pytestmark = pytest.mark.slow
