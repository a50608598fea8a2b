"""Writes to the catalog. Each service validates first, writes in one transaction, records the
change in the catalog change log, and raises `DomainError` with a stable code."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.batch import (
    COLUMNS,
    BatchProblem,
    BatchReport,
    EventPlan,
    ImportPlan,
    SessionPlan,
    TierRow,
    plan_import,
    read_sheet,
)
from piaowu.catalog.batch import FORMATS as BATCH_FORMATS
from piaowu.catalog.batch import OUTCOMES as BATCH_OUTCOMES
from piaowu.catalog.imports import SEAT_MAP_READERS, seat_map_problems
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
    split_codes,
    validate_timezone,
)
from piaowu.catalog.search import build_search_text
from piaowu.catalog.seatmaps import RectBlock, SeatMapSpec, generate_rectangular, validate_spec
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
    section_codes: str = ""  # comma separated
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
        elif capacity_mode == CapacityMode.RESERVED and (
            missing := [c for c in split_codes(tier.section_codes) if c not in section_codes]
        ):
            problems[key] = _("Sections not on the seat map: %(s)s") % {"s": ", ".join(missing)}
        elif capacity_mode != CapacityMode.RESERVED and (tier.seat_type or tier.section_codes):
            problems[key] = _("Seat types and sections apply to reserved seating only.")
        elif tier.capacity is not None and capacity is not None and tier.capacity > capacity:
            problems[key] = _("A tier's quota cannot exceed the session's capacity.")
    return problems


def _price_tier(session: Session, spec: TierSpec, *, sort_order: int) -> PriceTier:
    """An unsaved tier of `session` from `spec` (validated by the caller)."""
    return PriceTier(
        session=session,
        code=spec.code,
        name=spec.name,
        name_en=spec.name_en,
        audience=spec.audience,
        price=spec.price,
        currency=spec.currency or default_currency(),
        seat_type=spec.seat_type,
        section_codes=",".join(split_codes(spec.section_codes)),
        capacity=spec.capacity,
        min_per_order=spec.min_per_order,
        max_per_order=spec.max_per_order,
        color=spec.color,
        description=spec.description,
        sort_order=sort_order,
    )


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
    rotating_qr: bool = False,
    reentry_allowed: bool = False,
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
            rotating_qr=rotating_qr,
            reentry_allowed=reentry_allowed,
        )
        PriceTier.objects.bulk_create(
            _price_tier(session, t, sort_order=index) for index, t in enumerate(tiers)
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
            section_codes=t.section_codes,
            capacity=t.capacity,
            min_per_order=t.min_per_order,
            max_per_order=t.max_per_order,
            color=t.color,
            description=t.description,
        )
        for t in session.price_tiers.order_by("sort_order")
    ]


# --- Seat maps from files and the generator (CAT-2) --------------------------------------------


def seat_map_import(
    *, hall: Hall, content: bytes | str, fmt: str, actor: User | None = None
) -> SeatMap:
    """Import a JSON or CSV seat-map file (docs/seat-maps.md) as the hall's next version.

    Every problem — unreadable cells and layout problems alike — comes back in one
    `DomainError("invalid_seat_map")` and nothing is written, so an operator fixes the file in
    one pass. Sessions pinned to earlier versions are not affected.
    """
    reader = SEAT_MAP_READERS.get(fmt)
    if reader is None:
        raise DomainError(
            "unsupported_format",
            _("Seat maps are imported from JSON or CSV."),
            {"format": fmt, "supported": sorted(SEAT_MAP_READERS)},
        )
    parsed = reader(content)
    problems = seat_map_problems(parsed)
    if problems:
        raise DomainError(
            "invalid_seat_map",
            _("The seat map has %(n)d problem(s); nothing was saved.") % {"n": len(problems)},
            {"problems": problems},
        )
    return seat_map_create(hall=hall, spec=parsed.spec, source=fmt, actor=actor)


def seat_map_generate(
    *,
    hall: Hall,
    blocks: list[RectBlock],
    name: str = "",
    stage: str = "",
    actor: User | None = None,
) -> SeatMap:
    """The hall's next seat-map version from rectangular blocks with aisles (cinemas, simple
    theatres), without writing a file first."""
    spec = generate_rectangular(blocks, name=name, stage=stage)
    return seat_map_create(hall=hall, spec=spec, source=SeatMap.Source.GENERATOR, actor=actor)


# --- Sessions in bulk and copies (CAT-4) --------------------------------------------------------

MAX_SESSIONS_PER_CALL = 1000


def _venue_wall_clock(day: dt.date, at: dt.time, tz: dt.tzinfo) -> dt.datetime | None:
    """`day` at `at` on the venue's clock, or None when the clocks skip that time (DST)."""
    local = dt.datetime.combine(day, at, tzinfo=tz)
    if local.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return local


