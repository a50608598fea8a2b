"""Events and sessions in bulk (CAT-7): one spreadsheet row per session, as CSV or XLSX.

The format is documented in docs/batch-import.md. This module reads a sheet, checks every
row against the file itself and the database (reads only), and plans what an import would do;
`catalog.services.catalog_batch_import` carries the plan out in one transaction. Export writes
the same format, so export → edit → import is the round trip staff use to change many sessions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db.models import Field, Model
from django.utils import timezone
from django.utils.translation import gettext as _
from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import (
    Audience,
    CapacityMode,
    Category,
    Event,
    EventKind,
    FilmDetails,
    Hall,
    PriceTier,
    ScenicDetails,
    SeatMap,
    Session,
    SportDetails,
    TripDetails,
    Venue,
)
from piaowu.core.errors import DomainError
from piaowu.core.money import default_currency, parse_amount

FORMATS = ("csv", "xlsx")
OUTCOMES = ("created", "updated", "unchanged")
EVENT_TEXT_COLUMNS = (
    "title",
    "title_en",
    "subtitle",
    "performers",
    "tags",
    "age_advice",
    "description",
    "description_en",
)
EVENT_COLUMNS = (
    "event_code",
    "kind",
    "status",
    "category",
    *EVENT_TEXT_COLUMNS,
    "duration_minutes",
    "details",
)
SESSION_COLUMNS = (
    "session_code",
    "venue",
    "hall",
    "starts_at",
    "ends_at",
    "sales_open_at",
    "sales_close_at",
    "capacity_mode",
    "capacity",
    "language_note",
    "tiers",
)
COLUMNS = EVENT_COLUMNS + SESSION_COLUMNS
REQUIRED_COLUMNS = ("event_code", "kind", "title")
SESSION_TIME_COLUMNS = ("starts_at", "ends_at", "sales_open_at", "sales_close_at")
TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M")
TIME_FORMAT = "%Y-%m-%d %H:%M"
MAX_ROWS = 5000
DEFAULT_DURATION = dt.timedelta(minutes=120)
DETAIL_MODELS: dict[str, type[Model]] = {
    EventKind.FILM: FilmDetails,
    EventKind.SPORT: SportDetails,
    EventKind.SCENIC: ScenicDetails,
    EventKind.TRIP: TripDetails,
}
TIER_OPTIONS = ("name_en", "audience", "seat_type", "section", "quota", "min", "max", "currency")
# Tier attributes that say *what* is sold; once a tier exists, an import may not change them.
TIER_FIXED = (
    "audience",
    "currency",
    "seat_type",
    "section_codes",
    "capacity",
    "min_per_order",
    "max_per_order",
)
# Spreadsheet programs run a cell that starts like a formula; exported CSV cells are quoted.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class BatchProblem:
    line: int | None
    column: str
    message: str
    problem: str = "invalid_value"

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "problem": self.problem,
        }


@dataclass
class TierRow:
    """One tier of the `tiers` column: `code:name:price` and optional `key=value` parts."""

    code: str
    name: str
    price: Decimal
    name_en: str = ""
    audience: str = Audience.ANY
    currency: str = ""
    seat_type: str = ""
    section_codes: str = ""
    capacity: int | None = None
    min_per_order: int = 1
    max_per_order: int = 6


@dataclass
class BatchOutcome:
    ref: str
    outcome: str  # created / updated / unchanged
    line: int
    changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "outcome": self.outcome,
            "line": self.line,
            "changes": self.changes,
        }


@dataclass
class BatchReport:
    """What an import did (or, with `dry_run`, would do) to each event and session it names."""

    dry_run: bool
    events: list[BatchOutcome] = field(default_factory=list)
    sessions: list[BatchOutcome] = field(default_factory=list)

    def count(self, kind: str, outcome: str) -> int:
        items = self.events if kind == "events" else self.sessions
        return sum(1 for item in items if item.outcome == outcome)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            **{
                kind: {
                    **{outcome: self.count(kind, outcome) for outcome in OUTCOMES},
                    "items": [item.as_dict() for item in getattr(self, kind)],
                }
                for kind in ("events", "sessions")
            },
        }


@dataclass
class SheetRow:
    line: int
    cells: dict[str, str]  # only the columns the sheet has


@dataclass
class EventPlan:
    code: str
    line: int
    kind: str
    existing: Event | None
    values: dict[str, Any]  # Event fields to set (category as a Category or None)
    details: dict[str, Any]
    changes: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return "created" if self.existing is None else "updated" if self.changes else "unchanged"


@dataclass
class SessionPlan:
    event_code: str
    code: str
    line: int
    existing: Session | None
    venue: Venue
    hall: Hall | None
    seat_map: SeatMap | None
    capacity_mode: str
    capacity: int | None
    times: dict[str, dt.datetime]  # only those to set; new sessions: only those given
    language_note: str | None
    tiers: list[TierRow]  # new session: all; existing: only the tiers to add or update
    changes: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return "created" if self.existing is None else "updated" if self.changes else "unchanged"


@dataclass
class ImportPlan:
    events: list[EventPlan] = field(default_factory=list)
    sessions: list[SessionPlan] = field(default_factory=list)

    def report(self, *, dry_run: bool) -> BatchReport:
        return BatchReport(
            dry_run=dry_run,
            events=[BatchOutcome(e.code, e.outcome, e.line, e.changes) for e in self.events],
            sessions=[
                BatchOutcome(f"{s.event_code}/{s.code}", s.outcome, s.line, s.changes)
                for s in self.sessions
            ],
        )


# --- Reading a sheet --------------------------------------------------------------------------


def read_sheet(content: bytes, fmt: str) -> tuple[list[SheetRow], list[BatchProblem]]:
    """The non-blank rows of a CSV or XLSX sheet, keyed by column, with their line numbers."""
    problems: list[BatchProblem] = []
    raw_rows = _csv_rows(content, problems) if fmt == "csv" else _xlsx_rows(content, problems)
    rows: list[SheetRow] = []
    columns: list[str] | None = None
    for line, cells in raw_rows:
        if columns is None:
            columns = _read_header(cells, line, problems)
            if problems:
                return [], problems
            continue
        if not any(cells):
            continue
        extra = cells[len(columns) :]
        if any(extra):
            problems.append(
                BatchProblem(line, "", _("This row has more cells than the header."), "extra_cells")
            )
            continue
        padded = cells + [""] * (len(columns) - len(cells))
        rows.append(SheetRow(line, dict(zip(columns, padded, strict=False))))
    if columns is None and not problems:
        problems.append(BatchProblem(1, "", _("The file has no header row."), "missing_header"))
    elif len(rows) > MAX_ROWS:
        problems.append(
            BatchProblem(None, "", _("At most %(n)d rows per file.") % {"n": MAX_ROWS}, "too_big")
        )
    return rows, problems


def _csv_rows(content: bytes, problems: list[BatchProblem]) -> Iterator[tuple[int, list[str]]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        message = _("The file is not UTF-8 text; save it as “CSV UTF-8” (or use XLSX).")
        problems.append(BatchProblem(line, "", message, "not_utf8"))
        return
    reader = csv.reader(text.splitlines(keepends=True))
    line = 0
    for cells in reader:
        start, line = line + 1, reader.line_num
        yield start, [_unquote_formula(cell.strip()) for cell in cells]


def _unquote_formula(cell: str) -> str:
    """Undo the "'" that export puts before cells a spreadsheet would run as a formula."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_START):
        return cell[1:]
    return cell


def _xlsx_rows(content: bytes, problems: list[BatchProblem]) -> Iterator[tuple[int, list[str]]]:
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError):
        message = _("This is not an XLSX workbook.")
        problems.append(BatchProblem(None, "", message, "unreadable_file"))
        return
    try:
        sheet = workbook.worksheets[0]
        for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(value) for value in values]
            while cells and not cells[-1]:
                cells.pop()
            yield line, cells
    finally:
        workbook.close()


def _cell_text(value: object) -> str:
    """A cell as the text a person would type: Excel turns typed times and numbers into
    datetimes and floats, which are written back the way this format spells them."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime(TIME_FORMAT)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_header(cells: list[str], line: int, problems: list[BatchProblem]) -> list[str]:
    columns = [cell.strip().lower() for cell in cells]
    while columns and not columns[-1]:
        columns.pop()
    for name in sorted({c for c in columns if c not in COLUMNS}):
        message = _("Unknown column %(c)s.") % {"c": name or "(blank)"}
        problems.append(BatchProblem(line, name, message, "unknown_column"))
    for name in sorted({c for c in columns if c and columns.count(c) > 1}):
        message = _("Column %(c)s appears twice.") % {"c": name}
        problems.append(BatchProblem(line, name, message, "repeated_column"))
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            message = _("Column %(c)s is required.") % {"c": name}
            problems.append(BatchProblem(line, name, message, "missing_column"))
    return columns


# --- Checking a row ---------------------------------------------------------------------------


class RowReader:
    """Typed access to one row's cells; every bad cell becomes a problem, never an exception.

    A bad cell reads as blank so checking can go on and report the rest of the file.
    """

    def __init__(self, row: SheetRow, problems: list[BatchProblem]) -> None:
        self.row = row
        self.line = row.line
        self.problems = problems

    def has(self, column: str) -> bool:
        return column in self.row.cells

    def text(self, column: str) -> str:
        return self.row.cells.get(column, "")

    def fail(self, column: str, message: str, problem: str = "invalid_value") -> None:
        self.problems.append(BatchProblem(self.line, column, message, problem))

    def required(self, column: str) -> str:
        value = self.text(column)
        if not value:
            self.fail(column, _("This cell is required."), "required")
        return value

    def bounded_text(self, column: str, model: type[Model], field_name: str = "") -> str:
        value = self.text(column)
        limit = getattr(model._meta.get_field(field_name or column), "max_length", None)
        if limit and len(value) > limit:
            self.fail(column, _("At most %(n)d characters.") % {"n": limit}, "too_long")
            return value[:limit]
        return value

    def slug(self, column: str, limit: int) -> str:
        value = self.required(column)
        if not value:
            return ""
        try:
            validate_slug(value)
        except ValidationError:
            self.fail(column, _("Use letters, digits, - and _ only."), "bad_code")
            return ""
        if len(value) > limit:
            self.fail(column, _("At most %(n)d characters.") % {"n": limit}, "too_long")
            return ""
        return value

    def positive_int(self, column: str) -> int | None:
        value = self.text(column)
        if not value:
            return None
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number <= 0:
            self.fail(column, _("Expected a whole number above 0, not %(v)s.") % {"v": value})
            return None
        return number

    def choice(self, column: str, choices: Iterable[str]) -> str:
        value = self.text(column).lower()
        allowed = list(choices)
        if value and value not in allowed:
            self.fail(
                column,
                _("Unknown value %(v)s (use %(c)s).") % {"v": value, "c": ", ".join(allowed)},
            )
            return ""
        return value

    def local_time(self, column: str, tz: dt.tzinfo) -> dt.datetime | None:
        """A wall-clock time at the venue, "YYYY-MM-DD HH:MM", as an aware datetime."""
        value = self.text(column)
        if not value:
            return None
        for fmt in TIME_FORMATS:
            try:
                naive = dt.datetime.strptime(value, fmt)  # noqa: DTZ007 - venue wall clock
            except ValueError:
                continue
            aware = naive.replace(tzinfo=tz)
            if aware.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != naive:
                self.fail(
                    column,
                    _("%(v)s does not exist at the venue (the clocks go forward then).")
                    % {"v": value},
                    "nonexistent_time",
                )
                return None
            return aware
        self.fail(column, _("Expected a time like 2026-12-31 19:30, not %(v)s.") % {"v": value})
        return None


# --- Planning ---------------------------------------------------------------------------------


@dataclass
class _Lookups:
    """Everything the rows refer to, fetched in a few queries up front."""

    venues: dict[str, Venue]
    halls: dict[tuple[int, str], Hall]
    categories: dict[str, Category]
    events: dict[str, Event]
    sessions: dict[tuple[int, str], Session]
    seat_maps: dict[int, SeatMap | None] = field(default_factory=dict)

    def current_seat_map(self, hall: Hall) -> SeatMap | None:
        if hall.pk not in self.seat_maps:
            self.seat_maps[hall.pk] = hall.current_seat_map()
        return self.seat_maps[hall.pk]


def _lookups(organizer: Organizer, rows: list[SheetRow]) -> _Lookups:
    codes = {row.cells.get("event_code", "") for row in rows}
    events = {
        e.code: e
        for e in Event.objects.filter(organizer=organizer, code__in=codes).select_related(
            "category"
        )
    }
    sessions = {
        (s.event_id, s.code): s
        for s in Session.objects.filter(event__in=events.values())
        .select_related("venue", "hall", "seat_map")
        .prefetch_related("price_tiers")
    }
    venues = {v.name: v for v in Venue.objects.filter(organizer=organizer)}
    halls = {(h.venue_id, h.name): h for h in Hall.objects.filter(venue__organizer=organizer)}
    return _Lookups(
        venues=venues,
        halls=halls,
        categories={c.slug: c for c in Category.objects.all()},
        events=events,
        sessions=sessions,
    )


def plan_import(
    organizer: Organizer, rows: list[SheetRow]
) -> tuple[ImportPlan, list[BatchProblem]]:
    """Check every row and work out what importing them would change. Reads only."""
    problems: list[BatchProblem] = []
    lookups = _lookups(organizer, rows)
    plan = ImportPlan()
    groups: dict[str, list[RowReader]] = {}
    for row in rows:
        reader = RowReader(row, problems)
        code = reader.slug("event_code", Event._meta.get_field("code").max_length or 60)
        if code:
            groups.setdefault(code, []).append(reader)
    seen_sessions: dict[tuple[str, str], int] = {}
    for code, readers in groups.items():
        _check_event_rows_agree(readers)
        event_plan = _plan_event(code, readers[0], lookups)
        plan.events.append(event_plan)
        for reader in readers:
            session_plan = _plan_session(reader, event_plan, lookups, seen_sessions)
            if session_plan is not None:
                plan.sessions.append(session_plan)
    return plan, problems


def _check_event_rows_agree(readers: list[RowReader]) -> None:
    """Event columns repeat on every row of the event; they must say the same thing."""
    first = readers[0]
    for reader in readers[1:]:
        for column in EVENT_COLUMNS:
            if reader.has(column) and reader.text(column) != first.text(column):
                reader.fail(
                    column,
                    _("Differs from line %(n)d for the same event.") % {"n": first.line},
                    "inconsistent_event",
                )


def _plan_event(code: str, row: RowReader, lookups: _Lookups) -> EventPlan:
    existing = lookups.events.get(code)
    kind = row.required("kind") and row.choice("kind", EventKind.values)
    if existing is not None and kind and kind != existing.kind:
        row.fail("kind", _("The kind of an existing event cannot change."), "kind_changed")
    kind = kind or (existing.kind if existing else "")
    values: dict[str, Any] = {"title": row.bounded_text("title", Event)}
    if not values["title"]:
        row.fail("title", _("This cell is required."), "required")
    for column in EVENT_TEXT_COLUMNS[1:]:
        if row.has(column):
            values[column] = row.bounded_text(column, Event)
    if row.has("duration_minutes"):
        values["duration_minutes"] = row.positive_int("duration_minutes")
    if row.has("category"):
        values["category"] = _category(row, lookups)
    status = _status(row, existing)
    if status:
        values["status"] = status
    details = _details(row, kind) if row.has("details") and kind else {}
    if (
        existing is None
        and kind == EventKind.TRIP
        and not (details.get("origin") and details.get("destination"))
    ):
        row.fail("details", _("A trip needs origin=… and destination=…."), "required")
    plan = EventPlan(code, row.line, kind, existing, values, details)
    if existing is not None:
        plan.changes = _event_changes(existing, values, details)
    return plan


def _category(row: RowReader, lookups: _Lookups) -> Category | None:
    slug = row.text("category")
    if not slug:
        return None
    category = lookups.categories.get(slug)
    if category is None:
        row.fail("category", _("Unknown category %(s)s.") % {"s": slug}, "unknown_category")
    return category


def _status(row: RowReader, existing: Event | None) -> str:
    """Imports may draft or publish; cancelling has consequences (refunds) imports don't own."""
    status = row.choice("status", Event.Status.values)
    if status == Event.Status.CANCELLED and (
        existing is None or existing.status != Event.Status.CANCELLED
    ):
        row.fail("status", _("Cancel an event in the console, not by import."), "cannot_cancel")
        return ""
    return status


