"""Exchange test setup: an event with several sessions (the old one and targets), the buyer's
order paid for real through the sandbox (tests/aftersales/refunds/conftest.py: each order has a
settling `Payment` and issued tickets), refund rules with an exchange fee, and helpers that
read what an exchange changed (seat states, live holds)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable
from decimal import Decimal

import pytest

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import RefundPolicy
from piaowu.catalog.models import CapacityMode, Event, Session
from piaowu.catalog.services import TierSpec
from piaowu.inventory.models import SeatState
from piaowu.orders.models import Order
from piaowu.tickets.models import Ticket
from tests.aftersales.refunds.conftest import (
    STANDARD_TIERS,
    Bought,
    MakeBought,
    bought,
    buyer,
    hours_before,
    pay,
    refund_rule,
    staff,
)
from tests.factories import make_event, make_session, make_venue
from tests.inventory.conftest import Clock, clock, ga_session, make_block_hall, reserved_session

__all__ = [
    "STANDARD_TIERS",
    "Bought",
    "Clock",
    "MakeBought",
    "bought",
    "buyer",
    "clock",
    "ga_session",
    "hours_before",
    "pay",
    "refund_rule",
    "reserved_session",
    "staff",
]

_DAYS = itertools.count(4)
_VENUES = itertools.count(1)

AddSession = Callable[..., Session]


def exchange_rule(
    event: Event,
    *,
    fee_percent: str = "10",
    allowed: bool = True,
    tiers: Iterable[tuple[int, str]] = STANDARD_TIERS,
) -> RefundPolicy:
    """The event's refund rule with its exchange switch and fee, as an operator saves it."""
    policy = refund_rule(event, tiers=tiers)
    RefundPolicy.objects.filter(pk=policy.pk).update(
        exchanges_allowed=allowed, exchange_fee_percent=Decimal(fee_percent)
    )
    policy.refresh_from_db()
    return policy


@pytest.fixture
def add_session(organizer: Organizer) -> AddSession:
    """`add_session(event, price="100")` → another reserved session of `event` (3 rows × 10
    seats of its own hall, a day later than the last one); `rows=1, seats_per_row=2` for a
    small one; `ga=capacity, tiers=[…]` for general admission."""

    def make(
        event: Event,
        *,
        price: str = "180",
        ga: int = 0,
        tiers: list[TierSpec] | None = None,
        **block: int,
    ) -> Session:
        starts_in = dt.timedelta(days=next(_DAYS))
        if ga:
            venue = make_venue(organizer, name=f"草地 {next(_VENUES)}")
            return make_session(
                event,
                venue=venue,
                starts_in=starts_in,
                price=price,
                capacity_mode=CapacityMode.GENERAL,
                capacity=ga,
                tiers=tiers,
            )
        block.setdefault("rows", 3)
        block.setdefault("seats_per_row", 10)
        hall = make_block_hall(organizer, **block)
        return make_session(
            event, venue=hall.venue, hall=hall, starts_in=starts_in, price=price, tiers=tiers
        )

    return make


@pytest.fixture
def old(bought: MakeBought, reserved_session: Callable[..., Session]) -> Bought:
    """The buyer's paid order for M-1-5 and M-1-6 (¥180 each) of a session starting in 3 days;
    its event's rule: free refunds until 48 h before, exchanges allowed with a 10 % fee."""
    result = bought(session=reserved_session())
    exchange_rule(result.session.event)
    return result


def seat_state(session: Session, code: str) -> str:
    return str(SeatState.objects.get(session=session, seat__code=code).state)


def sold_seats(session: Session) -> list[str]:
    return sorted(
        SeatState.objects.filter(session=session, state=SeatState.State.SOLD).values_list(
            "seat__code", flat=True
        )
    )


def valid_tickets(order: Order) -> list[Ticket]:
    return list(Ticket.objects.filter(order=order, state=Ticket.State.VALID).order_by("id"))


def ids(tickets: Iterable[Ticket]) -> list[str]:
    return [t.public_id for t in tickets]


@pytest.fixture
def other_buyer(make_user: Callable[..., User]) -> User:
    return make_user(email="other@example.com")


def make_other_event(organizer: Organizer) -> Event:
    return make_event(organizer, title="另一场演出")
