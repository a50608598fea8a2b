"""Ticket test setup: paid orders built through the real services (hold → checkout → paid),
so their tickets are issued exactly as in production."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, Session
from piaowu.catalog.services import TierSpec
from piaowu.inventory.services import hold_quantity, hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout, order_mark_paid
from tests.inventory.conftest import Clock, clock, ga_session, reserved_session
from tests.orders.conftest import PHONE, web_channel

__all__ = ["Clock", "clock", "ga_session", "reserved_session"]

MakePaidOrder = Callable[..., Order]


@pytest.fixture
def paid_order(
    organizer: Organizer,
    reserved_session: Callable[..., Session],
    ga_session: Callable[..., Session],
) -> MakePaidOrder:
    """`paid_order()` → a paid order for seats M-1-5 and M-1-6 of a fresh reserved session;
    `paid_order(session=s, seats=[...])`, or `paid_order(ga=3)` for three GA admissions."""

    def make(
        session: Session | None = None,
        seats: list[str] | None = None,
        ga: int = 0,
        holder_key: str = "buyer",
        **kw: Any,
    ) -> Order:
        if ga:
            session = session or ga_session(capacity=50)
            hold = hold_quantity(
                session=session,
                tier_code=session.price_tiers.first().code,  # type: ignore[union-attr]
                quantity=ga,
                holder_key=holder_key,
            )
        else:
            session = session or reserved_session()
            hold = hold_seats(
                session=session, seat_codes=seats or ["M-1-5", "M-1-6"], holder_key=holder_key
            )
        kw.setdefault("contact_phone", PHONE)
        order = order_checkout(
            hold=hold, channel=web_channel(organizer), holder_key=holder_key, **kw
        )
        return order_mark_paid(order=order)

    return make


@pytest.fixture
def free_ga_session(ga_session: Callable[..., Session]) -> Session:
    """A GA session whose only tier costs nothing (invitations): checkout pays at once."""
    return ga_session(
        capacity=10,
        tiers=[TierSpec(code="invite", name="邀请票", price=Decimal("0"))],
        mode=CapacityMode.GENERAL,
    )
