"""Real concurrency on PostgreSQL for the waitlist: threads with their own connections, released
together by a barrier (`tests/races.py`).

* Two joins of one customer at once: the partial unique index keeps one open entry.
* Fairness with concurrent returns: refunds of several orders at once while several runs of
  the prepaid job serve the queue — entries are fulfilled strictly first come, first served,
  each at most once, and no admission or seat is sold twice.
* The deadline job run several times at once refunds each unfulfilled deposit once.

Control: with the entry's guards off (`PIAOWU_AFTERSALES_UNSAFE_WAITLIST`: no row lock, no
state condition) and the deposit order's too (`PIAOWU_ORDERS_UNSAFE_TRANSITIONS`; either guard
alone stops it), two job runs both serve the same entry: two ticket orders from one deposit.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum
from pytest_django.fixtures import Settings

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund, WaitlistEntry
from piaowu.aftersales.services.waitlist import waitlist_expire_due, waitlist_fulfil_due
from piaowu.catalog.models import Session, WaitlistMode
from piaowu.inventory import services as inventory_services
from piaowu.inventory.models import QuotaBucket
from piaowu.inventory.selectors import session_availability
from piaowu.orders.models import Order, OrderHistory
from piaowu.payments.models import SandboxRefund
from piaowu.tickets.models import Ticket
from tests.aftersales.refunds.conftest import MakeBought
from tests.aftersales.waitlist.conftest import (
    Clock,
    Join,
    MakeSoldOut,
    deposit_of,
    give_back,
    pay,
    set_waitlist,
)
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def paid_entry(join: Join, session: Session, customer: User, quantity: int) -> WaitlistEntry:
    entry = join(session, customer, quantity=quantity)
    pay(deposit_of(entry))
    return entry


def credit_orders(entry: WaitlistEntry) -> int:
    """Ticket orders paid by this entry's deposit (the job writes the entry id in the reason)."""
    return (
        OrderHistory.objects.filter(reason__contains=f"waitlist {entry.public_id}")
        .values("order_id")
        .distinct()
        .count()
    )


def job_runs(times: int) -> Callable[[], int]:
    def run() -> int:
        served = 0
        for _ in range(times):
            served += waitlist_fulfil_due()
            time.sleep(0.02)
        return served

    return run


def serve_until_quiet() -> None:
    for _ in range(10):
        if waitlist_fulfil_due() == 0:
            return
    raise AssertionError("the queue kept being served")


# --- Joins --------------------------------------------------------------------------------------


