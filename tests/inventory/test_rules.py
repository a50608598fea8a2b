"""The seat rules as pure functions over generator layouts (no database)."""

from __future__ import annotations

from piaowu.catalog.models import SeatType
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.inventory.rules import RowSeat, couples_missing_partner, segments, stranded_seats


def row(seats: int, aisles_after: tuple[int, ...] = (), couple: bool = False) -> list[RowSeat]:
    spec = generate_rectangular(
        [
            RectBlock(
                section="M",
                name="池座",
                rows=1,
                seats_per_row=seats,
                aisles_after=aisles_after,
                couple_rows=(1,) if couple else (),
            )
        ]
    )
    return [
        RowSeat(
            id=i,
            code=s.code,
            section=s.section,
            row=s.row,
            x=s.x,
            y=s.y,
            seat_type=s.seat_type,
            pair_code=f"M-1-{s.pair}" if s.pair else "",
        )
        for i, s in enumerate(spec.seats)
    ]


def test_generator_aisles_split_a_row_into_segments() -> None:
    segs = segments(row(10, aisles_after=(3, 7)))
    assert [[s.code.rsplit("-", 1)[1] for s in seg] for seg in segs] == [
        ["1", "2", "3"],
        ["4", "5", "6", "7"],
        ["8", "9", "10"],
    ]


def test_single_gaps_next_to_the_choice_are_stranded() -> None:
    segs = segments(row(10, aisles_after=(5,)))
    assert stranded_seats(segs, taken=set(), chosen={"M-1-2"}) == ["M-1-1"]
    assert stranded_seats(segs, taken=set(), chosen={"M-1-3", "M-1-4"}) == ["M-1-5"]
    assert stranded_seats(segs, taken={"M-1-1"}, chosen={"M-1-3"}) == ["M-1-2"]
    assert stranded_seats(segs, taken=set(), chosen={"M-1-1", "M-1-2"}) == []
    assert stranded_seats(segs, taken=set(), chosen={"M-1-6"}) == []  # other side of the aisle
    # A gap of two is fine; a gap elsewhere in the row is not this buyer's doing.
    assert stranded_seats(segs, taken={"M-1-8"}, chosen={"M-1-1"}) == []


def test_couples_need_their_partner() -> None:
    seats = {s.code: s for s in row(6, couple=True)}
    assert seats["M-1-1"].seat_type == SeatType.COUPLE
    assert couples_missing_partner([seats["M-1-1"]]) == ["M-1-1"]
    assert couples_missing_partner([seats["M-1-1"], seats["M-1-2"]]) == []
    assert couples_missing_partner([seats["M-1-2"], seats["M-1-3"]]) == ["M-1-2", "M-1-3"]
