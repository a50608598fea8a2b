import pytest

from tests.factories import make_event, make_hall, make_session, make_venue


@pytest.mark.django_db
def test_a_reserved_session_pins_the_halls_current_seat_map(organizer):
    venue = make_venue(organizer)
    hall = make_hall(venue)
    session = make_session(make_event(organizer), venue=venue, hall=hall)
    assert session.seat_map == hall.current_seat_map()
    assert session.seat_map.seat_count == 40
