"""Data and database checks for `bench/onsale`: fresh sessions on sale now, and the oversell
counts taken from the database after a run.

Everything is created through the catalog services (`organizer_create`, `venue_create`,
`hall_create`, `seat_map_create` with `generate_rectangular`, `event_create`,
`session_create`) and the inventory's own `session_inventory_ensure`, so the bench sells
exactly what an operator would have set up. Call after `django.setup()`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, EventKind, Hall, PriceTier, Session, Venue
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import (
    TierSpec,
    event_create,
    hall_create,
    organizer_create,
    seat_map_create,
    session_create,
    venue_create,
)
from piaowu.inventory.models import Hold, HoldItem, QuotaBucket, SeatState
from piaowu.inventory.services import session_inventory_ensure
from piaowu.orders.models import Order, OrderLine
from piaowu.orders.states import PAID_STATES, OrderState

ORGANIZER_SLUG = "bench-onsale"
GA_TIER = "ga"
GA_PRICE = Decimal("280")
#: The stadium: four stands of 25 rows × 100 seats (10,000 seats). The aisles cut each row
#: into segments of 20/30/30/20 seats — all even, so pairs can fill every seat.
STADIUM_SECTIONS = ("A", "B", "C", "D")
STADIUM_ROWS = 25
STADIUM_SEATS_PER_ROW = 100
STADIUM_AISLES_AFTER = (20, 50, 80)


def live_orders_q(now: dt.datetime) -> Q:
    """Orders that still keep their seats or admissions: paid (or later), or awaiting payment
    before their deadline. Past the deadline the seats are free again ("time is data") even
    while the worker has not yet moved the order to `expired`, and such an order can no longer
    be paid, so it must not count as a second sale of a seat that was sold again."""
    return Q(state__in=PAID_STATES) | Q(state=OrderState.AWAITING_PAYMENT, payment_deadline__gt=now)


_run = itertools.count(1)


@dataclass
class Prepared:
    """A session ready to sell and what the client needs to buy from it."""

    public_id: str
    pk: int
    tier: str
    capacity: int


def _organizer() -> Organizer:
    existing = Organizer.objects.filter(slug=ORGANIZER_SLUG).first()
    if existing is not None:
        return existing
    return organizer_create(slug=ORGANIZER_SLUG, name="抢票压测", name_en="On-sale bench")


def _venue(organizer: Organizer) -> Venue:
    venue = Venue.objects.filter(organizer=organizer, name="压测体育场").first()
    if venue is not None:
        return venue
    return venue_create(
        organizer=organizer,
        name="压测体育场",
        name_en="Bench Stadium",
        city="上海",
        city_en="Shanghai",
        address="浦东新区世博大道 1 号",
    )


def _stadium_hall(venue: Venue) -> Hall:
    """The 10,000-seat hall; its seat map is generated once and reused by every run."""
    hall = Hall.objects.filter(venue=venue, name="主场").first() or hall_create(
        venue=venue, name="主场", name_en="Main arena"
    )
    if hall.current_seat_map() is None:
        width = (STADIUM_SEATS_PER_ROW + len(STADIUM_AISLES_AFTER) + 2) * 12
        blocks = [
            RectBlock(
                section=code,
                name=f"{code}看台",
                name_en=f"Stand {code}",
                entrance=f"{code}口",
                rows=STADIUM_ROWS,
                seats_per_row=STADIUM_SEATS_PER_ROW,
                origin_x=(index % 2) * width,
                origin_y=(index // 2) * (STADIUM_ROWS * 15 + 40),
                aisles_after=STADIUM_AISLES_AFTER,
            )
            for index, code in enumerate(STADIUM_SECTIONS)
        ]
        spec = generate_rectangular(blocks, name="压测体育场 10k", stage="舞台")
        seat_map_create(hall=hall, spec=spec, source="generator")
    return hall


def _label() -> str:
    return f"{timezone.now():%Y%m%d-%H%M%S}-{next(_run)}"


def ga_session(capacity: int = 1000) -> Prepared:
    """A new general-admission session on sale now with one tier drawing on a `capacity` quota.

    Per-order limits do not matter (every buyer takes 1); the per-customer limit does not
    either, because every bench buyer is a different anonymous client.
    """
    organizer = _organizer()
    venue = _venue(organizer)
    label = _label()
    event = event_create(
        organizer=organizer,
        kind=EventKind.PERFORMANCE,
        title=f"抢票压测 音乐节 {label}",
        code=f"ga-{label}",
    )
    session = session_create(
        event=event,
        venue=venue,
        starts_at=timezone.now() + dt.timedelta(days=30),
        sales_open_at=timezone.now() - dt.timedelta(minutes=1),
        capacity_mode=CapacityMode.GENERAL,
        capacity=capacity,
        tiers=[TierSpec(code=GA_TIER, name="通票", name_en="GA", price=GA_PRICE)],
        code=f"ga-{label}",
    )
    # Quotas and buckets exist before the doors open, as after an operator's setup.
    session_inventory_ensure(session)
    return Prepared(public_id=session.public_id, pk=session.pk, tier=GA_TIER, capacity=capacity)


def stadium_session() -> Prepared:
    """A new reserved-seating session on the 10,000-seat stadium, on sale now, with its seat
    states created up front (the first buyers must not pay for that)."""
    organizer = _organizer()
    venue = _venue(organizer)
    hall = _stadium_hall(venue)
    label = _label()
    event = event_create(
        organizer=organizer,
        kind=EventKind.PERFORMANCE,
        title=f"抢票压测 体育场演唱会 {label}",
        code=f"st-{label}",
    )
    session = session_create(
        event=event,
        venue=venue,
        hall=hall,
        starts_at=timezone.now() + dt.timedelta(days=30),
        sales_open_at=timezone.now() - dt.timedelta(minutes=1),
        tiers=[
            TierSpec(code="a", name="A 看台", price=Decimal("880"), section_codes="A"),
            TierSpec(code="std", name="看台", price=Decimal("480")),
        ],
        code=f"st-{label}",
    )
    session_inventory_ensure(session)
    seats = SeatState.objects.filter(session=session).exclude(state=SeatState.State.BLOCKED)
    return Prepared(public_id=session.public_id, pk=session.pk, tier="", capacity=seats.count())


# --- Checks after a run ---------------------------------------------------------------------------


def ga_counts(session_pk: int) -> dict[str, Any]:
    """What the database says about a GA session after the on-sale.

    `oversell` = admissions in live orders or unexpired holds beyond the session's capacity,
    plus any bucket over its own capacity (the CHECK constraint makes that impossible, so a
    non-zero value would mean the constraint is gone).
    """
    session = Session.objects.get(pk=session_pk)
    capacity = int(session.capacity or 0)
    now = timezone.now()
    live_holds = Q(hold__status=Hold.Status.CONVERTED) | Q(
        hold__status=Hold.Status.ACTIVE, hold__expires_at__gt=now
    )
    units_held = (
        HoldItem.objects.filter(live_holds, hold__session_id=session_pk).aggregate(
            n=Sum("quantity")
        )["n"]
        or 0
    )
    orders = Order.objects.filter(session_id=session_pk)
    live_orders = orders.filter(live_orders_q(now))
    units_ordered = (
        OrderLine.objects.filter(order__in=live_orders).aggregate(n=Sum("quantity"))["n"] or 0
    )
    buckets = QuotaBucket.objects.filter(quota__session_id=session_pk, quota__tier__isnull=True)
    taken = buckets.aggregate(n=Sum("taken"))["n"] or 0
    over_bucket = sum(
        b.taken - b.capacity for b in buckets.only("taken", "capacity") if b.taken > b.capacity
    )
    return {
        "capacity": capacity,
        "orders_in_db": orders.count(),
        "units_ordered": int(units_ordered),
        "units_held_or_sold": int(units_held),
        "buckets_taken": int(taken),
        "oversell": max(0, int(units_held) - capacity)
        + max(0, int(units_ordered) - capacity)
        + over_bucket,
    }


def seat_counts(session_pk: int) -> dict[str, Any]:
    """What the database says about a reserved session after the on-sale.

    `oversell` = seats in more than one converted-or-unexpired hold, plus seats on more than
    one line of live orders (`live_orders_q`), plus seats on more than one line of paid orders.
    """
    now = timezone.now()
    live_holds = Q(hold__status=Hold.Status.CONVERTED) | Q(
        hold__status=Hold.Status.ACTIVE, hold__expires_at__gt=now
    )
    double_held = (
        HoldItem.objects.filter(live_holds, hold__session_id=session_pk, seat__isnull=False)
        .values("seat_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    orders = Order.objects.filter(session_id=session_pk)
    live_orders = Order.objects.filter(live_orders_q(now), session_id=session_pk)
    double_ordered = (
        OrderLine.objects.filter(order__in=live_orders, seat__isnull=False)
        .values("seat_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    double_paid = (
        OrderLine.objects.filter(
            order__session_id=session_pk, order__state__in=PAID_STATES, seat__isnull=False
        )
        .values("seat_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    states = dict(
        SeatState.objects.filter(session_id=session_pk)
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    overdue = orders.filter(state=OrderState.AWAITING_PAYMENT, payment_deadline__lte=now)
    return {
        "seats": sum(states.values()),
        "seat_states": states,
        "orders_in_db": orders.count(),
        "paid_orders": orders.filter(state__in=PAID_STATES).count(),
        "overdue_unexpired_orders": overdue.count(),
        "seats_in_paid_orders": OrderLine.objects.filter(
            order__session_id=session_pk, order__state__in=PAID_STATES
        ).count(),
        "oversell": double_held + double_ordered + double_paid,
    }


def paid_orders(session_pk: int) -> int:
    return Order.objects.filter(session_id=session_pk, state__in=PAID_STATES).count()


def tier_codes(session_pk: int) -> list[str]:
    return list(PriceTier.objects.filter(session_id=session_pk).values_list("code", flat=True))


def close_connection() -> None:
    """Give the bench's own connection back while the server is measured."""
    connection.close()
