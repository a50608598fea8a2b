"""Prepaid mode (候补): the customer pays a deposit up front; when admissions come back the job
buys them in queue order with that deposit (tickets issued, nothing charged again); an entry
not fulfilled by its deadline is refunded in full, once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund, WaitlistEntry
from piaowu.aftersales.services.refunds import funding_payment, refunds_process_due
from piaowu.aftersales.services.waitlist import (
    waitlist_cancel,
    waitlist_expire_due,
    waitlist_fulfil_due,
)
from piaowu.catalog.models import PriceTier, Session, WaitlistMode
from piaowu.inventory.models import Hold
from piaowu.inventory.selectors import session_availability
from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.states import OrderState
from piaowu.payments.models import LedgerEntry, Payment, SandboxRefund
from piaowu.tickets.models import Ticket
from tests.aftersales.refunds.conftest import MakeBought
from tests.aftersales.waitlist.conftest import (
    Clock,
    Join,
    MakeSoldOut,
    deposit_of,
    emails,
    give_back,
    pay,
    set_waitlist,
    states,
)

pytestmark = pytest.mark.django_db

AP, W, F, R, C = "awaiting_payment", "waiting", "fulfilled", "refunded", "cancelled"


def paid_entry(join: Join, session: Session, customer: User, quantity: int = 1) -> WaitlistEntry:
    entry = join(session, customer, quantity=quantity)
    pay(deposit_of(entry))
    entry.refresh_from_db()
    assert entry.state == W
    return entry


def ticket_order(entry: WaitlistEntry) -> Order:
    entry.refresh_from_db()
    assert entry.order is not None, entry.state
    return entry.order


def test_returned_admissions_are_bought_for_the_queue_in_order_with_the_deposits(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    first, second, third = (
        paid_entry(join, s.session, c, q) for c, q in zip(customers, (2, 1, 1), strict=False)
    )

    give_back(staff, s.orders[0])  # two back: exactly the head's two
    assert waitlist_fulfil_due() == 1
    assert states(first, second, third) == [F, W, W]

    # The head's order: paid by the deposit, its tickets issued, nothing charged again.
    order, deposit = ticket_order(first), deposit_of(first)
    assert order.state == OrderState.PAID and order.customer == customers[0]
    assert order.total_amount == Decimal("560.00") == deposit.total_amount
    assert [(line.tier.code, line.quantity, line.unit_price) for line in order.lines.all()] == [
        ("ga", 2, Decimal("280.00"))
    ]
    assert Ticket.objects.filter(order=order, state=Ticket.State.VALID).count() == 2
    assert order.hold.status == Hold.Status.CONVERTED
    assert not Payment.objects.filter(order=order).exists()
    assert Payment.objects.filter(order=deposit).count() == 1
    assert list(
        LedgerEntry.objects.values_list("order_id", "kind").filter(order__in=[order, deposit])
    ) == [(deposit.pk, LedgerEntry.Kind.CAPTURE)]
    assert funding_payment(order) == Payment.objects.get(order=deposit)
    assert deposit.state == OrderState.FULFILLED
    assert not Ticket.objects.filter(order=deposit).exists()
    assert OrderHistory.objects.filter(
        order=order, to_state=OrderState.PAID, reason__contains=first.public_id
    ).exists()
    [notice] = emails(f"waitlist:{first.public_id}:fulfilled")
    assert order.code in notice.body and f"/orders/{order.public_id}/tickets/" in notice.body

    # The rest, one admission at a time, still in order.
    give_back(staff, s.orders[1], count=1)
    assert waitlist_fulfil_due() == 1
    assert states(second, third) == [F, W]
    give_back(staff, s.orders[1])
    assert waitlist_fulfil_due() == 1
    assert states(second, third) == [F, F]
    assert waitlist_fulfil_due() == 0
    assert session_availability(s.fresh())["available"] == 0


def test_an_unpaid_entry_is_passed_over_until_its_deposit_is_paid(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    unpaid = join(s.session, customers[0])
    paid = paid_entry(join, s.session, customers[1])

    give_back(staff, s.orders[0], count=1)
    assert waitlist_fulfil_due() == 1

    assert states(unpaid, paid) == [AP, F]


def test_the_head_wanting_more_than_came_back_is_not_overtaken(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    big = paid_entry(join, s.session, customers[0], 2)
    small = paid_entry(join, s.session, customers[1], 1)

    give_back(staff, s.orders[0], count=1)
    assert waitlist_fulfil_due() == 0

    assert states(big, small) == [W, W]
    assert session_availability(s.fresh())["available"] == 1  # left for the next return


def test_refunding_a_fulfilled_ticket_goes_back_through_the_deposits_payment(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    entry = paid_entry(join, s.session, customers[0], 2)
    give_back(staff, s.orders[0])
    waitlist_fulfil_due()
    order = ticket_order(entry)
    from tests.aftersales.refunds.conftest import Bought

    refund = give_back(
        staff,
        Bought(order=order, payment=funding_payment(order), tickets=list(order.tickets.all())),
        1,  # type: ignore[arg-type]
    )

    assert refund.payment == Payment.objects.get(order=deposit_of(entry))
    assert refund.state == Refund.State.SUCCEEDED
    assert SandboxRefund.objects.filter(refund_reference=refund.number).count() == 1


def test_an_entry_not_fulfilled_by_its_deadline_is_refunded_in_full_once(
    sold_out: MakeSoldOut, join: Join, customers: list[User], clock: Clock
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    entry = paid_entry(join, s.session, customers[0], 2)
    deposit = deposit_of(entry)
    payment = Payment.objects.get(order=deposit)
    clock.shift(entry.deadline - clock() + dt.timedelta(seconds=1))

    assert waitlist_fulfil_due() == 0
    assert waitlist_expire_due() == 1
    assert waitlist_expire_due() == 0
    refunds_process_due()

    assert states(entry) == [R]
    [refund] = Refund.objects.filter(order=deposit)
    assert (refund.kind, refund.amount, refund.state) == (
        Refund.Kind.WAITLIST,
        Decimal("560.00"),
        Refund.State.SUCCEEDED,
    )
    assert SandboxRefund.objects.filter(transaction__reference=payment.reference).count() == 1
    assert LedgerEntry.objects.filter(order=deposit, kind=LedgerEntry.Kind.REFUND).count() == 1
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("560.00")
    assert deposit_of(entry).state == OrderState.REFUNDED
    [notice] = emails(f"waitlist:{entry.public_id}:refunded")
    assert "refunded in full" in notice.body


def test_a_deposit_not_paid_in_time_cancels_the_entry(
    sold_out: MakeSoldOut, join: Join, customers: list[User], clock: Clock
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    entry = join(s.session, customers[0])
    clock.shift(dt.timedelta(minutes=16))  # the payment window is 15 minutes

    assert waitlist_expire_due() == 1

    deposit = deposit_of(entry)
    assert states(entry) == [C]
    assert deposit.state == OrderState.EXPIRED
    assert deposit.hold.status == Hold.Status.RELEASED
    assert not Refund.objects.exists()


def test_cancelling_a_waiting_prepaid_entry_refunds_the_deposit_in_full(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    entry = paid_entry(join, s.session, customers[0], 2)

    waitlist_cancel(entry=entry, actor=customers[0])

    deposit = deposit_of(entry)
    [refund] = Refund.objects.filter(order=deposit)
    assert states(entry) == [C]
    assert (refund.amount, refund.kind, refund.state, refund.requested_by) == (
        Decimal("560.00"),
        Refund.Kind.WAITLIST,
        Refund.State.SUCCEEDED,
        customers[0],
    )
    assert deposit.state == OrderState.REFUNDED


def test_cancelling_before_paying_cancels_the_deposit_order(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    entry = join(s.session, customers[0])

    waitlist_cancel(entry=entry, actor=customers[0])

    assert states(entry) == [C]
    assert deposit_of(entry).state == OrderState.CANCELLED
    assert not Refund.objects.exists()


def test_a_lower_price_since_joining_gives_the_difference_back(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    entry = paid_entry(join, s.session, customers[0], 2)
    PriceTier.objects.filter(pk=s.tier.pk).update(price=Decimal("200"))  # edited in the admin

    give_back(staff, s.orders[0])
    assert waitlist_fulfil_due() == 1

    order, deposit = ticket_order(entry), deposit_of(entry)
    assert order.total_amount == Decimal("400.00")
    [refund] = Refund.objects.filter(order=deposit)
    assert (refund.amount, refund.kind) == (Decimal("160.00"), Refund.Kind.WAITLIST)


def test_a_higher_price_since_joining_refunds_the_entry_instead_of_charging_more(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    first = paid_entry(join, s.session, customers[0], 2)
    PriceTier.objects.filter(pk=s.tier.pk).update(price=Decimal("300"))

    give_back(staff, s.orders[0])
    assert waitlist_fulfil_due() == 0

    assert states(first) == [R]
    [refund] = Refund.objects.filter(order=deposit_of(first))
    assert refund.amount == Decimal("560.00")
    assert session_availability(s.fresh())["available"] == 2


def test_reserved_seats_that_come_back_apart_are_bought_for_the_queue(
    reserved_session: Callable[..., Session],
    bought: MakeBought,
    join: Join,
    customers: list[User],
    staff: User,
) -> None:
    session = reserved_session(rows=1, seats_per_row=4)
    left = bought(session=session, seats=["M-1-1", "M-1-2"], customer=None)
    right = bought(session=session, seats=["M-1-3", "M-1-4"], customer=None)
    session = set_waitlist(session, WaitlistMode.PREPAID)
    tier = session.price_tiers.get()
    entry = join(session, customers[0], quantity=2, tier=tier)
    pay(deposit_of(entry))

    give_back(staff, left, count=1)  # M-1-1
    give_back(staff, right, count=1)  # M-1-3: not next to M-1-1
    assert waitlist_fulfil_due() == 1

    order = ticket_order(entry)
    assert sorted(t.seat.code for t in Ticket.objects.filter(order=order)) == ["M-1-1", "M-1-3"]
