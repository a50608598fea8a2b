"""Build catalog states through the real services (never by poking fields)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, Event, EventKind, Hall, Session, Venue
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import (
    TierSpec,
    event_create,
    hall_create,
    seat_map_create,
    session_create,
    venue_create,
)


def make_venue(
    organizer: Organizer, *, name: str = "星光影城", city: str = "北京", **kw: Any
) -> Venue:
    kw.setdefault("address", "朝阳区建国路 88 号")
    return venue_create(organizer=organizer, name=name, city=city, **kw)


def make_hall(venue: Venue, *, name: str = "1号厅", rows: int = 5, seats: int = 8) -> Hall:
    hall = hall_create(venue=venue, name=name)
    spec = generate_rectangular(
        [RectBlock(section="M", name="池座", rows=rows, seats_per_row=seats)]
    )
    seat_map_create(hall=hall, spec=spec, source="generator")
    return hall


def make_event(
    organizer: Organizer,
    *,
    title: str = "刘德华 2026 巡回演唱会",
    kind: str = EventKind.PERFORMANCE,
    **kw: Any,
) -> Event:
    return event_create(organizer=organizer, kind=kind, title=title, **kw)


def make_session(
    event: Event,
    *,
    venue: Venue,
    hall: Hall | None = None,
    starts_in: dt.timedelta = dt.timedelta(days=3),
    price: str = "180",
    capacity_mode: str = CapacityMode.RESERVED,
    capacity: int | None = None,
    **kw: Any,
) -> Session:
    tiers = kw.pop("tiers", None) or [TierSpec(code="std", name="标准票", price=Decimal(price))]
    return session_create(
        event=event,
        venue=venue,
        hall=hall,
        starts_at=timezone.now() + starts_in,
        capacity_mode=capacity_mode,
        capacity=capacity,
        tiers=tiers,
        **kw,
    )
