from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import Session
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import TierSpec, hall_create, seat_map_create
from tests.api.conftest import Catalog
from tests.factories import make_event, make_session, make_venue

pytestmark = pytest.mark.django_db


@pytest.fixture
def reserved_session(organizer: Organizer) -> Session:
    venue = make_venue(organizer, name="保利剧院")
    hall = hall_create(venue=venue, name="大厅")
    spec = generate_rectangular(
        [
            RectBlock(
                section="A",
                name="池座",
                rows=3,
                seats_per_row=4,
                vip_rows=(1,),
                couple_rows=(3,),
                blocked_seats=((2, 2),),
            ),
            RectBlock(
                section="B",
                name="楼座",
                name_en="Balcony",
                rows=2,
                seats_per_row=5,
                origin_y=100,
                accessible_seats=((2, 5),),
            ),
        ],
        stage="舞台",
    )
    seat_map_create(hall=hall, spec=spec, source="generator")
    return make_session(
        make_event(organizer, title="雷雨"),
        venue=venue,
        hall=hall,
        tiers=[
            TierSpec(code="std", name="普通", price=Decimal("180")),
            TierSpec(code="vip", name="VIP", price=Decimal("580"), seat_type="vip"),
            TierSpec(code="balcony", name="楼座", price=Decimal("120"), section_codes="B"),
        ],
    )


def seatmap(client: Client, session: Session, **headers: str) -> Any:
    return client.get(f"/api/v1/sessions/{session.public_id}/seatmap", headers=headers)


def test_seat_map_lists_sections_rows_and_seats_with_flags(
    client: Client, reserved_session: Session
) -> None:
    response = seatmap(client, reserved_session)

    assert response.status_code == 200
    body = response.json()
    layout = body["layout"]
    assert layout["seat_count"] == 22 and layout["stage"] == "舞台"
    assert [s["code"] for s in layout["sections"]] == ["A", "B"]
    section_a, section_b = layout["sections"]
    assert [row["r"] for row in section_a["rows"]] == ["1", "2", "3"]
    assert sum(len(row["s"]) for s in layout["sections"] for row in s["rows"]) == 22
    types = layout["seat_types"]
    vip_row, middle_row, couple_row = (row["s"] for row in section_a["rows"])
    assert all(types[seat[3]] == "vip" for seat in vip_row)
    assert middle_row[1][0] == "2" and middle_row[1][4] == "b"  # blocked
    assert [len(seat) for seat in middle_row] == [3, 5, 3, 3]  # only the blocked seat has flags
    assert [seat[4] for seat in couple_row] == ["p2", "p1", "p4", "p3"]  # couple partners
    assert all(types[seat[3]] == "couple" for seat in couple_row)
    accessible = section_b["rows"][1]["s"][4]
    assert types[accessible[3]] == "accessible" and len(accessible) == 4


def test_seat_map_maps_each_section_and_seat_type_to_its_tier(
    client: Client, reserved_session: Session
) -> None:
    body = seatmap(client, reserved_session).json()

    assert body["session"] == reserved_session.public_id
    assert body["seat_map_version"] == 1
    assert [t["code"] for t in body["tiers"]] == ["std", "vip", "balcony"]
    assert body["tier_by_section"] == {
        "A": {"standard": "std", "vip": "vip", "couple": "std"},
        "B": {"standard": "balcony", "accessible": "balcony"},
    }


def test_seat_map_is_cacheable_and_answers_304_to_a_matching_etag(
    client: Client, reserved_session: Session
) -> None:
    first = seatmap(client, reserved_session)
    etag = first["ETag"]

    again = seatmap(client, reserved_session, if_none_match=etag)
    weak = seatmap(client, reserved_session, if_none_match=f"W/{etag}")
    stale = seatmap(client, reserved_session, if_none_match='"something-else"')

    assert etag.startswith('"') and "max-age" in first["Cache-Control"]
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    assert weak.status_code == 304
    assert stale.status_code == 200 and stale.json()["session"] == reserved_session.public_id


def test_seat_map_etag_changes_when_a_tier_changes(
    client: Client, reserved_session: Session
) -> None:
    before = seatmap(client, reserved_session)["ETag"]
    reserved_session.price_tiers.filter(code="vip").update(price=Decimal("680"))

    after = seatmap(client, reserved_session, if_none_match=before)

    assert after.status_code == 200
    assert after["ETag"] != before


def test_general_admission_session_has_no_seat_map(client: Client, catalog: Catalog) -> None:
    response = seatmap(client, catalog.concert_session)

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "not_reserved_seating"
    assert body["details"] == {
        "session": catalog.concert_session.public_id,
        "capacity_mode": "general",
    }


def test_seat_map_of_an_unknown_session_is_404(client: Client, db: None) -> None:
    response = client.get("/api/v1/sessions/01NOSUCHSESSION00000000000/seatmap")

    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"
