"""GET /api/v1/events, /events/{id}, /events/{id}/sessions."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router

from piaowu.api.errors import ErrorOut
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.schemas import (
    EventDetailOut,
    EventItemOut,
    SessionOut,
    event_detail,
    event_item,
    session_out,
)
from piaowu.catalog.selectors import (
    SORTS,
    event_get,
    event_search,
    event_sessions,
    parse_search_filters,
)

router = Router(tags=["events"])


class EventsQuery(PageQuery):
    q: str | None = Field(
        None, description="Words, pinyin (`liudehua`) or initials (`ldh`); every term must match."
    )
    city: str | None = Field(None, description="City name, Chinese or English.")
    kind: str | None = Field(None, description="film, performance, sport, scenic or trip.")
    category: str | None = Field(None, description="Category slug.")
    venue: str | None = Field(None, description="Venue id.")
    date_from: str | None = Field(None, description="First day (YYYY-MM-DD), inclusive.")
    date_to: str | None = Field(None, description="Last day (YYYY-MM-DD), inclusive.")
    price_min: str | None = Field(None, description="Lowest tier price at least this.")
    price_max: str | None = Field(None, description="Some tier price at most this.")
    sort: str | None = Field(
        None, description=f"One of {', '.join(SORTS)}; default `relevance` with q, else `hot`."
    )


class EventPage(Page[EventItemOut]):
    pass


class SessionPage(Page[SessionOut]):
    pass


@router.get(
    "/events",
    response={200: EventPage, 400: ErrorOut},
    summary="Search events",
    description="Published events with an upcoming session matching every filter. "
    "Errors: `invalid_filter` (details.fields names each bad filter), `invalid_input` "
    "(page, page_size).",
)
def events_list(request: HttpRequest, query: Query[EventsQuery]) -> dict[str, Any]:
    params = query.model_dump(exclude={"page", "page_size"})
    filters = parse_search_filters(params)
    events, count, has_next = paginate(event_search(filters), query.page, query.page_size)
    return page_body(
        [event_item(e) for e in events],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


@router.get(
    "/events/{event_id}",
    response={200: EventDetailOut, 404: ErrorOut},
    summary="An event",
    description="Errors: `event_not_found` (unknown id or a draft).",
)
def events_detail(request: HttpRequest, event_id: str) -> dict[str, Any]:
    return event_detail(event_get(event_id))


@router.get(
    "/events/{event_id}/sessions",
    response={200: SessionPage, 400: ErrorOut, 404: ErrorOut},
    summary="Upcoming sessions of an event",
    description="Sessions that have not ended, soonest first. Errors: `event_not_found`.",
)
def events_sessions(request: HttpRequest, event_id: str, query: Query[PageQuery]) -> dict[str, Any]:
    event = event_get(event_id)
    sessions, count, has_next = paginate(event_sessions(event), query.page, query.page_size)
    return page_body(
        [session_out(s) for s in sessions],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )
