"""Batch import and export of events and sessions, CSV and XLSX (CAT-7)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from piaowu.accounts.models import Organizer
from piaowu.catalog.batch import COLUMNS, catalog_export
from piaowu.catalog.models import CatalogChange, Category, Event, Hall, PriceTier, Session, Venue
from piaowu.catalog.services import catalog_batch_import, seat_map_import
from piaowu.core.errors import DomainError
from tests.factories import make_hall, make_venue

pytestmark = pytest.mark.django_db

HEADER = (
    "event_code,kind,status,category,title,title_en,performers,duration_minutes,details,"
    "session_code,venue,hall,starts_at,ends_at,sales_open_at,sales_close_at,"
    "capacity_mode,capacity,language_note,tiers"
)
HAMLET = 'hamlet,performance,published,drama,哈姆雷特,Hamlet,"张三, 李四",150,'
FILM = "earth,film,,,流浪地球,,,125,director=郭帆;formats=IMAX"
GOOD_ROWS = [
    HAMLET + ",s1,星光剧院,1号厅,2030-05-01 19:30,,2030-04-01 10:00,,reserved,,,"
    "std:标准:180;vip:贵宾:380:seat_type=vip",
    HAMLET + ",s2,星光剧院,1号厅,2030-05-02 19:30,2030-05-02 22:30,,2030-05-02 19:00,reserved,,,"
    "std:标准:180",
    FILM + ",f1,星光剧院,,2030-05-03 10:00,,2030-04-01 10:00,,general,200,国语,"
    "adult:成人:60:quota=150;child:儿童:30:audience=child",
]


def sheet(*rows: str, header: str = HEADER) -> bytes:
    return "\n".join([header, *rows]).encode()


@pytest.fixture
def venue(organizer: Organizer) -> Venue:
    return make_venue(organizer, name="星光剧院")


@pytest.fixture
def hall(venue: Venue) -> Hall:
    return make_hall(venue, name="1号厅", rows=3, seats=4)


@pytest.fixture
def drama(db: None) -> Category:
    return Category.objects.create(slug="drama", name="话剧", name_en="Drama")


@pytest.fixture
def imported(organizer: Organizer, hall: Hall, drama: Category) -> dict[str, Any]:
    return catalog_batch_import(organizer=organizer, content=sheet(*GOOD_ROWS), fmt="csv").as_dict()


def counts() -> tuple[int, int, int]:
    return Event.objects.count(), Session.objects.count(), PriceTier.objects.count()


def refused(organizer: Organizer, content: bytes, fmt: str = "csv") -> list[dict[str, Any]]:
    """Import `content`, expecting one invalid_import error and no change at all."""
    before = counts()
    with pytest.raises(DomainError) as error:
        catalog_batch_import(organizer=organizer, content=content, fmt=fmt)
    assert error.value.code == "invalid_import"
    assert counts() == before
    problems: list[dict[str, Any]] = error.value.details["problems"]
    return problems


def where(problems: list[dict[str, Any]]) -> set[tuple[int | None, str, str]]:
    return {(p["line"], p["column"], p["problem"]) for p in problems}


# --- Creating ---------------------------------------------------------------------------------


def test_a_good_csv_creates_events_sessions_and_tiers(
    organizer: Organizer, hall: Hall, imported: dict[str, Any]
) -> None:
    assert (imported["events"]["created"], imported["sessions"]["created"]) == (2, 3)
    hamlet = Event.objects.get(organizer=organizer, code="hamlet")
    assert (hamlet.title_en, hamlet.performers, hamlet.status) == (
        "Hamlet",
        "张三, 李四",
        "published",
    )
    assert hamlet.category is not None and hamlet.category.slug == "drama"
    s1 = hamlet.sessions.get(code="s1")
    assert s1.local_starts_at.strftime("%Y-%m-%d %H:%M") == "2030-05-01 19:30"
    assert s1.starts_at.astimezone(dt.UTC).hour == 11  # Asia/Shanghai is UTC+8
    assert s1.ends_at - s1.starts_at == dt.timedelta(minutes=150)  # the event's duration
    assert s1.sales_close_at == s1.starts_at
    assert s1.seat_map == hall.current_seat_map()
    tiers = [(t.code, t.price, t.seat_type) for t in s1.price_tiers.order_by("sort_order")]
    assert tiers == [("std", Decimal("180.00"), ""), ("vip", Decimal("380.00"), "vip")]
    s2 = hamlet.sessions.get(code="s2")
    assert s2.local_ends_at.strftime("%H:%M") == "22:30"

    film = Event.objects.get(code="earth")
    assert (film.status, film.film.director, film.film.formats) == ("draft", "郭帆", "IMAX")
    f1 = film.sessions.get()
    assert (f1.capacity_mode, f1.capacity, f1.language_note, f1.hall) == (
        "general",
        200,
        "国语",
        None,
    )
    child = f1.price_tiers.get(code="child")
    assert (child.audience, f1.price_tiers.get(code="adult").capacity) == ("child", 150)
    assert CatalogChange.objects.filter(action="piaowu.catalog.batch.imported").count() == 1


def test_importing_the_same_file_again_changes_nothing(
    organizer: Organizer, imported: dict[str, Any]
) -> None:
    before = counts()
    again = catalog_batch_import(organizer=organizer, content=sheet(*GOOD_ROWS), fmt="csv")
    assert (again.count("events", "unchanged"), again.count("sessions", "unchanged")) == (2, 3)
    assert again.count("sessions", "created") == again.count("sessions", "updated") == 0
    assert counts() == before


def test_a_dry_run_reports_and_writes_nothing(
    organizer: Organizer, hall: Hall, drama: Category
) -> None:
    report = catalog_batch_import(
        organizer=organizer, content=sheet(*GOOD_ROWS), fmt="csv", dry_run=True
    )
    data = report.as_dict()
    assert data["dry_run"] is True
    assert (data["events"]["created"], data["sessions"]["created"]) == (2, 3)
    assert [i["ref"] for i in data["sessions"]["items"]] == ["hamlet/s1", "hamlet/s2", "earth/f1"]
    assert counts() == (0, 0, 0)
    assert not CatalogChange.objects.filter(action="piaowu.catalog.batch.imported").exists()


def test_an_event_only_row_creates_an_event_without_sessions(organizer: Organizer) -> None:
    report = catalog_batch_import(
        organizer=organizer,
        content=sheet(
            "solo,scenic,,,故宫,,,,opening_hours=8:30-17:00",
            header="event_code,kind,"
            "status,category,title,title_en,performers,duration_minutes,details",
        ),
        fmt="csv",
    )
    assert report.count("events", "created") == 1 and not report.sessions
    assert Event.objects.get(code="solo").scenic.opening_hours == "8:30-17:00"


# --- Updating ---------------------------------------------------------------------------------


def test_updates_reprice_rename_and_add_tiers_and_keep_the_pinned_seat_map(
    organizer: Organizer, hall: Hall, imported: dict[str, Any]
) -> None:
    s1 = Session.objects.get(code="s1")
    pinned = s1.seat_map
    seat_map_import(hall=hall, content="section,row,number,x,y\nN,1,1,0,0\n", fmt="csv")
    rows = list(GOOD_ROWS)
    rows[0] = (
        HAMLET.replace("哈姆雷特", "哈姆雷特 (新版)")
        + ",s1,星光剧院,1号厅,2030-05-01 20:00,,2030-04-01 10:00,,reserved,,,"
        "std:普通:200;vip:贵宾:380:seat_type=vip;student:学生:90"
    )
    rows[1] = rows[1].replace("哈姆雷特", "哈姆雷特 (新版)")

    report = catalog_batch_import(organizer=organizer, content=sheet(*rows), fmt="csv").as_dict()

    events = {i["ref"]: i for i in report["events"]["items"]}
    sessions = {i["ref"]: i for i in report["sessions"]["items"]}
    assert (events["hamlet"]["outcome"], events["hamlet"]["changes"]) == ("updated", ["title"])
    assert events["earth"]["outcome"] == "unchanged"
    assert sessions["hamlet/s1"]["outcome"] == "updated"
    assert set(sessions["hamlet/s1"]["changes"]) == {
        "starts_at",
        "tiers.std.name",
        "tiers.std.price",
        "tiers.student.added",
    }
    assert sessions["hamlet/s2"]["outcome"] == sessions["earth/f1"]["outcome"] == "unchanged"
    s1.refresh_from_db()
    assert s1.local_starts_at.strftime("%H:%M") == "20:00"
    assert s1.seat_map == pinned != hall.current_seat_map()
    tiers = [(t.code, t.name, t.price) for t in s1.price_tiers.order_by("sort_order")]
    assert tiers == [
        ("std", "普通", Decimal("200.00")),
        ("vip", "贵宾", Decimal("380.00")),
        ("student", "学生", Decimal("90.00")),
    ]
    assert Event.objects.get(code="hamlet").title == "哈姆雷特 (新版)"


def test_tiers_cannot_be_removed_by_import(organizer: Organizer, imported: dict[str, Any]) -> None:
    rows = list(GOOD_ROWS)
    rows[0] = rows[0].replace(";vip:贵宾:380:seat_type=vip", "")
    problems = refused(organizer, sheet(*rows))
    assert where(problems) == {(2, "tiers", "tier_removed")}
    assert "vip" in problems[0]["message"]


def test_what_a_session_sells_cannot_change_by_import(
    organizer: Organizer, venue: Venue, imported: dict[str, Any]
) -> None:
    make_hall(venue, name="2号厅")
    rows = list(GOOD_ROWS)
    rows[0] = rows[0].replace("1号厅", "2号厅").replace("seat_type=vip", "seat_type=standard")
    rows[2] = rows[2].replace("general,200", "general,500")
    problems = refused(organizer, sheet(*rows))
    assert where(problems) == {
        (2, "hall", "cannot_change"),
        (2, "tiers", "tier_fixed"),
        (4, "capacity", "cannot_change"),
    }


# --- Refusing ---------------------------------------------------------------------------------


def test_every_problem_of_a_bad_file_comes_in_one_error(
    organizer: Organizer, hall: Hall, drama: Category
) -> None:
    rows = [
        GOOD_ROWS[0].replace("星光剧院", "月光剧院"),  # line 2: unknown venue
        GOOD_ROWS[1].replace("1号厅", "9号厅"),  # line 3: unknown hall
        GOOD_ROWS[1]
        .replace(",s2,", ",s3,")
        .replace("2030-05-02 19:30,2030", "2030-13-02 19:30,2030"),
        GOOD_ROWS[1],  # line 5: s2 again
        GOOD_ROWS[1].replace(",s2,", ",s4,").replace("Hamlet", "Hamlet!"),  # line 6
        FILM.replace("film", "opera", 1) + ",f1,星光剧院,,2030-05-03 10:00,,,,general,200,,x:y",
        FILM + ",f2,星光剧院,,2030-05-03 12:00,2030-05-03 11:00,,,general,200,,a:成人:6o",
    ]
    problems = refused(organizer, sheet(*rows))

    assert where(problems) == {
        (2, "venue", "unknown_venue"),
        (3, "hall", "unknown_hall"),
        (4, "starts_at", "invalid_value"),
        (5, "session_code", "duplicate_session"),
        (6, "title_en", "inconsistent_event"),
        (7, "kind", "invalid_value"),
        (7, "tiers", "bad_tier"),
        (8, "kind", "inconsistent_event"),
        (8, "ends_at", "bad_times"),
        (8, "tiers", "bad_tier"),
    }
    assert [p["line"] for p in problems] == sorted(p["line"] for p in problems)


def test_tier_rules_of_sessions_are_checked_before_writing(
    organizer: Organizer, hall: Hall, drama: Category
) -> None:
    rows = [
        GOOD_ROWS[0].replace("seat_type=vip", "section=Z"),  # no section Z on the map
        GOOD_ROWS[2].replace("quota=150", "quota=999"),  # more than the session's 200
    ]
    problems = refused(organizer, sheet(*rows))
    assert where(problems) == {(2, "tiers", "bad_tier"), (3, "tiers", "bad_tier")}


@pytest.mark.parametrize(
    ("cell", "fragment"),
    [
        ("std:标准", "expected code:name:price"),
        ("std:标准:abc", "not a price"),
        ("std:标准:10:colour=red", "unknown option"),
        ("std:标准:10:quota=ten", "whole number"),
        ("std:标准:10;std:又一个:20", "appears twice"),
    ],
)
def test_tier_syntax_errors_are_explained(
    organizer: Organizer, hall: Hall, drama: Category, cell: str, fragment: str
) -> None:
    row = GOOD_ROWS[0].rsplit(",", 1)[0] + "," + cell
    problems = refused(organizer, sheet(row))
    assert [(p["line"], p["column"]) for p in problems] == [(2, "tiers")]
    assert fragment in problems[0]["message"]


def test_header_problems_are_reported_first(organizer: Organizer) -> None:
    problems = refused(organizer, sheet(header="event_code,titel,kind\n"))
    assert where(problems) == {(1, "titel", "unknown_column"), (1, "title", "missing_column")}


def test_a_non_utf8_csv_is_refused(organizer: Organizer, hall: Hall) -> None:
    problems = refused(organizer, "\n".join([HEADER, *GOOD_ROWS]).encode("gb18030"))
    assert problems[0]["problem"] == "not_utf8" and problems[0]["line"] == 2


def test_a_file_that_is_not_a_workbook_is_refused(organizer: Organizer) -> None:
    problems = refused(organizer, b"PK\x03\x04 not really", fmt="xlsx")
    assert problems[0]["problem"] == "unreadable_file"


def test_unknown_format_is_refused(organizer: Organizer) -> None:
    with pytest.raises(DomainError) as error:
        catalog_batch_import(organizer=organizer, content=b"", fmt="ods")
    assert error.value.code == "unsupported_format"
    with pytest.raises(DomainError):
        catalog_export(organizer=organizer, fmt="ods")


def test_other_organizers_venues_are_unknown(
    other_organizer: Organizer, hall: Hall, drama: Category
) -> None:
    problems = refused(other_organizer, sheet(GOOD_ROWS[0]))
    assert (2, "venue", "unknown_venue") in where(problems)


# --- XLSX and export --------------------------------------------------------------------------


def workbook_bytes(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    worksheet = workbook.active
    assert worksheet is not None
    for row in rows:
        worksheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_with_typed_dates_and_numbers_is_read(
    organizer: Organizer, hall: Hall, drama: Category
) -> None:
    header = ["event_code", "kind", "title", "session_code", "venue", "hall", "starts_at"]
    header += ["capacity_mode", "capacity", "tiers", "duration_minutes"]
    # Excel stores typed times as naive datetimes: the venue's wall clock
    eve = dt.datetime.combine(dt.date(2030, 12, 31), dt.time(20))
    new_year = dt.datetime.combine(dt.date(2031, 1, 1), dt.time(15))
    content = workbook_bytes(
        [
            header,
            ["gala", "performance", "新年音乐会", "n1", "星光剧院", "1号厅",
             eve, "reserved", None, "std:标准:280", 90.0],
            [],
            ["gala", "performance", "新年音乐会", "n2", "星光剧院", None,
             new_year, "general", 500.0, "std:标准:180", 90],
        ]
    )  # fmt: skip
    report = catalog_batch_import(organizer=organizer, content=content, fmt="xlsx")
    assert (report.count("events", "created"), report.count("sessions", "created")) == (1, 2)
    n2 = Session.objects.get(code="n2")
    assert (n2.capacity, n2.local_starts_at.strftime("%Y-%m-%d %H:%M")) == (500, "2031-01-01 15:00")
    assert Event.objects.get(code="gala").duration_minutes == 90


def test_bad_xlsx_cells_are_reported_by_row(organizer: Organizer, hall: Hall) -> None:
    content = workbook_bytes(
        [
            ["event_code", "kind", "title", "session_code", "venue", "starts_at", "capacity_mode",
             "capacity", "tiers"],
            ["x", "film", "片", "a", "星光剧院", "tomorrow", "general", -3, "t:票:10"],
        ]
    )  # fmt: skip
    problems = refused(organizer, content, fmt="xlsx")
    assert where(problems) == {(2, "starts_at", "invalid_value"), (2, "capacity", "invalid_value")}


def test_csv_export_has_a_bom_and_round_trips_unchanged(
    organizer: Organizer, imported: dict[str, Any]
) -> None:
    exported = catalog_export(organizer=organizer, fmt="csv")
    assert exported.startswith(b"\xef\xbb\xbf")
    text = exported.decode("utf-8-sig")
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert "哈姆雷特" in text and "director=郭帆" in text

    before = counts()
    report = catalog_batch_import(organizer=organizer, content=exported, fmt="csv")
    assert report.count("events", "unchanged") == 2
    assert report.count("sessions", "unchanged") == 3
    assert counts() == before


def test_texts_with_outer_spaces_still_round_trip_unchanged(
    organizer: Organizer, imported: dict[str, Any]
) -> None:
    Event.objects.filter(code="hamlet").update(description="  第一幕\n第二幕\n")
    exported = catalog_export(organizer=organizer, fmt="csv")
    report = catalog_batch_import(organizer=organizer, content=exported, fmt="csv")
    assert report.count("events", "unchanged") == 2


def test_xlsx_export_round_trips_unchanged(organizer: Organizer, imported: dict[str, Any]) -> None:
    exported = catalog_export(organizer=organizer, fmt="xlsx")
    sheet_rows = list(load_workbook(io.BytesIO(exported)).worksheets[0].iter_rows(values_only=True))
    assert sheet_rows[0] == COLUMNS and len(sheet_rows) == 4

    report = catalog_batch_import(organizer=organizer, content=exported, fmt="xlsx")
    assert report.count("events", "unchanged") == 2
    assert report.count("sessions", "unchanged") == 3


def test_export_cannot_smuggle_a_formula_into_a_spreadsheet(
    organizer: Organizer, hall: Hall, drama: Category
) -> None:
    catalog_batch_import(
        organizer=organizer,
        content=sheet(GOOD_ROWS[0].replace("Hamlet", "=1+1")),
        fmt="csv",
    )
    csv_text = catalog_export(organizer=organizer, fmt="csv").decode("utf-8-sig")
    assert ",'=1+1," in csv_text
    workbook = load_workbook(io.BytesIO(catalog_export(organizer=organizer, fmt="xlsx")))
    cell = workbook.worksheets[0].cell(row=2, column=COLUMNS.index("title_en") + 1)
    assert (cell.value, cell.data_type) == ("=1+1", "s")
    again = catalog_batch_import(
        organizer=organizer, content=csv_text.encode("utf-8-sig"), fmt="csv"
    )
    assert again.count("events", "unchanged") == 1
    assert Event.objects.get(code="hamlet").title_en == "=1+1"
