"""Response shapes of the catalog API, and the functions that fill them from models.

Texts are localized with `tr` (the request's language via `Accept-Language`); the Chinese
original and the English twin of a title are also given raw. Times are ISO 8601: `*_at` in UTC
("Z"), `local_*` with the venue's offset. Money is `{"amount": "180.00", "currency": "CNY"}`
with the amount as a string, never a float.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.utils import translation
from ninja import Schema

from piaowu.catalog.models import (
    Event,
    FilmDetails,
    Hall,
    PriceTier,
    ScenicDetails,
    Session,
    SportDetails,
    TripDetails,
    Venue,
)
from piaowu.core.money import Money

# --- Shapes -----------------------------------------------------------------------------------


class MoneyOut(Schema):
    amount: str
    currency: str


class CategoryOut(Schema):
    slug: str
    name: str


class EventItemOut(Schema):
    id: str
    kind: str
    title: str
    title_zh: str
    title_en: str
    subtitle: str
    category: CategoryOut | None
    performers: list[str]
    poster_url: str | None
    poster_color: str
    next_starts_at: dt.datetime | None
    min_price: MoneyOut | None
    popularity: int


class FilmOut(Schema):
    original_title: str
    director: str
    language: str
    formats: list[str]
    release_date: dt.date | None
    score: str | None


class SportOut(Schema):
    league: str
    home_team: str
    away_team: str


class ScenicOut(Schema):
    opening_hours: str
    entry_notes: str


class TripOut(Schema):
    mode: str
    carrier: str
    route_code: str
    origin: str
    origin_code: str
    destination: str
    destination_code: str


class OrganizerOut(Schema):
    slug: str
    name: str


class EventDetailOut(Schema):
    id: str
    kind: str
    status: str
    title: str
    title_zh: str
    title_en: str
    subtitle: str
    description: str
    category: CategoryOut | None
    organizer: OrganizerOut
    performers: list[str]
    tags: list[str]
    duration_minutes: int | None
    age_advice: str
    poster_url: str | None
    poster_color: str
    popularity: int
    film: FilmOut | None
    sport: SportOut | None
    scenic: ScenicOut | None
    trip: TripOut | None


class VenueRefOut(Schema):
    id: str
    name: str
    city: str
    timezone: str


class EventRefOut(Schema):
    id: str
    title: str
    kind: str


class TierOut(Schema):
    code: str
    name: str
    audience: str
    price: MoneyOut
    seat_type: str
    section_codes: list[str]
    quota: int | None
    min_per_order: int
    max_per_order: int
    color: str
    description: str


class SessionOut(Schema):
    id: str
    event: EventRefOut
    venue: VenueRefOut
    hall: str | None
    starts_at: dt.datetime
    local_starts_at: dt.datetime
    ends_at: dt.datetime
    local_ends_at: dt.datetime
    timezone: str
    sales_open_at: dt.datetime
    sales_close_at: dt.datetime
    sales_state: str
    status: str
    capacity_mode: str
    capacity: int | None
    language_note: str
    tiers: list[TierOut]


class ServiceOut(Schema):
    code: str
    label: str


class HallOut(Schema):
    name: str
    has_seat_map: bool


class VenueItemOut(Schema):
    id: str
    name: str
    city: str
    district: str
    address: str
    timezone: str
    latitude: str | None
    longitude: str | None
    services: list[ServiceOut]


class VenueDetailOut(VenueItemOut):
    phone: str
    transport_info: str
    description: str
    halls: list[HallOut]
    upcoming_session_count: int


class SeatMapTiersOut(Schema):
    """Documentation of the seat-map response (sent pre-serialized)."""

    session: str
    seat_map_version: int
    tiers: list[TierOut]
    tier_by_section: dict[str, dict[str, str | None]]
    layout: dict[str, Any]


# --- Filling them -----------------------------------------------------------------------------


def money_out(amount: Decimal | None, currency: str | None) -> dict[str, str] | None:
    if amount is None or not currency:
        return None
    money = Money(Decimal(amount), currency).quantized()
    return {"amount": str(money.amount), "currency": money.currency}


def _poster_url(event: Event) -> str | None:
    return event.poster.url if event.poster else None


def _category(event: Event) -> dict[str, str] | None:
    category = event.category
    return {"slug": category.slug, "name": category.tr("name")} if category else None


def event_item(event: Event) -> dict[str, Any]:
    """An event of a search result (`event_search` annotations expected)."""
    return {
        "id": event.public_id,
        "kind": event.kind,
        "title": event.tr("title"),
        "title_zh": event.title,
        "title_en": event.title_en,
        "subtitle": event.subtitle,
        "category": _category(event),
        "performers": event.performer_list(),
        "poster_url": _poster_url(event),
        "poster_color": event.poster_color,
        "next_starts_at": getattr(event, "next_starts_at", None),
        "min_price": money_out(
            getattr(event, "min_price", None), getattr(event, "min_price_currency", None)
        ),
        "popularity": event.popularity,
    }


def _detail(event: Event, name: str) -> Any:
    try:
        return getattr(event, name)
    except ObjectDoesNotExist:
        return None


def _film(detail: FilmDetails | None) -> dict[str, Any] | None:
    if detail is None:
        return None
    return {
        "original_title": detail.original_title,
        "director": detail.director,
        "language": detail.language,
        "formats": [f.strip() for f in detail.formats.split(",") if f.strip()],
        "release_date": detail.release_date,
        "score": str(detail.score) if detail.score is not None else None,
    }


def _sport(detail: SportDetails | None) -> dict[str, Any] | None:
    if detail is None:
        return None
    return {"league": detail.league, "home_team": detail.home_team, "away_team": detail.away_team}


def _scenic(detail: ScenicDetails | None) -> dict[str, Any] | None:
    if detail is None:
        return None
    return {"opening_hours": detail.opening_hours, "entry_notes": detail.entry_notes}


def _trip(detail: TripDetails | None) -> dict[str, Any] | None:
    if detail is None:
        return None
    return {
        "mode": detail.mode,
        "carrier": detail.carrier,
        "route_code": detail.route_code,
        "origin": detail.origin,
        "origin_code": detail.origin_code,
        "destination": detail.destination,
        "destination_code": detail.destination_code,
    }


def _organizer_name(event: Event) -> str:
    organizer = event.organizer
    language = translation.get_language() or ""
    return organizer.name_en if language.startswith("en") and organizer.name_en else organizer.name


def event_detail(event: Event) -> dict[str, Any]:
    """An event with its kind-specific details (`event_get` loads them in one query)."""
    return {
        "id": event.public_id,
        "kind": event.kind,
        "status": event.status,
        "title": event.tr("title"),
        "title_zh": event.title,
        "title_en": event.title_en,
        "subtitle": event.subtitle,
        "description": event.tr("description"),
        "category": _category(event),
        "organizer": {"slug": event.organizer.slug, "name": _organizer_name(event)},
        "performers": event.performer_list(),
        "tags": event.tag_list(),
        "duration_minutes": event.duration_minutes,
        "age_advice": event.age_advice,
        "poster_url": _poster_url(event),
        "poster_color": event.poster_color,
        "popularity": event.popularity,
        "film": _film(_detail(event, "film")),
        "sport": _sport(_detail(event, "sport")),
        "scenic": _scenic(_detail(event, "scenic")),
        "trip": _trip(_detail(event, "trip")),
    }


def tier_out(tier: PriceTier) -> dict[str, Any]:
    return {
        "code": tier.code,
        "name": tier.tr("name"),
        "audience": tier.audience,
        "price": money_out(Decimal(tier.price), tier.currency),
        "seat_type": tier.seat_type,
        "section_codes": tier.section_list(),
        "quota": tier.capacity,
        "min_per_order": tier.min_per_order,
        "max_per_order": tier.max_per_order,
        "color": tier.color,
        "description": tier.description,
    }


def venue_ref(venue: Venue) -> dict[str, Any]:
    return {
        "id": venue.public_id,
        "name": venue.tr("name"),
        "city": venue.tr("city"),
        "timezone": venue.timezone,
    }


def session_out(session: Session) -> dict[str, Any]:
    """A session with venue-local times and its active tiers (event, venue, hall selected and
    `price_tiers` prefetched by the selector)."""
    hall: Hall | None = session.hall
    return {
        "id": session.public_id,
        "event": {
            "id": session.event.public_id,
            "title": session.event.tr("title"),
            "kind": session.event.kind,
        },
        "venue": venue_ref(session.venue),
        "hall": hall.tr("name") if hall is not None else None,
        "starts_at": session.starts_at,
        "local_starts_at": session.local_starts_at,
        "ends_at": session.ends_at,
        "local_ends_at": session.local_ends_at,
        "timezone": session.venue.timezone,
        "sales_open_at": session.sales_open_at,
        "sales_close_at": session.sales_close_at,
        "sales_state": session.sales_state(),
        "status": session.status,
        "capacity_mode": session.capacity_mode,
        "capacity": session.capacity,
        "language_note": session.language_note,
        "tiers": [tier_out(t) for t in session.price_tiers.all()],
    }


def venue_item(venue: Venue) -> dict[str, Any]:
    labels = dict(Venue.Service.choices)
    return {
        "id": venue.public_id,
        "name": venue.tr("name"),
        "city": venue.tr("city"),
        "district": venue.district,
        "address": venue.tr("address"),
        "timezone": venue.timezone,
        "latitude": str(venue.latitude) if venue.latitude is not None else None,
        "longitude": str(venue.longitude) if venue.longitude is not None else None,
        "services": [
            {"code": code, "label": str(labels.get(code, code))} for code in venue.services
        ],
    }


def venue_detail(venue: Venue, *, upcoming_session_count: int) -> dict[str, Any]:
    halls = venue.halls.all()
    with_maps = set(
        venue.halls.filter(seat_maps__isnull=False).values_list("pk", flat=True).distinct()
    )
    return {
        **venue_item(venue),
        "phone": venue.phone,
        "transport_info": venue.tr("transport_info"),
        "description": venue.description,
        "halls": [{"name": h.tr("name"), "has_seat_map": h.pk in with_maps} for h in halls],
        "upcoming_session_count": upcoming_session_count,
    }
