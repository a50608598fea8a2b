"""Reads of the catalog for pages and the API: browse, search, detail, seat maps."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.cache import cache
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from pypinyin import Style, pinyin

from piaowu.catalog.models import (
    Audience,
    Category,
    Event,
    EventKind,
    PriceTier,
    SalesChannel,
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


_CJK_ONLY = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_MAX_HINT_READINGS = 8


def _pinyin_hint(term: str) -> Q | None:
    """For a one- or two-character Chinese term, a condition the trigram index can use.

    `LIKE '%话剧%'` has no trigram, so PostgreSQL scans every event. But `search_text` holds
    the pinyin of each Chinese text next to it, so an event containing 话剧 also contains
    "huaju": requiring one of the term's possible readings (every reading of each character,
    so context-dependent ones like 重 chong/zhong are covered) narrows the scan through the
    index and never drops a match. Results are the same; only the plan changes.
    """
    if len(term) > 2 or not _CJK_ONLY.fullmatch(term):
        return None
    # Character by character: a phrase lookup would give only the phrase's own reading.
    readings = [pinyin(ch, style=Style.NORMAL, heteronym=True, errors="default")[0] for ch in term]
    forms = {"".join(combo) for combo in itertools.islice(itertools.product(*readings), 64)}
    if not forms or len(forms) > _MAX_HINT_READINGS or min(map(len, forms)) < 3:
        return None
    condition = Q()
    for form in sorted(forms):
        condition |= Q(search_text__contains=form)
    return condition


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
        hint = _pinyin_hint(term)
        if hint is not None:
            events = events.filter(hint)
    if filters.kind:
        events = events.filter(kind=filters.kind)
    if filters.category:
        events = events.filter(category__slug=filters.category)
    min_price = PriceTier.objects.filter(
        session__event_id=OuterRef("pk"),
        session__status=Session.Status.SCHEDULED,
        session__ends_at__gt=now,
        is_active=True,
    ).order_by("price", "pk")[:1]
    events = events.annotate(
        next_starts_at=Subquery(sessions.order_by("starts_at").values("starts_at")[:1]),
        min_price=Subquery(min_price.values("price")),
        min_price_currency=Subquery(min_price.values("currency")),
    ).select_related("category", "organizer")
    # search_text is for matching only; leaving it out keeps sorts narrow (in memory).
    events = events.defer("search_text")
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


def sales_channel_for(session: Session, kind: str = SalesChannel.Kind.WEB) -> SalesChannel:
    """The organizer's channel of this kind (every organizer is created with web, box office
    and kiosk); `channel_not_found` if an operator deleted it."""
    channel = (
        SalesChannel.objects.filter(organizer_id=session.event.organizer_id, kind=kind)
        .order_by("-is_active", "pk")
        .first()
    )
    if channel is None:
        raise NotFound("channel", _("This session cannot be sold here."), {"kind": kind})
    return channel


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


def _layout_cache_key(seat_map: SeatMap, what: str) -> str:
    # pk and version name the map; the creation stamp guards against a reused pk (SQLite test
    # databases roll their sequences back), so a stale layout can never be served.
    stamp = int(seat_map.created_at.timestamp() * 1_000_000) if seat_map.created_at else 0
    return f"piaowu:seatmap-{what}:{seat_map.pk}:{seat_map.version}:{stamp}:v2"


def seat_map_layout(seat_map: SeatMap) -> dict[str, Any]:
    """The compact, immutable layout of one seat-map version (cached forever per version).

    Seats are grouped by section and row: each row is `{"r": label, "s": [[number, x, y,
    type?, flags?], …]}`; `type` is an index into `seat_types` (omitted for standard) and flags
    are "b" (blocked) and "p<number>" (couple partner in the same row). About 15 bytes per seat,
    so a 40,000-seat stadium stays well under 1 MB.
    """
    key = _layout_cache_key(seat_map, "layout")
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


CONCESSION_AUDIENCES = frozenset(
    {Audience.CHILD, Audience.STUDENT, Audience.SENIOR, Audience.GROUP}
)


def tier_for_seat(tiers: list[PriceTier], *, section_code: str, seat_type: str) -> PriceTier | None:
    """The tier a reserved seat sells at: the most specific active match, cheapest first.

    Concession tiers (student, child, senior, group) are choices a buyer makes on top of a
    seat's base price, so a base tier (everyone/adult/VIP package) wins over them.
    """
    best: tuple[int, int, Decimal, PriceTier] | None = None
    for tier in tiers:
        sections = tier.section_list()
        if sections and section_code not in sections:
            continue
        if tier.seat_type and tier.seat_type != seat_type:
            continue
        specificity = (2 if sections else 0) + (1 if tier.seat_type else 0)
        concession = int(tier.audience in CONCESSION_AUDIENCES)
        candidate = (concession, -specificity, Decimal(tier.price), tier)
        if best is None or candidate[:3] < best[:3]:
            best = candidate
    return best[3] if best else None


_LAYOUT_JSON_LOCK = threading.Lock()
_LAYOUT_JSON_LOCAL: OrderedDict[str, SeatMapLayoutJSON] = OrderedDict()
_LAYOUT_JSON_LOCAL_SIZE = 16


@dataclass(frozen=True)
class SeatMapLayoutJSON:
    """`seat_map_layout` pre-serialized (compact UTF-8 JSON), with what a client needs to price
    seats: the seat types present in each section. `key` names the immutable version."""

    key: str
    data: bytes
    section_seat_types: dict[str, list[str]]


def _section_seat_types(layout: dict[str, Any]) -> dict[str, list[str]]:
    types = layout["seat_types"]
    found: dict[str, list[str]] = {}
    for section in layout["sections"]:
        present: set[str] = set()
        for row in section["rows"]:
            for seat in row["s"]:
                present.add(types[seat[3]] if len(seat) > 3 else SeatType.STANDARD)
        found[section["code"]] = [t for t in types if t in present]
    return found


def seat_map_layout_json(seat_map: SeatMap) -> SeatMapLayoutJSON:
    """The layout of one seat-map version as JSON bytes, for the API to send as they are.

    A version never changes, so the bytes are kept in the shared cache and in a small
    per-process LRU: a warm 40,000-seat stadium costs a dictionary lookup, not a re-encode.
    """
    key = _layout_cache_key(seat_map, "json")
    with _LAYOUT_JSON_LOCK:
        local = _LAYOUT_JSON_LOCAL.get(key)
        if local is not None:
            _LAYOUT_JSON_LOCAL.move_to_end(key)
            return local
    shared: tuple[bytes, dict[str, list[str]]] | None = cache.get(key)
    if shared is None:
        layout = seat_map_layout(seat_map)
        data = json.dumps(layout, ensure_ascii=False, separators=(",", ":")).encode()
        shared = (data, _section_seat_types(layout))
        cache.set(key, shared, timeout=None)
    result = SeatMapLayoutJSON(key=key, data=shared[0], section_seat_types=shared[1])
    with _LAYOUT_JSON_LOCK:
        _LAYOUT_JSON_LOCAL[key] = result
        while len(_LAYOUT_JSON_LOCAL) > _LAYOUT_JSON_LOCAL_SIZE:
            _LAYOUT_JSON_LOCAL.popitem(last=False)
    return result


# --- Sessions and venues for the API ----------------------------------------------------------


@dataclass(frozen=True)
class SessionFilters:
    """Validated session-list filters (public ids for event and venue)."""

    event: str = ""
    venue: str = ""
    city: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None


def parse_session_filters(params: Mapping[str, Any]) -> SessionFilters:
    """Parse session-list query parameters; every bad one is named in one `invalid_filter`."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, limit in (("event", 26), ("venue", 26), ("city", 60)):
        value = str(params.get(name) or "").strip()
        if len(value) > limit:
            errors[name] = _("At most %(n)d characters.") % {"n": limit}
        values[name] = value
    for name in ("date_from", "date_to"):
        raw = str(params.get(name) or "").strip()
        values[name] = None
        if raw:
            try:
                values[name] = dt.date.fromisoformat(raw)
            except ValueError:
                errors[name] = _("Use a date like 2026-12-31.")
    if values["date_from"] and values["date_to"] and values["date_from"] > values["date_to"]:
        errors["date_to"] = _("The end date is before the start date.")
    if errors:
        raise DomainError("invalid_filter", _("Some filters are not valid."), {"fields": errors})
    return SessionFilters(**values)


