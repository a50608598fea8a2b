"""GET /api/v1/venues, /venues/{id}."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router

from piaowu.api.errors import ErrorOut
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.schemas import VenueDetailOut, VenueItemOut, venue_detail, venue_item
from piaowu.catalog.selectors import venue_get, venue_list, venue_upcoming_session_count

router = Router(tags=["venues"])


class VenuesQuery(PageQuery):
    city: str | None = Field(None, max_length=60, description="City name, Chinese or English.")


class VenuePage(Page[VenueItemOut]):
    pass


@router.get(
    "/venues",
    response={200: VenuePage, 400: ErrorOut},
    summary="Venues",
    description="Active venues by city and name. Errors: `invalid_input`.",
)
def venues_list(request: HttpRequest, query: Query[VenuesQuery]) -> dict[str, Any]:
    venues, count, has_next = paginate(
        venue_list(city=(query.city or "").strip()), query.page, query.page_size
    )
    return page_body(
        [venue_item(v) for v in venues],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


@router.get(
    "/venues/{venue_id}",
    response={200: VenueDetailOut, 404: ErrorOut},
    summary="A venue",
    description="Halls, services, how to get there, and how many sessions are coming up. "
    "Errors: `venue_not_found`.",
)
def venues_detail(request: HttpRequest, venue_id: str) -> dict[str, Any]:
    venue = venue_get(venue_id)
    return venue_detail(venue, upcoming_session_count=venue_upcoming_session_count(venue))
