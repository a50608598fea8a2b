"""GET /api/v1/sessions, /sessions/{id}, /sessions/{id}/seatmap."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from django.utils.translation import gettext as _
from ninja import Field, Query, Router

from piaowu.api.errors import ErrorOut
from piaowu.api.pagination import Page, PageQuery, page_body, paginate
from piaowu.api.v1.schemas import SeatMapTiersOut, SessionOut, session_out, tier_out
from piaowu.catalog.models import CapacityMode, PriceTier
from piaowu.catalog.selectors import (
    parse_session_filters,
    seat_map_layout_json,
    session_get,
    session_search,
    tier_for_seat,
)
from piaowu.core.errors import DomainError

router = Router(tags=["sessions"])

# Tier prices may change; the layout itself never does (a new version gets a new ETag).
SEATMAP_CACHE_CONTROL = "public, max-age=60"


class SessionsQuery(PageQuery):
    event: str | None = Field(None, description="Event id.")
    venue: str | None = Field(None, description="Venue id.")
    city: str | None = Field(None, description="City name, Chinese or English.")
    date_from: str | None = Field(None, description="First day (YYYY-MM-DD), inclusive.")
    date_to: str | None = Field(None, description="Last day (YYYY-MM-DD), inclusive.")


class SessionPage(Page[SessionOut]):
    pass


@router.get(
    "/sessions",
    response={200: SessionPage, 400: ErrorOut},
    summary="Upcoming sessions",
    description="Sessions that have not ended, soonest first. Errors: `invalid_filter`, "
    "`invalid_input`.",
)
def sessions_list(request: HttpRequest, query: Query[SessionsQuery]) -> dict[str, Any]:
    filters = parse_session_filters(query.model_dump(exclude={"page", "page_size"}))
    sessions, count, has_next = paginate(session_search(filters), query.page, query.page_size)
    return page_body(
        [session_out(s) for s in sessions],
        count=count,
        page=query.page,
        page_size=query.page_size,
        has_next=has_next,
    )


@router.get(
    "/sessions/{session_id}",
    response={200: SessionOut, 404: ErrorOut},
    summary="A session",
    description="Times in UTC and in the venue's zone, sales window and price tiers. "
    "Errors: `session_not_found`.",
)
def sessions_detail(request: HttpRequest, session_id: str) -> dict[str, Any]:
    return session_out(session_get(session_id))


def _matches(if_none_match: str, etag: str) -> bool:
    # Weak comparison (RFC 9110 §13.1.2): a proxy may have weakened our strong tag.
    tags = {tag.removeprefix("W/") for tag in parse_etags(if_none_match)}
    return etag in tags or "*" in tags


def tier_by_section(
    tiers: list[PriceTier], section_seat_types: dict[str, list[str]]
) -> dict[str, dict[str, str | None]]:
    """For each section and each seat type present in it, the code of the tier its seats sell
    at (None: not on sale), so a client colours 40,000 seats from a few hundred entries."""
    mapping: dict[str, dict[str, str | None]] = {}
    for section_code, seat_types in section_seat_types.items():
        by_type: dict[str, str | None] = {}
        for seat_type in seat_types:
            tier = tier_for_seat(tiers, section_code=section_code, seat_type=seat_type)
            by_type[seat_type] = tier.code if tier is not None else None
        mapping[section_code] = by_type
    return mapping


@router.get(
    "/sessions/{session_id}/seatmap",
    response={200: SeatMapTiersOut, 404: ErrorOut, 409: ErrorOut},
    summary="Seat map of a reserved-seating session",
    description=(
        'The session\'s pinned seat-map version: sections → rows `{"r": label, "s": seats}`, '
        "each seat `[number, x, y, type?, flags?]` (`type` indexes `layout.seat_types`, "
        "omitted for standard; flags `b` blocked, `p<n>` couple partner in the row). "
        "`tier_by_section[section][seat_type]` is the tier code the seat sells at. Sent with "
        "an ETag (seat-map version + tiers); `If-None-Match` answers 304. Seat availability is "
        "not part of it. Errors: `session_not_found`, `not_reserved_seating` (409)."
    ),
)
def sessions_seatmap(request: HttpRequest, session_id: str) -> HttpResponse:
    session = session_get(session_id)
    seat_map = session.seat_map
    if session.capacity_mode != CapacityMode.RESERVED or seat_map is None:
        raise NotReservedSeating(session.public_id, session.capacity_mode)
    layout = seat_map_layout_json(seat_map)
    tiers = list(session.price_tiers.all())
    head = {
        "session": session.public_id,
        "seat_map_version": seat_map.version,
        "tiers": [tier_out(t) for t in tiers],
        "tier_by_section": tier_by_section(tiers, layout.section_seat_types),
    }
    head_json = json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode()
    digest = hashlib.sha256(layout.key.encode() + b"\0" + head_json).hexdigest()[:32]
    etag = f'"{digest}"'
    if _matches(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=304)
    else:
        body = head_json[:-1] + b',"layout":' + layout.data + b"}"
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = SEATMAP_CACHE_CONTROL
    patch_vary_headers(response, ("Accept-Language",))
    return response


class NotReservedSeating(DomainError):
    """The session has no seat map to show (409: the request is fine, the session is not)."""

    status = 409

    def __init__(self, session_id: str, capacity_mode: str) -> None:
        super().__init__(
            "not_reserved_seating",
            _("This session has no seat map: it sells general admission or daily capacity."),
            {"session": session_id, "capacity_mode": capacity_mode},
        )
