"""Seat-map files in and out (CAT-2): the JSON and CSV formats of docs/seat-maps.md.

The parsers are pure: text in, `SeatMapSpec` out. They never stop at the first mistake — an
operator fixing a 3,000-seat file wants every problem of it at once, each with its line — so
the `read_*` functions return what they could read together with the problems found, and
`seat_map_problems` adds the layout problems of `validate_spec`, tagged with lines too.
"""

from __future__ import annotations

import bisect
import csv
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from piaowu.catalog.models import Seat, SeatMap, SeatType
from piaowu.catalog.seatmaps import Problem, SeatMapSpec, SeatSpec, SectionSpec, validate_spec

SEAT_MAP_FORMAT = "piaowu.seatmap/1"
CSV_REQUIRED_COLUMNS = ("section", "row", "number", "x", "y")
CSV_OPTIONAL_COLUMNS = (
    "type",
    "blocked",
    "pair",
    "section_name",
    "section_name_en",
    "section_entrance",
)
CSV_METADATA_KEYS = ("name", "stage")
JSON_SEAT_KEYS = {"section", "row", "number", "x", "y", "type", "blocked", "pair"}
JSON_SECTION_KEYS = {"code", "name", "name_en", "entrance"}
TRUE_WORDS = {"1", "true", "yes", "y", "t", "是"}
FALSE_WORDS = {"", "0", "false", "no", "n", "f", "否"}
# A file where every one of 100,000 seats is wrong should not produce a 20 MB error.
MAX_PROBLEMS = 1000


