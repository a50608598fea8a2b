"""Cancellation and reschedule test setup: orders paid for real through the sandbox gateway
(hold → checkout → `payment_start` → the buyer pays on the hosted page → the signed
notification), so each has a settling `Payment` and issued tickets; unpaid orders; refund rules
with fees (a cancellation must ignore them); a movable clock."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Notice, RefundPolicy, RefundTier
from piaowu.catalog.models import Session
from piaowu.inventory.services import hold_quantity, hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout
from piaowu.payments.models import Payment, SandboxTransaction
from piaowu.payments.services import (
    payment_notification_receive,
    payment_start,
    sandbox_deliver_due,
    sandbox_pay,
)
from tests.inventory.conftest import Clock, clock, ga_session, reserved_session
from tests.orders.conftest import PHONE, web_channel

__all__ = ["Clock", "clock", "ga_session", "reserved_session"]

NOTIFY_URL = "https://piaowu.test/api/v1/payments/sandbox/notifications"
_KEYS = itertools.count(1)

Buy = Callable[..., Order]


def _merchant(url: str, headers: Mapping[str, str], body: bytes) -> int:
    ack, _payment = payment_notification_receive(
        provider_name="sandbox", headers=headers, body=body
    )
    return ack.status


def start_payment(order: Order) -> Payment:
    return payment_start(order=order, provider_name="sandbox", notify_url=NOTIFY_URL)


def pay(order: Order, payment: Payment | None = None) -> Payment:
    """Pay `order` through the sandbox as the buyer and the gateway would."""
    payment = payment or start_payment(order)
    sandbox_pay(transaction=SandboxTransaction.objects.get(reference=payment.reference))
    sandbox_deliver_due(send=_merchant)
    payment.refresh_from_db()
    order.refresh_from_db()
    return payment


def hold_for(session: Session, *, seats: list[str] | None = None, ga: int = 0) -> Any:
    key = f"buyer-{next(_KEYS)}"
    if ga:
        tier = session.price_tiers.first()
        assert tier is not None
        return hold_quantity(session=session, tier_code=tier.code, quantity=ga, holder_key=key)
    return hold_seats(session=session, seat_codes=seats or ["M-1-5", "M-1-6"], holder_key=key)


@pytest.fixture
def buy(organizer: Organizer) -> Buy:
    """`buy(session, seats=[...])` / `buy(session, ga=2)` → a paid order (e-mail and phone
    contacts); `paid=False` leaves it awaiting payment."""

    def make(
        session: Session,
        seats: list[str] | None = None,
        ga: int = 0,
        paid: bool = True,
        email: str = "buyer@example.com",
        customer: User | None = None,
    ) -> Order:
        hold = hold_for(session, seats=seats, ga=ga)
        order = order_checkout(
            hold=hold,
            channel=web_channel(organizer),
            holder_key=hold.holder_key,
            customer=customer,
            contact_phone=PHONE,
            contact_email=email,
        )
        if paid and order.total_amount > 0:
            payment = pay(order)
            assert payment.settles_order, payment
        order.refresh_from_db()
        return order

    return make


@pytest.fixture
def session(reserved_session: Callable[..., Session]) -> Session:
    """A reserved session (3 rows × 10 seats at ¥180) starting in 3 days."""
    return reserved_session()


@pytest.fixture
def manager(make_staff: Callable[..., User], organizer: Organizer) -> User:
    """An admin of the organizer (may manage the catalog)."""
    return make_staff(organizer, role=Role.ADMIN, email="boss@example.com")


@pytest.fixture
def rival(make_staff: Callable[..., User], other_organizer: Organizer) -> User:
    """An admin of another organizer."""
    return make_staff(other_organizer, role=Role.ADMIN, email="rival@example.com")


def seats(n: int, row: int = 1) -> list[list[str]]:
    """Seat codes for `n` two-seat orders, row by row (10 seats a row)."""
    codes = [f"M-{r}-{s}" for r in range(row, 4) for s in range(1, 11)]
    return [codes[2 * i : 2 * i + 2] for i in range(n)]


def refund_rule(
    session: Session, *, tiers: Iterable[tuple[int, str]], needs_approval: bool = False
) -> RefundPolicy:
    """A refund rule for the session's event, as an operator saves it in the console."""
    policy = RefundPolicy.objects.create(event_id=session.event_id, needs_approval=needs_approval)
    RefundTier.objects.bulk_create(
        RefundTier(policy=policy, hours_before=hours, fee_percent=Decimal(percent))
        for hours, percent in tiers
    )
    return policy


def notices(topic_prefix: str) -> list[Notice]:
    return list(Notice.objects.filter(topic__startswith=topic_prefix).order_by("id"))
