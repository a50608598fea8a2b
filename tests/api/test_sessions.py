from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.api.conftest import Catalog

pytestmark = pytest.mark.django_db


def test_session_detail_gives_utc_and_venue_local_times(client: Client, catalog: Catalog) -> None:
    session = catalog.tokyo_session
    response = client.get(f"/api/v1/sessions/{session.public_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == session.public_id
    assert body["event"] == {
        "id": catalog.tokyo_show.public_id,
        "title": "周杰伦 嘉年华 东京站",
        "kind": "performance",
    }
    assert body["venue"]["id"] == catalog.tokyo.public_id
    assert body["venue"]["timezone"] == "Asia/Tokyo" and body["timezone"] == "Asia/Tokyo"
    assert body["starts_at"].endswith("Z")
    assert body["local_starts_at"].endswith("+09:00")
    utc = dt.datetime.fromisoformat(body["starts_at"])
    local = dt.datetime.fromisoformat(body["local_starts_at"])
    assert utc == local
    assert local.hour == (utc.hour + 9) % 24
    assert body["sales_state"] == "on_sale"
    assert body["capacity_mode"] == "general" and body["capacity"] == 100


def test_session_tiers_carry_prices_as_strings(client: Client, catalog: Catalog) -> None:
    body = client.get(f"/api/v1/sessions/{catalog.concert_session.public_id}").json()

    assert body["tiers"] == [
        {
            "code": "std",
            "name": "标准票",
            "audience": "any",
            "price": {"amount": "180.00", "currency": "CNY"},
            "seat_type": "",
            "section_codes": [],
            "quota": None,
            "min_per_order": 1,
            "max_per_order": 6,
            "color": "#2563eb",
            "description": "",
        }
    ]


def test_unknown_sessions_and_sessions_of_drafts_are_404(client: Client, catalog: Catalog) -> None:
    draft_session = catalog.draft.sessions.get()
    for session_id in ("nope", draft_session.public_id):
        response = client.get(f"/api/v1/sessions/{session_id}")
        assert response.status_code == 404
        assert response.json()["code"] == "session_not_found"


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def test_session_list_shows_upcoming_sessions_of_visible_events_soonest_first(
    client: Client, catalog: Catalog
) -> None:
    body = client.get("/api/v1/sessions").json()

    events = [item["event"]["id"] for item in body["items"]]
    assert events == [
        catalog.concert.public_id,
        catalog.film.public_id,
        catalog.tokyo_show.public_id,
    ]
    assert catalog.past_session.public_id not in ids(body)


def test_session_list_filters(client: Client, catalog: Catalog) -> None:
    today = timezone.localdate()

    def listed(**params: str) -> list[str]:
        response = client.get("/api/v1/sessions", params)
        assert response.status_code == 200, response.content
        return ids(response.json())

    assert listed(event=catalog.tokyo_show.public_id) == [catalog.tokyo_session.public_id]
    assert listed(venue=catalog.beijing.public_id) == [catalog.concert_session.public_id]
    assert listed(city="Tokyo") == [catalog.tokyo_session.public_id]
    assert listed(
        date_from=(today + dt.timedelta(days=15)).isoformat(),
        date_to=(today + dt.timedelta(days=25)).isoformat(),
    ) == [catalog.tokyo_session.public_id]


def test_session_list_refuses_bad_dates_naming_them(client: Client, catalog: Catalog) -> None:
    response = client.get("/api/v1/sessions", {"date_from": "soon", "date_to": "later"})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_filter"
    assert set(body["details"]["fields"]) == {"date_from", "date_to"}


def test_session_list_page_size_is_capped(client: Client, catalog: Catalog) -> None:
    response = client.get("/api/v1/sessions", {"page_size": "500"}, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    assert response.json()["details"]["fields"] == {"page_size": "At most 100."}