def _recurring_starts(
    *,
    first_date: dt.date,
    last_date: dt.date,
    times: list[dt.time],
    weekdays: set[int] | None,
    tz: dt.tzinfo,
) -> list[dt.datetime]:
    problems: dict[str, str] = {}
    if last_date < first_date:
        problems["last_date"] = _("The last date is before the first date.")
    if not times:
        problems["times"] = _("Give at least one start time.")
    elif any(t.tzinfo is not None for t in times):
        problems["times"] = _("Times are wall-clock times at the venue, without a time zone.")
    if weekdays is not None and not weekdays <= set(range(7)):
        problems["weekdays"] = _("Weekdays are 0 (Monday) to 6 (Sunday).")
    if problems:
        raise DomainError("invalid_schedule", _("The schedule is not valid."), {"fields": problems})
    days = [
        first_date + dt.timedelta(days=n)
        for n in range((last_date - first_date).days + 1)
        if weekdays is None or (first_date + dt.timedelta(days=n)).weekday() in weekdays
    ]
    if len(days) * len(times) > MAX_SESSIONS_PER_CALL:
        raise DomainError(
            "too_many_sessions",
            _("At most %(n)d sessions per call; split the period.") % {"n": MAX_SESSIONS_PER_CALL},
            {"requested": len(days) * len(times), "limit": MAX_SESSIONS_PER_CALL},
        )
    skipped = [
        f"{day.isoformat()} {at:%H:%M}"
        for day in days
        for at in times
        if _venue_wall_clock(day, at, tz) is None
    ]
    if skipped:
        raise DomainError(
            "nonexistent_local_time",
            _("These times do not exist at the venue (the clocks go forward)."),
            {"occurrences": skipped},
        )
    starts = [_venue_wall_clock(day, at, tz) for day in days for at in sorted(times)]
    if not starts:
        raise DomainError("no_occurrences", _("No date in the period falls on those weekdays."))
    return [s for s in starts if s is not None]


def _session_setup_problems(
    *,
    event: Event,
    venue: Venue,
    hall: Hall | None,
    seat_map: SeatMap | None,
    tiers: list[TierSpec],
    capacity_mode: str,
    capacity: int | None,
) -> dict[str, str]:
    """Problems shared by every occurrence, so a schedule reports them once, not per session."""
    problems: dict[str, str] = {}
    if capacity_mode not in CapacityMode.values:
        problems["capacity_mode"] = _("Unknown capacity mode.")
    if hall is not None and hall.venue_id != venue.pk:
        problems["hall"] = _("The hall belongs to another venue.")
    if venue.organizer_id != event.organizer_id:
        problems["venue"] = _("The venue belongs to another organizer.")
    if capacity_mode == CapacityMode.RESERVED and seat_map is None:
        problems["seat_map"] = _("Reserved seating needs a hall with a seat map.")
    if capacity_mode != CapacityMode.RESERVED and (not capacity or capacity <= 0):
        problems["capacity"] = _("General admission and daily capacity need a capacity above 0.")
    problems.update(
        _validate_tiers(tiers, capacity_mode=capacity_mode, seat_map=seat_map, capacity=capacity)
    )
    return problems


