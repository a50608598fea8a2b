"""Seat-map import (JSON, CSV), the generator service and JSON export (CAT-2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from piaowu.accounts.models import Organizer
from piaowu.catalog.imports import (
    SeatMapParseError,
    parse_seat_map_csv,
    parse_seat_map_json,
    seat_map_to_json,
)
from piaowu.catalog.models import Hall, Seat, SeatMap, SeatType
from piaowu.catalog.seatmaps import SEAT_SIZE, RectBlock
from piaowu.catalog.services import hall_create, seat_map_generate, seat_map_import
from piaowu.core.errors import DomainError
from tests.factories import make_event, make_hall, make_session, make_venue

GOOD_JSON = """{
  "format": "piaowu.seatmap/1",
  "name": "小剧场",
  "stage": "舞台",
  "sections": [
    {"code": "A", "name": "池座", "name_en": "Stalls", "entrance": "1号门"},
    {"code": "B", "name": "楼座"}
  ],
  "seats": [
    {"section": "A", "row": "1", "number": "1", "x": 0, "y": 0},
    {"section": "A", "row": "1", "number": "2", "x": 12, "y": 0, "type": "vip"},
    {"section": "A", "row": "2", "number": "1", "x": 0, "y": 15, "type": "couple", "pair": "2"},
    {"section": "A", "row": "2", "number": "2", "x": 12, "y": 15, "type": "couple", "pair": "1"},
    {"section": "B", "row": 1, "number": 1, "x": 0, "y": 60, "blocked": true}
  ]
}
"""

GOOD_CSV = """# name: 小剧场
# stage: 舞台
section,row,number,x,y,type,blocked,pair,section_name,section_name_en
A,1,1,0,0,,,,池座,Stalls
A,1,2,12,0,vip,0,,,
A,2,1,0,15,couple,no,2,,
A,2,2,12,15,couple,false,1,,
B,1,1,0,60,,yes,,楼座,
"""


@pytest.fixture
def hall(organizer: Organizer) -> Hall:
    return hall_create(venue=make_venue(organizer), name="小剧场")


def problems_of(error: pytest.ExceptionInfo[DomainError]) -> dict[str, dict[str, Any]]:
    """Problems by their code (each code appears once in these tests)."""
    found: dict[str, dict[str, Any]] = {}
    for problem in error.value.details["problems"]:
        found.setdefault(problem["problem"], problem)
    return found


def import_refused(hall: Hall, content: bytes | str, fmt: str) -> pytest.ExceptionInfo[DomainError]:
    """Import `content`, expecting a refusal that writes nothing."""
    maps, seats = SeatMap.objects.count(), Seat.objects.count()
    with pytest.raises(DomainError) as error:
        seat_map_import(hall=hall, content=content, fmt=fmt)
    assert error.value.code == "invalid_seat_map"
    assert (SeatMap.objects.count(), Seat.objects.count()) == (maps, seats)
    return error


# --- Good files -------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "fmt"), [(GOOD_JSON, "json"), (GOOD_CSV, "csv")])
def test_a_good_file_becomes_the_halls_first_version(hall: Hall, content: str, fmt: str) -> None:
    seat_map = seat_map_import(hall=hall, content=content.encode(), fmt=fmt)

    assert (seat_map.version, seat_map.source, seat_map.seat_count) == (1, fmt, 5)
    assert (seat_map.name, seat_map.stage_label) == ("小剧场", "舞台")
    sections = {s.code: s for s in seat_map.sections.all()}
    assert (sections["A"].name, sections["A"].name_en, sections["B"].name) == (
        "池座",
        "Stalls",
        "楼座",
    )
    seats = {s.code: s for s in seat_map.seats.select_related("pair")}
    assert seats["A-1-2"].seat_type == SeatType.VIP
    assert seats["B-1-1"].is_blocked and not seats["A-1-1"].is_blocked
    assert seats["A-2-1"].pair == seats["A-2-2"] and seats["A-2-2"].pair == seats["A-2-1"]


def test_csv_with_a_utf8_bom_and_crlf_line_ends_is_read(hall: Hall) -> None:
    content = "\ufeff" + GOOD_CSV.replace("\n", "\r\n")
    seat_map = seat_map_import(hall=hall, content=content.encode("utf-8"), fmt="csv")
    assert seat_map.seat_count == 5
    assert seat_map.name == "小剧场"


def test_json_with_a_utf8_bom_is_read() -> None:
    spec = parse_seat_map_json(b"\xef\xbb\xbf" + GOOD_JSON.encode())
    assert len(spec.seats) == 5


def test_csv_sections_without_names_are_named_after_their_code() -> None:
    spec = parse_seat_map_csv("section,row,number,x,y\nVIP,1,1,0,0\n")
    assert [(s.code, s.name) for s in spec.sections] == [("VIP", "VIP")]


def test_export_reads_back_to_the_same_spec(hall: Hall) -> None:
    seat_map = seat_map_import(hall=hall, content=GOOD_JSON, fmt="json")
    document = seat_map_to_json(seat_map)
    again = parse_seat_map_json(json.dumps(document, ensure_ascii=False))
    original = parse_seat_map_json(GOOD_JSON)

    def key(spec: Any) -> list[tuple[Any, ...]]:
        return sorted((s.code, s.x, s.y, s.seat_type, s.blocked, s.pair) for s in spec.seats)

    assert key(again) == key(original)
    assert again.sections == original.sections
    assert (again.name, again.stage) == (original.name, original.stage)


def test_a_new_import_is_version_2_and_a_pinned_session_keeps_version_1(
    organizer: Organizer,
) -> None:
    venue = make_venue(organizer)
    hall = make_hall(venue, rows=2, seats=3)  # version 1: 6 seats from the generator
    session = make_session(make_event(organizer), venue=venue, hall=hall)
    v1_codes = set(session.seat_map.seats.values_list("code", flat=True))  # type: ignore[union-attr]

    v2 = seat_map_import(hall=hall, content=GOOD_CSV, fmt="csv")

    session.refresh_from_db()
    assert v2.version == 2 and hall.current_seat_map() == v2
    assert session.seat_map is not None and session.seat_map.version == 1
    assert set(session.seat_map.seats.values_list("code", flat=True)) == v1_codes
    assert "A-2-1" not in v1_codes


# --- Bad files: one error, every problem, nothing written --------------------------------------


def test_unknown_format_is_refused(hall: Hall) -> None:
    with pytest.raises(DomainError) as error:
        seat_map_import(hall=hall, content=GOOD_JSON, fmt="xml")
    assert error.value.code == "unsupported_format"


def test_bad_json_syntax_gives_its_line(hall: Hall) -> None:
    broken = GOOD_JSON.replace('"x": 12, "y": 0, "type": "vip"}', '"x": 12 "y": 0}')
    problems = problems_of(import_refused(hall, broken, "json"))
    assert problems["bad_json"]["line"] == 11  # the second seat


def test_wrong_or_missing_format_version_is_refused(hall: Hall) -> None:
    problems = problems_of(
        import_refused(hall, GOOD_JSON.replace("piaowu.seatmap/1", "piaowu.seatmap/9"), "json")
    )
    assert "unsupported_version" in problems
    document = json.loads(GOOD_JSON)
    del document["format"]
    assert "missing_format" in problems_of(import_refused(hall, json.dumps(document), "json"))


def test_json_lists_every_bad_coordinate_and_boolean_with_lines(hall: Hall) -> None:
    document = json.loads(GOOD_JSON)
    document["seats"][0]["x"] = "left"
    document["seats"][1]["y"] = 1.5
    document["seats"][4]["blocked"] = "yes"
    text = json.dumps(document, indent=1, ensure_ascii=False)
    error = import_refused(hall, text, "json")

    bad = [p for p in error.value.details["problems"] if p["problem"] == "not_an_integer"]
    assert [p["seats"] for p in bad] == [["A-1-1"], ["A-1-2"]]
    # indent=1 puts each seat's "{" on its own line: those are the lines to point at
    lines = text.splitlines()
    seats_at = next(n for n, line in enumerate(lines, 1) if '"seats"' in line)
    seat_lines = [n for n, line in enumerate(lines, 1) if n > seats_at and line.strip() == "{"]
    assert [p["line"] for p in bad] == seat_lines[:2]
    boolean = problems_of(error)["bad_boolean"]
    assert (boolean["seats"], boolean["line"]) == (["B-1-1"], seat_lines[4])


def test_csv_missing_columns_are_named(hall: Hall) -> None:
    problems = problems_of(import_refused(hall, "section,row,number\nA,1,1\n", "csv"))
    assert problems["missing_column"]["line"] == 1
    assert "x, y" in problems["missing_column"]["message"]


def test_csv_unknown_column_is_refused_not_ignored(hall: Hall) -> None:
    problems = problems_of(import_refused(hall, "section,row,number,x,y,blokced\n", "csv"))
    assert "blokced" in problems["unknown_column"]["message"]


def test_csv_lists_every_bad_cell_with_its_line(hall: Hall) -> None:
    content = (
        "# name: test\n"
        "section,row,number,x,y,blocked\n"
        "A,1,1,0,0,0\n"
        "A,1,2,1.5,0,0\n"  # line 4: x not an integer
        "A,1,3,24,zero,maybe\n"  # line 5: y and blocked
        "A,1,4,36,0\n"  # line 6: a field short
    )
    error = import_refused(hall, content, "csv")
    found = [(p["problem"], p.get("line"), p.get("seats")) for p in error.value.details["problems"]]
    assert ("not_an_integer", 4, ["A-1-2"]) in found
    assert ("not_an_integer", 5, ["A-1-3"]) in found
    assert ("bad_boolean", 5, ["A-1-3"]) in found
    assert ("wrong_field_count", 6, None) in found


def test_non_utf8_csv_is_refused_with_advice(hall: Hall) -> None:
    content = "section,row,number,x,y,section_name\nA,1,1,0,0,池座\n".encode("gb18030")
    problems = problems_of(import_refused(hall, content, "csv"))
    assert problems["not_utf8"]["line"] == 2
    assert "UTF-8" in problems["not_utf8"]["message"]


def test_layout_problems_list_every_offending_seat_with_lines(hall: Hall) -> None:
    content = (
        "section,row,number,x,y,type,pair\n"
        "A,1,1,0,0,,\n"
        "A,1,1,100,0,,\n"  # duplicate label
        "A,1,2,5,0,,\n"  # overlaps A-1-1
        "A,1,3,200,0,gold,\n"  # unknown type
        "A,1,4,300,0,gold,\n"  # unknown type
        "A,2,1,0,100,couple,\n"  # couple without partner
        "A,2,2,100,100,couple,9\n"  # partner does not exist
    )
    error = import_refused(hall, content, "csv")
    problems = problems_of(error)

    assert problems["duplicate_label"]["seats"] == ["A-1-1"]
    assert set(problems["overlapping_seats"]["seats"]) == {"A-1-1", "A-1-2"}
    assert problems["unknown_seat_type"]["seats"] == ["A-1-3 (gold)", "A-1-4 (gold)"]
    assert problems["unknown_seat_type"]["lines"] == [5, 6]
    assert problems["couple_without_partner"]["seats"] == ["A-2-1", "A-2-2"]
    assert problems["couple_without_partner"]["lines"] == [7, 8]


def test_seats_in_an_undefined_section_are_listed(hall: Hall) -> None:
    document = json.loads(GOOD_JSON)
    document["seats"].append({"section": "Z", "row": "1", "number": "1", "x": 500, "y": 0})
    document["seats"].append({"section": "Z", "row": "1", "number": "2", "x": 520, "y": 0})
    problems = problems_of(import_refused(hall, json.dumps(document), "json"))
    assert problems["unknown_section"]["seats"] == ["Z-1-1", "Z-1-2"]


def test_parse_and_layout_problems_come_in_one_error(hall: Hall) -> None:
    content = "section,row,number,x,y,type\nA,1,1,0,0,gold\nA,1,2,oops,0,\n"
    problems = problems_of(import_refused(hall, content, "csv"))
    assert {"not_an_integer", "unknown_seat_type"} <= set(problems)
    assert "empty" not in problems


def test_parser_raises_one_error_with_every_problem() -> None:
    with pytest.raises(SeatMapParseError) as error:
        parse_seat_map_csv("section,row,number,x,y\nA,1,1,a,b\nA,1,2,c,0\n")
    assert [(p.problem, p.line) for p in error.value.problems] == [
        ("not_an_integer", 2),
        ("not_an_integer", 2),
        ("not_an_integer", 3),
    ]


def test_conflicting_section_names_in_csv_are_refused(hall: Hall) -> None:
    content = "section,row,number,x,y,section_name\nA,1,1,0,0,池座\nA,1,2,12,0,楼座\n"
    problems = problems_of(import_refused(hall, content, "csv"))
    assert problems["section_conflict"]["line"] == 3


# --- Generator --------------------------------------------------------------------------------


def test_generator_leaves_a_visible_aisle_and_no_overlaps(hall: Hall) -> None:
    block = RectBlock(section="M", name="池座", rows=3, seats_per_row=10, aisles_after=(5,))
    seat_map = seat_map_generate(hall=hall, blocks=[block], name="带过道", stage="银幕")

    assert (seat_map.source, seat_map.seat_count, seat_map.stage_label) == ("generator", 30, "银幕")
    row = dict(seat_map.seats.filter(row_label="1").values_list("number_label", "x"))
    pitch = row["2"] - row["1"]
    assert row["6"] - row["5"] > pitch + SEAT_SIZE // 2  # the aisle gap
    positions = list(seat_map.seats.values_list("x", "y"))
    assert len(set(positions)) == len(positions)


def test_generator_pairs_couple_rows(hall: Hall) -> None:
    block = RectBlock(section="M", name="池座", rows=2, seats_per_row=4, couple_rows=(2,))
    seat_map = seat_map_generate(hall=hall, blocks=[block])

    couples = {
        s.number_label: s.pair.number_label if s.pair else None
        for s in seat_map.seats.filter(row_label="2").select_related("pair")
    }
    assert couples == {"1": "2", "2": "1", "3": "4", "4": "3"}
    assert not seat_map.seats.filter(row_label="1", pair__isnull=False).exists()


def test_generator_refuses_an_empty_layout(hall: Hall) -> None:
    with pytest.raises(DomainError) as error:
        seat_map_generate(
            hall=hall, blocks=[RectBlock(section="M", name="M", rows=0, seats_per_row=5)]
        )
    assert error.value.code == "invalid_seat_map"
    assert not SeatMap.objects.filter(hall=hall).exists()