def test_two_joins_of_one_customer_at_once_make_one_entry(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out()
    for customer in customers[:3]:
        results = race(
            [
                lambda c=customer: join(s.session, c, quantity=1).state,  # type: ignore[misc]
                lambda c=customer: join(s.session, c, quantity=2).state,  # type: ignore[misc]
            ]
        )

        assert sorted(results) == ["waiting", "waitlist_already_joined"], results
        assert WaitlistEntry.objects.filter(customer=customer).count() == 1


# --- Fairness ----------------------------------------------------------------------------------


def test_concurrent_returns_are_bought_for_the_queue_strictly_in_order_and_once(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    # given: 12 admissions sold out in six orders of 2, and six prepaid entries (11 wanted)
    s = sold_out(mode=WaitlistMode.PREPAID, sizes=(2,) * 6)
    wanted = (2, 1, 3, 1, 2, 2)
    entries = [paid_entry(join, s.session, c, q) for c, q in zip(customers, wanted, strict=False)]

    # when: five orders are refunded at once (10 back) while four job runs serve the queue
    refunds = [lambda b=b: give_back(staff, b).state for b in s.orders[:5]]  # type: ignore[misc]
    results = race([*refunds, *(job_runs(6) for _ in range(4))])
    serve_until_quiet()

    # then: the longest prefix the 10 admissions cover (2+1+3+1+2 = 9) is fulfilled, in order
    assert results[:5] == [Refund.State.SUCCEEDED] * 5, results
    for entry in entries:
        entry.refresh_from_db()
    assert [e.state for e in entries] == ["fulfilled"] * 5 + ["waiting"]
    stamps = [e.fulfilled_at for e in entries[:5]]
    assert stamps == sorted(stamps)  # type: ignore[type-var]
    # each fulfilled exactly once, with its own tickets
    assert [credit_orders(e) for e in entries] == [1, 1, 1, 1, 1, 0]
    for entry, quantity in zip(entries[:5], wanted[:5], strict=True):
        assert (
            Ticket.objects.filter(order=entry.order, state=Ticket.State.VALID).count() == quantity
        )
    # no admission sold twice: 2 of the old orders' + 9 bought for the queue, 1 left
    valid = Ticket.objects.filter(session=s.session, state=Ticket.State.VALID).count()
    assert valid == 2 + 9
    taken = QuotaBucket.objects.filter(quota__session=s.session).aggregate(t=Sum("taken"))["t"]
    assert taken == 11
    assert session_availability(s.fresh())["available"] == 1


def test_concurrent_returns_of_reserved_seats_never_sell_a_seat_twice(
    reserved_session: Callable[..., Session],
    bought: MakeBought,
    join: Join,
    customers: list[User],
    staff: User,
) -> None:
    session = reserved_session(rows=1, seats_per_row=8)
    sold = [
        bought(session=session, seats=[f"M-1-{i}", f"M-1-{i + 1}"], customer=None)
        for i in (1, 3, 5, 7)
    ]
    session = set_waitlist(session, WaitlistMode.PREPAID)
    tier = session.price_tiers.get()
    entries = [paid_entry_of_tier(join, session, c, tier) for c in customers[:5]]

    refunds = [lambda b=b: give_back(staff, b).state for b in sold[:3]]  # type: ignore[misc]
    race([*refunds, *(job_runs(6) for _ in range(3))])
    serve_until_quiet()

    for entry in entries:
        entry.refresh_from_db()
    assert [e.state for e in entries] == ["fulfilled"] * 3 + ["waiting"] * 2
    seats = list(
        Ticket.objects.filter(session=session, state=Ticket.State.VALID).values_list(
            "seat__code", flat=True
        )
    )
    assert len(seats) == len(set(seats)) == 2 + 6


def paid_entry_of_tier(join: Join, session: Session, customer: User, tier: Any) -> WaitlistEntry:
    entry = join(session, customer, quantity=2, tier=tier)
    pay(deposit_of(entry))
    return entry


@pytest.fixture
def returns_wait_for_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """Returned seats are normally served to the queue right after the commit that returned
    them; these tests race two job runs over seats already back, so they switch that off."""
    monkeypatch.setattr(inventory_services, "_returned_hooks", [])


@pytest.mark.usefixtures("returns_wait_for_the_job")
def test_control_without_the_guards_one_entry_is_served_twice(
    sold_out: MakeSoldOut,
    join: Join,
    customers: list[User],
    staff: User,
    settings: Settings,
) -> None:
    # Eight admissions in two quota buckets, so the two runs' holds do not queue on one row.
    s = sold_out(mode=WaitlistMode.PREPAID, sizes=(2,) * 4)
    entry = paid_entry(join, s.session, customers[0], 2)
    for b in s.orders:
        give_back(staff, b)  # 8 back: room for the entry twice over

    settings.PIAOWU_AFTERSALES_UNSAFE_WAITLIST = True
    settings.PIAOWU_ORDERS_UNSAFE_TRANSITIONS = True
    results = race([waitlist_fulfil_due, waitlist_fulfil_due])

    assert credit_orders(entry) == 2, results  # one deposit paid for two orders: the race is real
    assert Ticket.objects.filter(session=s.session, state=Ticket.State.VALID).count() == 4


@pytest.mark.usefixtures("returns_wait_for_the_job")
def test_with_the_guards_two_job_runs_serve_an_entry_once(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID, sizes=(2,) * 4)
    entry = paid_entry(join, s.session, customers[0], 2)
    for b in s.orders:
        give_back(staff, b)

    results = race([waitlist_fulfil_due, waitlist_fulfil_due])

    assert sorted(results) == [0, 1]
    assert credit_orders(entry) == 1
    assert Order.objects.filter(waitlist_entry=entry).count() == 1


# --- Deadline ----------------------------------------------------------------------------------


def test_the_deadline_job_run_at_once_refunds_each_deposit_once(
    sold_out: MakeSoldOut, join: Join, customers: list[User], clock: Clock
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    entries = [paid_entry(join, s.session, c, 2) for c in customers[:3]]
    clock.shift(entries[0].deadline - clock() + dt.timedelta(seconds=1))

    results = race([lambda: waitlist_expire_due() for _ in range(4)])

    assert sum(results) == 3, results
    for entry in entries:
        entry.refresh_from_db()
        [refund] = Refund.objects.filter(order_id=entry.deposit_order_id)
        assert (entry.state, refund.amount, refund.state) == (
            "refunded",
            Decimal("560.00"),
            Refund.State.SUCCEEDED,
        )
    assert SandboxRefund.objects.count() == 3


def test_returned_seats_go_to_the_queue_right_after_the_return_without_the_job(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID, sizes=(2,) * 4)
    entry = paid_entry(join, s.session, customers[0], 2)

    give_back(staff, s.orders[0])  # no job runs: the return's commit serves the queue

    entry.refresh_from_db()
    assert entry.state == WaitlistEntry.State.FULFILLED
    assert credit_orders(entry) == 1
