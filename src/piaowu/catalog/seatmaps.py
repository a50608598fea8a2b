"""Seat-map specifications: the one in-memory form every source (JSON, CSV, generator, copy)
produces, validated as a whole before anything is written.

Coordinates are integer units; a seat occupies a SEAT_SIZE × SEAT_SIZE square centred on (x, y),
so two seats overlap when both |dx| and |dy| are below SEAT_SIZE.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from piaowu.catalog.models import SeatType

SEAT_SIZE = 10
MAX_SEATS = 120_000


@dataclass
class SectionSpec:
    code: str
    name: str
    name_en: str = ""
    entrance: str = ""


@dataclass
class SeatSpec:
    section: str
    row: str
    number: str
    x: int
    y: int
    seat_type: str = SeatType.STANDARD
    blocked: bool = False
    pair: str = ""  # couple seats: the partner's number in the same section and row

    @property
    def code(self) -> str:
        return f"{self.section}-{self.row}-{self.number}"


@dataclass
class SeatMapSpec:
    sections: list[SectionSpec]
    seats: list[SeatSpec]
    name: str = ""
    stage: str = ""


@dataclass
class Problem:
    problem: str
    message: str
    seats: list[str] = field(default_factory=list)
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"problem": self.problem, "message": self.message}
        if self.seats:
            data["seats"] = self.seats
        if self.line is not None:
            data["line"] = self.line
        return data


def validate_spec(spec: SeatMapSpec) -> list[Problem]:
    """Every problem of `spec` at once, so an operator can fix a file in one pass."""
    problems: list[Problem] = []
    if not spec.seats:
        problems.append(Problem("empty", _("The seat map has no seats.")))
    if len(spec.seats) > MAX_SEATS:
        problems.append(
            Problem("too_many_seats", _("At most %(n)d seats per map.") % {"n": MAX_SEATS})
        )
    section_codes: set[str] = set()
    for section in spec.sections:
        if not section.code or not section.name:
            problems.append(
                Problem("section_incomplete", _("Every section needs a code and a name."))
            )
        if section.code in section_codes:
            problems.append(
                Problem(
                    "duplicate_section",
                    _("Section code %(code)s appears twice.") % {"code": section.code},
                )
            )
        section_codes.add(section.code)

    by_code: dict[str, SeatSpec] = {}
    duplicates: list[str] = []
    unknown_type: list[str] = []
    unknown_section: list[str] = []
    incomplete: list[str] = []
    for seat in spec.seats:
        if not seat.row or not seat.number:
            incomplete.append(seat.code)
        if seat.code in by_code:
            duplicates.append(seat.code)
        by_code.setdefault(seat.code, seat)
        if seat.seat_type not in SeatType.values:
            unknown_type.append(f"{seat.code} ({seat.seat_type})")
        if seat.section not in section_codes:
            unknown_section.append(seat.code)
    if incomplete:
        problems.append(Problem("seat_incomplete", _("Seats need a row and a number."), incomplete))
    if duplicates:
        problems.append(
            Problem("duplicate_label", _("These seat labels appear more than once."), duplicates)
        )
    if unknown_type:
        problems.append(
            Problem(
                "unknown_seat_type",
                _("Unknown seat types (use %(types)s).") % {"types": ", ".join(SeatType.values)},
                unknown_type,
            )
        )
    if unknown_section:
        problems.append(
            Problem(
                "unknown_section",
                _("These seats name a section that is not defined."),
                unknown_section,
            )
        )

    overlaps = _overlapping(spec.seats)
    if overlaps:
        problems.append(
            Problem(
                "overlapping_seats",
                _("These seats overlap another seat (seats are %(size)d units apart at least).")
                % {"size": SEAT_SIZE},
                overlaps,
            )
        )

    unpaired: list[str] = []
    for seat in spec.seats:
        partner = by_code.get(f"{seat.section}-{seat.row}-{seat.pair}") if seat.pair else None
        if seat.seat_type == SeatType.COUPLE:
            if (
                partner is None
                or partner is seat
                or partner.seat_type != SeatType.COUPLE
                or partner.pair != seat.number
            ):
                unpaired.append(seat.code)
        elif seat.pair:
            unpaired.append(seat.code)
    if unpaired:
        problems.append(
            Problem(
                "couple_without_partner",
                _(
                    "Couple seats must name each other as partners in the same row "
                    "(and only couple seats have partners)."
                ),
                unpaired,
            )
        )
    return problems


def _overlapping(seats: list[SeatSpec]) -> list[str]:
    grid: dict[tuple[int, int], list[SeatSpec]] = defaultdict(list)
    for seat in seats:
        grid[(seat.x // SEAT_SIZE, seat.y // SEAT_SIZE)].append(seat)
    found: dict[str, None] = {}
    for (cx, cy), cell in grid.items():
        neighbours = [
            s for dx in (-1, 0, 1) for dy in (-1, 0, 1) for s in grid.get((cx + dx, cy + dy), [])
        ]
        for seat in cell:
            for other in neighbours:
                if other is seat:
                    continue
                if abs(other.x - seat.x) < SEAT_SIZE and abs(other.y - seat.y) < SEAT_SIZE:
                    found[seat.code] = None
    return list(found)


@dataclass
class RectBlock:
    """A rectangular block of seats for the generator: one section, rows × seats, with aisles."""

    section: str
    name: str
    rows: int
    seats_per_row: int
    name_en: str = ""
    entrance: str = ""
    origin_x: int = 0
    origin_y: int = 0
    aisles_after: tuple[int, ...] = ()  # seat numbers after which an aisle runs
    row_labels: tuple[str, ...] = ()  # default "1", "2", …
    vip_rows: tuple[int, ...] = ()  # 1-based row indexes
    couple_rows: tuple[int, ...] = ()  # seats of these rows are sold in adjacent pairs
    accessible_seats: tuple[tuple[int, int], ...] = ()  # (row index, seat number)
    blocked_seats: tuple[tuple[int, int], ...] = ()


def generate_rectangular(
    blocks: list[RectBlock], *, name: str = "", stage: str = ""
) -> SeatMapSpec:
    """A spec for rectangular blocks with aisles (each aisle is one seat wide)."""
    sections: list[SectionSpec] = []
    seats: list[SeatSpec] = []
    for block in blocks:
        sections.append(SectionSpec(block.section, block.name, block.name_en, block.entrance))
        for r in range(1, block.rows + 1):
            row_label = block.row_labels[r - 1] if block.row_labels else str(r)
            y = block.origin_y + (r - 1) * SEAT_SIZE * 3 // 2
            aisle_offset = 0
            for n in range(1, block.seats_per_row + 1):
                x = block.origin_x + (n - 1 + aisle_offset) * SEAT_SIZE * 6 // 5
                seat_type: str = SeatType.STANDARD
                pair = ""
                if r in block.couple_rows:
                    seat_type = SeatType.COUPLE
                    partner = n + 1 if n % 2 == 1 else n - 1
                    pair = str(partner) if 1 <= partner <= block.seats_per_row else ""
                    if not pair:
                        seat_type = SeatType.STANDARD  # odd seat at the end of a couple row
                elif (r, n) in block.accessible_seats:
                    seat_type = SeatType.ACCESSIBLE
                elif r in block.vip_rows:
                    seat_type = SeatType.VIP
                seats.append(
                    SeatSpec(
                        section=block.section,
                        row=row_label,
                        number=str(n),
                        x=x,
                        y=y,
                        seat_type=seat_type,
                        blocked=(r, n) in block.blocked_seats,
                        pair=pair,
                    )
                )
                if n in block.aisles_after:
                    aisle_offset += 1
    return SeatMapSpec(sections=sections, seats=seats, name=name, stage=stage)