def session_search(filters: SessionFilters, *, now: dt.datetime | None = None) -> QuerySet[Session]:
    """Upcoming sessions (not yet ended) of visible events, soonest first, with what a session
    listing shows loaded: event, venue, hall and active price tiers."""
    now = now or timezone.now()
    sessions = (
        Session.objects.filter(ends_at__gt=now)
        .exclude(event__status=Event.Status.DRAFT)
        .select_related("event", "venue", "hall")
        .prefetch_related(_tiers_prefetch())
        .order_by("starts_at", "pk")
    )
    if filters.event:
        sessions = sessions.filter(event__public_id=filters.event)
    if filters.venue:
        sessions = sessions.filter(venue__public_id=filters.venue)
    if filters.city:
        sessions = sessions.filter(
            Q(venue__city=filters.city) | Q(venue__city_en__iexact=filters.city)
        )
    if filters.date_from:
        sessions = sessions.filter(starts_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        sessions = sessions.filter(starts_at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    return sessions


def venue_upcoming_session_count(venue: Venue) -> int:
    """Scheduled, not yet ended sessions of published events at `venue`."""
    return Session.objects.filter(
        venue=venue,
        ends_at__gt=timezone.now(),
        status=Session.Status.SCHEDULED,
        event__status=Event.Status.PUBLISHED,
    ).count()


# --- Hot-path catalog reads (selling) ---------------------------------------------------------
#
# A purchase, hold or checkout needs the session (with its event, venue, seat map and active
# tiers) and the organizer's web channel. At an on-sale thousands of requests a second read the
# same few rows, so each server process keeps them for `PIAOWU_HOT_CATALOG_SECONDS` (default 3;
# 0 turns the cache off). Saving or deleting a session, event, tier or channel in this process
# empties it at once; another process sees the change within that many seconds — so a sales
# window that closes, a tier whose price changes or a channel that is switched off takes effect
# everywhere within the TTL. Nothing here is trusted for inventory: seats and quotas are always
# decided by the conditional statements in `inventory.services`.
# The cached objects are shared between threads: callers must treat them as read-only.

DEFAULT_HOT_CATALOG_SECONDS = 3.0
_HOT_LOCK = threading.Lock()
_HOT: dict[tuple[str, str], tuple[float, Any]] = {}
_HOT_SIZE = 256


def _hot_seconds() -> float:
    from django.conf import settings

    return float(getattr(settings, "PIAOWU_HOT_CATALOG_SECONDS", DEFAULT_HOT_CATALOG_SECONDS))


def hot_catalog_clear(*_args: Any, **_kwargs: Any) -> None:
    """Forget every cached session and channel (a catalog row of this process changed)."""
    with _HOT_LOCK:
        _HOT.clear()


def _hot_get(key: tuple[str, str], load: Any) -> Any:
    seconds = _hot_seconds()
    if seconds <= 0:
        return load()
    import time

    now = time.monotonic()
    with _HOT_LOCK:
        found = _HOT.get(key)
    if found is not None and found[0] > now:
        return found[1]
    value = load()
    with _HOT_LOCK:
        if len(_HOT) >= _HOT_SIZE:
            _HOT.clear()
        _HOT[key] = (now + seconds, value)
    return value


def session_get_for_sale(public_id: str) -> Session:
    """`session_get` for the selling hot path, cached per process for a few seconds (see above).
    `price_tiers.all()` holds the active tiers. Read-only: never save or change it."""
    session: Session = _hot_get(("session", public_id), lambda: session_get(public_id))
    return session


def sales_channel_for_sale(session: Session, kind: str = SalesChannel.Kind.WEB) -> SalesChannel:
    """`sales_channel_for`, cached per process like `session_get_for_sale`."""
    key = ("channel", f"{session.event.organizer_id}:{kind}")
    channel: SalesChannel = _hot_get(key, lambda: sales_channel_for(session, kind))
    return channel


def _connect_hot_catalog_invalidation() -> None:
    from django.db.models.signals import post_delete, post_save

    for model in (Session, Event, PriceTier, SalesChannel):
        post_save.connect(hot_catalog_clear, sender=model, dispatch_uid=f"hot-catalog-{model}")
        post_delete.connect(hot_catalog_clear, sender=model, dispatch_uid=f"hot-catalog-d{model}")


_connect_hot_catalog_invalidation()