def _details(row: RowReader, kind: str) -> dict[str, Any]:
    """`key=value; key=value` for the kind's details (director=…, origin=…, league=…)."""
    model = DETAIL_MODELS.get(kind)
    details: dict[str, Any] = {}
    for part in split_escaped(row.text("details"), ";"):
        if not part.strip():
            continue
        key, sep, raw = (unescape(p).strip() for p in part.partition("="))
        if model is None or not sep or key in {"id", "event"}:
            row.fail("details", _("Unknown detail %(k)s for this kind.") % {"k": key})
            continue
        try:
            model_field = model._meta.get_field(key)
            if not isinstance(model_field, Field):
                raise ValidationError(_("Unknown detail."))
            details[key] = model_field.clean(raw, None)
        except Exception as exc:  # FieldDoesNotExist or ValidationError: both say "bad cell"
            message = "; ".join(getattr(exc, "messages", [])) or _("Unknown detail.")
            row.fail("details", f"{key}: {message}")
    return details


def _stored(event: Event, name: str) -> Any:
    """A stored value as the sheet would show it (cells are read without outer spaces)."""
    value = getattr(event, name)
    return value.strip() if isinstance(value, str) else value


def _event_changes(event: Event, values: dict[str, Any], details: dict[str, Any]) -> list[str]:
    changes = [name for name, value in values.items() if _stored(event, name) != value]
    model = DETAIL_MODELS.get(event.kind)
    if model is not None and details:
        current = model._default_manager.filter(event=event).first()
        changes += [
            f"details.{key}"
            for key, value in details.items()
            if current is None or getattr(current, key) != value
        ]
    return changes