class SeatMapParseError(Exception):
    """A seat-map file could not be read; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems[:3]))
        self.problems = problems


@dataclass
class ParsedSeatMap:
    """What a file said, as far as it could be read. `lines` maps seat codes to their line."""

    spec: SeatMapSpec
    problems: list[Problem] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)

    def add(self, problem: str, message: str, *, line: int | None, seat: str = "") -> None:
        if len(self.problems) == MAX_PROBLEMS:
            self.problems.append(
                Problem("too_many_problems", _("Too many problems; the rest are not listed."))
            )
        if len(self.problems) > MAX_PROBLEMS:
            return
        self.problems.append(Problem(problem, message, [seat] if seat else [], line))


def parse_seat_map_json(content: bytes | str) -> SeatMapSpec:
    """The spec a JSON seat-map file describes; `SeatMapParseError` lists every problem."""
    return _spec_or_raise(read_seat_map_json(content))


def parse_seat_map_csv(content: bytes | str) -> SeatMapSpec:
    """The spec a CSV seat-map file describes; `SeatMapParseError` lists every problem."""
    return _spec_or_raise(read_seat_map_csv(content))


def _spec_or_raise(parsed: ParsedSeatMap) -> SeatMapSpec:
    if parsed.problems:
        raise SeatMapParseError(parsed.problems)
    return parsed.spec


def seat_map_problems(parsed: ParsedSeatMap) -> list[dict[str, Any]]:
    """Every problem of a parsed file: reading problems first, then those of the layout.

    Layout problems carry `lines` (the line of each listed seat) so a file can be fixed by
    line. "The map is empty" is left out when rows were refused: it only repeats them.
    """
    found = [p.as_dict() for p in parsed.problems]
    for problem in validate_spec(parsed.spec):
        if problem.problem == "empty" and parsed.problems:
            continue
        data = problem.as_dict()
        lines = [parsed.lines.get(code.split(" (")[0]) for code in problem.seats]
        if any(line is not None for line in lines):
            data["lines"] = lines
        found.append(data)
    return found


def _decode(content: bytes | str, parsed: ParsedSeatMap) -> str | None:
    """Text of the file; a UTF-8 byte-order mark (Excel writes one) is dropped."""
    if isinstance(content, bytes):
        raw = content
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            parsed.add(
                "not_utf8",
                _("The file is not UTF-8 text; save it as UTF-8 (CSV UTF-8 in Excel)."),
                line=line,
            )
            return None
    return content.removeprefix("\ufeff")


# --- JSON -------------------------------------------------------------------------------------


class _LinedDict(dict[str, Any]):
    """A JSON object that remembers the line it started on."""

    line: int | None = None


def _loads_with_lines(text: str) -> Any:
    """`json.loads`, but every object knows its line, so problems can point at it.

    The standard decoder cannot say where a value was; hooking its object parser (the pure
    Python scanner) records the position at a modest cost in speed.
    """
    newlines = [m.start() for m in re.finditer("\n", text)]
    decoder = json.JSONDecoder()

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[_LinedDict, int]:
        obj, end = json.decoder.JSONObject(s_and_end, *args)  # type: ignore[attr-defined]
        lined = _LinedDict(obj)
        lined.line = bisect.bisect_right(newlines, s_and_end[1] - 1) + 1
        return lined, end

    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder.decode(text)


def read_seat_map_json(content: bytes | str) -> ParsedSeatMap:
    """Read a `piaowu.seatmap/1` JSON file (format in docs/seat-maps.md)."""
    parsed = ParsedSeatMap(SeatMapSpec(sections=[], seats=[]))
    text = _decode(content, parsed)
    if text is None:
        return parsed
    try:
        data = _loads_with_lines(text)
    except json.JSONDecodeError as exc:
        parsed.add(
            "bad_json",
            _("Not valid JSON: %(reason)s (column %(col)d).")
            % {"reason": exc.msg, "col": exc.colno},
            line=exc.lineno,
        )
        return parsed
    if not isinstance(data, dict):
        parsed.add("bad_json", _("The file must hold one JSON object."), line=1)
        return parsed
    _read_json_header(data, parsed)
    sections = data.get("sections", [])
    seats = data.get("seats")
    if not isinstance(sections, list):
        parsed.add("bad_json", _('"sections" must be a list.'), line=1)
        sections = []
    if not isinstance(seats, list):
        parsed.add("bad_json", _('"seats" must be a list of seats.'), line=1)
        seats = []
    for index, item in enumerate(sections):
        _read_json_section(item, index, parsed)
    for index, item in enumerate(seats):
        _read_json_seat(item, index, parsed)
    return parsed


def _read_json_header(data: dict[str, Any], parsed: ParsedSeatMap) -> None:
    fmt = data.get("format")
    if fmt is None:
        parsed.add(
            "missing_format",
            _('The file must say "format": "%(f)s".') % {"f": SEAT_MAP_FORMAT},
            line=1,
        )
    elif fmt != SEAT_MAP_FORMAT:
        parsed.add(
            "unsupported_version",
            _("Format %(got)s is not supported; this version reads %(f)s.")
            % {"got": fmt, "f": SEAT_MAP_FORMAT},
            line=1,
        )
    for key in ("name", "stage"):
        value = data.get(key, "")
        if isinstance(value, str):
            setattr(parsed.spec, key, value.strip())
        else:
            parsed.add("bad_value", _('"%(k)s" must be text.') % {"k": key}, line=1)


def _line_of(item: object) -> int | None:
    return item.line if isinstance(item, _LinedDict) else None


def _read_json_section(item: object, index: int, parsed: ParsedSeatMap) -> None:
    where = f"sections[{index}]"
    line = _line_of(item)
    if not isinstance(item, dict):
        parsed.add("bad_section", _("%(w)s must be an object.") % {"w": where}, line=line)
        return
    unknown = sorted(set(item) - JSON_SECTION_KEYS)
    if unknown:
        parsed.add(
            "unknown_field",
            _("%(w)s: unknown fields %(f)s.") % {"w": where, "f": ", ".join(unknown)},
            line=line,
        )
    values = {}
    for key in JSON_SECTION_KEYS:
        value = item.get(key, "")
        if not isinstance(value, str | int) or isinstance(value, bool):
            parsed.add(
                "bad_value", _("%(w)s: %(k)s must be text.") % {"w": where, "k": key}, line=line
            )
            value = ""
        values[key] = str(value).strip()
    parsed.spec.sections.append(
        SectionSpec(values["code"], values["name"], values["name_en"], values["entrance"])
    )


def _json_label(value: object) -> str | None:
    """Rows and numbers may be written as text or as integers."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip()


