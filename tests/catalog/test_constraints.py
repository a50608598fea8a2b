"""The database itself refuses bad catalog and account rows, whatever code writes them.

Each test writes one bad row straight through the ORM (bypassing the services on purpose)
and expects an IntegrityError; a good twin of the row is written first where that shows the
constraint is specific, not a blanket refusal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from piaowu.accounts.models import Membership, Organizer, User
from piaowu.catalog.models import (
    CapacityMode,
    Event,
    EventKind,
    Hall,
    PriceTier,
    Seat,
    SeatMap,
    Session,
    Venue,
)
from tests.factories import make_event, make_hall, make_session, make_venue

pytestmark = pytest.mark.django_db


def refused(write: Callable[[], Any]) -> None:
    """`write` must fail with IntegrityError, leaving the outer transaction usable."""
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


@pytest.fixture
def venue(organizer: Organizer) -> Venue:
    return make_venue(organizer)


@pytest.fixture
def hall(venue: Venue) -> Hall:
    return make_hall(venue, rows=2, seats=2)


@pytest.fixture
def seat_map(hall: Hall) -> SeatMap:
    current = hall.current_seat_map()
    assert current is not None
    return current


@pytest.fixture
def session(organizer: Organizer, venue: Venue, hall: Hall) -> Session:
    return make_session(make_event(organizer), venue=venue, hall=hall)


def seat_like(seat_map: SeatMap, **changes: Any) -> Seat:
    """An unsaved copy of an existing seat with `changes` applied."""
    seat = Seat.objects.filter(seat_map=seat_map).order_by("id").first()
    assert seat is not None
    seat.pk = None
    seat.pair = None
    for name, value in changes.items():
        setattr(seat, name, value)
    return seat


def session_like(session: Session, **changes: Any) -> dict[str, Any]:
    """Fields of a new session like `session`, with `changes` applied."""
    fields: dict[str, Any] = {
        "event": session.event,
        "venue": session.venue,
        "hall": session.hall,
        "seat_map": session.seat_map,
        "code": "another",
        "starts_at": session.starts_at,
        "ends_at": session.ends_at,
        "sales_open_at": session.sales_open_at,
        "sales_close_at": session.sales_close_at,
        "capacity_mode": session.capacity_mode,
        "capacity": session.capacity,
    }
    fields.update(changes)
    return fields


def test_seat_code_is_unique_per_map(seat_map: SeatMap) -> None:
    seat_like(seat_map, code="M-9-9", x=900, y=900).save()  # a fresh code is fine
    refused(lambda: seat_like(seat_map, x=1000, y=1000).save())


def test_seat_position_is_unique_per_map(seat_map: SeatMap) -> None:
    refused(lambda: seat_like(seat_map, code="M-9-1").save())


def test_seat_type_must_be_known(seat_map: SeatMap) -> None:
    refused(lambda: seat_like(seat_map, code="M-9-2", x=700, y=700, seat_type="gold").save())


def test_session_must_end_after_it_starts(session: Session) -> None:
    Session.objects.create(**session_like(session, code="fine"))
    refused(
        lambda: Session.objects.create(
            **session_like(session, ends_at=session.starts_at - dt.timedelta(minutes=1))
        )
    )
    refused(lambda: Session.objects.create(**session_like(session, ends_at=session.starts_at)))


def test_sales_window_cannot_be_inverted(session: Session) -> None:
    refused(
        lambda: Session.objects.create(
            **session_like(session, sales_close_at=session.sales_open_at - dt.timedelta(hours=1))
        )
    )


def test_reserved_session_needs_a_seat_map(session: Session) -> None:
    refused(lambda: Session.objects.create(**session_like(session, seat_map=None)))


GENERAL: dict[str, Any] = {"capacity_mode": CapacityMode.GENERAL, "seat_map": None}


def test_general_admission_needs_a_capacity_above_zero(session: Session) -> None:
    Session.objects.create(**session_like(session, code="ga-ok", capacity=100, **GENERAL))
    refused(lambda: Session.objects.create(**session_like(session, capacity=0, **GENERAL)))


def test_general_admission_without_any_capacity_is_refused(session: Session) -> None:
    refused(lambda: Session.objects.create(**session_like(session, capacity=None, **GENERAL)))


def test_capacity_mode_must_be_known(session: Session) -> None:
    refused(
        lambda: Session.objects.create(
            **session_like(session, capacity_mode="standing", seat_map=None, capacity=5)
        )
    )


def test_price_cannot_be_negative(session: Session) -> None:
    PriceTier.objects.create(session=session, code="free", name="免费", price=Decimal("0"))
    refused(
        lambda: PriceTier.objects.create(
            session=session, code="neg", name="负", price=Decimal("-0.01")
        )
    )


def test_min_per_order_cannot_exceed_max(session: Session) -> None:
    refused(
        lambda: PriceTier.objects.create(
            session=session, code="bad", name="x", price=1, min_per_order=5, max_per_order=4
        )
    )
    refused(
        lambda: PriceTier.objects.create(
            session=session, code="zero", name="x", price=1, min_per_order=0
        )
    )


def test_tier_code_is_unique_per_session(session: Session) -> None:
    refused(lambda: PriceTier.objects.create(session=session, code="std", name="x", price=1))


def test_event_code_is_unique_per_organizer_only(
    organizer: Organizer, other_organizer: Organizer
) -> None:
    def event(owner: Organizer) -> Event:
        return Event.objects.create(organizer=owner, code="same", kind=EventKind.FILM, title="同名")

    event(organizer)
    event(other_organizer)  # the same code at another organizer is fine
    refused(lambda: event(organizer))


def test_event_kind_must_be_known(organizer: Organizer) -> None:
    refused(lambda: Event.objects.create(organizer=organizer, code="k", kind="opera", title="x"))


def test_session_code_is_unique_per_event(session: Session) -> None:
    refused(lambda: Session.objects.create(**session_like(session, code=session.code)))


def test_membership_role_must_be_known(
    organizer: Organizer, make_user: Callable[..., User]
) -> None:
    user = make_user()
    Membership.objects.create(user=user, organizer=organizer, role="seller")
    refused(lambda: Membership.objects.create(user=user, organizer=organizer, role="owner"))


def test_membership_role_is_granted_once(
    organizer: Organizer, make_user: Callable[..., User]
) -> None:
    user = make_user()
    Membership.objects.create(user=user, organizer=organizer, role="seller")
    refused(lambda: Membership.objects.create(user=user, organizer=organizer, role="seller"))


def test_seat_map_version_is_unique_per_hall(seat_map: SeatMap) -> None:
    refused(
        lambda: SeatMap.objects.create(
            hall=seat_map.hall, version=seat_map.version, source="copy", created_at=timezone.now()
        )
    )
