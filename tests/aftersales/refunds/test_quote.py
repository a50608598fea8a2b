"""Refund rules (AFT-1): which rule applies and what a refund costs, ticket by ticket, before
the customer confirms (`refund_quote`, the same computation the request uses)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import SessionReschedule
from piaowu.aftersales.policy import ticket_fee
from piaowu.aftersales.services.refunds import refund_quote
from piaowu.catalog.models import SalesChannel
from piaowu.catalog.services import TierSpec
from tests.aftersales.refunds.conftest import Clock, MakeBought, hours_before, refund_rule

pytestmark = pytest.mark.django_db


def priced(reserved_session: object, price: str) -> object:
    return reserved_session(tiers=[TierSpec(code="std", name="标准票", price=Decimal(price))])  # type: ignore[operator]


# --- No rule ---------------------------------------------------------------------------------


def test_without_a_rule_a_customer_cannot_refund(bought: MakeBought) -> None:
    order = bought().order

    quote = refund_quote(order=order)

    assert not quote.ok
    assert [item.refusal for item in quote.items] == ["refund_not_allowed"] * 2
    assert quote.fee_percent is None
    assert quote.rule_lines == ["Tickets for this session cannot be refunded online."]


def test_a_rule_without_tiers_refunds_nothing_either(bought: MakeBought) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, tiers=())

    quote = refund_quote(order=purchase.order)

    assert [item.refusal for item in quote.items] == ["refund_not_allowed"] * 2


# --- Tiers by time before the start -----------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "fee", "amount", "percent"),
    [
        (72, "0.00", "180.00", "0"),  # ≥ 48 h: free (the ¥2 minimum does not apply)
        (48, "0.00", "180.00", "0"),  # exactly 48 h left still counts
        (30, "18.00", "162.00", "10"),  # ≥ 24 h: 10 %
        (10, "36.00", "144.00", "20"),  # ≥ 2 h: 20 %
        (2, "36.00", "144.00", "20"),
    ],
)
def test_the_tier_with_the_most_hours_still_left_sets_the_fee(
    bought: MakeBought, hours: int, fee: str, amount: str, percent: str
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    at = purchase.session.starts_at - dt.timedelta(hours=hours)

    quote = refund_quote(order=purchase.order, tickets=purchase.tickets[:1], now=at)

    assert quote.ok
    [item] = quote.items
    assert (item.gross, item.fee, item.amount) == (Decimal("180"), Decimal(fee), Decimal(amount))
    assert quote.fee_percent == Decimal(percent)
    assert quote.amount.amount == Decimal(amount)


@pytest.mark.parametrize("hours", [1.99, 0.5, -1])
def test_after_the_last_tier_a_customer_cannot_refund(bought: MakeBought, hours: float) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    at = purchase.session.starts_at - dt.timedelta(hours=hours)

    quote = refund_quote(order=purchase.order, now=at)

    assert not quote.ok
    assert {item.refusal for item in quote.items} == {"refund_not_allowed"}
    assert quote.first_refusal() is quote.items[0]
    assert "can no longer be refunded" in quote.items[0].refusal_message


def test_a_session_rule_overrides_the_event_rule(bought: MakeBought, clock: Clock) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)  # the event: 10 % at 30 h
    refund_rule(purchase.session, tiers=((24, "50"),), minimum_fee="0")
    hours_before(clock, purchase.session, 30)

    quote = refund_quote(order=purchase.order, tickets=purchase.tickets[:1])

    assert quote.items[0].fee == Decimal("90.00")


# --- Minimum fee, never more than the price, rounding ------------------------------------------


def test_the_minimum_fee_applies_when_the_percentage_is_less(
    bought: MakeBought, reserved_session: object, clock: Clock
) -> None:
    purchase = bought(session=priced(reserved_session, "15"))
    refund_rule(purchase.session.event)  # 10 % of ¥15 = ¥1.50 < ¥2
    hours_before(clock, purchase.session, 30)

    quote = refund_quote(order=purchase.order)

    assert [(i.fee, i.amount) for i in quote.items] == [(Decimal("2"), Decimal("13"))] * 2
    assert quote.fee.amount == Decimal("4") and quote.amount.amount == Decimal("26")


def test_the_fee_is_never_more_than_the_ticket(
    bought: MakeBought, reserved_session: object, clock: Clock
) -> None:
    purchase = bought(session=priced(reserved_session, "1.50"))
    refund_rule(purchase.session.event, minimum_fee="5")
    hours_before(clock, purchase.session, 10)

    quote = refund_quote(order=purchase.order, tickets=purchase.tickets[:1])

    [item] = quote.items
    assert (item.fee, item.amount) == (Decimal("1.50"), Decimal("0"))
    assert quote.ok  # refundable, it just gives nothing back


def test_fees_are_rounded_half_up_to_the_cent() -> None:
    assert ticket_fee(Decimal("180.05"), Decimal("10"), Decimal("0"), "CNY") == Decimal("18.01")
    assert ticket_fee(Decimal("33.33"), Decimal("10"), Decimal("0"), "CNY") == Decimal("3.33")
    assert ticket_fee(Decimal("1005"), Decimal("12.5"), Decimal("0"), "JPY") == Decimal("126")
    assert ticket_fee(Decimal("100"), Decimal("0"), Decimal("5"), "CNY") == Decimal("0")


# --- A reschedule's free window -----------------------------------------------------------------


def test_a_reschedule_window_makes_refunds_free_even_after_the_cut_off(
    bought: MakeBought, clock: Clock
) -> None:
    purchase = bought()
    session = purchase.session
    refund_rule(session.event, needs_approval=True)
    SessionReschedule.objects.create(
        session=session,
        old_starts_at=session.starts_at - dt.timedelta(days=1),
        old_ends_at=session.ends_at - dt.timedelta(days=1),
        new_starts_at=session.starts_at,
        new_ends_at=session.ends_at,
        free_refund_until=session.starts_at - dt.timedelta(minutes=30),
        reason="场馆检修",
    )
    hours_before(clock, session, 1)  # past the 2 h cut-off, inside the window

    quote = refund_quote(order=purchase.order)

    assert quote.ok
    assert [item.fee for item in quote.items] == [Decimal("0")] * 2
    assert not quote.needs_approval  # the organizer moved the show: no approval needed
    assert quote.rule_lines[0].startswith("The session was rescheduled: refunds are free until")

    # and once the window has closed, the rule applies again
    hours_before(clock, session, 0.25)
    assert not refund_quote(order=purchase.order).ok


# --- Channels ----------------------------------------------------------------------------------


def test_a_rule_limited_to_some_channels_refuses_the_others(
    bought: MakeBought, organizer: Organizer
) -> None:
    purchase = bought()  # bought on the web
    box_office = SalesChannel.objects.get(organizer=organizer, kind=SalesChannel.Kind.BOX_OFFICE)
    refund_rule(purchase.session.event, channels=[box_office])

    quote = refund_quote(order=purchase.order)

    assert {item.refusal for item in quote.items} == {"channel_not_refundable"}
    # staff on the customer's behalf are not bound by the channel list
    assert refund_quote(order=purchase.order, by_staff=True).ok


def test_a_rule_listing_the_orders_channel_allows_it(
    bought: MakeBought, organizer: Organizer
) -> None:
    purchase = bought()
    web = SalesChannel.objects.get(organizer=organizer, kind=SalesChannel.Kind.WEB)
    refund_rule(purchase.session.event, channels=[web])

    assert refund_quote(order=purchase.order).ok


# --- Staff override and waiving the fee ---------------------------------------------------------


def test_staff_may_refund_after_the_cut_off_at_the_strictest_fee(
    bought: MakeBought, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    hours_before(clock, purchase.session, 1)

    quote = refund_quote(order=purchase.order, by_staff=True)

    assert quote.ok and not quote.needs_approval
    assert quote.fee_percent == Decimal("20")
    assert [item.fee for item in quote.items] == [Decimal("36.00")] * 2


def test_staff_may_waive_the_fee_but_a_customer_may_not(bought: MakeBought, clock: Clock) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 10)

    waived = refund_quote(order=purchase.order, by_staff=True, waive_fee=True)
    customer = refund_quote(order=purchase.order, waive_fee=True)

    assert waived.fee.amount == Decimal("0") and waived.amount.amount == Decimal("360")
    assert customer.fee.amount == Decimal("72.00")


def test_staff_refunding_without_any_rule_charge_no_fee(bought: MakeBought) -> None:
    quote = refund_quote(order=bought().order, by_staff=True)

    assert quote.ok and quote.fee.amount == Decimal("0")


def test_a_ticket_transferred_away_is_refused_to_the_buyer_but_not_to_staff(
    bought: MakeBought, make_user: object
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    friend: User = make_user()  # type: ignore[operator]
    ticket = purchase.tickets[0]
    ticket.holder = friend  # what an accepted transfer leaves behind
    ticket.save(update_fields=["holder"])

    quote = refund_quote(order=purchase.order, tickets=[ticket])

    assert quote.items[0].refusal == "ticket_transferred"
    assert refund_quote(order=purchase.order, tickets=[ticket], by_staff=True).ok


# --- The rule as the customer reads it ------------------------------------------------------------


def test_the_rule_reads_as_sentences(bought: MakeBought) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)

    quote = refund_quote(order=purchase.order)

    assert quote.rule_lines == [
        "Until 48 hours before the start: free refund.",
        "Until 24 hours before the start: 10 % fee.",
        "Until 2 hours before the start: 20 % fee.",
        "Later than 2 hours before the start: no refunds.",
        "Minimum fee per ticket: ¥2.00.",
    ]


def test_a_rule_refunding_until_the_start_says_so(bought: MakeBought) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, tiers=((0, "5"),), minimum_fee="0")

    assert refund_quote(order=purchase.order).rule_lines == [
        "Until the start: 5 % fee.",
        "After the start: no refunds.",
    ]
