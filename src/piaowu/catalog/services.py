"""Writes to the catalog. Each service validates first, writes in one transaction, records the
change in the catalog change log, and raises `DomainError` with a stable code."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import (
    Audience,
    CapacityMode,
    CatalogChange,
    Category,
    Event,
    EventKind,
    FilmDetails,
    Hall,
    PriceTier,
    SalesChannel,
    ScenicDetails,
    Seat,
    SeatMap,
    SeatType,
    Section,
    Session,
    SportDetails,
    TripDetails,
    Venue,
    validate_timezone,
)
from piaowu.catalog.search import build_search_text
from piaowu.catalog.seatmaps import SeatMapSpec, validate_spec
from piaowu.core.errors import DomainError
from piaowu.core.ids import new_code
from piaowu.core.money import default_currency

DEFAULT_SALES_CLOSE_BEFORE_START = dt.timedelta(minutes=0)
DETAIL_MODELS: dict[str, type[FilmDetails | SportDetails | ScenicDetails | TripDetails]] = {
    EventKind.FILM: FilmDetails,
    EventKind.SPORT: SportDetails,
    EventKind.SCENIC: ScenicDetails,
    EventKind.TRIP: TripDetails,
}


def change_record(
    *,
    organizer: Organizer,
    actor: User | None,
    action: str,
    obj: Any,
    summary: str,
    changes: dict[str, Any] | None = None,
) -> CatalogChange:
    """Append to the catalog change log. Call inside the transaction that made the change."""
    ref = getattr(obj, "public_id", None) or str(obj.pk)
    return CatalogChange.objects.create(
        organizer=organizer,
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=f"piaowu.catalog.{action}",
        object_type=type(obj).__name__.lower(),
        object_ref=ref,
        summary=summary[:255],
        changes=changes or {},
    )


# --- Organizers, channels, venues -------------------------------------------------------------


def organizer_create(*, slug: str, name: str, name_en: str = "") -> Organizer:
    """Create a tenant with its three built-in sales channels."""
    with transaction.atomic():
        organizer = Organizer.objects.create(slug=slug, name=name, name_en=name_en)
        for kind, label in (
            (SalesChannel.Kind.WEB, _("Web / H5")),
            (SalesChannel.Kind.BOX_OFFICE, _("Box office")),
            (SalesChannel.Kind.KIOSK, _("Kiosk")),
        ):
            SalesChannel.objects.create(
                organizer=organizer, kind=kind, code=kind.replace("_", "-"), name=str(label)
            )
    return organizer


def venue_create(
    *,
    organizer: Organizer,
    name: str,
    city: str,
    address: str,
    timezone_name: str = "Asia/Shanghai",
    actor: User | None = None,
    **fields: Any,
) -> Venue:
    try:
        validate_timezone(timezone_name)
    except Exception as exc:
        raise DomainError(
            "invalid_timezone", _("Unknown time zone."), {"timezone": timezone_name}
        ) from exc
    unknown = set(fields.get("services", [])) - set(Venue.Service.values)
    if unknown:
        raise DomainError(
            "invalid_service", _("Unknown venue services."), {"services": sorted(unknown)}
        )
    with transaction.atomic():
        venue = Venue.objects.create(
            organizer=organizer,
            name=name,
            city=city,
            address=address,
            timezone=timezone_name,
            **fields,
        )
        change_record(
            organizer=organizer, actor=actor, action="venue.created", obj=venue, summary=name
        )
    return venue


def hall_create(*, venue: Venue, name: str, name_en: str = "", sort_order: int = 0) -> Hall:
    return Hall.objects.create(venue=venue, name=name, name_en=name_en, sort_order=sort_order)


# --- Seat maps --------------------------------------------------------------------------------


def seat_map_create(
    *, hall: Hall, spec: SeatMapSpec, source: str, actor: User | None = None
) -> SeatMap:
    """Write `spec` as the hall's next seat-map version, or nothing at all.

    Raises `DomainError("invalid_seat_map")` listing every problem (each with the offending
    seats). Earlier versions are never touched, so sessions pinned to them keep selling.
    """
    problems = validate_spec(spec)
    if problems:
        raise DomainError(
            "invalid_seat_map",
            _("The seat map has %(n)d problem(s); nothing was saved.") % {"n": len(problems)},
            {"problems": [p.as_dict() for p in problems]},
        )
    xs = [s.x for s in spec.seats]
    ys = [s.y for s in spec.seats]
    try:
        with transaction.atomic():
            version = (hall.seat_maps.aggregate(v=Max("version"))["v"] or 0) + 1
            seat_map = SeatMap.objects.create(
                hall=hall,
                version=version,
                name=spec.name or f"{hall.name} v{version}",
                source=source,
                seat_count=len(spec.seats),
                width=max(xs) - min(0, min(xs)) + 20,
                height=max(ys) - min(0, min(ys)) + 20,
                stage_label=spec.stage,
                created_by=actor if actor is not None and actor.is_authenticated else None,
            )
            sections = {
                s.code: Section(
                    seat_map=seat_map,
                    code=s.code,
                    name=s.name,
                    name_en=s.name_en,
                    entrance=s.entrance,
                    sort_order=index,
                )
                for index, s in enumerate(spec.sections)
            }
            Section.objects.bulk_create(sections.values())
            Seat.objects.bulk_create(
                (
                    Seat(
                        seat_map=seat_map,
                        section=sections[s.section],
                        row_label=s.row,
                        number_label=s.number,
                        code=s.code,
                        x=s.x,
                        y=s.y,
                        seat_type=s.seat_type,
                        is_blocked=s.blocked,
                    )
                    for s in spec.seats
                ),
                batch_size=2000,
            )
            couples = [s for s in spec.seats if s.pair]
            if couples:
                ids = dict(
                    Seat.objects.filter(seat_map=seat_map, seat_type=SeatType.COUPLE).values_list(
                        "code", "id"
                    )
                )
                to_update = []
                for s in couples:
                    partner_code = f"{s.section}-{s.row}-{s.pair}"
                    to_update.append(Seat(id=ids[s.code], pair_id=ids[partner_code]))
                Seat.objects.bulk_update(to_update, ["pair"], batch_size=1000)
            change_record(
                organizer=hall.venue.organizer,
                actor=actor,
                action="seat_map.created",
                obj=seat_map,
                summary=f"{hall} v{version} ({len(spec.seats)} seats, {source})",
            )
    except IntegrityError as exc:
        # Two editors saving the same hall at once: the version constraint picks one.
        raise DomainError(
            "seat_map_conflict", _("Another version was saved at the same time; try again.")
        ) from exc
    return seat_map


# --- Events -----------------------------------------------------------------------------------

EVENT_FIELDS = {
    "title_en",
    "subtitle",
    "description",
    "description_en",
    "performers",
    "tags",
    "duration_minutes",
    "age_advice",
    "poster_color",
    "popularity",
}


def _detail_fields(kind: str) -> set[str]:
    model = DETAIL_MODELS.get(kind)
    if model is None:
        return set()
    return {f.name for f in model._meta.concrete_fields if f.name not in {"id", "event"}}


def event_refresh_search_text(event: Event) -> None:
    """Rebuild the event's search text from its own texts and its venues' names."""
    texts = [event.title, event.title_en, event.subtitle, event.performers, event.tags]
    if event.category_id:
        category = Category.objects.get(pk=event.category_id)
        texts += [category.name, category.name_en]
    for name, name_en, city in (
        Venue.objects.filter(sessions__event=event)
        .distinct()
        .values_list("name", "name_en", "city")
    ):
        texts += [name, name_en, city]
    detail_model = DETAIL_MODELS.get(event.kind)
    if detail_model is not None:
        detail = detail_model.objects.filter(event=event).first()
        if isinstance(detail, FilmDetails):
            texts += [detail.director, detail.original_title]
        elif isinstance(detail, TripDetails):
            texts += [
                detail.origin,
                detail.destination,
                detail.carrier,
                detail.route_code,
                detail.origin_code,
                detail.destination_code,
            ]
        elif isinstance(detail, SportDetails):
            texts += [detail.league, detail.home_team, detail.away_team]
    search_text = build_search_text(texts)
    Event.objects.filter(pk=event.pk).update(search_text=search_text)
    event.search_text = search_text


def event_create(
    *,
    organizer: Organizer,
    kind: str,
    title: str,
    code: str = "",
    category: Category | None = None,
    status: str = Event.Status.PUBLISHED,
    details: dict[str, Any] | None = None,
    actor: User | None = None,
    **fields: Any,
) -> Event:
    """Create an event with its kind-specific details (`details`: e.g. director for films,
    origin/destination for trips). Unknown fields are refused, not ignored."""
    problems: dict[str, str] = {}
    if kind not in EventKind.values:
        problems["kind"] = _("Unknown kind.")
    if not title.strip():
        problems["title"] = _("A title is required.")
    unknown = set(fields) - EVENT_FIELDS
    if unknown:
        problems["fields"] = _("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))}
    details = details or {}
    unknown_details = set(details) - _detail_fields(kind)
    if unknown_details:
        problems["details"] = _("Unknown details for this kind: %(f)s") % {
            "f": ", ".join(sorted(unknown_details))
        }
    if kind == EventKind.TRIP and not (details.get("origin") and details.get("destination")):
        problems["details"] = _("A trip needs an origin and a destination.")
    code = code or new_code(8).lower()
    if Event.objects.filter(organizer=organizer, code=code).exists():
        problems["code"] = _("This code is already used by another event.")
    if problems:
        raise DomainError("invalid_event", _("The event is not valid."), {"fields": problems})
    with transaction.atomic():
        event = Event.objects.create(
            organizer=organizer,
            kind=kind,
            code=code,
            title=title.strip(),
            category=category,
            status=status,
            **fields,
        )
        detail_model = DETAIL_MODELS.get(kind)
        if detail_model is not None:
            detail_model.objects.create(event=event, **details)
        event_refresh_search_text(event)
        change_record(
            organizer=organizer, actor=actor, action="event.created", obj=event, summary=title
        )
    return event


# --- Sessions and price tiers -----------------------------------------------------------------


@dataclass
class TierSpec:
    code: str
    name: str
    price: Decimal
    name_en: str = ""
    audience: str = Audience.ANY
    currency: str = ""
    seat_type: str = ""
    section_code: str = ""
    capacity: int | None = None
    min_per_order: int = 1
    max_per_order: int = 6
    color: str = "#2563eb"
    description: str = ""


def _as_aware(value: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Naive datetimes are wall-clock time at the venue; aware ones are kept as they are."""
    if timezone.is_aware(value):
        return value
    return value.replace(tzinfo=tz)


