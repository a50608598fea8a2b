"""Recurring sessions, session copies and event copies (CAT-4)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import (
    CapacityMode,
    CatalogChange,
    Event,
    EventKind,
    Hall,
    Session,
    Venue,
)
from piaowu.catalog.services import (
    MAX_SESSIONS_PER_CALL,
    TierSpec,
    event_copy,
    seat_map_import,
    session_copy,
    session_create,
    sessions_create_recurring,
)
from piaowu.core.errors import DomainError
from tests.factories import make_event, make_hall, make_session, make_venue

pytestmark = pytest.mark.django_db

TIERS = [
    TierSpec(code="std", name="标准", price=Decimal("80")),
    TierSpec(code="vip", name="贵宾", price=Decimal("200"), seat_type="vip"),
]
ONE_SEAT_CSV = "section,row,number,x,y\nN,1,1,0,0\n"


def wall(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    """A naive datetime: wall-clock time at the venue, as the services read it."""
    return dt.datetime.combine(dt.date(year, month, day), dt.time(hour, minute))


def last_sunday(year: int, month: int) -> dt.date:
    day = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    return day - dt.timedelta(days=(day.weekday() - 6) % 7)


def next_autumn_change() -> dt.date:
    """The next late-October Sunday on which the UK clocks go back (always in the future)."""
    return last_sunday(timezone.now().year + 1, 10)


@pytest.fixture
def london(organizer: Organizer) -> Venue:
    return make_venue(
        organizer, name="Globe", city="London", timezone_name="Europe/London", address="Bankside"
    )


@pytest.fixture
def london_hall(london: Venue) -> Hall:
    return make_hall(london, name="Main", rows=2, seats=4)


@pytest.fixture
def event(organizer: Organizer) -> Event:
    return make_event(organizer, title="哈姆雷特", duration_minutes=150)


def recurring(event: Event, venue: Venue, hall: Hall, **kw: object) -> list[Session]:
    start = next_autumn_change()
    options: dict[str, object] = {
        "first_date": start - dt.timedelta(days=2),
        "last_date": start + dt.timedelta(days=2),
        "times": [dt.time(10, 0)],
        "tiers": TIERS,
    }
    options.update(kw)
    return sessions_create_recurring(event=event, venue=venue, hall=hall, **options)  # type: ignore[arg-type]


# --- Recurring --------------------------------------------------------------------------------


def test_ten_oclock_stays_ten_oclock_across_the_autumn_dst_change(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    sessions = recurring(event, london, london_hall)

    assert len(sessions) == 5
    assert {s.local_starts_at.strftime("%H:%M") for s in sessions} == {"10:00"}
    utc_hours = [s.starts_at.astimezone(dt.UTC).hour for s in sessions]
    assert utc_hours == [9, 9, 10, 10, 10]  # BST (UTC+1) before the change, GMT after
    assert all(s.ends_at - s.starts_at == dt.timedelta(minutes=150) for s in sessions)
    assert all(s.seat_map == london_hall.current_seat_map() for s in sessions)
    assert [t.code for t in sessions[0].price_tiers.order_by("sort_order")] == ["std", "vip"]


def test_weekdays_and_several_times_a_day(event: Event, london: Venue, london_hall: Hall) -> None:
    sessions = recurring(
        event,
        london,
        london_hall,
        first_date=dt.date(2030, 1, 1),  # a Tuesday
        last_date=dt.date(2030, 1, 14),
        times=[dt.time(19, 30), dt.time(14, 0)],
        weekdays={5, 6},
    )
    starts = [s.local_starts_at.strftime("%a %d %H:%M") for s in sessions]
    assert starts == [
        "Sat 05 14:00",
        "Sat 05 19:30",
        "Sun 06 14:00",
        "Sun 06 19:30",
        "Sat 12 14:00",
        "Sat 12 19:30",
        "Sun 13 14:00",
        "Sun 13 19:30",
    ]
    assert sessions[0].code == "20300105-1400"


def test_sales_window_is_set_relative_to_each_start(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    sessions = recurring(
        event, london, london_hall, sales_open_days_before=14, sales_close_minutes_before=30
    )
    for session in sessions:
        assert session.starts_at - session.sales_open_at == dt.timedelta(days=14)
        assert session.starts_at - session.sales_close_at == dt.timedelta(minutes=30)


def test_a_clash_with_an_existing_session_creates_nothing_and_names_it(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    clash_day = next_autumn_change() + dt.timedelta(days=1)
    session_create(
        event=event,
        venue=london,
        hall=london_hall,
        starts_at=dt.datetime.combine(clash_day, dt.time(10, 0)),
        tiers=TIERS,
    )
    before = Session.objects.count()

    with pytest.raises(DomainError) as error:
        recurring(event, london, london_hall)

    assert error.value.code == "invalid_sessions"
    refused = error.value.details["occurrences"]
    assert [o["code"] for o in refused] == [f"{clash_day:%Y%m%d}-1000"]
    assert "code" in refused[0]["fields"]
    assert Session.objects.count() == before


def test_more_than_the_cap_is_refused_before_anything_is_written(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    first = dt.date(2030, 1, 1)
    with pytest.raises(DomainError) as error:
        recurring(
            event,
            london,
            london_hall,
            first_date=first,
            last_date=first + dt.timedelta(days=MAX_SESSIONS_PER_CALL),
        )
    assert error.value.code == "too_many_sessions"
    assert error.value.details["requested"] == MAX_SESSIONS_PER_CALL + 1
    assert not Session.objects.filter(event=event).exists()


def test_a_time_skipped_by_the_spring_change_is_refused(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    spring = last_sunday(2030, 3)
    with pytest.raises(DomainError) as error:
        recurring(
            event, london, london_hall, first_date=spring, last_date=spring, times=[dt.time(1, 30)]
        )
    assert error.value.code == "nonexistent_local_time"
    assert error.value.details["occurrences"] == [f"{spring.isoformat()} 01:30"]


@pytest.mark.parametrize(
    ("options", "code", "field"),
    [
        ({"last_date": dt.date(2020, 1, 1)}, "invalid_schedule", "last_date"),
        ({"times": []}, "invalid_schedule", "times"),
        ({"weekdays": {7}}, "invalid_schedule", "weekdays"),
        ({"tiers": []}, "invalid_session", "tiers"),
        ({"capacity_mode": CapacityMode.GENERAL}, "invalid_session", "capacity"),
        ({"sales_close_minutes_before": -5}, "invalid_session", "sales"),
    ],
)
def test_bad_schedules_are_refused(
    event: Event,
    london: Venue,
    london_hall: Hall,
    options: dict[str, object],
    code: str,
    field: str,
) -> None:
    with pytest.raises(DomainError) as error:
        recurring(event, london, london_hall, **options)
    assert error.value.code == code
    assert field in error.value.details["fields"]
    assert not Session.objects.filter(event=event).exists()


def test_no_matching_weekday_is_an_error(event: Event, london: Venue, london_hall: Hall) -> None:
    with pytest.raises(DomainError) as error:
        recurring(
            event,
            london,
            london_hall,
            first_date=dt.date(2030, 1, 1),
            last_date=dt.date(2030, 1, 2),
            weekdays={6},
        )
    assert error.value.code == "no_occurrences"


def test_the_schedule_is_recorded_in_the_change_log(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    sessions = recurring(event, london, london_hall)
    change = CatalogChange.objects.get(action="piaowu.catalog.session.scheduled")
    assert change.object_ref == event.public_id
    assert change.changes["sessions"] == [s.public_id for s in sessions]


# --- Session copy -----------------------------------------------------------------------------


def test_a_copy_keeps_tiers_hall_pinned_map_duration_and_sales_distances(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    original = make_session(event, venue=london, hall=london_hall, tiers=TIERS)
    pinned = original.seat_map
    seat_map_import(hall=london_hall, content=ONE_SEAT_CSV, fmt="csv")  # version 2

    copy = session_copy(session=original, starts_at=wall(2030, 6, 1, 19, 30))

    assert copy.local_starts_at.strftime("%Y-%m-%d %H:%M") == "2030-06-01 19:30"
    assert copy.code == "20300601-1930"
    assert (copy.hall, copy.seat_map, copy.capacity_mode) == (london_hall, pinned, "reserved")
    assert copy.ends_at - copy.starts_at == original.ends_at - original.starts_at
    assert copy.starts_at - copy.sales_close_at == original.starts_at - original.sales_close_at
    assert copy.starts_at - copy.sales_open_at == original.starts_at - original.sales_open_at
    tiers = [(t.code, t.price, t.seat_type) for t in copy.price_tiers.order_by("sort_order")]
    assert tiers == [("std", Decimal("80.00"), ""), ("vip", Decimal("200.00"), "vip")]
    change = CatalogChange.objects.get(action="piaowu.catalog.session.copied")
    assert (change.object_ref, change.changes["from"]) == (copy.public_id, original.public_id)


def test_a_copy_can_take_the_halls_current_seat_map(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    original = make_session(event, venue=london, hall=london_hall)
    current = seat_map_import(hall=london_hall, content=ONE_SEAT_CSV, fmt="csv")
    copy = session_copy(
        session=original, starts_at=wall(2030, 6, 1, 19, 30), use_current_seat_map=True
    )
    assert copy.seat_map == current != original.seat_map


def test_a_copy_onto_an_existing_code_is_refused(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    original = make_session(event, venue=london, hall=london_hall)
    before = Session.objects.count()
    with pytest.raises(DomainError) as error:
        session_copy(
            session=original,
            starts_at=original.local_starts_at.replace(tzinfo=None),
            code=original.code,
        )
    assert error.value.code == "invalid_session"
    assert "code" in error.value.details["fields"]
    assert Session.objects.count() == before


def test_a_copy_of_a_general_admission_session_keeps_its_capacity(
    event: Event, london: Venue
) -> None:
    original = make_session(event, venue=london, capacity_mode=CapacityMode.GENERAL, capacity=300)
    copy = session_copy(session=original, starts_at=wall(2030, 6, 2, 20, 0))
    assert (copy.capacity_mode, copy.capacity, copy.seat_map) == ("general", 300, None)


# --- Event copy -------------------------------------------------------------------------------


def test_an_event_copy_has_the_texts_and_details_but_no_sessions_by_default(
    organizer: Organizer, london: Venue, london_hall: Hall
) -> None:
    film = make_event(
        organizer,
        kind=EventKind.FILM,
        title="流浪地球",
        code="earth",
        title_en="The Wandering Earth",
        performers="吴京, 刘德华",
        duration_minutes=125,
        details={"director": "郭帆", "formats": "2D, IMAX"},
    )
    make_session(film, venue=london, hall=london_hall)

    copy = event_copy(event=film, code="earth-imax", title="流浪地球 IMAX")

    assert (copy.code, copy.title, copy.title_en) == (
        "earth-imax",
        "流浪地球 IMAX",
        "The Wandering Earth",
    )
    assert (copy.kind, copy.performers, copy.duration_minutes) == ("film", "吴京, 刘德华", 125)
    assert (copy.film.director, copy.film.formats) == ("郭帆", "2D, IMAX")
    assert not copy.sessions.exists()
    assert copy.organizer == organizer
    assert CatalogChange.objects.filter(
        action="piaowu.catalog.event.copied", object_ref=copy.public_id
    ).exists()


def test_an_event_copy_with_sessions_moves_them_on_the_venue_clock(
    event: Event, london: Venue, london_hall: Hall
) -> None:
    change_day = next_autumn_change()
    before_change = dt.datetime.combine(change_day - dt.timedelta(days=3), dt.time(19, 30))
    session_create(
        event=event, venue=london, hall=london_hall, starts_at=before_change, tiers=TIERS
    )
    named = session_create(
        event=event,
        venue=london,
        hall=london_hall,
        starts_at=before_change + dt.timedelta(days=1),
        tiers=TIERS,
        code="gala",
    )

    copy = event_copy(
        event=event, code="hamlet-2", include_sessions=True, shift=dt.timedelta(days=7)
    )

    sessions = list(copy.sessions.order_by("starts_at"))
    assert [s.local_starts_at.strftime("%m-%d %H:%M") for s in sessions] == [
        (before_change + dt.timedelta(days=7)).strftime("%m-%d %H:%M"),
        (before_change + dt.timedelta(days=8)).strftime("%m-%d %H:%M"),
    ]
    # a week later on the wall clock is 7 days + 1 hour in UTC, because the clocks went back
    assert sessions[0].starts_at - event.sessions.order_by("starts_at")[0].starts_at == (
        dt.timedelta(days=7, hours=1)
    )
    assert sessions[0].code == (before_change + dt.timedelta(days=7)).strftime("%Y%m%d-%H%M")
    assert sessions[1].code == "gala"
    assert sessions[1].seat_map == named.seat_map
    assert [t.code for t in sessions[1].price_tiers.order_by("sort_order")] == ["std", "vip"]
    assert event.sessions.count() == 2  # the original keeps its sessions


def test_an_event_copy_under_a_used_code_is_refused(organizer: Organizer, event: Event) -> None:
    make_event(organizer, code="taken")
    before = Event.objects.count()
    with pytest.raises(DomainError) as error:
        event_copy(event=event, code="taken")
    assert error.value.code == "invalid_event"
    assert Event.objects.count() == before


@pytest.mark.parametrize("code", ["", "has space", "斜/杠"])
def test_an_event_copy_needs_a_code(event: Event, code: str) -> None:
    with pytest.raises(DomainError) as error:
        event_copy(event=event, code=code)
    assert error.value.code == "invalid_event"
    assert "code" in error.value.details["fields"]


def test_a_cancelled_event_is_copied_as_a_draft(event: Event) -> None:
    Event.objects.filter(pk=event.pk).update(status=Event.Status.CANCELLED)
    event.refresh_from_db()
    assert event_copy(event=event, code="again").status == Event.Status.DRAFT
