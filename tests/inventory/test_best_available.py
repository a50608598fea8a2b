"""Best available: N seats together, central and near the front, within the tier."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from piaowu.catalog.models import SeatType, Session
from piaowu.catalog.services import TierSpec
from piaowu.core.errors import DomainError
from piaowu.inventory import services
from piaowu.inventory.models import Hold, SeatState
from piaowu.inventory.services import hold_best_available, hold_seats

pytestmark = pytest.mark.django_db

MakeSession = Callable[..., Session]


def codes(hold: Hold) -> list[str]:
    return sorted(
        SeatState.objects.filter(hold=hold).values_list("seat__code", flat=True),
        key=lambda c: int(c.rsplit("-", 1)[1]),
    )


def test_picks_the_central_pair_of_the_front_row(reserved_session: MakeSession) -> None:
    session = reserved_session()
    hold = hold_best_available(session=session, quantity=2, holder_key="a")
    assert codes(hold) == ["M-1-5", "M-1-6"]
    second = hold_best_available(session=session, quantity=2, holder_key="b")
    # Row 1's next free pairs (3-4, 7-8) are two seats off centre; row 2's centre is nearer.
    assert codes(second) == ["M-2-5", "M-2-6"]


def test_respects_the_tier(reserved_session: MakeSession) -> None:
    tiers = [
        TierSpec(code="std", name="普通", price=Decimal("100")),
        TierSpec(code="vip", name="VIP", price=Decimal("500"), seat_type=SeatType.VIP),
    ]
    session = reserved_session(tiers=tiers, vip_rows=(3,))
    hold = hold_best_available(session=session, quantity=3, tier_code="vip", holder_key="a")
    assert all(code.startswith("M-3-") for code in codes(hold))
    plain = hold_best_available(session=session, quantity=2, tier_code="std", holder_key="b")
    assert codes(plain) == ["M-1-5", "M-1-6"]


def test_stays_between_aisles_and_strands_no_one(reserved_session: MakeSession) -> None:
    session = reserved_session(rows=1, seats_per_row=6, aisles_after=(3,))
    hold = hold_best_available(session=session, quantity=3, holder_key="a")
    assert codes(hold) in (["M-1-1", "M-1-2", "M-1-3"], ["M-1-4", "M-1-5", "M-1-6"])
    with pytest.raises(DomainError) as info:
        hold_best_available(session=session, quantity=4, holder_key="b")
    assert info.value.code == "not_enough_seats"


def test_retries_with_the_next_candidate_when_it_loses_a_race(
    reserved_session: MakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = reserved_session()
    real = services.hold_seats
    calls: list[list[str]] = []

    def racing(**kwargs: Any) -> Hold:
        calls.append(kwargs["seat_codes"])
        if len(calls) == 1:  # someone else grabs the best pair first
            real(session=session, seat_codes=kwargs["seat_codes"], holder_key="rival")
        return real(**kwargs)

    monkeypatch.setattr(services, "hold_seats", racing)
    hold = hold_best_available(session=session, quantity=2, holder_key="a")
    assert calls[0] == ["M-1-5", "M-1-6"]
    assert len(calls) == 2
    assert codes(hold) == sorted(calls[1], key=lambda c: int(c.rsplit("-", 1)[1]))
    assert Hold.objects.filter(session=session).count() == 2


def test_invalid_quantity(reserved_session: MakeSession) -> None:
    session = reserved_session()
    for quantity in (0, 7):
        with pytest.raises(DomainError) as info:
            hold_best_available(session=session, quantity=quantity, holder_key="a")
        assert info.value.code == "invalid_quantity"
    assert not Hold.objects.filter(session=session).exists()
    hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="x")


def test_a_tier_change_during_the_sale_is_respected_at_once(reserved_session: MakeSession) -> None:
    """The ranked windows are cached per seat-map version; the tiers are part of the key."""
    tiers = [
        TierSpec(code="std", name="普通", price=Decimal("100")),
        TierSpec(code="vip", name="VIP", price=Decimal("500"), seat_type=SeatType.VIP),
    ]
    session = reserved_session(tiers=tiers, vip_rows=(3,))
    first = hold_best_available(session=session, quantity=2, tier_code="vip", holder_key="a")
    assert all(code.startswith("M-3-") for code in codes(first))
    # The operator moves the "vip" tier to the standard seats; the VIP row is no longer in it.
    session.price_tiers.filter(code="vip").update(seat_type=SeatType.STANDARD)
    second = hold_best_available(session=session, quantity=2, tier_code="vip", holder_key="b")
    assert not any(code.startswith("M-3-") for code in codes(second))
