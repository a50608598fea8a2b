"""A small catalog for the API tests, built through the real services."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, Category, Event, EventKind, Session, Venue
from piaowu.catalog.services import TierSpec
from tests.factories import make_event, make_session, make_venue


@dataclass
class Catalog:
    beijing: Venue
    shanghai: Venue
    tokyo: Venue
    concert: Event  # 刘德华, Beijing, in 3 days, ¥180, popularity 50
    film: Event  # 流浪地球3, Shanghai, in 10 days, ¥60, popularity 80
    tokyo_show: Event  # 周杰伦, Tokyo, in 20 days, ¥880, popularity 10
    draft: Event  # 刘德华 draft, Beijing
    past: Event  # 刘德华 with only a past session
    concert_session: Session
    tokyo_session: Session
    past_session: Session


def ga_session(
    event: Event, venue: Venue, *, days: float, price: str, currency: str = "", **kw: Any
) -> Session:
    return make_session(
        event,
        venue=venue,
        starts_in=dt.timedelta(days=days),
        capacity_mode=CapacityMode.GENERAL,
        capacity=100,
        tiers=[TierSpec(code="std", name="标准票", price=Decimal(price), currency=currency)],
        **kw,
    )


@pytest.fixture
def catalog(organizer: Organizer) -> Catalog:
    concerts = Category.objects.create(slug="concert", name="演唱会", name_en="Concerts")
    films = Category.objects.create(slug="film", name="电影", name_en="Films")
    beijing = make_venue(organizer, name="星光剧场", city="北京", city_en="Beijing")
    shanghai = make_venue(organizer, name="上海大剧院", city="上海", city_en="Shanghai")
    tokyo = make_venue(
        organizer, name="东京巨蛋", city="东京", city_en="Tokyo", timezone_name="Asia/Tokyo"
    )
    concert = make_event(
        organizer,
        title="刘德华 2026 巡回演唱会",
        title_en="Andy Lau 2026 Tour",
        performers="刘德华",
        category=concerts,
        popularity=50,
    )
    film = make_event(
        organizer,
        title="流浪地球3",
        kind=EventKind.FILM,
        category=films,
        popularity=80,
        details={"director": "郭帆", "language": "普通话", "formats": "2D, IMAX"},
    )
    tokyo_show = make_event(
        organizer,
        title="周杰伦 嘉年华 东京站",
        performers="周杰伦",
        category=concerts,
        popularity=10,
    )
    draft = make_event(
        organizer, title="刘德华 秘密加场", performers="刘德华", status=Event.Status.DRAFT
    )
    past = make_event(organizer, title="刘德华 去年的演唱会", performers="刘德华", popularity=99)
    concert_session = ga_session(concert, beijing, days=3, price="180")
    ga_session(film, shanghai, days=10, price="60")
    tokyo_session = ga_session(tokyo_show, tokyo, days=20, price="880", currency="JPY")
    ga_session(draft, beijing, days=4, price="100")
    past_session = ga_session(
        past,
        beijing,
        days=-2,
        price="100",
        sales_open_at=timezone.now() - dt.timedelta(days=30),
    )
    return Catalog(
        beijing=beijing,
        shanghai=shanghai,
        tokyo=tokyo,
        concert=concert,
        film=film,
        tokyo_show=tokyo_show,
        draft=draft,
        past=past,
        concert_session=concert_session,
        tokyo_session=tokyo_session,
        past_session=past_session,
    )
