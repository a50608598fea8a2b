from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_openapi_lists_every_read_endpoint_and_documents_error_codes(client: Client) -> None:
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert {
        "/api/v1/events",
        "/api/v1/events/{event_id}",
        "/api/v1/events/{event_id}/sessions",
        "/api/v1/sessions",
        "/api/v1/sessions/{session_id}",
        "/api/v1/sessions/{session_id}/seatmap",
        "/api/v1/venues",
        "/api/v1/venues/{venue_id}",
    } <= set(schema["paths"])
    assert "not_reserved_seating" in schema["info"]["description"]
    events = schema["paths"]["/api/v1/events"]["get"]
    assert "400" in events["responses"]
    page_size = next(p for p in events["parameters"] if p["name"] == "page_size")
    assert page_size["schema"]["maximum"] == 100


@pytest.mark.django_db
def test_docs_page_is_served(client: Client) -> None:
    response = client.get("/api/docs")

    assert response.status_code == 200
    assert b"openapi.json" in response.content
