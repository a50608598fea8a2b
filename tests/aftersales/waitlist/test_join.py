"""Joining the waitlist (AFT-5): who may join, when, for how many, once; the position shown;
the deposit order of prepaid mode; and every refusal the issue lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import WaitlistEntry, WaitlistHistory
from piaowu.aftersales.selectors.waitlist import (
    waitlist_latest_deadline,
    waitlist_panel_tiers,
    waitlist_position,
)
from piaowu.catalog.models import Session, WaitlistMode
from piaowu.core.errors import DomainError
from piaowu.inventory.services import hold_quantity
from piaowu.orders.states import OrderState
from piaowu.tickets.models import Ticket
from tests.aftersales.waitlist.conftest import (
    Clock,
    Join,
    MakeSoldOut,
    deposit_of,
    set_waitlist,
)
from tests.orders.conftest import web_channel

pytestmark = pytest.mark.django_db


def refused(code: str, call: Callable[[], object]) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.code == code, caught.value.as_dict()
    return caught.value


# --- Who may join, and when ----------------------------------------------------------------------


def test_a_sold_out_session_in_offer_mode_takes_the_customer_into_the_queue(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out()

    entry = join(s.session, customers[0], quantity=2)

    assert entry.state == WaitlistEntry.State.WAITING
    assert entry.mode == WaitlistEntry.Mode.OFFER
    assert (entry.quantity, entry.unit_price, entry.currency) == (2, Decimal("280"), "CNY")
    assert entry.deposit_order is None
    # Waits until 2 hours before the start (sales close at the start by default).
    assert entry.deadline == s.session.starts_at - dt.timedelta(hours=2)
    assert waitlist_position(entry) == 1
    assert list(
        WaitlistHistory.objects.filter(entry=entry).values_list("from_state", "to_state", "note")
    ) == [("", "waiting", "joined")]


def test_joining_while_the_tier_is_on_sale_is_refused_and_nothing_is_written(
    ga_session: Callable[..., Session], join: Join, customers: list[User]
) -> None:
    session = set_waitlist(ga_session(capacity=10), WaitlistMode.OFFER)

    error = refused("waitlist_not_sold_out", lambda: join(session, customers[0], quantity=2))

    assert error.details == {"available": 10}
    assert "still on sale" in str(error.message)
    assert not WaitlistEntry.objects.exists()


def test_joining_is_allowed_when_fewer_are_left_than_asked_for(
    ga_session: Callable[..., Session], join: Join, customers: list[User]
) -> None:
    session = set_waitlist(ga_session(capacity=3), WaitlistMode.OFFER)
    hold_quantity(session=session, tier_code="ga", quantity=2, holder_key="someone")

    refused("waitlist_not_sold_out", lambda: join(session, customers[0], quantity=1))
    entry = join(session, customers[0], quantity=2)

    assert entry.state == WaitlistEntry.State.WAITING


def test_a_tier_sold_out_on_its_own_quota_takes_joins_while_others_sell(
    two_tier_session: Session, join: Join, customers: list[User]
) -> None:
    vip = two_tier_session.price_tiers.get(code="vip")
    hold_quantity(session=two_tier_session, tier_code="vip", quantity=2, holder_key="someone")

    entry = join(two_tier_session, customers[0], tier=vip)
    refused("waitlist_not_sold_out", lambda: join(two_tier_session, customers[1]))

    assert entry.tier == vip
    assert [p.tier.code for p in waitlist_panel_tiers(two_tier_session)] == ["vip"]


def test_a_session_without_a_waitlist_refuses_joins(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.OFF)

    refused("waitlist_off", lambda: join(s.session, customers[0]))

    assert waitlist_panel_tiers(s.session) == []


def test_a_tier_of_another_session_is_refused(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s, other = sold_out(), sold_out()

    error = refused("waitlist_tier_invalid", lambda: join(s.session, customers[0], tier=other.tier))

    assert error.details == {"tier": "ga"}
    assert not WaitlistEntry.objects.exists()


@pytest.mark.parametrize("quantity", [0, -1, 7])
def test_a_quantity_of_none_or_over_the_limit_is_refused(
    sold_out: MakeSoldOut, join: Join, customers: list[User], quantity: int
) -> None:
    s = sold_out()

    error = refused("invalid_quantity", lambda: join(s.session, customers[0], quantity=quantity))

    assert error.details["limit"] == 6 and error.details["minimum"] == 1
    assert not WaitlistEntry.objects.exists()


def test_the_limit_is_the_tiers_per_order_limit_when_lower(
    ga_session: Callable[..., Session],
    join: Join,
    customers: list[User],
    bought: Callable[..., object],
) -> None:
    from piaowu.catalog.services import TierSpec

    session = ga_session(
        capacity=2, tiers=[TierSpec(code="ga", name="通票", price=Decimal("280"), max_per_order=2)]
    )
    bought(session=session, ga=2, customer=None)
    session = set_waitlist(session, WaitlistMode.OFFER)

    error = refused("invalid_quantity", lambda: join(session, customers[0], quantity=3))

    assert error.details["limit"] == 2


def test_the_same_customer_joins_a_session_once_while_the_entry_is_open(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out()
    first = join(s.session, customers[0])

    error = refused("waitlist_already_joined", lambda: join(s.session, customers[0], quantity=2))

    assert error.status == 409
    assert error.details == {"entry": first.public_id}
    assert WaitlistEntry.objects.count() == 1


def test_a_customer_may_join_again_after_leaving(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    from piaowu.aftersales.services.waitlist import waitlist_cancel

    s = sold_out()
    first = join(s.session, customers[0])
    waitlist_cancel(entry=first, actor=customers[0])

    second = join(s.session, customers[0])

    assert second.pk > first.pk and second.state == WaitlistEntry.State.WAITING


def test_joins_close_before_the_start_and_when_sales_close(
    sold_out: MakeSoldOut, join: Join, customers: list[User], clock: Clock
) -> None:
    s = sold_out()
    latest = waitlist_latest_deadline(s.session)
    clock.shift(latest - clock() - dt.timedelta(minutes=10))

    refused("waitlist_closed", lambda: join(s.session, customers[0]))

    clock.shift(s.session.sales_close_at - clock() + dt.timedelta(minutes=1))
    error = refused("sales_closed", lambda: join(s.session, customers[0]))
    assert error.details == {"sales_state": "closed"}


def test_a_customer_may_choose_an_earlier_deadline_but_not_a_later_one(
    sold_out: MakeSoldOut, join: Join, customers: list[User], clock: Clock
) -> None:
    s = sold_out()
    latest = waitlist_latest_deadline(s.session)

    refused(
        "waitlist_deadline_invalid",
        lambda: join(s.session, customers[0], wait_until=latest + dt.timedelta(minutes=1)),
    )
    refused(
        "waitlist_deadline_invalid",
        lambda: join(s.session, customers[0], wait_until=clock() + dt.timedelta(minutes=5)),
    )
    chosen = clock() + dt.timedelta(hours=6)
    entry = join(s.session, customers[0], wait_until=chosen)

    assert entry.deadline == chosen


# --- Position --------------------------------------------------------------------------------


def test_the_position_counts_the_open_entries_ahead_for_the_same_tier(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    from piaowu.aftersales.services.waitlist import waitlist_cancel

    s = sold_out()
    entries = [join(s.session, c) for c in customers[:4]]

    assert [waitlist_position(e) for e in entries] == [1, 2, 3, 4]

    waitlist_cancel(entry=entries[1], actor=customers[1])
    for entry in entries:
        entry.refresh_from_db()

    assert [waitlist_position(e) for e in entries] == [1, None, 2, 3]


# --- Prepaid: the deposit ----------------------------------------------------------------------


def test_a_prepaid_join_creates_a_deposit_order_without_lines_awaiting_payment(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)

    entry = join(s.session, customers[0], quantity=2, contact_email="fan@example.com")

    deposit = deposit_of(entry)
    assert entry.state == WaitlistEntry.State.AWAITING_PAYMENT
    assert entry.mode == WaitlistEntry.Mode.PREPAID
    assert deposit.state == OrderState.AWAITING_PAYMENT
    assert (deposit.total_amount, deposit.currency) == (Decimal("560.00"), "CNY")
    assert deposit.customer == customers[0]
    assert (deposit.contact_phone, deposit.contact_email) == ("13800138000", "fan@example.com")
    assert not deposit.lines.exists()
    assert deposit.hold.holder_key == f"user:{customers[0].pk}"
    assert not deposit.hold.items.exists()
    assert waitlist_position(entry) == 1


def test_a_prepaid_join_with_a_bad_contact_writes_nothing(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)

    refused("invalid_email", lambda: join(s.session, customers[0], contact_email="not-mail"))

    assert not WaitlistEntry.objects.exists()
    assert s.session.orders.count() == 2  # the two that sold it out


def test_paying_the_deposit_issues_no_ticket_and_puts_the_entry_in_the_queue(
    sold_out: MakeSoldOut,
    join: Join,
    customers: list[User],
    organizer: Organizer,
) -> None:
    from tests.aftersales.waitlist.conftest import emails, pay

    s = sold_out(mode=WaitlistMode.PREPAID)
    entry = join(s.session, customers[0], quantity=2)

    pay(deposit_of(entry))

    entry.refresh_from_db()
    deposit = deposit_of(entry)
    assert entry.state == WaitlistEntry.State.WAITING
    assert deposit.state == OrderState.PAID
    assert not Ticket.objects.filter(order=deposit).exists()
    assert not deposit.deliveries.exists()
    [notice] = emails(f"waitlist:{entry.public_id}:waiting")
    assert "number 1 in line" in notice.body
    assert web_channel(organizer) == deposit.channel