def sessions_create_recurring(
    *,
    event: Event,
    venue: Venue,
    hall: Hall | None = None,
    first_date: dt.date,
    last_date: dt.date,
    times: list[dt.time],
    weekdays: set[int] | None = None,
    tiers: list[TierSpec],
    capacity_mode: str = CapacityMode.RESERVED,
    capacity: int | None = None,
    sales_open_days_before: int | None = None,
    sales_close_minutes_before: int = 0,
    language_note: str = "",
    actor: User | None = None,
) -> list[Session]:
    """One session per day of [first_date, last_date] (on `weekdays`, 0 = Monday) and time.

    `times` are wall-clock times at the venue, so 10:00 stays 10:00 across a DST change.
    All or nothing: if any occurrence is refused (e.g. its code — the local start,
    "YYYYMMDD-HHMM" — clashes with an existing session) nothing is created and
    `DomainError("invalid_sessions")` lists every refused occurrence. Sales open
    `sales_open_days_before` days before each start (None: now) and close
    `sales_close_minutes_before` minutes before it. Reserved sessions all pin the hall's
    current seat-map version.
    """
    tz = venue.tzinfo
    starts = _recurring_starts(
        first_date=first_date, last_date=last_date, times=times, weekdays=weekdays, tz=tz
    )
    seat_map = hall.current_seat_map() if hall is not None else None
    problems = _session_setup_problems(
        event=event,
        venue=venue,
        hall=hall,
        seat_map=seat_map,
        tiers=tiers,
        capacity_mode=capacity_mode,
        capacity=capacity,
    )
    if sales_close_minutes_before < 0 or (sales_open_days_before or 0) < 0:
        problems["sales"] = _("Sales offsets cannot be negative.")
    if problems:
        raise DomainError("invalid_session", _("The session is not valid."), {"fields": problems})
    sessions: list[Session] = []
    refused: list[dict[str, Any]] = []
    with transaction.atomic():
        for start in starts:
            try:
                sessions.append(
                    session_create(
                        event=event,
                        venue=venue,
                        hall=hall,
                        seat_map=seat_map if capacity_mode == CapacityMode.RESERVED else None,
                        starts_at=start,
                        sales_open_at=(
                            start - dt.timedelta(days=sales_open_days_before)
                            if sales_open_days_before is not None
                            else None
                        ),
                        sales_close_at=start - dt.timedelta(minutes=sales_close_minutes_before),
                        capacity_mode=capacity_mode,
                        capacity=capacity,
                        tiers=tiers,
                        language_note=language_note,
                        actor=actor,
                    )
                )
            except DomainError as exc:
                refused.append(
                    {
                        "starts_at": start.strftime("%Y-%m-%d %H:%M"),
                        "code": start.strftime("%Y%m%d-%H%M"),
                        "fields": exc.details.get("fields", {}),
                    }
                )
        if refused:
            # Raising inside the atomic block rolls back the sessions already created.
            raise DomainError(
                "invalid_sessions",
                _("%(n)d of %(m)d sessions cannot be created; none were.")
                % {"n": len(refused), "m": len(starts)},
                {"occurrences": refused},
            )
        change_record(
            organizer=event.organizer,
            actor=actor,
            action="session.scheduled",
            obj=event,
            summary=f"{event.title}: {len(sessions)} sessions {first_date}..{last_date}",
            changes={"sessions": [s.public_id for s in sessions]},
        )
    return sessions


