"""Transfer test setup: a buyer's paid order (two seats of a reserved session, through the real
hold → checkout → paid services) for a session that allows transfers, the receivers, and helpers
to read the notices the transfers queued."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from piaowu.accounts.models import User
from piaowu.aftersales.models import Notice, Transfer
from piaowu.aftersales.services.transfers import transfer_offer
from piaowu.catalog.models import Session
from piaowu.orders.models import Order
from piaowu.tickets.models import Ticket
from tests.checkin.conftest import _fresh_keys, make_door
from tests.tickets.conftest import (
    Clock,
    MakePaidOrder,
    clock,
    ga_session,
    paid_order,
    reserved_session,
)

__all__ = [
    "Clock",
    "_fresh_keys",
    "clock",
    "ga_session",
    "make_door",
    "paid_order",
    "reserved_session",
]

RECEIVER_PHONE = "139 0013 9000"
RECEIVER_EMAIL = "friend@example.com"


def session_transfers(session: Session, *, allowed: bool = True, cutoff_hours: int = 2) -> Session:
    """An organizer's switches in the admin (the catalog has no service for them yet)."""
    Session.objects.filter(pk=session.pk).update(
        transfers_allowed=allowed, transfer_cutoff_hours=cutoff_hours
    )
    session.refresh_from_db()
    return session


@dataclass
class Bought:
    buyer: User
    order: Order
    tickets: list[Ticket]  # by seat code: M-1-5, M-1-6

    @property
    def ticket(self) -> Ticket:
        return self.tickets[0]

    @property
    def session(self) -> Session:
        return self.order.session

    def fresh(self, index: int = 0) -> Ticket:
        return Ticket.objects.select_related("signing_key", "order").get(pk=self.tickets[index].pk)


MakeBought = Callable[..., Bought]


@pytest.fixture
def make_bought(
    paid_order: MakePaidOrder,
    make_user: Callable[..., User],
    reserved_session: Callable[..., Session],
) -> MakeBought:
    """`make_bought()` → a signed-in buyer's paid order of two seats; `allowed=False` for a
    session without transfers, `session=` to buy in a given one."""

    def make(
        *, allowed: bool = True, cutoff_hours: int = 2, session: Session | None = None, **kw: object
    ) -> Bought:
        buyer = make_user()
        session = session_transfers(
            session or reserved_session(), allowed=allowed, cutoff_hours=cutoff_hours
        )
        order = paid_order(session=session, customer=buyer, holder_key=f"user:{buyer.pk}", **kw)
        tickets = list(
            Ticket.objects.filter(order=order).select_related("order").order_by("seat__code")
        )
        return Bought(buyer=buyer, order=order, tickets=tickets)

    return make


@pytest.fixture
def bought(make_bought: MakeBought) -> Bought:
    return make_bought()


@pytest.fixture
def receiver(make_user: Callable[..., User]) -> User:
    return make_user(email="receiver@example.com", display_name="王小明")


@pytest.fixture
def offered(bought: Bought) -> Transfer:
    """A pending transfer of the first ticket to a phone number."""
    return transfer_offer(
        ticket=bought.ticket,
        sender=bought.buyer,
        receiver_contact=RECEIVER_PHONE,
        receiver_name="王小明",
    )


def notices(topic_part: str = "") -> list[Notice]:
    return list(Notice.objects.filter(topic__contains=topic_part).order_by("id"))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: pytest.FixtureRequest) -> None:
    """Argon2 is deliberately slow; these tests sign in with force_login."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
