"""Reads of the catalog for pages and the API: browse, search, detail, seat maps."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.cache import cache
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from piaowu.catalog.models import (
    Category,
    Event,
    EventKind,
    PriceTier,
    Seat,
    SeatMap,
    SeatType,
    Session,
    Venue,
)
from piaowu.catalog.search import query_terms
from piaowu.core.errors import DomainError, NotFound

SORTS = ("hot", "soon", "price_asc", "price_desc", "relevance")
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class SearchFilters:
    """Validated browse/search filters, shared by the web pages and the API."""

    q: str = ""
    city: str = ""
    kind: str = ""
    category: str = ""
    venue: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    sort: str = "hot"
    terms: tuple[str, ...] = field(default=(), compare=False)


def parse_search_filters(params: Mapping[str, Any]) -> SearchFilters:
    """Parse query parameters; every bad one is named in one `invalid_filter` error."""
    errors: dict[str, str] = {}

    def text(name: str, limit: int = 100) -> str:
        value = str(params.get(name) or "").strip()
        if len(value) > limit:
            errors[name] = _("At most %(n)d characters.") % {"n": limit}
        return value

    def date(name: str) -> dt.date | None:
        raw = str(params.get(name) or "").strip()
        if not raw:
            return None
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            errors[name] = _("Use a date like 2026-12-31.")
            return None

    def price(name: str) -> Decimal | None:
        raw = str(params.get(name) or "").strip()
        if not raw:
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            errors[name] = _("Enter a number.")
            return None
        if not value.is_finite() or value < 0:
            errors[name] = _("Enter a number of zero or more.")
            return None
        return value

    q = text("q", 100)
    kind = text("kind", 20)
    if kind and kind not in EventKind.values:
        errors["kind"] = _("Unknown kind; use one of %(kinds)s.") % {
            "kinds": ", ".join(EventKind.values)
        }
    sort = text("sort", 20) or ("relevance" if q else "hot")
    if sort not in SORTS:
        errors["sort"] = _("Unknown sort; use one of %(sorts)s.") % {"sorts": ", ".join(SORTS)}
    filters = SearchFilters(
        q=q,
        city=text("city", 60),
        kind=kind,
        category=text("category", 40),
        venue=text("venue", 26),
        date_from=date("date_from"),
        date_to=date("date_to"),
        price_min=price("price_min"),
        price_max=price("price_max"),
        sort=sort,
        terms=query_terms(q) if q else (),
    )
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        errors["date_to"] = _("The end date is before the start date.")
    if (
        filters.price_min is not None
        and filters.price_max is not None
        and filters.price_min > filters.price_max
    ):
        errors["price_max"] = _("The maximum price is below the minimum price.")
    if errors:
        raise DomainError("invalid_filter", _("Some filters are not valid."), {"fields": errors})
    return filters


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def _upcoming_sessions(filters: SearchFilters, now: dt.datetime) -> QuerySet[Session]:
    """Sessions a customer can still look forward to, narrowed by the filters."""
    sessions = Session.objects.filter(
        status=Session.Status.SCHEDULED, ends_at__gt=now, event_id=OuterRef("pk")
    )
    if filters.city:
        sessions = sessions.filter(
            Q(venue__city=filters.city) | Q(venue__city_en__iexact=filters.city)
        )
    if filters.venue:
        sessions = sessions.filter(venue__public_id=filters.venue)
    if filters.date_from:
        sessions = sessions.filter(starts_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        sessions = sessions.filter(starts_at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    if filters.price_min is not None or filters.price_max is not None:
        tiers = PriceTier.objects.filter(session_id=OuterRef("pk"), is_active=True)
        if filters.price_min is not None:
            tiers = tiers.filter(price__gte=filters.price_min)
        if filters.price_max is not None:
            tiers = tiers.filter(price__lte=filters.price_max)
        sessions = sessions.filter(Exists(tiers))
    return sessions


def event_search(filters: SearchFilters, *, now: dt.datetime | None = None) -> QuerySet[Event]:
    """Published events with at least one upcoming session matching `filters`.

    Annotates `next_starts_at` and `min_price` (over the matching sessions) for display.
    """
    now = now or timezone.now()
    sessions = _upcoming_sessions(filters, now)
    events = Event.objects.filter(status=Event.Status.PUBLISHED).filter(Exists(sessions))
    if filters.q and not filters.terms:
        return events.none()
    for term in filters.terms:
        events = events.filter(search_text__contains=term)
    if filters.kind:
        events = events.filter(kind=filters.kind)
    if filters.category:
        events = events.filter(category__slug=filters.category)
    min_price = (
        PriceTier.objects.filter(
            session__event_id=OuterRef("pk"),
            session__status=Session.Status.SCHEDULED,
            session__ends_at__gt=now,
            is_active=True,
        )
        .order_by("price")
        .values("price")[:1]
    )
    events = events.annotate(
        next_starts_at=Subquery(sessions.order_by("starts_at").values("starts_at")[:1]),
        min_price=Subquery(min_price),
    ).select_related("category", "organizer")
    order = {
        "hot": ["-popularity", "pk"],
        "soon": ["next_starts_at", "pk"],
        "price_asc": ["min_price", "pk"],
        "price_desc": ["-min_price", "pk"],
        "relevance": ["-popularity", "pk"],
    }[filters.sort]
    if filters.sort == "relevance" and filters.q:
        from django.db.models import Case, IntegerField, Value, When

        events = events.annotate(
            title_hit=Case(
                When(title__icontains=filters.q, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            )
        )
        order = ["-title_hit", *order]
    return events.order_by(*order)


def event_hot(*, city: str = "", kind: str = "", limit: int = 8) -> list[Event]:
    filters = SearchFilters(city=city, kind=kind, sort="hot")
    return list(event_search(filters)[:limit])


def event_upcoming(*, city: str = "", kind: str = "", limit: int = 8) -> list[Event]:
    filters = SearchFilters(city=city, kind=kind, sort="soon")
    return list(event_search(filters)[:limit])


def cities_with_upcoming_events() -> list[str]:
    now = timezone.now()
    return list(
        Venue.objects.filter(
            sessions__status=Session.Status.SCHEDULED,
            sessions__ends_at__gt=now,
            sessions__event__status=Event.Status.PUBLISHED,
        )
        .values_list("city", flat=True)
        .distinct()
        .order_by("city")
    )


def categories() -> list[Category]:
    return list(Category.objects.all())


def event_get(public_id: str, *, include_unpublished: bool = False) -> Event:
    events = Event.objects.select_related(
        "category", "organizer", "film", "sport", "scenic", "trip"
    )
    if not include_unpublished:
        events = events.exclude(status=Event.Status.DRAFT)
    try:
        return events.get(public_id=public_id)
    except Event.DoesNotExist as exc:
        raise NotFound("event", _("No such event."), {"id": public_id}) from exc


def _tiers_prefetch() -> Prefetch[Any]:
    return Prefetch("price_tiers", queryset=PriceTier.objects.filter(is_active=True))


def event_sessions(event: Event, *, upcoming_only: bool = True) -> QuerySet[Session]:
    sessions = (
        Session.objects.filter(event=event)
        .select_related("venue", "hall", "event")
        .prefetch_related(_tiers_prefetch())
        .order_by("starts_at")
    )
    if upcoming_only:
        sessions = sessions.filter(ends_at__gt=timezone.now())
    return sessions


def event_sessions_grouped(
    event: Event,
) -> list[tuple[dt.date, list[tuple[Venue, list[Session]]]]]:
    """Upcoming sessions grouped by local date (in the venue's zone), then by venue."""
    grouped: OrderedDict[dt.date, OrderedDict[int, tuple[Venue, list[Session]]]] = OrderedDict()
    for session in event_sessions(event):
        day = session.local_starts_at.date()
        by_venue = grouped.setdefault(day, OrderedDict())
        by_venue.setdefault(session.venue_id, (session.venue, []))[1].append(session)
    return [(day, list(venues.values())) for day, venues in grouped.items()]


def session_get(public_id: str) -> Session:
    try:
        return (
            Session.objects.select_related("event", "venue", "hall", "seat_map")
            .prefetch_related(_tiers_prefetch())
            .exclude(event__status=Event.Status.DRAFT)
            .get(public_id=public_id)
        )
    except Session.DoesNotExist as exc:
        raise NotFound("session", _("No such session."), {"id": public_id}) from exc


def venue_get(public_id: str) -> Venue:
    try:
        return Venue.objects.prefetch_related("halls").get(public_id=public_id, is_active=True)
    except Venue.DoesNotExist as exc:
        raise NotFound("venue", _("No such venue."), {"id": public_id}) from exc


def venue_list(*, city: str = "") -> QuerySet[Venue]:
    venues = Venue.objects.filter(is_active=True).order_by("city", "name")
    if city:
        venues = venues.filter(Q(city=city) | Q(city_en__iexact=city))
    return venues


def venue_upcoming_sessions(venue: Venue, *, limit: int = 50) -> list[Session]:
    return list(
        Session.objects.filter(
            venue=venue,
            ends_at__gt=timezone.now(),
            status=Session.Status.SCHEDULED,
            event__status=Event.Status.PUBLISHED,
        )
        .select_related("event", "hall", "venue")
        .order_by("starts_at")[:limit]
    )


# --- Seat maps --------------------------------------------------------------------------------

SEAT_TYPE_INDEX = {value: index for index, value in enumerate(SeatType.values)}


def seat_map_layout(seat_map: SeatMap) -> dict[str, Any]:
    """The compact, immutable layout of one seat-map version (cached forever per version).

    Seats are grouped by section and row: each row is `{"r": label, "s": [[number, x, y,
    type?, flags?], …]}`; `type` is an index into `seat_types` (omitted for standard) and flags
    are "b" (blocked) and "p<number>" (couple partner in the same row). About 15 bytes per seat,
    so a 40,000-seat stadium stays well under 1 MB.
    """
    key = f"piaowu:seatmap-layout:{seat_map.pk}:v1"
    cached: dict[str, Any] | None = cache.get(key)
    if cached is not None:
        return cached
    sections = list(seat_map.sections.order_by("sort_order", "code"))
    section_codes = {s.pk: s.code for s in sections}
    rows: dict[str, OrderedDict[str, list[list[Any]]]] = {s.code: OrderedDict() for s in sections}
    seat_rows = (
        Seat.objects.filter(seat_map=seat_map)
        .order_by("section__sort_order", "section_id", "y", "x")
        .values_list(
            "id",
            "section_id",
            "row_label",
            "number_label",
            "x",
            "y",
            "seat_type",
            "is_blocked",
            "pair_id",
        )
    )
    numbers: dict[int, str] = {}
    collected = []
    for seat_id, section_id, row, number, x, y, seat_type, blocked, pair_id in seat_rows:
        numbers[seat_id] = number
        collected.append(
            (section_codes[section_id], row, number, x, y, seat_type, blocked, pair_id)
        )
    for section_code, row, number, x, y, seat_type, blocked, pair_id in collected:
        seat: list[Any] = [number, x, y]
        flags = ("b" if blocked else "") + (f"p{numbers[pair_id]}" if pair_id in numbers else "")
        if seat_type != SeatType.STANDARD or flags:
            seat.append(SEAT_TYPE_INDEX[seat_type])
        if flags:
            seat.append(flags)
        rows[section_code].setdefault(row, []).append(seat)
    layout = {
        "version": seat_map.version,
        "width": seat_map.width,
        "height": seat_map.height,
        "stage": seat_map.stage_label,
        "seat_count": seat_map.seat_count,
        "seat_types": SeatType.values,
        "sections": [
            {
                "code": s.code,
                "name": s.name,
                "name_en": s.name_en,
                "entrance": s.entrance,
                "rows": [{"r": r, "s": seats} for r, seats in rows[s.code].items()],
            }
            for s in sections
        ],
    }
    cache.set(key, layout, timeout=None)
    return layout


def tier_for_seat(tiers: list[PriceTier], *, section_code: str, seat_type: str) -> PriceTier | None:
    """The tier a reserved seat sells at: the most specific active match, cheapest first."""
    best: tuple[int, Decimal, PriceTier] | None = None
    for tier in tiers:
        if tier.section_code and tier.section_code != section_code:
            continue
        if tier.seat_type and tier.seat_type != seat_type:
            continue
        specificity = (2 if tier.section_code else 0) + (1 if tier.seat_type else 0)
        candidate = (-specificity, Decimal(tier.price), tier)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    return best[2] if best else None
