"""Waitlist test setup: sold-out sessions (sold for real through hold → checkout → the sandbox
payment), customers who join through `waitlist_join`, and the ways admissions come back — a
staff refund of a paid order, the cancellation of an unpaid one, an expired hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import Notice, Refund, WaitlistEntry
from piaowu.aftersales.services.refunds import refund_request
from piaowu.aftersales.services.waitlist import waitlist_join
from piaowu.catalog.models import PriceTier, Session, WaitlistMode
from piaowu.catalog.services import TierSpec
from piaowu.orders.models import Order
from tests.aftersales.refunds.conftest import (
    Bought,
    Clock,
    MakeBought,
    bought,
    buyer,
    clock,
    ga_session,
    pay,
    reserved_session,
    staff,
)
from tests.orders.conftest import PHONE, web_channel

__all__ = [
    "Bought",
    "Clock",
    "bought",
    "buyer",
    "clock",
    "ga_session",
    "pay",
    "reserved_session",
    "staff",
]

PRICE = Decimal("280")


def set_waitlist(session: Session, mode: str) -> Session:
    """An organizer's switch in the admin (the catalog has no service for it yet)."""
    Session.objects.filter(pk=session.pk).update(waitlist_mode=mode)
    session.refresh_from_db()
    return session


@dataclass
class SoldOut:
    session: Session
    tier: PriceTier
    orders: list[Bought]  # the paid orders that sold it out, one per `sizes` item

    def fresh(self) -> Session:
        return Session.objects.select_related("event", "venue").get(pk=self.session.pk)


MakeSoldOut = Callable[..., SoldOut]


@pytest.fixture
def sold_out(ga_session: Callable[..., Session], bought: MakeBought) -> MakeSoldOut:
    """`sold_out()` → a general-admission session of 4 (one tier "ga", ¥280) with the waitlist
    in offer mode, sold out by two guests' paid orders of 2; `sold_out(mode=…, sizes=[…])`."""

    def make(
        *, mode: str = WaitlistMode.OFFER, sizes: tuple[int, ...] = (2, 2), **kw: Any
    ) -> SoldOut:
        session = ga_session(capacity=sum(sizes), **kw)
        orders = [bought(session=session, ga=n, customer=None) for n in sizes]
        session = set_waitlist(session, mode)
        tier = session.price_tiers.get()
        return SoldOut(session=session, tier=tier, orders=orders)

    return make


@pytest.fixture
def two_tier_session(ga_session: Callable[..., Session]) -> Session:
    """A general-admission session with two tiers, nothing sold, waitlist in offer mode."""
    session = ga_session(
        capacity=10,
        tiers=[
            TierSpec(code="ga", name="通票", price=PRICE),
            TierSpec(code="vip", name="贵宾票", price=Decimal("680"), capacity=2),
        ],
    )
    return set_waitlist(session, WaitlistMode.OFFER)


Join = Callable[..., WaitlistEntry]


@pytest.fixture
def join(organizer: Organizer) -> Join:
    """`join(session, customer, quantity=1)` through the service, with the web channel."""

    def make(session: Session, customer: User, quantity: int = 1, **kw: Any) -> WaitlistEntry:
        if "tier" not in kw:
            kw["tier"] = session.price_tiers.get(code="ga")
        kw.setdefault("contact_phone", PHONE)
        return waitlist_join(
            session=session,
            customer=customer,
            quantity=quantity,
            channel=web_channel(organizer),
            **kw,
        )

    return make


@pytest.fixture
def customers(make_user: Callable[..., User]) -> list[User]:
    # English speakers, so the notices' texts can be asserted in English.
    return [make_user(email=f"fan{i}@example.com", preferred_language="en") for i in range(1, 9)]


def give_back(staff: User, bought: Bought, count: int | None = None) -> Refund:
    """Staff refund `count` (default all) tickets of a paid order: their admissions return."""
    tickets = bought.tickets[:count] if count is not None else None
    return refund_request(
        order=bought.order,
        tickets=tickets,
        actor=staff,
        kind=Refund.Kind.STAFF,
        reason="customer asked on the phone",
    )


def states(*entries: WaitlistEntry) -> list[str]:
    return [WaitlistEntry.objects.get(pk=e.pk).state for e in entries]


def notices(topic_part: str) -> list[Notice]:
    return list(Notice.objects.filter(topic__contains=topic_part).order_by("id"))


def deposit_of(entry: WaitlistEntry) -> Order:
    entry.refresh_from_db()
    assert entry.deposit_order_id is not None
    return Order.objects.get(pk=entry.deposit_order_id)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Argon2 is deliberately slow; these tests sign in with force_login."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def emails(topic_part: str) -> list[Notice]:
    return [n for n in notices(topic_part) if n.kind == "email"]
