from decimal import Decimal

import pytest

from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import TierSpec, hall_create, seat_map_create
from piaowu.core.errors import DomainError
from tests.factories import make_event, make_session, make_venue

pytestmark = pytest.mark.django_db


@pytest.fixture
def hall(organizer):
    hall = hall_create(venue=make_venue(organizer), name="体育场")
    blocks = [
        RectBlock(section=code, name=code, rows=2, seats_per_row=4, origin_x=i * 100)
        for i, code in enumerate(["N101", "N102", "S101"])
    ]
    seat_map_create(hall=hall, spec=generate_rectangular(blocks), source="generator")
    return hall


def test_one_tier_can_price_several_sections(organizer, hall) -> None:
    tier = TierSpec(code="lower", name="下层", price=Decimal("1280"), section_codes="N101, N102")
    session = make_session(make_event(organizer), venue=hall.venue, hall=hall, tiers=[tier])
    assert session.price_tiers.get().section_list() == ["N101", "N102"]


def test_a_tier_naming_sections_the_map_lacks_is_refused(organizer, hall) -> None:
    tier = TierSpec(code="lower", name="下层", price=Decimal("1280"), section_codes="N101,X9,Y1")
    with pytest.raises(DomainError) as caught:
        make_session(make_event(organizer), venue=hall.venue, hall=hall, tiers=[tier])
    assert caught.value.code == "invalid_session"
    assert "X9, Y1" in caught.value.details["fields"]["tiers.lower"]
