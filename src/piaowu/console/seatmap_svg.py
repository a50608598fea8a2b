"""A seat-map version drawn as inline SVG on the server, for operators to check an import.

Built from `catalog.selectors.seat_map_layout` (the same compact layout the buyers' map uses).
Seat types are coloured, blocked seats greyed, couple pairs joined by a band; small maps carry
a tooltip per seat and row labels, big maps (over DETAIL_LIMIT seats) only small squares.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from piaowu.catalog.models import SeatType
from piaowu.catalog.seatmaps import SEAT_SIZE

DETAIL_LIMIT = 5_000
SEAT_COLOURS: dict[str, str] = {
    SeatType.STANDARD: "#60a5fa",
    SeatType.VIP: "#f59e0b",
    SeatType.COUPLE: "#ec4899",
    SeatType.ACCESSIBLE: "#10b981",
    SeatType.OBSTRUCTED: "#a78bfa",
}
BLOCKED_COLOUR = "#d1d5db"
HALF = SEAT_SIZE // 2
STAGE_HEIGHT = 2 * SEAT_SIZE


def _seat_type(seat: list[Any], seat_types: list[str]) -> str:
    return seat_types[seat[3]] if len(seat) > 3 else SeatType.STANDARD


def _flags(seat: list[Any]) -> str:
    return str(seat[4]) if len(seat) > 4 else ""


def render_seat_map_svg(layout: dict[str, Any]) -> SafeString:
    """The SVG and its legend for `layout`: one `<rect class="seat …">` per seat."""
    seat_types: list[str] = layout["seat_types"]
    seat_count = sum(len(row["s"]) for s in layout["sections"] for row in s["rows"])
    detailed = seat_count <= DETAIL_LIMIT
    if not seat_count:
        return format_html('<p class="seatmap-empty">{}</p>', _("This seat map has no seats."))
    xs = [seat[1] for s in layout["sections"] for row in s["rows"] for seat in row["s"]]
    ys = [seat[2] for s in layout["sections"] for row in s["rows"] for seat in row["s"]]
    margin = 4 * SEAT_SIZE  # room for row labels and section names
    stage_y = min(ys) - STAGE_HEIGHT - SEAT_SIZE  # above the section labels
    min_x, max_x = min(xs) - margin, max(xs) + margin
    min_y, max_y = stage_y - HALF, max(ys) + SEAT_SIZE
    width, height = max_x - min_x, max_y - min_y

    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="seatmap-preview" '
        f'viewBox="{min_x} {min_y} {width} {height}" '
        f'style="width:100%;max-width:{min(1200, max(480, width * 2))}px;height:auto;'
        f'background:#fff;border:1px solid #e5e7eb" role="img" '
        f'aria-label="{escape(_("Seat map preview"))}">',
        "<style>.seat{stroke:none}.lbl{font:6px sans-serif;fill:#6b7280}"
        ".sec{font:bold 9px sans-serif;fill:#111827}.stage{font:bold 8px sans-serif;"
        "fill:#fff}.pair{fill:none;stroke:#ec4899;stroke-width:1.5}</style>",
    ]
    stage = layout.get("stage") or _("Stage")
    parts.append(
        f'<rect x="{min(xs)}" y="{stage_y}" width="{max(max(xs) - min(xs), SEAT_SIZE)}" '
        f'height="{SEAT_SIZE}" rx="2" fill="#374151"/>'
        f'<text class="stage" x="{(min(xs) + max(xs)) // 2}" y="{stage_y + SEAT_SIZE - 3}" '
        f'text-anchor="middle">{escape(stage)}</text>'
    )
    counts: Counter[str] = Counter()
    blocked = 0
    size = SEAT_SIZE - 2 if detailed else SEAT_SIZE - 1
    for section in layout["sections"]:
        section_xs = [seat[1] for row in section["rows"] for seat in row["s"]]
        section_ys = [seat[2] for row in section["rows"] for seat in row["s"]]
        if not section_xs:
            continue
        label = section["name"] or section["code"]
        parts.append(
            f'<text class="sec" x="{min(section_xs) - HALF}" y="{min(section_ys) - SEAT_SIZE}">'
            f"{escape(label)}</text>"
        )
        for row in section["rows"]:
            seats: list[list[Any]] = row["s"]
            if detailed and seats:
                first = min(seats, key=lambda s: s[1])
                parts.append(
                    f'<text class="lbl" x="{first[1] - SEAT_SIZE}" y="{first[2] + 2}" '
                    f'text-anchor="end">{escape(row["r"])}</text>'
                )
            positions = {str(seat[0]): seat for seat in seats}
            for seat in seats:
                number, x, y = str(seat[0]), seat[1], seat[2]
                seat_type = _seat_type(seat, seat_types)
                flags = _flags(seat)
                is_blocked = "b" in flags.split("p", 1)[0]
                counts[seat_type] += 1
                blocked += is_blocked
                partner_number = flags.split("p", 1)[1] if "p" in flags else ""
                partner = positions.get(partner_number)
                if partner is not None and number < partner_number:
                    # One band around both seats of a couple pair, drawn once.
                    left, right = min(x, partner[1]), max(x, partner[1])
                    parts.append(
                        f'<rect class="pair" x="{left - HALF}" y="{y - HALF}" '
                        f'width="{right - left + SEAT_SIZE}" height="{SEAT_SIZE}" rx="3"/>'
                    )
                fill = BLOCKED_COLOUR if is_blocked else SEAT_COLOURS.get(seat_type, "#60a5fa")
                css = f"seat t-{seat_type}{' blocked' if is_blocked else ''}"
                rect = (
                    f'<rect class="{css}" x="{x - size // 2}" y="{y - size // 2}" '
                    f'width="{size}" height="{size}" rx="1.5" fill="{fill}"'
                )
                if detailed:
                    code = f"{section['code']}-{row['r']}-{number}"
                    parts.append(f"{rect}><title>{escape(code)}</title></rect>")
                else:
                    parts.append(f"{rect}/>")
    parts.append("</svg>")

    labels = dict(SeatType.choices)
    legend_items = [
        (SEAT_COLOURS.get(t, "#60a5fa"), str(labels.get(t, t)), counts[t])
        for t in seat_types
        if counts[t]
    ]
    legend_items.append((BLOCKED_COLOUR, _("Blocked"), blocked))
    legend = format_html(
        '<ul class="seatmap-legend" style="list-style:none;padding:0;display:flex;'
        'flex-wrap:wrap;gap:1em">{}</ul>',
        format_html_join(
            "",
            '<li><span style="display:inline-block;width:1em;height:1em;background:{};'
            'vertical-align:middle;border-radius:2px"></span> {} ({})</li>',
            legend_items,
        ),
    )
    summary = format_html(
        '<p class="seatmap-summary">{}</p>',
        _("%(seats)d seats in %(sections)d sections.")
        % {"seats": seat_count, "sections": len(layout["sections"])},
    )
    # Every text above went through escape(); the numbers are ints from the layout.
    return mark_safe("".join(parts) + legend + summary)  # noqa: S308
