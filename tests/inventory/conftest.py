"""Inventory test setup: sessions built through the catalog services, a movable clock and a
recorder for what gets published after commit."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, Hall, Session
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import TierSpec, hall_create, seat_map_create
from tests.factories import make_event, make_session, make_venue

_SEQ = itertools.count(1)


class Clock:
    """Replaces `piaowu.core.clock.now`; `shift` moves time forward for the services."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return timezone.now() + self.offset

    def shift(self, delta: dt.timedelta) -> None:
        self.offset += delta


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("piaowu.core.clock.now", fake)
    return fake


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        "piaowu.inventory.services.publish",
        lambda channel, message: sent.append((channel, message)),
    )
    return sent


def make_block_hall(organizer: Organizer, **block: Any) -> Hall:
    venue = make_venue(organizer, name=f"场馆 {next(_SEQ)}")
    hall = hall_create(venue=venue, name="1号厅")
    block.setdefault("section", "M")
    block.setdefault("name", "池座")
    spec = generate_rectangular([RectBlock(**block)])
    seat_map_create(hall=hall, spec=spec, source="generator")
    return hall


@pytest.fixture
def reserved_session(organizer: Organizer) -> Callable[..., Session]:
    def make(
        *,
        tiers: list[TierSpec] | None = None,
        sales_open_in: dt.timedelta | None = None,
        **block: Any,
    ) -> Session:
        block.setdefault("rows", 3)
        block.setdefault("seats_per_row", 10)
        hall = make_block_hall(organizer, **block)
        event = make_event(organizer, title=f"演出 {next(_SEQ)}")
        kw: dict[str, Any] = {}
        if sales_open_in is not None:
            kw["sales_open_at"] = timezone.now() + sales_open_in
        return make_session(event, venue=hall.venue, hall=hall, tiers=tiers, **kw)

    return make


@pytest.fixture
def ga_session(organizer: Organizer) -> Callable[..., Session]:
    def make(
        *,
        capacity: int = 20,
        tiers: list[TierSpec] | None = None,
        mode: str = CapacityMode.GENERAL,
    ) -> Session:
        venue = make_venue(organizer, name=f"草地 {next(_SEQ)}")
        event = make_event(organizer, title=f"音乐节 {next(_SEQ)}")
        tiers = tiers or [TierSpec(code="ga", name="通票", price=Decimal("280"))]
        return make_session(event, venue=venue, capacity_mode=mode, capacity=capacity, tiers=tiers)

    return make