def session_copy(
    *,
    session: Session,
    starts_at: dt.datetime,
    use_current_seat_map: bool = False,
    code: str = "",
    actor: User | None = None,
) -> Session:
    """A new session of the same event like `session`, starting at `starts_at` (naive: venue
    wall clock). Tiers, hall, capacity and the pinned seat map are copied (or the hall's
    current version with `use_current_seat_map`); duration and the sales window keep their
    distance from the start."""
    tz = session.venue.tzinfo
    starts_at = _as_aware(starts_at, tz)
    seat_map = session.seat_map
    if use_current_seat_map and session.hall is not None:
        seat_map = session.hall.current_seat_map()
    with transaction.atomic():
        copy = session_create(
            event=session.event,
            venue=session.venue,
            hall=session.hall,
            seat_map=seat_map,
            starts_at=starts_at,
            ends_at=starts_at + (session.ends_at - session.starts_at),
            sales_open_at=starts_at - (session.starts_at - session.sales_open_at),
            sales_close_at=starts_at - (session.starts_at - session.sales_close_at),
            capacity_mode=session.capacity_mode,
            capacity=session.capacity,
            tiers=tier_specs_of(session),
            code=code,
            language_note=session.language_note,
            actor=actor,
        )
        change_record(
            organizer=session.event.organizer,
            actor=actor,
            action="session.copied",
            obj=copy,
            summary=f"{session.event.title} {copy.local_starts_at:%Y-%m-%d %H:%M}",
            changes={"from": session.public_id},
        )
    return copy


def _shifted_wall_clock(value: dt.datetime, tz: dt.tzinfo, shift: dt.timedelta) -> dt.datetime:
    """Shift on the venue's clock: a week later at 19:30 is 19:30, whatever DST did."""
    return timezone.localtime(value, tz).replace(tzinfo=None) + shift


def _event_details(event: Event) -> dict[str, Any]:
    model = DETAIL_MODELS.get(event.kind)
    detail = model.objects.filter(event=event).first() if model is not None else None
    if detail is None:
        return {}
    return {name: getattr(detail, name) for name in _detail_fields(event.kind)}


def event_copy(
    *,
    event: Event,
    code: str,
    title: str | None = None,
    include_sessions: bool = False,
    shift: dt.timedelta = dt.timedelta(0),
    actor: User | None = None,
) -> Event:
    """A new event of the same organizer with `event`'s texts, details and poster under
    `code`; with `include_sessions`, its scheduled sessions too, moved by `shift` on the venue's
    clock, each with its tiers and pinned seat map. A cancelled original gives a draft copy.
    All or nothing."""
    if not code or not _is_slug(code):
        raise DomainError(
            "invalid_event",
            _("The event is not valid."),
            {"fields": {"code": _("Use letters, digits, - and _ only.")}},
        )
    status = Event.Status.DRAFT if event.status == Event.Status.CANCELLED else event.status
    with transaction.atomic():
        copy = event_create(
            organizer=event.organizer,
            kind=event.kind,
            title=title or event.title,
            code=code,
            category=event.category,
            status=status,
            details=_event_details(event),
            actor=actor,
            **{name: getattr(event, name) for name in EVENT_FIELDS},
        )
        if event.poster:
            Event.objects.filter(pk=copy.pk).update(poster=event.poster.name)
            copy.poster.name = event.poster.name
        originals = _sessions_to_copy(event) if include_sessions else []
        sessions = [_session_copy_into(s, event=copy, shift=shift, actor=actor) for s in originals]
        change_record(
            organizer=event.organizer,
            actor=actor,
            action="event.copied",
            obj=copy,
            summary=copy.title,
            changes={"from": event.public_id, "sessions": len(sessions), "shift": str(shift)},
        )
    return copy


def _is_slug(value: str) -> bool:
    try:
        validate_slug(value)
    except ValidationError:
        return False
    return True


def _sessions_to_copy(event: Event) -> list[Session]:
    return list(
        event.sessions.exclude(status=Session.Status.CANCELLED)
        .select_related("venue", "hall", "seat_map")
        .order_by("starts_at")
    )