def _validate_tiers(
    tiers: list[TierSpec], *, capacity_mode: str, seat_map: SeatMap | None, capacity: int | None
) -> dict[str, str]:
    problems: dict[str, str] = {}
    if not tiers:
        problems["tiers"] = _("A session needs at least one price tier.")
    codes = [t.code for t in tiers]
    if len(set(codes)) != len(codes):
        problems["tiers"] = _("Price tier codes must be unique within a session.")
    section_codes = (
        set(seat_map.sections.values_list("code", flat=True)) if seat_map is not None else set()
    )
    for tier in tiers:
        key = f"tiers.{tier.code}"
        if not tier.code or not tier.name:
            problems[key] = _("A price tier needs a code and a name.")
        elif tier.price < 0:
            problems[key] = _("A price cannot be negative.")
        elif tier.audience not in Audience.values:
            problems[key] = _("Unknown audience.")
        elif tier.seat_type and tier.seat_type not in SeatType.values:
            problems[key] = _("Unknown seat type.")
        elif tier.min_per_order < 1 or tier.max_per_order < tier.min_per_order:
            problems[key] = _("Per-order limits are not consistent.")
        elif (
            capacity_mode == CapacityMode.RESERVED
            and tier.section_code
            and (tier.section_code not in section_codes)
        ):
            problems[key] = _("Section %(s)s is not on the seat map.") % {"s": tier.section_code}
        elif capacity_mode != CapacityMode.RESERVED and (tier.seat_type or tier.section_code):
            problems[key] = _("Seat types and sections apply to reserved seating only.")
        elif tier.capacity is not None and capacity is not None and tier.capacity > capacity:
            problems[key] = _("A tier's quota cannot exceed the session's capacity.")
    return problems


