"""Seat rules (INV-4) as pure functions over a row layout, so they are cheap to test and reuse.

A row is the seats of one section with one row label, ordered by x. An aisle is a gap between
neighbours wider than 1.5 × the generator's seat pitch (`SEAT_SIZE * 6 // 5`); seats between two
aisles (or an aisle and the row's end) form a *segment*, the unit the rules look at.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from piaowu.catalog.models import SeatType
from piaowu.catalog.seatmaps import SEAT_SIZE

SEAT_PITCH = SEAT_SIZE * 6 // 5
AISLE_GAP = SEAT_PITCH * 3 // 2  # a gap wider than this is an aisle


@dataclass(frozen=True)
class RowSeat:
    id: int
    code: str
    section: str
    row: str
    x: int
    y: int
    seat_type: str = SeatType.STANDARD
    pair_code: str = ""


def segments(seats: Iterable[RowSeat]) -> list[list[RowSeat]]:
    """The seats split into rows and then at aisles; each segment ordered by x."""
    rows: dict[tuple[str, str], list[RowSeat]] = defaultdict(list)
    for seat in seats:
        rows[(seat.section, seat.row)].append(seat)
    result: list[list[RowSeat]] = []
    for row in rows.values():
        row.sort(key=lambda s: s.x)
        current: list[RowSeat] = []
        for seat in row:
            if current and seat.x - current[-1].x > AISLE_GAP:
                result.append(current)
                current = []
            current.append(seat)
        result.append(current)
    return result


def stranded_seats(
    segs: Iterable[list[RowSeat]], *, taken: set[str], chosen: set[str]
) -> list[str]:
    """Empty seats that `chosen` would leave alone: a single free seat between taken seats, or
    between a taken seat and an aisle / the row's end, next to one of the chosen seats."""
    occupied = taken | chosen
    stranded: list[str] = []
    for seg in segs:
        if not any(s.code in chosen for s in seg):
            continue
        codes = [s.code for s in seg]
        for i, code in enumerate(codes):
            if code in occupied:
                continue
            left_taken = i == 0 or codes[i - 1] in occupied
            right_taken = i == len(codes) - 1 or codes[i + 1] in occupied
            next_to_chosen = (i > 0 and codes[i - 1] in chosen) or (
                i < len(codes) - 1 and codes[i + 1] in chosen
            )
            if left_taken and right_taken and next_to_chosen:
                stranded.append(code)
    return sorted(stranded)


def couples_missing_partner(chosen: Iterable[RowSeat]) -> list[str]:
    """Couple seats in `chosen` whose partner is not chosen too."""
    seats = list(chosen)
    codes = {s.code for s in seats}
    return sorted(
        s.code
        for s in seats
        if s.seat_type == SeatType.COUPLE and s.pair_code and s.pair_code not in codes
    )