SESSION_KEY_COLUMNS = ("session_code", "venue", "starts_at", "capacity_mode", "tiers")


def _plan_session(
    row: RowReader,
    event_plan: EventPlan,
    lookups: _Lookups,
    seen: dict[tuple[str, str], int],
) -> SessionPlan | None:
    if not any(row.text(column) for column in SESSION_COLUMNS):
        return None  # an event-only row
    code = row.slug("session_code", Session._meta.get_field("code").max_length or 60)
    if not code:
        return None
    key = (event_plan.code, code)
    if key in seen:
        message = _("Session %(c)s already appears on line %(n)d.") % {"c": code, "n": seen[key]}
        row.fail("session_code", message, "duplicate_session")
        return None
    seen[key] = row.line
    existing = None
    if event_plan.existing is not None:
        existing = lookups.sessions.get((event_plan.existing.pk, code))
    if existing is None:
        return _plan_new_session(row, event_plan, code, lookups)
    return _plan_session_update(row, event_plan, existing, lookups)


def _venue_and_hall(row: RowReader, lookups: _Lookups) -> tuple[Venue | None, Hall | None]:
    name = row.required("venue")
    venue = lookups.venues.get(name) if name else None
    if name and venue is None:
        row.fail("venue", _("No venue is named %(v)s.") % {"v": name}, "unknown_venue")
    hall_name = row.text("hall")
    hall = lookups.halls.get((venue.pk, hall_name)) if venue and hall_name else None
    if venue and hall_name and hall is None:
        message = _("Venue %(v)s has no hall named %(h)s.") % {"v": name, "h": hall_name}
        row.fail("hall", message, "unknown_hall")
    return venue, hall