def _session_copy_into(
    session: Session, *, event: Event, shift: dt.timedelta, actor: User | None
) -> Session:
    """Copy `session` into `event`. A code that was derived from the start time is derived
    again from the shifted start, so "20261201-1930" does not name a session on 12-08."""
    tz = session.venue.tzinfo
    default_code = session.local_starts_at.strftime("%Y%m%d-%H%M")
    return session_create(
        event=event,
        venue=session.venue,
        hall=session.hall,
        seat_map=session.seat_map,
        starts_at=_shifted_wall_clock(session.starts_at, tz, shift),
        ends_at=_shifted_wall_clock(session.ends_at, tz, shift),
        sales_open_at=_shifted_wall_clock(session.sales_open_at, tz, shift),
        sales_close_at=_shifted_wall_clock(session.sales_close_at, tz, shift),
        capacity_mode=session.capacity_mode,
        capacity=session.capacity,
        tiers=tier_specs_of(session),
        code="" if session.code == default_code else session.code,
        language_note=session.language_note,
        actor=actor,
    )


# --- Events and sessions in bulk (CAT-7) -------------------------------------------------------


def catalog_batch_import(
    *,
    organizer: Organizer,
    content: bytes,
    fmt: str,
    actor: User | None = None,
    dry_run: bool = False,
) -> BatchReport:
    """Create or update events and sessions from a CSV or XLSX sheet (docs/batch-import.md).

    Events are matched by (organizer, event_code) and sessions by (event, session_code).
    Every row is checked before anything is written: any problem gives one
    `DomainError("invalid_import")` listing them all by line and column, and nothing changes.
    With `dry_run` the report says what would happen and nothing is written. Existing sessions
    keep their venue, hall, pinned seat map and capacity; their tiers may be renamed,
    repriced or added to, never removed.
    """
    if fmt not in BATCH_FORMATS:
        raise DomainError(
            "unsupported_format",
            _("Use csv or xlsx."),
            {"format": fmt, "supported": list(BATCH_FORMATS)},
        )
    rows, problems = read_sheet(content, fmt)
    plan = ImportPlan()
    if not problems:
        plan, problems = plan_import(organizer, rows)
        checked = {p.line for p in problems if p.column == "tiers"}
        problems += _batch_tier_problems(plan, skip_lines=checked)
    if problems:
        problems.sort(key=_batch_problem_order)
        raise DomainError(
            "invalid_import",
            _("The file has %(n)d problem(s); nothing was imported.") % {"n": len(problems)},
            {"problems": [p.as_dict() for p in problems]},
        )
    report = plan.report(dry_run=dry_run)
    if dry_run:
        return report
    with transaction.atomic():
        events = {p.code: _batch_apply_event(organizer, p, actor) for p in plan.events}
        for session_plan in plan.sessions:
            _batch_apply_session(events[session_plan.event_code], session_plan, actor)
        change_record(
            organizer=organizer,
            actor=actor,
            action="batch.imported",
            obj=organizer,
            summary=f"{fmt}: {len(plan.events)} events, {len(plan.sessions)} sessions",
            changes={
                kind: {outcome: report.count(kind, outcome) for outcome in BATCH_OUTCOMES}
                for kind in ("events", "sessions")
            },
        )
    return report


def _batch_problem_order(problem: BatchProblem) -> tuple[int, int]:
    """By line, then left to right, the way a person reads the sheet."""
    column = COLUMNS.index(problem.column) if problem.column in COLUMNS else 0
    return (problem.line or 0, column)


def _tier_spec(tier: TierRow) -> TierSpec:
    return TierSpec(
        code=tier.code,
        name=tier.name,
        price=tier.price,
        name_en=tier.name_en,
        audience=tier.audience,
        currency=tier.currency,
        seat_type=tier.seat_type,
        section_codes=tier.section_codes,
        capacity=tier.capacity,
        min_per_order=tier.min_per_order,
        max_per_order=tier.max_per_order,
    )


