"""Offer mode: admissions that come back (a refund, a cancelled unpaid order, an expired hold)
are held for the next in line for a while; an unused offer passes on; paying it fulfils the
entry. Strictly first come, first served."""

from __future__ import annotations

import datetime as dt

import pytest

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import WaitlistEntry, WaitlistHistory
from piaowu.aftersales.services.waitlist import (
    waitlist_cancel,
    waitlist_expire_due,
    waitlist_offer_due,
)
from piaowu.catalog.models import Session
from piaowu.inventory.models import Hold
from piaowu.inventory.selectors import session_availability
from piaowu.inventory.services import hold_quantity, hold_release
from piaowu.orders.models import Order
from piaowu.orders.services import order_cancel, order_checkout, order_expire_overdue
from piaowu.orders.states import OrderState
from piaowu.tickets.models import Ticket
from tests.aftersales.waitlist.conftest import (
    Clock,
    Join,
    MakeSoldOut,
    emails,
    give_back,
    pay,
    states,
)
from tests.orders.conftest import PHONE, web_channel

pytestmark = pytest.mark.django_db

W, OF, F, E, C = "waiting", "offered", "fulfilled", "expired", "cancelled"


def offer_hold(entry: WaitlistEntry) -> Hold:
    entry.refresh_from_db()
    assert entry.offer_hold is not None, entry.state
    return entry.offer_hold


def check_out(entry: WaitlistEntry, customer: User, organizer: Organizer) -> Order:
    """The customer opens the offer's checkout page and checks out (signed in)."""
    return order_checkout(
        hold=offer_hold(entry),
        channel=web_channel(organizer),
        holder_key=f"user:{customer.pk}",
        customer=customer,
        contact_phone=PHONE,
    )


def available(session: Session) -> int:
    return int(session_availability(session)["tiers"]["ga"])


def test_returned_admissions_are_held_for_the_head_of_the_queue_with_a_notice(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User, clock: Clock
) -> None:
    s = sold_out()
    first, second, third = (
        join(s.session, c, quantity=q) for c, q in zip(customers, (2, 1, 1), strict=False)
    )
    assert waitlist_offer_due() == 0  # nothing came back yet

    give_back(staff, s.orders[0])  # two admissions return
    offered = waitlist_offer_due()

    assert offered == 1
    assert states(first, second, third) == [OF, W, W]
    hold = offer_hold(first)
    first.refresh_from_db()
    assert hold.holder_key == f"user:{customers[0].pk}" and hold.customer == customers[0]
    assert [(i.tier.code, i.quantity) for i in hold.items.all()] == [("ga", 2)]
    assert first.offer_expires_at == hold.expires_at
    assert abs(hold.expires_at - clock() - dt.timedelta(minutes=15)) < dt.timedelta(seconds=5)
    assert available(s.fresh()) == 0  # held for the customer, not for the public
    [notice] = emails(f"waitlist:{first.public_id}:offered")
    assert notice.recipient == customers[0].email
    assert f"/waitlist/{first.public_id}/checkout/" in notice.body
    assert "held for you" in notice.subject
    # Running again changes nothing: the offer stands, the rest wait.
    assert waitlist_offer_due() == 0
    assert states(first, second, third) == [OF, W, W]


def test_an_unused_offer_expires_and_passes_to_the_next_in_line_who_buys(
    sold_out: MakeSoldOut,
    join: Join,
    customers: list[User],
    staff: User,
    clock: Clock,
    organizer: Organizer,
) -> None:
    s = sold_out()
    first, second = (join(s.session, c, quantity=2) for c in customers[:2])
    give_back(staff, s.orders[0])
    waitlist_offer_due()
    first_hold = offer_hold(first)

    clock.shift(dt.timedelta(minutes=14))
    assert waitlist_offer_due() == 0  # still within the 15 minutes
    clock.shift(dt.timedelta(minutes=2))
    assert waitlist_offer_due() == 1

    assert states(first, second) == [E, OF]
    assert emails(f"waitlist:{first.public_id}:offer_expired")
    second_hold = offer_hold(second)
    assert second_hold.pk != first_hold.pk
    assert second_hold.holder_key == f"user:{customers[1].pk}"

    order = check_out(second, customers[1], organizer)
    pay(order)

    second.refresh_from_db()
    assert second.state == F and second.order == order and second.fulfilled_at is not None
    assert Ticket.objects.filter(order=order).count() == 2
    assert list(
        WaitlistHistory.objects.filter(entry=second).values_list("to_state", flat=True)
    ) == [W, OF, F]


