"""Order test setup: reuses the inventory fixtures (sessions built through the catalog
services, a movable clock) and adds a checkout helper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import SalesChannel, Session
from piaowu.inventory.models import Hold
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout
from tests.inventory.conftest import Clock, clock, ga_session, reserved_session

__all__ = ["Clock", "clock", "ga_session", "reserved_session"]

PHONE = "138 0013 8000"


def web_channel(organizer: Organizer) -> SalesChannel:
    return SalesChannel.objects.get(organizer=organizer, kind=SalesChannel.Kind.WEB)


@pytest.fixture
def checkout(
    organizer: Organizer, reserved_session: Callable[..., Session]
) -> Callable[..., Order]:
    """Hold two seats of a fresh reserved session and check them out as a guest."""

    def make(session: Session | None = None, seats: list[str] | None = None, **kw: Any) -> Order:
        session = session or reserved_session()
        hold: Hold = hold_seats(
            session=session, seat_codes=seats or ["M-1-5", "M-1-6"], holder_key="buyer"
        )
        kw.setdefault("contact_phone", PHONE)
        return order_checkout(hold=hold, channel=web_channel(organizer), holder_key="buyer", **kw)

    return make