def session_create(
    *,
    event: Event,
    venue: Venue,
    starts_at: dt.datetime,
    tiers: list[TierSpec],
    capacity_mode: str = CapacityMode.RESERVED,
    hall: Hall | None = None,
    seat_map: SeatMap | None = None,
    ends_at: dt.datetime | None = None,
    sales_open_at: dt.datetime | None = None,
    sales_close_at: dt.datetime | None = None,
    capacity: int | None = None,
    code: str = "",
    language_note: str = "",
    actor: User | None = None,
) -> Session:
    """Create a session with its price tiers.

    Naive datetimes are read as wall-clock time in the venue's zone and stored as UTC. A
    reserved session pins the hall's current seat-map version unless `seat_map` names one.
    Defaults: ends after the event's duration (or 2 h), sales open now and close at the start.
    """
    tz = venue.tzinfo
    problems: dict[str, str] = {}
    starts_at = _as_aware(starts_at, tz)
    duration = dt.timedelta(minutes=event.duration_minutes or 120)
    ends_at = _as_aware(ends_at, tz) if ends_at else starts_at + duration
    sales_open_at = _as_aware(sales_open_at, tz) if sales_open_at else timezone.now()
    sales_close_at = (
        _as_aware(sales_close_at, tz)
        if sales_close_at
        else starts_at - DEFAULT_SALES_CLOSE_BEFORE_START
    )
    if capacity_mode not in CapacityMode.values:
        problems["capacity_mode"] = _("Unknown capacity mode.")
    if ends_at <= starts_at:
        problems["ends_at"] = _("A session must end after it starts.")
    if sales_close_at <= sales_open_at:
        problems["sales_close_at"] = _("Sales must close after they open.")
    if hall is not None and hall.venue_id != venue.pk:
        problems["hall"] = _("The hall belongs to another venue.")
    if venue.organizer_id != event.organizer_id:
        problems["venue"] = _("The venue belongs to another organizer.")
    if capacity_mode == CapacityMode.RESERVED:
        if seat_map is None and hall is not None:
            seat_map = hall.current_seat_map()
        if seat_map is None:
            problems["seat_map"] = _("Reserved seating needs a hall with a seat map.")
        elif hall is not None and seat_map.hall_id != hall.pk:
            problems["seat_map"] = _("The seat map belongs to another hall.")
        elif hall is None:
            hall = seat_map.hall
        capacity = None
    elif not capacity or capacity <= 0:
        problems["capacity"] = _("General admission and daily capacity need a capacity above 0.")
    code = code or starts_at.astimezone(tz).strftime("%Y%m%d-%H%M")
    if Session.objects.filter(event=event, code=code).exists():
        problems["code"] = _("A session with this code already exists for this event.")
    problems.update(
        _validate_tiers(tiers, capacity_mode=capacity_mode, seat_map=seat_map, capacity=capacity)
    )
    if problems:
        raise DomainError("invalid_session", _("The session is not valid."), {"fields": problems})
    with transaction.atomic():
        session = Session.objects.create(
            event=event,
            venue=venue,
            hall=hall,
            seat_map=seat_map if capacity_mode == CapacityMode.RESERVED else None,
            code=code,
            starts_at=starts_at,
            ends_at=ends_at,
            sales_open_at=sales_open_at,
            sales_close_at=sales_close_at,
            capacity_mode=capacity_mode,
            capacity=capacity,
            language_note=language_note,
        )
        PriceTier.objects.bulk_create(
            PriceTier(
                session=session,
                code=t.code,
                name=t.name,
                name_en=t.name_en,
                audience=t.audience,
                price=t.price,
                currency=t.currency or default_currency(),
                seat_type=t.seat_type,
                section_code=t.section_code,
                capacity=t.capacity,
                min_per_order=t.min_per_order,
                max_per_order=t.max_per_order,
                color=t.color,
                description=t.description,
                sort_order=index,
            )
            for index, t in enumerate(tiers)
        )
        if not Session.objects.filter(event=event, venue=venue).exclude(pk=session.pk).exists():
            event_refresh_search_text(event)  # a new venue's name becomes searchable
        change_record(
            organizer=event.organizer,
            actor=actor,
            action="session.created",
            obj=session,
            summary=f"{event.title} {starts_at.astimezone(tz):%Y-%m-%d %H:%M}",
        )
    return session


def tier_specs_of(session: Session) -> list[TierSpec]:
    """The price tiers of `session` as specs, for copying them elsewhere."""
    return [
        TierSpec(
            code=t.code,
            name=t.name,
            name_en=t.name_en,
            audience=t.audience,
            price=Decimal(t.price),
            currency=t.currency,
            seat_type=t.seat_type,
            section_code=t.section_code,
            capacity=t.capacity,
            min_per_order=t.min_per_order,
            max_per_order=t.max_per_order,
            color=t.color,
            description=t.description,
        )
        for t in session.price_tiers.order_by("sort_order")
    ]
