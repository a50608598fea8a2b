"""Check-in test setup: paid orders with issued tickets (tests/tickets/conftest.py), a gate and a
registered scanner at their venue, and a clock moved to when doors are open."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from piaowu.catalog.models import Session
from piaowu.checkin.models import Device, Gate
from piaowu.checkin.services import (
    ScanResult,
    checkin_scan,
    device_register,
    gate_create,
    key_cache_clear,
)
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import ticket_qr_text
from tests.inventory.conftest import Clock
from tests.tickets.conftest import MakePaidOrder, clock, ga_session, paid_order, reserved_session

__all__ = ["Clock", "clock", "ga_session", "paid_order", "reserved_session"]

_NONCES = itertools.count(1)


def nonce() -> str:
    return f"n-{next(_NONCES)}"


def session_flags(session: Session, **flags: bool) -> Session:
    """Turn on `rotating_qr` / `reentry_allowed` (an organizer's switches in the admin; the
    catalog has no service for them yet)."""
    Session.objects.filter(pk=session.pk).update(**flags)
    session.refresh_from_db()
    return session


@dataclass
class Door:
    """A gate with a scanner at a session's venue."""

    session: Session
    gate: Gate
    device: Device
    token: str
    clock: Clock
    tickets: list[Ticket] = field(default_factory=list)

    def scan(
        self,
        code: str,
        *,
        direction: str = "entry",
        gate: Gate | None = None,
        device: Device | None = None,
        nonce_: str | None = None,
        session: Session | None = None,
    ) -> ScanResult:
        return checkin_scan(
            device=device or self.device,
            gate=gate or self.gate,
            session=session or self.session,
            code=code,
            nonce=nonce_ or nonce(),
            direction=direction,
        )

    def qr(self, index: int = 0) -> str:
        ticket = Ticket.objects.select_related("signing_key").get(pk=self.tickets[index].pk)
        return ticket_qr_text(ticket)

    def open_doors(self) -> None:
        """Move the clock to half an hour before the start (inside the admission window)."""
        target = self.session.starts_at - dt.timedelta(minutes=30)
        self.clock.shift(target - self.clock())


MakeDoor = Callable[..., Door]


@pytest.fixture(autouse=True)
def _fresh_keys() -> Iterator[None]:
    key_cache_clear()
    yield
    key_cache_clear()


@pytest.fixture
def make_door(clock: Clock) -> MakeDoor:
    counter = itertools.count(1)

    def make(session: Session, *, entrances: str = "", tickets: list[Ticket] | None = None) -> Door:
        n = next(counter)
        gate = gate_create(venue=session.venue, name=f"{n}号门", entrances=entrances)
        device, token = device_register(venue=session.venue, name=f"扫码枪 {n}", actor=None)
        door = Door(session, gate, device, token, clock, list(tickets or []))
        return door

    return make


@pytest.fixture
def door(paid_order: MakePaidOrder, make_door: MakeDoor) -> Door:
    """Two seats (M-1-5, M-1-6) of a reserved session, paid; doors open."""
    order = paid_order()
    tickets = list(Ticket.objects.filter(order=order).order_by("seat__code"))
    result = make_door(order.session, tickets=tickets)
    result.open_doors()
    return result