def _plan_new_session(
    row: RowReader, event_plan: EventPlan, code: str, lookups: _Lookups
) -> SessionPlan | None:
    venue, hall = _venue_and_hall(row, lookups)
    mode = row.required("capacity_mode") and row.choice("capacity_mode", CapacityMode.values)
    capacity = row.positive_int("capacity")
    seat_map = None
    if mode == CapacityMode.RESERVED:
        seat_map = lookups.current_seat_map(hall) if hall else None
        hall_unknown = bool(row.text("hall")) and hall is None  # already reported
        if seat_map is None and venue is not None and not hall_unknown:
            message = _("Reserved seating needs a hall with a seat map.")
            row.fail("hall", message, "no_seat_map")
        if capacity is not None:
            message = _("Reserved seating takes its capacity from the seat map; leave it blank.")
            row.fail("capacity", message)
    elif mode and capacity is None:
        row.fail("capacity", _("General admission and daily capacity need a capacity."))
    tiers = _tiers(row) if row.required("tiers") else []
    if venue is None:
        return None
    times = {c: t for c in SESSION_TIME_COLUMNS if (t := row.local_time(c, venue.tzinfo))}
    if "starts_at" not in times:
        row.required("starts_at")
    else:
        duration_minutes = event_plan.values.get("duration_minutes") or (
            event_plan.existing.duration_minutes if event_plan.existing else None
        )
        duration = dt.timedelta(minutes=duration_minutes) if duration_minutes else DEFAULT_DURATION
        _check_times(
            row,
            starts_at=times["starts_at"],
            ends_at=times.get("ends_at", times["starts_at"] + duration),
            sales_open_at=times.get("sales_open_at", timezone.now()),
            sales_close_at=times.get("sales_close_at", times["starts_at"]),
        )
    return SessionPlan(
        event_code=event_plan.code,
        code=code,
        line=row.line,
        existing=None,
        venue=venue,
        hall=hall,
        seat_map=seat_map,
        capacity_mode=mode,
        capacity=capacity,
        times=times,
        language_note=row.bounded_text("language_note", Session),
        tiers=tiers,
    )


