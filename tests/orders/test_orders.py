"""Checkout, payment, cancellation, expiry and the order state machine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from piaowu.accounts.models import Organizer, Role, User
from piaowu.catalog.models import Session
from piaowu.catalog.services import TierSpec
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, SeatState
from piaowu.inventory.selectors import session_availability, session_seat_states
from piaowu.inventory.services import hold_quantity, hold_release, hold_seats
from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.selectors import (
    order_get_for_customer,
    order_lookup,
    orders_for_customer,
    orders_search_for_staff,
)
from piaowu.orders.services import (
    order_cancel,
    order_checkout,
    order_expire_overdue,
    order_mark_paid,
)
from piaowu.orders.states import OrderState, transition
from tests.orders.conftest import PHONE, Clock, web_channel

MakeSession = Callable[..., Session]
Checkout = Callable[..., Order]


def states(session: Session, *codes: str) -> list[str]:
    seat_states = session_seat_states(session)
    return [seat_states[code] for code in codes]


def history(order: Order) -> list[tuple[str, str]]:
    return list(order.history.order_by("id").values_list("from_state", "to_state"))


# --- Checkout ----------------------------------------------------------------------------------


def test_checkout_creates_an_order_awaiting_payment_priced_from_the_hold(
    organizer: Organizer, reserved_session: MakeSession, clock: Clock, settings: object
) -> None:
    session = reserved_session(tiers=[TierSpec(code="std", name="标准票", price=Decimal("180.50"))])
    hold = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="buyer")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="buyer", contact_phone=PHONE
    )
    hold.refresh_from_db()
    assert order.state == OrderState.AWAITING_PAYMENT
    assert order.total_amount == Decimal("361.00") and order.currency == "CNY"
    assert order.channel.kind == "web"
    assert sorted(order.lines.values_list("seat__code", "quantity", "unit_price")) == [
        ("M-1-5", 1, Decimal("180.50")),
        ("M-1-6", 1, Decimal("180.50")),
    ]
    window = order.payment_deadline - order.created_at
    assert dt.timedelta(minutes=14) < window <= dt.timedelta(minutes=15, seconds=1)
    assert hold.expires_at == order.payment_deadline
    assert set(SeatState.objects.filter(hold=hold).values_list("held_until", flat=True)) == {
        order.payment_deadline
    }
    assert len(order.code) == 10 and len(order.public_id) == 26
    assert history(order) == [("", "awaiting_payment")]
    # The seats stay held past the hold's original 10 minutes, until the payment deadline.
    clock.shift(dt.timedelta(minutes=12))
    assert states(session, "M-1-5", "M-1-6") == ["held", "held"]


def test_payment_deadline_follows_the_setting(checkout: Checkout, settings: object) -> None:
    settings.PIAOWU_PAYMENT_DEADLINE_SECONDS = 300  # type: ignore[attr-defined]
    order = checkout()
    window = order.payment_deadline - order.created_at
    assert dt.timedelta(minutes=4) < window <= dt.timedelta(minutes=5, seconds=1)


def test_checkout_of_a_quota_hold_prices_the_quantity(
    organizer: Organizer, ga_session: MakeSession
) -> None:
    session = ga_session(capacity=10)
    hold = hold_quantity(session=session, tier_code="ga", quantity=3, holder_key="buyer")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="buyer", contact_phone=PHONE
    )
    assert order.total_amount == Decimal("840.00")
    order_mark_paid(order=order)
    assert session_availability(session)["available"] == 7


def test_double_checkout_returns_the_same_order(organizer: Organizer, checkout: Checkout) -> None:
    order = checkout()
    again = order_checkout(
        hold=order.hold, channel=web_channel(organizer), holder_key="buyer", contact_phone=PHONE
    )
    assert again.pk == order.pk
    assert Order.objects.filter(hold=order.hold).count() == 1


def test_checkout_of_an_expired_hold_is_refused_and_creates_no_order(
    organizer: Organizer, reserved_session: MakeSession, clock: Clock
) -> None:
    hold = hold_seats(session=reserved_session(), seat_codes=["M-1-5"], holder_key="buyer")
    clock.shift(dt.timedelta(minutes=11))
    with pytest.raises(DomainError) as exc:
        order_checkout(
            hold=hold, channel=web_channel(organizer), holder_key="buyer", contact_phone=PHONE
        )
    assert exc.value.code == "hold_expired"
    assert not Order.objects.exists()


def test_checkout_of_a_released_hold_is_refused(
    organizer: Organizer, reserved_session: MakeSession
) -> None:
    hold = hold_seats(session=reserved_session(), seat_codes=["M-1-5"], holder_key="buyer")
    hold_release(hold=hold)
    with pytest.raises(DomainError) as exc:
        order_checkout(
            hold=hold, channel=web_channel(organizer), holder_key="buyer", contact_phone=PHONE
        )
    assert exc.value.code == "hold_expired"
    assert not Order.objects.exists()


def test_checkout_of_someone_elses_hold_is_refused(
    organizer: Organizer, checkout: Checkout, reserved_session: MakeSession
) -> None:
    hold = hold_seats(session=reserved_session(), seat_codes=["M-1-5"], holder_key="buyer")
    with pytest.raises(DomainError) as exc:
        order_checkout(
            hold=hold, channel=web_channel(organizer), holder_key="thief", contact_phone=PHONE
        )
    assert exc.value.code == "hold_not_yours"
    # Nor can another holder fetch an existing order through the hold.
    order = checkout()
    with pytest.raises(DomainError) as exc:
        order_checkout(
            hold=order.hold, channel=web_channel(organizer), holder_key="thief", contact_phone=PHONE
        )
    assert exc.value.code == "hold_not_yours"


def test_checkout_refuses_bad_channel_and_missing_contact(
    organizer: Organizer, other_organizer: Organizer, reserved_session: MakeSession
) -> None:
    hold = hold_seats(session=reserved_session(), seat_codes=["M-1-5"], holder_key="buyer")
    cases = [
        ({"channel": web_channel(other_organizer), "contact_phone": PHONE}, "channel_mismatch"),
        ({"channel": web_channel(organizer)}, "contact_required"),
        ({"channel": web_channel(organizer), "contact_phone": "call me"}, "invalid_phone"),
        (
            {"channel": web_channel(organizer), "contact_phone": PHONE, "contact_email": "x@"},
            "invalid_email",
        ),
    ]
    for kwargs, code in cases:
        with pytest.raises(DomainError) as exc:
            order_checkout(hold=hold, holder_key="buyer", **kwargs)  # type: ignore[arg-type]
        assert exc.value.code == code
    assert not Order.objects.exists()


# --- Cancel, expire, pay -----------------------------------------------------------------------


def test_cancel_releases_the_seats_and_records_the_actor(
    checkout: Checkout, make_user: Callable[..., User]
) -> None:
    order = checkout()
    staff = make_user()
    order_cancel(order=order, actor=staff, reason="customer called")
    order.refresh_from_db()
    assert order.state == OrderState.CANCELLED
    assert states(order.session, "M-1-5", "M-1-6") == ["available", "available"]
    assert order.hold.status == Hold.Status.RELEASED
    last = order.history.order_by("id").last()
    assert last is not None and last.actor == staff and last.reason == "customer called"
    # Cancelling again (a double click, a retried request) is harmless: nothing is written.
    history = order.history.count()
    assert order_cancel(order=order).state == OrderState.CANCELLED
    assert order.history.count() == history


def test_expire_overdue_returns_the_seats(checkout: Checkout, clock: Clock) -> None:
    order = checkout()
    fresh = checkout(session=order.session, seats=["M-2-1"])
    assert order_expire_overdue() == 0
    clock.shift(dt.timedelta(minutes=16))
    assert order_expire_overdue(now=order.payment_deadline - dt.timedelta(seconds=1)) == 0
    assert order_expire_overdue() == 2
    assert order_expire_overdue() == 0  # nothing left to expire
    order.refresh_from_db()
    fresh.refresh_from_db()
    assert order.state == fresh.state == OrderState.EXPIRED
    assert states(order.session, "M-1-5", "M-1-6", "M-2-1") == ["available"] * 3
    assert SeatState.objects.filter(session=order.session, state="held").count() == 0
    assert history(order) == [("", "awaiting_payment"), ("awaiting_payment", "expired")]


def test_mark_paid_sells_the_seats_and_is_idempotent(checkout: Checkout) -> None:
    order = checkout()
    paid_at = order.created_at + dt.timedelta(minutes=1)
    order_mark_paid(order=order, paid_at=paid_at)
    order.refresh_from_db()
    assert order.state == OrderState.PAID and order.paid_at == paid_at
    assert states(order.session, "M-1-5", "M-1-6") == ["sold", "sold"]
    again = order_mark_paid(order=Order.objects.get(pk=order.pk))
    assert again.state == OrderState.PAID and again.paid_at == paid_at
    assert history(order) == [("", "awaiting_payment"), ("awaiting_payment", "paid")]


def test_paying_an_expired_or_cancelled_order_is_refused(checkout: Checkout, clock: Clock) -> None:
    expired, cancelled = checkout(), checkout()
    order_cancel(order=cancelled)
    clock.shift(dt.timedelta(minutes=16))
    order_expire_overdue()
    for order, state in ((expired, "expired"), (cancelled, "cancelled")):
        with pytest.raises(DomainError) as exc:
            order_mark_paid(order=order)
        assert exc.value.code == "order_not_payable"
        assert exc.value.details["state"] == state
        assert exc.value.status == 409
    assert SeatState.objects.filter(state="sold").count() == 0


def test_paying_after_the_deadline_before_the_sweep_expires_the_order(
    checkout: Checkout, clock: Clock
) -> None:
    order = checkout()
    clock.shift(dt.timedelta(minutes=16))
    with pytest.raises(DomainError) as exc:
        order_mark_paid(order=order)
    assert exc.value.code == "order_not_payable"
    order.refresh_from_db()
    assert order.state == OrderState.EXPIRED
    assert states(order.session, "M-1-5", "M-1-6") == ["available", "available"]


def test_illegal_transitions_are_refused_and_leave_no_history(checkout: Checkout) -> None:
    order = checkout()
    for target in (OrderState.FULFILLED, OrderState.REFUNDED, OrderState.AWAITING_PAYMENT):
        with pytest.raises(DomainError) as exc:
            transition(order, target)
        assert exc.value.code == "illegal_transition"
        assert exc.value.details == {"from": "awaiting_payment", "to": target}
    order_mark_paid(order=order)
    transition(order, OrderState.PARTIALLY_REFUNDED, reason="one seat")
    transition(order, OrderState.REFUNDED, reason="rest")
    with pytest.raises(DomainError) as exc:
        transition(order, OrderState.PAID)
    assert exc.value.code == "illegal_transition"
    assert [to for _f, to in history(order)] == [
        "awaiting_payment",
        "paid",
        "partially_refunded",
        "refunded",
    ]


def test_a_transition_from_a_stale_state_loses(checkout: Checkout) -> None:
    order = checkout()
    stale = Order.objects.get(pk=order.pk)
    order_cancel(order=order)
    with pytest.raises(DomainError) as exc:
        transition(stale, OrderState.EXPIRED)
    assert exc.value.code == "order_state_changed"
    assert exc.value.details == {"from": "awaiting_payment", "to": "expired", "state": "cancelled"}
    assert OrderHistory.objects.filter(order=order).count() == 2


def test_the_database_refuses_a_bad_state(checkout: Checkout) -> None:
    from django.db import IntegrityError, transaction

    order = checkout()
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(state="lost")
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(total_amount=Decimal("-1"))


# --- Selectors ---------------------------------------------------------------------------------


def test_guest_lookup_needs_the_right_phone(checkout: Checkout) -> None:
    order = checkout()
    assert order_lookup(code=order.code.lower(), phone="13800138000").pk == order.pk
    errors = []
    for code, phone in ((order.code, "13900000000"), ("NOSUCHCODE", PHONE), (order.code, "")):
        with pytest.raises(DomainError) as exc:
            order_lookup(code=code, phone=phone)
        errors.append((exc.value.code, str(exc.value.message)))
    assert errors == [("order_not_found", "No such order.")] * 3


def test_customer_sees_only_own_orders(checkout: Checkout, make_user: Callable[..., User]) -> None:
    alice, bob = make_user(), make_user()
    mine = checkout(customer=alice)
    checkout(customer=bob)
    assert order_get_for_customer(public_id=mine.public_id, customer=alice).pk == mine.pk
    with pytest.raises(DomainError) as exc:
        order_get_for_customer(public_id=mine.public_id, customer=bob)
    assert exc.value.code == "order_not_found"
    assert [o.pk for o in orders_for_customer(alice)] == [mine.pk]


def test_staff_search_is_scoped_by_organizer(
    organizer: Organizer,
    other_organizer: Organizer,
    checkout: Checkout,
    make_staff: Callable[..., User],
    make_user: Callable[..., User],
) -> None:
    ours = checkout(contact_email="fan@example.com")
    service = make_staff(organizer, role=Role.SERVICE)
    checker = make_staff(organizer, role=Role.CHECKER)
    rival = make_staff(other_organizer)
    assert [o.pk for o in orders_search_for_staff(user=service)] == [ours.pk]
    assert [o.pk for o in orders_search_for_staff(user=service, q=ours.code)] == [ours.pk]
    assert [o.pk for o in orders_search_for_staff(user=service, q="0013")] == [ours.pk]
    assert [o.pk for o in orders_search_for_staff(user=service, q="FAN@example.com")] == [ours.pk]
    assert not orders_search_for_staff(user=service, q="nobody@example.com").exists()
    assert not orders_search_for_staff(user=checker).exists()
    assert not orders_search_for_staff(user=rival).exists()
    assert not orders_search_for_staff(user=make_user()).exists()


def test_hold_extend_until_refuses_an_expired_or_converted_hold(
    reserved_session: MakeSession, clock: Clock
) -> None:
    from piaowu.inventory.checkout import hold_extend_until
    from piaowu.inventory.services import hold_convert

    session = reserved_session()
    expired = hold_seats(session=session, seat_codes=["M-1-1"], holder_key="a")
    sold = hold_seats(session=session, seat_codes=["M-3-1"], holder_key="b")
    hold_convert(hold=sold)
    clock.shift(dt.timedelta(minutes=11))
    for hold, code in ((expired, "hold_expired"), (sold, "hold_converted")):
        with pytest.raises(DomainError) as exc:
            hold_extend_until(hold=hold, until=clock() + dt.timedelta(minutes=5))
        assert exc.value.code == code
    assert states(session, "M-1-1") == ["available"]
    fresh = hold_seats(session=session, seat_codes=["M-2-1"], holder_key="c")
    with pytest.raises(DomainError) as exc:
        hold_extend_until(hold=fresh, until=clock() - dt.timedelta(seconds=1))
    assert exc.value.code == "invalid_deadline"


def test_free_tickets_are_paid_at_checkout_without_a_provider(
    organizer: Organizer, reserved_session: Callable[..., Session]
) -> None:
    session = reserved_session(tiers=[TierSpec(code="invite", name="邀请票", price=Decimal("0"))])
    hold = hold_seats(session=session, seat_codes=["M-1-5"], holder_key="buyer")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="buyer", contact_phone=PHONE
    )
    assert order.state == OrderState.PAID and order.paid_at is not None
    assert list(order.history.values_list("to_state", "reason")) == [
        ("awaiting_payment", "checkout"),
        ("paid", "free"),
    ]
    assert states(session, "M-1-5") == ["sold"]
