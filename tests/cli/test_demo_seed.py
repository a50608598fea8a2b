import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory

from piaowu.accounts.models import Organizer, User
from piaowu.accounts.permissions import Perm, has_perm
from piaowu.catalog.models import CapacityMode, Event, EventKind, Seat, SeatMap, SeatType, Session
from piaowu.cli.demo_data import DEMO_LOGINS, seed_demo


def _counts() -> dict[str, int]:
    return {
        "organizers": Organizer.objects.count(),
        "events": Event.objects.count(),
        "sessions": Session.objects.count(),
        "seats": Seat.objects.count(),
        "users": User.objects.count(),
    }


@pytest.mark.django_db
@pytest.mark.slow
def test_seeding_twice_changes_nothing() -> None:
    seed_demo()
    first = _counts()
    seed_demo()
    assert _counts() == first
    assert first["organizers"] == 4


@pytest.mark.django_db
@pytest.mark.slow
def test_demo_has_what_the_issue_promises() -> None:
    seed_demo()
    # a cinema with three halls, one of them with couple seats
    cinema_maps = SeatMap.objects.filter(hall__venue__organizer__slug="starlight")
    assert cinema_maps.count() == 3
    assert Seat.objects.filter(seat_map__in=cinema_maps, seat_type=SeatType.COUPLE).exists()
    # a 2,000-seat concert hall with sections and VIP rows, and a 40,000-seat stadium
    seat_counts = sorted(
        SeatMap.objects.filter(hall__venue__organizer__slug="huayin").values_list(
            "seat_count", flat=True
        )
    )
    assert seat_counts == [2000, 40000]
    concert_hall = SeatMap.objects.get(seat_count=2000)
    assert concert_hall.sections.count() == 3
    assert concert_hall.seats.filter(seat_type=SeatType.VIP).exists()
    # a scenic area with daily capacity, a flight route with two cabin classes
    scenic = Session.objects.filter(event__kind=EventKind.SCENIC)
    assert scenic.count() >= 21 and all(s.capacity_mode == CapacityMode.DAILY for s in scenic)
    flight = Session.objects.filter(event__kind=EventKind.TRIP).first()
    assert flight is not None
    assert sorted(flight.price_tiers.values_list("code", flat=True)) == ["business", "economy"]
    # several weeks of sessions
    first, last = (Session.objects.order_by(f).first() for f in ("starts_at", "-starts_at"))
    assert first is not None and last is not None
    assert (last.starts_at - first.starts_at).days >= 21


@pytest.mark.django_db
@pytest.mark.slow
def test_demo_logins_authenticate_with_their_roles() -> None:
    seed_demo()
    for login in DEMO_LOGINS:
        # Sign-in is tracked per request (django-axes): authenticate as the login page does.
        user = authenticate(RequestFactory().post("/"), email=login.email, password=login.password)
        assert user is not None, login.email
        assert user.is_superuser == login.superuser
        if login.organizer_slug:
            organizer = Organizer.objects.get(slug=login.organizer_slug)
            assert has_perm(user, organizer, Perm.CATALOG_VIEW)