def _check_times(
    row: RowReader,
    *,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    sales_open_at: dt.datetime,
    sales_close_at: dt.datetime,
) -> None:
    if ends_at <= starts_at:
        row.fail("ends_at", _("A session must end after it starts."), "bad_times")
    if sales_close_at <= sales_open_at:
        row.fail("sales_close_at", _("Sales must close after they open."), "bad_times")


def _local_minute(value: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Times in the sheet have minutes only; compare stored times at that precision."""
    return timezone.localtime(value, tz).replace(second=0, microsecond=0, tzinfo=None)


def _plan_session_update(
    row: RowReader, event_plan: EventPlan, session: Session, lookups: _Lookups
) -> SessionPlan:
    """An existing session: times, language note and tier names/prices may change; where and
    how it sells (venue, hall, pinned seat map, capacity) may not — tickets may be sold."""
    venue, hall = session.venue, session.hall
    for column, current, given in (
        ("venue", venue.name, row.text("venue")),
        ("hall", hall.name if hall else "", row.text("hall")),
        ("capacity_mode", session.capacity_mode, row.text("capacity_mode").lower()),
        ("capacity", str(session.capacity or ""), row.text("capacity")),
    ):
        if row.has(column) and given != current:
            message = _("Cannot be changed by import for an existing session (now: %(v)s).") % {
                "v": current or "-"
            }
            row.fail(column, message, "cannot_change")
    tz = venue.tzinfo
    times: dict[str, dt.datetime] = {}
    changes: list[str] = []
    effective: dict[str, dt.datetime] = {}
    for column in SESSION_TIME_COLUMNS:
        stored: dt.datetime = getattr(session, column)
        when = row.local_time(column, tz) if row.has(column) else None
        if when is not None and when.replace(tzinfo=None) != _local_minute(stored, tz):
            times[column] = when
            changes.append(column)
        effective[column] = times.get(column, stored)
    if changes:
        _check_times(row, **effective)
    language_note = None
    if row.has("language_note"):
        language_note = row.bounded_text("language_note", Session)
        if language_note != session.language_note:
            changes.append("language_note")
    tiers = _tier_updates(row, session, changes) if row.has("tiers") else []
    return SessionPlan(
        event_code=event_plan.code,
        code=session.code,
        line=row.line,
        existing=session,
        venue=venue,
        hall=hall,
        seat_map=session.seat_map,
        capacity_mode=session.capacity_mode,
        capacity=session.capacity,
        times=times,
        language_note=language_note,
        tiers=tiers,
        changes=changes,
    )


def _tier_updates(row: RowReader, session: Session, changes: list[str]) -> list[TierRow]:
    """Tiers to add or rename/reprice. Removing a tier, or changing what it sells, is refused:
    orders and tickets may point at it."""
    given = _tiers(row)
    current = {t.code: t for t in session.price_tiers.all()}
    missing = sorted(set(current) - {t.code for t in given})
    if missing:
        message = _(
            "Tiers cannot be removed by import (missing: %(t)s); switch them off in the console."
        ) % {"t": ", ".join(missing)}
        row.fail("tiers", message, "tier_removed")
    updates: list[TierRow] = []
    for tier in given:
        existing = current.get(tier.code)
        if existing is None:
            updates.append(tier)
            changes.append(f"tiers.{tier.code}.added")
            continue
        fixed = [
            name
            for name in TIER_FIXED
            if getattr(tier, name) != getattr(existing, name)
            and not (name == "currency" and not tier.currency)
        ]
        if fixed:
            message = _("Tier %(t)s: %(f)s cannot be changed by import.") % {
                "t": tier.code,
                "f": ", ".join(fixed),
            }
            row.fail("tiers", message, "tier_fixed")
        changed = [
            name
            for name in ("name", "name_en", "price")
            if getattr(tier, name) != getattr(existing, name)
        ]
        if changed:
            updates.append(tier)
            changes += [f"tiers.{tier.code}.{name}" for name in changed]
    return updates


# --- Tiers: code:name:price[:key=value…] ------------------------------------------------------


def split_escaped(text: str, separator: str) -> list[str]:
    """Split on `separator` unless it is escaped with a backslash; escapes are kept so a part
    can be split again (tiers by ";", then each tier by ":")."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def escape(text: str, specials: str = ";:") -> str:
    return "".join(f"\\{c}" if c in specials or c == "\\" else c for c in text)


def _tiers(row: RowReader) -> list[TierRow]:
    tiers: list[TierRow] = []
    codes: set[str] = set()
    problems_before = len(row.problems)
    for part in split_escaped(row.text("tiers"), ";"):
        if not part.strip():
            continue
        tier = _tier(row, part.strip())
        if tier is None:
            continue
        if tier.code in codes:
            row.fail("tiers", _("Tier %(t)s appears twice.") % {"t": tier.code}, "bad_tier")
        codes.add(tier.code)
        tiers.append(tier)
    if not tiers and row.text("tiers") and len(row.problems) == problems_before:
        row.fail("tiers", _("No tier could be read."), "bad_tier")
    return tiers


def _tier(row: RowReader, text: str) -> TierRow | None:
    fields = [unescape(f).strip() for f in split_escaped(text, ":")]
    if len(fields) < 3 or not fields[0] or not fields[1]:
        message = _("Tier %(t)s: expected code:name:price.") % {"t": text}
        row.fail("tiers", message, "bad_tier")
        return None
    code, name, price_text = fields[:3]
    problems_before = len(row.problems)
    try:
        validate_slug(code)
    except ValidationError:
        message = _("Tier code %(c)s: letters, digits, - and _ only.") % {"c": code}
        row.fail("tiers", message, "bad_tier")
    try:
        price = parse_amount(price_text)
    except ValueError:
        message = _("Tier %(c)s: %(p)s is not a price.") % {"c": code, "p": price_text}
        row.fail("tiers", message, "bad_tier")
        price = Decimal(0)
    tier = TierRow(code=code, name=name, price=price)
    for option in fields[3:]:
        _tier_option(row, tier, option)
    return tier if len(row.problems) == problems_before else None


def _tier_option(row: RowReader, tier: TierRow, option: str) -> None:
    key, sep, value = (part.strip() for part in option.partition("="))
    if not sep or key not in TIER_OPTIONS:
        message = _("Tier %(c)s: unknown option %(o)s (use %(k)s).") % {
            "c": tier.code,
            "o": option,
            "k": ", ".join(f"{k}=" for k in TIER_OPTIONS),
        }
        row.fail("tiers", message, "bad_tier")
        return
    if key in {"quota", "min", "max"}:
        if not (value.isascii() and value.isdigit()):
            message = _("Tier %(c)s: %(k)s must be a whole number.") % {"c": tier.code, "k": key}
            row.fail("tiers", message, "bad_tier")
            return
        attribute = {"quota": "capacity", "min": "min_per_order", "max": "max_per_order"}[key]
        setattr(tier, attribute, int(value))
    else:
        setattr(tier, "section_codes" if key == "section" else key, value)


def tier_text(tier: PriceTier) -> str:
    """A price tier as the `tiers` column spells it; options only where not the default."""
    parts = [escape(tier.code), escape(tier.name), str(tier.price)]
    options = {
        "name_en": tier.name_en,
        "audience": "" if tier.audience == Audience.ANY else tier.audience,
        "seat_type": tier.seat_type,
        "section": tier.section_codes,
        "quota": "" if tier.capacity is None else str(tier.capacity),
        "min": "" if tier.min_per_order == 1 else str(tier.min_per_order),
        "max": "" if tier.max_per_order == 6 else str(tier.max_per_order),
        "currency": "" if tier.currency == default_currency() else tier.currency,
    }
    parts += [f"{key}={escape(value)}" for key, value in options.items() if value]
    return ":".join(parts)


# --- Export -----------------------------------------------------------------------------------


def export_rows(organizer: Organizer) -> list[dict[str, str]]:
    """Every event of `organizer` with its sessions, one row per session (an event without
    sessions gets one row of its own), in the import format."""
    rows: list[dict[str, str]] = []
    events = (
        Event.objects.filter(organizer=organizer)
        .select_related("category", "film", "sport", "scenic", "trip")
        .order_by("code")
    )
    sessions: dict[int, list[Session]] = {}
    for session in (
        Session.objects.filter(event__organizer=organizer)
        .select_related("venue", "hall")
        .prefetch_related("price_tiers")
        .order_by("starts_at", "code")
    ):
        sessions.setdefault(session.event_id, []).append(session)
    for event in events:
        event_cells = _event_cells(event)
        for session in sessions.get(event.pk, []):
            rows.append({**event_cells, **_session_cells(session)})
        if event.pk not in sessions:
            rows.append({**event_cells, **dict.fromkeys(SESSION_COLUMNS, "")})
    return rows


def _event_cells(event: Event) -> dict[str, str]:
    cells = {
        "event_code": event.code,
        "kind": event.kind,
        "status": event.status,
        "category": event.category.slug if event.category else "",
        "duration_minutes": str(event.duration_minutes or ""),
        "details": _details_text(event),
    }
    cells.update({column: getattr(event, column) for column in EVENT_TEXT_COLUMNS})
    return cells


def _details_text(event: Event) -> str:
    model = DETAIL_MODELS.get(event.kind)
    detail = model._default_manager.filter(event=event).first() if model else None
    if detail is None:
        return ""
    parts = []
    for model_field in detail._meta.concrete_fields:
        if model_field.name in {"id", "event"}:
            continue
        value = getattr(detail, model_field.attname)
        if value in (None, ""):
            continue
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        parts.append(f"{model_field.name}={escape(text, ';')}")
    return ";".join(parts)


def _session_cells(session: Session) -> dict[str, str]:
    tz = session.venue.tzinfo
    cells = {
        "session_code": session.code,
        "venue": session.venue.name,
        "hall": session.hall.name if session.hall else "",
        "capacity_mode": session.capacity_mode,
        "capacity": str(session.capacity or ""),
        "language_note": session.language_note,
        "tiers": ";".join(
            tier_text(t) for t in sorted(session.price_tiers.all(), key=lambda t: t.sort_order)
        ),
    }
    for column in SESSION_TIME_COLUMNS:
        cells[column] = timezone.localtime(getattr(session, column), tz).strftime(TIME_FORMAT)
    return cells


def catalog_export(*, organizer: Organizer, fmt: str) -> bytes:
    """The organizer's events and sessions as CSV (UTF-8 with a BOM, so Excel shows Chinese)
    or XLSX, in the format `catalog_batch_import` reads."""
    rows = export_rows(organizer)
    if fmt == "csv":
        return _csv_bytes(rows)
    if fmt == "xlsx":
        return _xlsx_bytes(rows)
    raise DomainError("unsupported_format", _("Use csv or xlsx."), {"format": fmt})


def _csv_bytes(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            f"'{value}" if value.startswith(FORMULA_START) else value
            for value in (row[column] for column in COLUMNS)
        )
    return buffer.getvalue().encode("utf-8-sig")


def _xlsx_bytes(rows: list[dict[str, str]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook always has one sheet
    sheet.title = "sessions"
    sheet.append(list(COLUMNS))
    for line, row in enumerate(rows, start=2):
        for index, column in enumerate(COLUMNS, start=1):
            cell = sheet.cell(row=line, column=index, value=row[column] or None)
            cell.data_type = "s"  # text, never a formula, whatever the cell starts with
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
