from __future__ import annotations

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer
from tests.api.conftest import Catalog
from tests.factories import make_hall, make_venue

pytestmark = pytest.mark.django_db


def test_venue_list_filters_by_city(client: Client, catalog: Catalog) -> None:
    everything = client.get("/api/v1/venues").json()
    shanghai = client.get("/api/v1/venues", {"city": "上海"}).json()
    english = client.get("/api/v1/venues", {"city": "shanghai"}).json()

    assert everything["count"] == 3
    assert [v["id"] for v in shanghai["items"]] == [catalog.shanghai.public_id]
    assert [v["id"] for v in english["items"]] == [catalog.shanghai.public_id]
    assert shanghai["items"][0]["timezone"] == "Asia/Shanghai"


def test_venue_detail_has_halls_services_transport_and_upcoming_sessions(
    client: Client, organizer: Organizer, catalog: Catalog
) -> None:
    venue = make_venue(
        organizer,
        name="工人体育场",
        city="北京",
        services=["metro", "parking"],
        transport_info="地铁 6 号线东四十条站",
        transport_info_en="Metro line 6, Dongsishitiao",
    )
    make_hall(venue, name="主场")

    body = client.get(f"/api/v1/venues/{venue.public_id}", HTTP_ACCEPT_LANGUAGE="en").json()
    beijing = client.get(f"/api/v1/venues/{catalog.beijing.public_id}").json()

    assert body["halls"] == [{"name": "主场", "has_seat_map": True}]
    assert body["services"] == [
        {"code": "metro", "label": "Near metro"},
        {"code": "parking", "label": "Parking"},
    ]
    assert body["transport_info"] == "Metro line 6, Dongsishitiao"
    assert body["upcoming_session_count"] == 0
    # the concert counts; the draft's session and the past session do not
    assert beijing["upcoming_session_count"] == 1


def test_unknown_venue_is_404(client: Client, catalog: Catalog) -> None:
    response = client.get("/api/v1/venues/01NOSUCHVENUE0000000000000", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 404
    assert response.json() == {
        "code": "venue_not_found",
        "message": "No such venue.",
        "details": {"id": "01NOSUCHVENUE0000000000000"},
    }
