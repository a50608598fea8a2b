"""Reserved-seat holds: happy paths, every refusal, and nothing half-held afterwards."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import User
from piaowu.catalog.models import Seat, SeatType, Session
from piaowu.catalog.services import TierSpec
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, HoldItem, SeatState
from piaowu.inventory.selectors import session_availability, session_seat_states
from piaowu.inventory.services import (
    hold_convert,
    hold_extend,
    hold_release,
    hold_seats,
    holds_sweep,
    session_inventory_ensure,
)
from tests.inventory.conftest import Clock

pytestmark = pytest.mark.django_db

MakeSession = Callable[..., Session]


def held_codes(session: Session) -> list[str]:
    return sorted(
        SeatState.objects.filter(session=session, state=SeatState.State.HELD).values_list(
            "seat__code", flat=True
        )
    )


def assert_nothing_held(session: Session) -> None:
    assert held_codes(session) == []
    assert not Hold.objects.filter(session=session).exists()
    assert not HoldItem.objects.filter(hold__session=session).exists()


def refused(code: str, call: Callable[[], Any]) -> DomainError:
    with pytest.raises(DomainError) as info:
        call()
    assert info.value.code == code, info.value.as_dict()
    return info.value


def test_ensure_creates_one_state_per_seat_idempotently_with_blocked_seats_blocked(
    reserved_session: MakeSession,
) -> None:
    session = reserved_session(blocked_seats=((1, 1),))
    session_inventory_ensure(session)
    session_inventory_ensure(session)
    assert SeatState.objects.filter(session=session).count() == 30
    assert SeatState.objects.get(session=session, seat__code="M-1-1").state == "blocked"
    assert SeatState.objects.filter(session=session, state="available").count() == 29


def test_hold_seats_holds_all_and_publishes_after_commit(
    reserved_session: MakeSession,
    published: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    session = reserved_session()
    with django_capture_on_commit_callbacks(execute=True):
        hold = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="anon-1")
    assert held_codes(session) == ["M-1-5", "M-1-6"]
    assert hold.status == Hold.Status.ACTIVE
    assert sorted(hold.items.values_list("seat__code", flat=True)) == ["M-1-5", "M-1-6"]
    assert all(s.hold_id == hold.pk for s in SeatState.objects.filter(hold=hold))
    assert published == [
        (
            f"session:{session.public_id}",
            {
                "type": "seats",
                "changes": [["M-1-5", "held"], ["M-1-6", "held"]],
                "session": session.public_id,
            },
        )
    ]
    assert session_seat_states(session)["M-1-5"] == "held"


def test_taken_seat_is_named_and_nothing_is_half_held(reserved_session: MakeSession) -> None:
    session = reserved_session()
    first = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="a")
    error = refused(
        "seat_taken",
        lambda: hold_seats(session=session, seat_codes=["M-1-6", "M-1-7"], holder_key="b"),
    )
    assert error.details == {"seats": ["M-1-6"]}
    assert held_codes(session) == ["M-1-5", "M-1-6"]
    assert list(Hold.objects.filter(session=session)) == [first]


def test_seat_not_in_session(reserved_session: MakeSession) -> None:
    session = reserved_session()
    error = refused(
        "seat_not_in_session",
        lambda: hold_seats(session=session, seat_codes=["M-1-5", "M-9-99"], holder_key="a"),
    )
    assert error.details == {"seats": ["M-9-99"]}
    assert_nothing_held(session)


def test_blocked_seat_is_refused(reserved_session: MakeSession) -> None:
    session = reserved_session(blocked_seats=((1, 5),))
    error = refused(
        "seat_blocked",
        lambda: hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="a"),
    )
    assert error.details == {"seats": ["M-1-5"]}
    assert_nothing_held(session)


def test_tier_max_per_order_is_enforced(reserved_session: MakeSession) -> None:
    tiers = [TierSpec(code="std", name="标准", price=Decimal("100"), max_per_order=2)]
    session = reserved_session(tiers=tiers)
    error = refused(
        "over_limit",
        lambda: hold_seats(session=session, seat_codes=["M-1-4", "M-1-5", "M-1-6"], holder_key="a"),
    )
    assert error.details["limit"] == 2
    assert_nothing_held(session)


def test_six_per_customer_per_session(
    reserved_session: MakeSession, make_user: Callable[..., User]
) -> None:
    session = reserved_session()
    customer = make_user()
    hold_seats(
        session=session,
        seat_codes=[f"M-1-{n}" for n in range(1, 7)],
        holder_key="k1",
        customer=customer,
    )
    # Another device of the same customer (another holder key) is still the same customer.
    error = refused(
        "over_limit",
        lambda: hold_seats(
            session=session, seat_codes=["M-2-1", "M-2-2"], holder_key="k2", customer=customer
        ),
    )
    assert error.details == {"limit": 6, "already": 6, "requested": 2}
    assert len(held_codes(session)) == 6


def test_sales_closed_or_not_open(reserved_session: MakeSession) -> None:
    session = reserved_session(sales_open_in=dt.timedelta(days=1))
    error = refused(
        "sales_closed",
        lambda: hold_seats(session=session, seat_codes=["M-1-5"], holder_key="a"),
    )
    assert error.details == {"sales_state": "not_open"}
    assert_nothing_held(session)


def test_expired_hold_is_free_at_once_without_sweeping(
    reserved_session: MakeSession, clock: Clock
) -> None:
    session = reserved_session()
    old = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="a")
    clock.shift(dt.timedelta(minutes=11))
    assert session_seat_states(session)["M-1-5"] == "available"
    new = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="b")
    assert set(SeatState.objects.filter(hold=new).values_list("seat__code", flat=True)) == {
        "M-1-5",
        "M-1-6",
    }
    assert refused("hold_expired", lambda: hold_convert(hold=old))


def test_convert_sells_and_refuses_a_second_time(reserved_session: MakeSession) -> None:
    session = reserved_session()
    hold = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="a")
    hold_convert(hold=hold)
    assert sorted(
        SeatState.objects.filter(session=session, state="sold").values_list("seat__code", flat=True)
    ) == ["M-1-5", "M-1-6"]
    assert Hold.objects.get(pk=hold.pk).status == "converted"
    refused("hold_converted", lambda: hold_convert(hold=hold))
    refused("hold_converted", lambda: hold_release(hold=hold))
    refused(
        "seat_taken",
        lambda: hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="b"),
    )


def test_convert_of_an_expired_hold_is_refused_and_sells_nothing(
    reserved_session: MakeSession, clock: Clock
) -> None:
    session = reserved_session()
    hold = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="a")
    clock.shift(dt.timedelta(minutes=10, seconds=1))
    refused("hold_expired", lambda: hold_convert(hold=hold))
    assert not SeatState.objects.filter(session=session, state="sold").exists()
    assert Hold.objects.get(pk=hold.pk).status == "active"


def test_release_then_convert_is_refused(reserved_session: MakeSession) -> None:
    session = reserved_session()
    hold = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="a")
    hold_release(hold=hold)
    hold_release(hold=hold)  # twice is harmless
    assert held_codes(session) == []
    refused("hold_expired", lambda: hold_convert(hold=hold))
    assert not SeatState.objects.filter(session=session, state="sold").exists()


def test_extend_once_only_and_never_an_expired_hold(
    reserved_session: MakeSession, clock: Clock
) -> None:
    session = reserved_session()
    hold = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="a")
    before = hold.expires_at
    hold_extend(hold=hold)
    assert hold.expires_at == before + dt.timedelta(minutes=10)
    assert set(SeatState.objects.filter(hold=hold).values_list("held_until", flat=True)) == {
        hold.expires_at
    }
    refused("already_extended", lambda: hold_extend(hold=hold))
    clock.shift(dt.timedelta(minutes=15))  # within the extension: still ours
    hold_convert(hold=hold)

    other = hold_seats(session=session, seat_codes=["M-2-5", "M-2-6"], holder_key="b")
    clock.shift(dt.timedelta(minutes=11))
    refused("hold_expired", lambda: hold_extend(hold=other))


def test_sweep_tidies_expired_holds_only(reserved_session: MakeSession, clock: Clock) -> None:
    session = reserved_session()
    old = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="a")
    clock.shift(dt.timedelta(minutes=8))
    young = hold_seats(session=session, seat_codes=["M-2-5", "M-2-6"], holder_key="b")
    clock.shift(dt.timedelta(minutes=3))
    assert holds_sweep(now=clock()) == 1
    assert Hold.objects.get(pk=old.pk).status == "released"
    assert Hold.objects.get(pk=young.pk).status == "active"
    assert held_codes(session) == ["M-2-5", "M-2-6"]
    assert holds_sweep(now=clock()) == 0


def test_stranded_seat_is_refused_and_named(reserved_session: MakeSession) -> None:
    session = reserved_session(aisles_after=(5,))
    # Seat 2 alone would leave seat 1 alone at the row's end.
    error = refused(
        "stranded_seat", lambda: hold_seats(session=session, seat_codes=["M-1-2"], holder_key="a")
    )
    assert error.details == {"seats": ["M-1-1"]}
    # Seats 3-4 would leave seat 5 alone next to the aisle.
    error = refused(
        "stranded_seat",
        lambda: hold_seats(session=session, seat_codes=["M-1-3", "M-1-4"], holder_key="a"),
    )
    assert error.details == {"seats": ["M-1-5"]}
    assert_nothing_held(session)
    # Between two taken seats.
    hold_seats(session=session, seat_codes=["M-2-1", "M-2-2"], holder_key="a")
    error = refused(
        "stranded_seat",
        lambda: hold_seats(session=session, seat_codes=["M-2-4", "M-2-5"], holder_key="b"),
    )
    assert error.details == {"seats": ["M-2-3"]}
    # The aisle splits the row: seats 6-10 are a block of their own.
    hold_seats(session=session, seat_codes=["M-1-6", "M-1-7"], holder_key="c")


def test_stranded_rule_can_be_switched_off(reserved_session: MakeSession, settings: Any) -> None:
    settings.PIAOWU_INVENTORY_STRANDED_RULE = False
    session = reserved_session()
    hold_seats(session=session, seat_codes=["M-1-2"], holder_key="a")
    assert held_codes(session) == ["M-1-2"]


def test_couple_seats_only_in_pairs(reserved_session: MakeSession) -> None:
    session = reserved_session(couple_rows=(1,))
    assert Seat.objects.filter(seat_map=session.seat_map, seat_type=SeatType.COUPLE).exists()
    error = refused(
        "couple_pair_required",
        lambda: hold_seats(session=session, seat_codes=["M-1-3"], holder_key="a"),
    )
    assert error.details == {"seats": ["M-1-3"]}
    assert_nothing_held(session)
    hold_seats(session=session, seat_codes=["M-1-3", "M-1-4"], holder_key="a")
    assert held_codes(session) == ["M-1-3", "M-1-4"]


def test_availability_counts_sold_out_and_low_stock(
    reserved_session: MakeSession, clock: Clock, settings: Any
) -> None:
    settings.PIAOWU_MAX_PER_CUSTOMER = 100
    settings.PIAOWU_INVENTORY_STRANDED_RULE = False  # seat 12 is left alone on purpose
    session = reserved_session(rows=1, seats_per_row=12)
    tiers_limit = [f"M-1-{n}" for n in range(1, 7)]
    hold_convert(hold=hold_seats(session=session, seat_codes=tiers_limit, holder_key="a"))
    expiring = hold_seats(
        session=session, seat_codes=[f"M-1-{n}" for n in range(7, 12)], holder_key="b"
    )
    numbers = session_availability(session)
    assert (numbers["available"], numbers["held"], numbers["sold"]) == (1, 5, 6)
    assert numbers["low_stock"] is True and numbers["sold_out"] is False
    clock.shift(dt.timedelta(minutes=11))
    numbers = session_availability(session)
    assert (numbers["available"], numbers["held"]) == (6, 0)
    assert numbers["low_stock"] is False
    assert expiring.status == "active"