def _json_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _read_json_seat(item: object, index: int, parsed: ParsedSeatMap) -> None:
    where = f"seats[{index}]"
    line = _line_of(item)
    if not isinstance(item, dict):
        parsed.add("bad_seat", _("%(w)s must be an object.") % {"w": where}, line=line)
        return
    section, row, number = (_json_label(item.get(k)) for k in ("section", "row", "number"))
    label = f"{section}-{row}-{number}" if section and row and number else ""
    where = label or where
    before = len(parsed.problems)
    unknown = sorted(set(item) - JSON_SEAT_KEYS)
    if unknown:
        parsed.add(
            "unknown_field",
            _("%(w)s: unknown fields %(f)s.") % {"w": where, "f": ", ".join(unknown)},
            line=line,
            seat=label,
        )
    for key, value in (("section", section), ("row", row), ("number", number)):
        if not value:
            parsed.add(
                "missing_value",
                _("%(w)s: %(k)s is required.") % {"w": where, "k": key},
                line=line,
                seat=label,
            )
    coordinates = {key: _json_int(item.get(key)) for key in ("x", "y")}
    for key, coordinate in coordinates.items():
        if coordinate is None:
            parsed.add(
                "not_an_integer",
                _("%(w)s: %(k)s must be an integer, not %(v)s.")
                % {"w": where, "k": key, "v": json.dumps(item.get(key), ensure_ascii=False)},
                line=line,
                seat=label,
            )
    seat_type = item.get("type", SeatType.STANDARD)
    if not isinstance(seat_type, str):
        parsed.add(
            "bad_value", _("%(w)s: type must be text.") % {"w": where}, line=line, seat=label
        )
    blocked = item.get("blocked", False)
    if not isinstance(blocked, bool):
        parsed.add(
            "bad_boolean",
            _("%(w)s: blocked must be true or false.") % {"w": where},
            line=line,
            seat=label,
        )
    pair = _json_label(item.get("pair") or "")
    if pair is None:
        parsed.add(
            "bad_value", _("%(w)s: pair must be text.") % {"w": where}, line=line, seat=label
        )
    if len(parsed.problems) > before:
        return
    seat = SeatSpec(
        section=str(section),
        row=str(row),
        number=str(number),
        x=coordinates["x"] or 0,
        y=coordinates["y"] or 0,
        seat_type=str(seat_type).strip().lower() or SeatType.STANDARD,
        blocked=bool(blocked),
        pair=pair or "",
    )
    parsed.spec.seats.append(seat)
    if line is not None:
        parsed.lines.setdefault(seat.code, line)


# --- CSV --------------------------------------------------------------------------------------


def read_seat_map_csv(content: bytes | str) -> ParsedSeatMap:
    """Read a CSV seat-map file: optional `# name:` / `# stage:` lines, a header, a seat a row.

    Sections are named by the optional section_name* columns (first non-empty value wins and
    later rows must agree); a section without a name is named after its code.
    """
    parsed = ParsedSeatMap(SeatMapSpec(sections=[], seats=[]))
    text = _decode(content, parsed)
    if text is None:
        return parsed
    lines = text.splitlines(keepends=True)
    first = _read_csv_metadata(lines, parsed)
    reader = csv.reader(lines[first:])
    header = next(reader, None)
    if header is None:
        parsed.add("missing_header", _("The file has no header row."), line=first + 1)
        return parsed
    columns = _read_csv_header(header, first + 1, parsed)
    if columns is None:
        return parsed
    sections: dict[str, SectionSpec] = {}
    section_lines: dict[str, int] = {}
    line = first + reader.line_num
    for cells in reader:
        row_line = line + 1
        line = first + reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            parsed.add(
                "wrong_field_count",
                _("Expected %(n)d fields, found %(m)d.") % {"n": len(columns), "m": len(cells)},
                line=row_line,
            )
            continue
        values = {name: cell.strip() for name, cell in zip(columns, cells, strict=True)}
        _read_csv_section(values, row_line, sections, section_lines, parsed)
        _read_csv_seat(values, row_line, parsed)
    parsed.spec.sections = list(sections.values())
    return parsed