def _batch_tier_problems(plan: ImportPlan, *, skip_lines: set[int | None]) -> list[BatchProblem]:
    """The tier rules of `session_create`, applied to each planned session's full tier list
    (rows whose tiers could not even be read are skipped: one complaint per cell is enough)."""
    problems: list[BatchProblem] = []
    for session_plan in plan.sessions:
        if session_plan.line in skip_lines:
            continue
        specs = [_tier_spec(t) for t in session_plan.tiers]
        if session_plan.existing is not None:
            given = {s.code: s for s in specs}
            current = tier_specs_of(session_plan.existing)
            specs = [given.pop(s.code, s) for s in current] + list(given.values())
            if not session_plan.tiers:
                continue
        found = _validate_tiers(
            specs,
            capacity_mode=session_plan.capacity_mode,
            seat_map=session_plan.seat_map,
            capacity=session_plan.capacity,
        )
        problems += [
            BatchProblem(session_plan.line, "tiers", str(message), "bad_tier")
            for message in found.values()
        ]
    return problems


def _batch_apply_event(organizer: Organizer, plan: EventPlan, actor: User | None) -> Event:
    if plan.existing is None:
        values = dict(plan.values)
        return event_create(
            organizer=organizer,
            kind=plan.kind,
            code=plan.code,
            title=values.pop("title"),
            category=values.pop("category", None),
            status=values.pop("status", Event.Status.DRAFT),
            details=plan.details,
            actor=actor,
            **values,
        )
    event = plan.existing
    if not plan.changes:
        return event
    before = {name: str(getattr(event, name)) for name in plan.values}
    for name, value in plan.values.items():
        setattr(event, name, value)
    event.save()
    detail_model = DETAIL_MODELS.get(event.kind)
    if detail_model is not None and plan.details:
        detail_model.objects.update_or_create(event=event, defaults=plan.details)
    event_refresh_search_text(event)
    change_record(
        organizer=organizer,
        actor=actor,
        action="event.updated",
        obj=event,
        summary=f"{event.title}: {', '.join(plan.changes)}",
        changes={
            name: [before[name], str(plan.values[name])]
            for name in plan.changes
            if name in plan.values
        },
    )
    return event


def _batch_apply_session(event: Event, plan: SessionPlan, actor: User | None) -> Session:
    if plan.existing is None:
        return session_create(
            event=event,
            venue=plan.venue,
            hall=plan.hall,
            seat_map=plan.seat_map,
            starts_at=plan.times["starts_at"],
            ends_at=plan.times.get("ends_at"),
            sales_open_at=plan.times.get("sales_open_at"),
            sales_close_at=plan.times.get("sales_close_at"),
            capacity_mode=plan.capacity_mode,
            capacity=plan.capacity,
            tiers=[_tier_spec(t) for t in plan.tiers],
            code=plan.code,
            language_note=plan.language_note or "",
            actor=actor,
        )
    session = plan.existing
    if not plan.changes:
        return session
    for name, value in plan.times.items():
        setattr(session, name, value)
    if plan.language_note is not None:
        session.language_note = plan.language_note
    session.save()  # the pinned seat map is never part of a plan
    _batch_apply_tiers(session, plan.tiers)
    change_record(
        organizer=event.organizer,
        actor=actor,
        action="session.updated",
        obj=session,
        summary=f"{event.title} {session.code}: {', '.join(plan.changes)}",
        changes={"fields": plan.changes},
    )
    return session


def _batch_apply_tiers(session: Session, tiers: list[TierRow]) -> None:
    """Rename/reprice tiers with matching codes and add the others after them."""
    current = {t.code: t for t in session.price_tiers.all()}
    next_order = max((t.sort_order for t in current.values()), default=-1) + 1
    for tier in tiers:
        existing = current.get(tier.code)
        if existing is not None:
            existing.name, existing.name_en, existing.price = tier.name, tier.name_en, tier.price
            existing.save(update_fields=["name", "name_en", "price"])
            continue
        _price_tier(session, _tier_spec(tier), sort_order=next_order).save()
        next_order += 1