def test_the_head_wanting_more_than_came_back_is_not_overtaken(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out()
    big, small = join(s.session, customers[0], quantity=2), join(s.session, customers[1])

    give_back(staff, s.orders[0], count=1)  # one admission back; the head wants two
    assert waitlist_offer_due() == 0
    assert states(big, small) == [W, W]

    give_back(staff, s.orders[1], count=1)  # a second one: now the head is served
    assert waitlist_offer_due() == 1
    assert states(big, small) == [OF, W]


def test_a_cancelled_unpaid_order_gives_its_admissions_to_the_queue(
    ga_session: object, bought: object, join: Join, customers: list[User], organizer: Organizer
) -> None:
    from tests.aftersales.waitlist.conftest import set_waitlist

    session = ga_session(capacity=3)  # type: ignore[operator]
    bought(session=session, ga=2, customer=None)  # type: ignore[operator]
    hold = hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="late")
    unpaid = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="late", contact_phone=PHONE
    )
    session = set_waitlist(session, "offer")
    entry = join(session, customers[0])

    order_cancel(order=unpaid, reason="changed my mind")
    waitlist_offer_due(session=session)

    assert states(entry) == [OF]


def test_an_expired_hold_gives_its_admissions_to_the_queue(
    ga_session: object, join: Join, customers: list[User], clock: Clock
) -> None:
    from tests.aftersales.waitlist.conftest import set_waitlist

    session = set_waitlist(ga_session(capacity=1), "offer")  # type: ignore[operator]
    hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="slow buyer")
    entry = join(session, customers[0])

    clock.shift(dt.timedelta(minutes=11))  # holds last 10 minutes
    assert waitlist_offer_due() == 1

    assert states(entry) == [OF]


def test_an_offer_released_by_the_customer_passes_on_at_once(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out()
    first, second = (join(s.session, c, quantity=2) for c in customers[:2])
    give_back(staff, s.orders[0])
    waitlist_offer_due()

    hold_release(hold=offer_hold(first))  # "Release" on the hold panel
    waitlist_offer_due()

    assert states(first, second) == [E, OF]


def test_declining_an_offer_cancels_the_entry_and_frees_the_admissions(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out()
    first, second = (join(s.session, c, quantity=2) for c in customers[:2])
    give_back(staff, s.orders[0])
    waitlist_offer_due()
    hold = offer_hold(first)

    waitlist_cancel(entry=first, actor=customers[0])

    hold.refresh_from_db()
    assert hold.status == Hold.Status.RELEASED
    assert available(s.fresh()) == 2
    waitlist_offer_due()
    assert states(first, second) == [C, OF]


def test_an_offer_checked_out_keeps_its_entry_until_the_order_is_paid_or_expires(
    sold_out: MakeSoldOut,
    join: Join,
    customers: list[User],
    staff: User,
    clock: Clock,
    organizer: Organizer,
) -> None:
    s = sold_out()
    first, second = (join(s.session, c, quantity=2) for c in customers[:2])
    give_back(staff, s.orders[0])
    waitlist_offer_due()
    clock.shift(dt.timedelta(minutes=14))
    order = check_out(first, customers[0], organizer)  # the order gets 15 minutes to be paid

    clock.shift(dt.timedelta(minutes=3))  # past the offer, within the payment deadline
    waitlist_offer_due()
    assert states(first, second) == [OF, W]

    clock.shift(dt.timedelta(minutes=13))  # the order was never paid
    order_expire_overdue()
    waitlist_offer_due()

    order.refresh_from_db()
    assert order.state == OrderState.EXPIRED
    assert states(first, second) == [E, OF]


def test_cancelling_an_offer_whose_order_awaits_payment_cancels_that_order(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User, organizer: Organizer
) -> None:
    s = sold_out()
    first = join(s.session, customers[0], quantity=2)
    give_back(staff, s.orders[0])
    waitlist_offer_due()
    order = check_out(first, customers[0], organizer)

    waitlist_cancel(entry=first, actor=customers[0])

    order.refresh_from_db()
    assert order.state == OrderState.CANCELLED
    assert states(first) == [C]
    assert available(s.fresh()) == 2


def test_waiting_past_the_deadline_ends_the_entry_with_a_notice(
    sold_out: MakeSoldOut, join: Join, customers: list[User], clock: Clock
) -> None:
    s = sold_out()
    entry = join(s.session, customers[0], wait_until=clock() + dt.timedelta(hours=1))
    clock.shift(dt.timedelta(hours=1, seconds=1))

    assert waitlist_offer_due() == 0  # an entry past its deadline is not served
    assert waitlist_expire_due() == 1
    assert waitlist_expire_due() == 0

    assert states(entry) == [E]
    assert emails(f"waitlist:{entry.public_id}:closed")


def test_cancelling_an_entry_that_is_no_longer_open_is_refused(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    from piaowu.core.errors import DomainError

    s = sold_out()
    entry = join(s.session, customers[0])
    waitlist_cancel(entry=entry, actor=customers[0])

    with pytest.raises(DomainError) as caught:
        waitlist_cancel(entry=entry, actor=customers[0])

    assert caught.value.code == "waitlist_not_open"
    assert caught.value.status == 409
    assert caught.value.details == {"state": C}