def _read_csv_metadata(lines: list[str], parsed: ParsedSeatMap) -> int:
    """Read `# key: value` lines above the header; returns the index of the header line."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            return index
        key, sep, value = stripped.lstrip("#").partition(":")
        if sep and key.strip().lower() in CSV_METADATA_KEYS:
            setattr(parsed.spec, key.strip().lower(), value.strip())
    return len(lines)


def _read_csv_header(header: list[str], line: int, parsed: ParsedSeatMap) -> list[str] | None:
    columns = [name.strip().lower() for name in header]
    missing = [name for name in CSV_REQUIRED_COLUMNS if name not in columns]
    known = set(CSV_REQUIRED_COLUMNS) | set(CSV_OPTIONAL_COLUMNS)
    unknown = [name for name in columns if name not in known]
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if missing:
        parsed.add(
            "missing_column",
            _("Missing columns: %(c)s.") % {"c": ", ".join(missing)},
            line=line,
        )
    if unknown:
        parsed.add(
            "unknown_column",
            _("Unknown columns: %(c)s (known: %(k)s).")
            % {
                "c": ", ".join(unknown),
                "k": ", ".join([*CSV_REQUIRED_COLUMNS, *CSV_OPTIONAL_COLUMNS]),
            },
            line=line,
        )
    if repeated:
        parsed.add(
            "repeated_column",
            _("Columns appear twice: %(c)s.") % {"c": ", ".join(repeated)},
            line=line,
        )
    return None if missing or unknown or repeated else columns


def _read_csv_section(
    values: dict[str, str],
    line: int,
    sections: dict[str, SectionSpec],
    section_lines: dict[str, int],
    parsed: ParsedSeatMap,
) -> None:
    code = values["section"]
    if not code:
        return  # reported with the seat
    section = sections.get(code)
    if section is None:
        section = sections[code] = SectionSpec(code=code, name="")
        section_lines[code] = line
    for column, attribute in (
        ("section_name", "name"),
        ("section_name_en", "name_en"),
        ("section_entrance", "entrance"),
    ):
        value = values.get(column, "")
        current = getattr(section, attribute)
        if value and not current:
            setattr(section, attribute, value)
        elif value and value != current:
            parsed.add(
                "section_conflict",
                _("Section %(s)s: %(c)s %(v)s differs from %(w)s given earlier.")
                % {"s": code, "c": column, "v": value, "w": current},
                line=line,
            )
    if not section.name:
        section.name = code


def _csv_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _csv_bool(value: str) -> bool | None:
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _read_csv_seat(values: dict[str, str], line: int, parsed: ParsedSeatMap) -> None:
    section, row, number = values["section"], values["row"], values["number"]
    label = f"{section}-{row}-{number}" if section and row and number else ""
    where = label or _("this row")
    before = len(parsed.problems)
    for key in ("section", "row", "number"):
        if not values[key]:
            parsed.add(
                "missing_value",
                _("%(w)s: %(k)s is required.") % {"w": where, "k": key},
                line=line,
            )
    x, y = _csv_int(values["x"]), _csv_int(values["y"])
    for key, coordinate in (("x", x), ("y", y)):
        if coordinate is None:
            parsed.add(
                "not_an_integer",
                _("%(w)s: %(k)s must be an integer, not %(v)r.")
                % {"w": where, "k": key, "v": values[key]},
                line=line,
                seat=label,
            )
    blocked = _csv_bool(values.get("blocked", ""))
    if blocked is None:
        parsed.add(
            "bad_boolean",
            _("%(w)s: blocked must be one of 1/0, true/false, yes/no; not %(v)r.")
            % {"w": where, "v": values["blocked"]},
            line=line,
            seat=label,
        )
    if len(parsed.problems) > before or x is None or y is None:
        return
    seat = SeatSpec(
        section=section,
        row=row,
        number=number,
        x=x,
        y=y,
        seat_type=values.get("type", "").lower() or SeatType.STANDARD,
        blocked=bool(blocked),
        pair=values.get("pair", ""),
    )
    parsed.spec.seats.append(seat)
    parsed.lines.setdefault(seat.code, line)


# --- Export -----------------------------------------------------------------------------------


def seat_map_to_json(seat_map: SeatMap) -> dict[str, Any]:
    """One seat-map version as a `piaowu.seatmap/1` document that `parse_seat_map_json` reads
    back to the same spec (so a map can be exported, edited and imported as the next version).
    Optional seat keys are left out when they hold their default."""
    sections = list(seat_map.sections.order_by("sort_order", "code"))
    section_codes = {s.pk: s.code for s in sections}
    rows = list(
        Seat.objects.filter(seat_map=seat_map)
        .order_by("section__sort_order", "section__code", "y", "x")
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
    numbers = {row[0]: row[3] for row in rows}
    seats = []
    for _id, section_id, row, number, x, y, seat_type, blocked, pair_id in rows:
        seat: dict[str, Any] = {
            "section": section_codes[section_id],
            "row": row,
            "number": number,
            "x": x,
            "y": y,
        }
        if seat_type != SeatType.STANDARD:
            seat["type"] = seat_type
        if blocked:
            seat["blocked"] = True
        if pair_id is not None:
            seat["pair"] = numbers[pair_id]
        seats.append(seat)
    return {
        "format": SEAT_MAP_FORMAT,
        "name": seat_map.name,
        "stage": seat_map.stage_label,
        "sections": [
            {"code": s.code, "name": s.name, "name_en": s.name_en, "entrance": s.entrance}
            for s in sections
        ],
        "seats": seats,
    }


SEAT_MAP_READERS: dict[str, Callable[[bytes | str], ParsedSeatMap]] = {
    "json": read_seat_map_json,
    "csv": read_seat_map_csv,
}
