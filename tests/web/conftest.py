"""A small catalog for the page tests, built through the real services."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.cache import cache

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import Category, Event, EventKind, Hall, Session, Venue
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import TierSpec, hall_create, seat_map_create
from tests.factories import make_event, make_hall, make_session, make_venue


@dataclass
class Catalog:
    venue: Venue
    hall: Hall
    concert: Event
    concert_sessions: list[Session]
    film: Event
    film_session: Session
    category: Category


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """The header's city list and seat-map layouts are cached; tests start from nothing."""
    cache.clear()


@pytest.fixture
def catalog(organizer: Organizer) -> Catalog:
    category = Category.objects.create(slug="concert", name="演唱会", name_en="Concerts")
    venue = make_venue(
        organizer,
        name="星光体育馆",
        name_en="Starlight Arena",
        city="北京",
        city_en="Beijing",
        services=["parking", "metro"],
        transport_info="地铁 1 号线国贸站",
    )
    hall = hall_create(venue=venue, name="主场馆", name_en="Main arena")
    spec = generate_rectangular(
        [
            RectBlock(section="A", name="内场", rows=2, seats_per_row=4, vip_rows=(1,)),
            RectBlock(section="B", name="看台", rows=2, seats_per_row=4, origin_y=60),
        ],
        stage="舞台",
    )
    seat_map_create(hall=hall, spec=spec, source="generator")
    concert = make_event(
        organizer,
        title="刘德华 2026 巡回演唱会",
        title_en="Andy Lau 2026 Tour",
        category=category,
        performers="刘德华",
        popularity=50,
        description="经典金曲。",
    )
    tiers = [
        TierSpec(
            code="vip",
            name="VIP",
            price=Decimal("1680"),
            section_codes="A",
            seat_type="vip",
            color="#dc2626",
        ),
        TierSpec(code="a", name="内场票", price=Decimal("880"), section_codes="A"),
        TierSpec(code="b", name="看台票", name_en="Stand", price=Decimal("380")),
    ]
    concert_sessions = [
        make_session(concert, venue=venue, hall=hall, starts_in=dt.timedelta(days=d), tiers=tiers)
        for d in (3, 4)
    ]
    cinema = make_venue(organizer, name="星光影城", city="上海", city_en="Shanghai")
    film = make_event(
        organizer,
        title="流浪地球",
        title_en="The Wandering Earth",
        kind=EventKind.FILM,
        popularity=10,
        duration_minutes=125,
        details={"director": "郭帆", "language": "汉语普通话", "formats": "IMAX"},
    )
    film_session = make_session(
        film, venue=cinema, hall=make_hall(cinema), starts_in=dt.timedelta(days=1), price="45"
    )
    return Catalog(
        venue=venue,
        hall=hall,
        concert=concert,
        concert_sessions=concert_sessions,
        film=film,
        film_session=film_session,
        category=category,
    )
