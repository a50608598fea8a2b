"""Refund test setup: orders paid for real through the sandbox gateway (hold → checkout →
`payment_start` → the buyer pays on the hosted page → the signed notification is delivered),
so each has a settling `Payment`, a capture ledger row and issued tickets; refund rules as
operators write them in the console; a movable clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import RefundPolicy, RefundTier
from piaowu.catalog.models import Event, SalesChannel, Session
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
from piaowu.tickets.models import Ticket
from tests.inventory.conftest import Clock, clock, ga_session, reserved_session
from tests.orders.conftest import PHONE, web_channel

__all__ = ["Clock", "clock", "ga_session", "reserved_session"]

NOTIFY_URL = "https://piaowu.test/api/v1/payments/sandbox/notifications"
BUYER_EMAIL = "buyer@example.com"
#: The demo's rule: ≥ 48 h free, ≥ 24 h 10 %, ≥ 2 h 20 %, at least ¥2 a ticket.
STANDARD_TIERS: tuple[tuple[int, str], ...] = ((48, "0"), (24, "10"), (2, "20"))


def _merchant(url: str, headers: Mapping[str, str], body: bytes) -> int:
    """The notification endpoint, without HTTP: what `POST …/notifications` calls."""
    ack, _payment = payment_notification_receive(
        provider_name="sandbox", headers=headers, body=body
    )
    return ack.status


def pay(order: Order) -> Payment:
    """Pay `order` through the sandbox as a buyer and the gateway would."""
    payment = payment_start(order=order, provider_name="sandbox", notify_url=NOTIFY_URL)
    sandbox_pay(transaction=SandboxTransaction.objects.get(reference=payment.reference))
    sandbox_deliver_due(send=_merchant)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID and payment.settles_order, payment
    order.refresh_from_db()
    return payment


@dataclass
class Bought:
    order: Order
    payment: Payment
    tickets: list[Ticket] = field(default_factory=list)

    @property
    def session(self) -> Session:
        return self.order.session

    def ticket(self, seat: str) -> Ticket:
        return next(t for t in self.tickets if t.seat is not None and t.seat.code == seat)


MakeBought = Callable[..., Bought]


@pytest.fixture
def buyer(make_user: Callable[..., User]) -> User:
    # Prefers English, so notices can be asserted in English.
    return make_user(email=BUYER_EMAIL, preferred_language="en")


@pytest.fixture
def bought(
    organizer: Organizer,
    reserved_session: Callable[..., Session],
    ga_session: Callable[..., Session],
    buyer: User,
) -> MakeBought:
    """`bought()` → the buyer's paid order for seats M-1-5 and M-1-6 (¥180 each) of a fresh
    reserved session starting in 3 days; `bought(ga=3)` for three GA admissions (¥280 each);
    `bought(customer=None)` for a guest's order (phone only)."""
    counter = iter(range(1, 10_000))

    def make(
        session: Session | None = None,
        seats: list[str] | None = None,
        ga: int = 0,
        customer: User | None = buyer,
        channel: SalesChannel | None = None,
        **kw: Any,
    ) -> Bought:
        holder_key = f"buyer-{next(counter)}"
        if ga:
            session = session or ga_session(capacity=50)
            tier = session.price_tiers.first()
            assert tier is not None
            hold = hold_quantity(
                session=session, tier_code=tier.code, quantity=ga, holder_key=holder_key
            )
        else:
            session = session or reserved_session()
            hold = hold_seats(
                session=session, seat_codes=seats or ["M-1-5", "M-1-6"], holder_key=holder_key
            )
        kw.setdefault("contact_phone", PHONE)
        if customer is not None:
            kw.setdefault("contact_email", customer.email)
        order = order_checkout(
            hold=hold,
            channel=channel or web_channel(organizer),
            holder_key=holder_key,
            customer=customer,
            **kw,
        )
        payment = pay(order)
        tickets = list(
            Ticket.objects.filter(order=order)
            .select_related("seat", "order_line", "tier")
            .order_by("id")
        )
        return Bought(order=order, payment=payment, tickets=tickets)

    return make


def refund_rule(
    target: Event | Session,
    *,
    tiers: Iterable[tuple[int, str]] = STANDARD_TIERS,
    minimum_fee: str = "2",
    needs_approval: bool = False,
    channels: Iterable[SalesChannel] = (),
) -> RefundPolicy:
    """A refund rule for an event (or one session), as an operator saves it in the console."""
    if isinstance(target, Session):
        policy = RefundPolicy.objects.create(
            event_id=target.event_id,
            session=target,
            minimum_fee=Decimal(minimum_fee),
            needs_approval=needs_approval,
        )
    else:
        policy = RefundPolicy.objects.create(
            event=target, minimum_fee=Decimal(minimum_fee), needs_approval=needs_approval
        )
    RefundTier.objects.bulk_create(
        RefundTier(policy=policy, hours_before=hours, fee_percent=Decimal(percent))
        for hours, percent in tiers
    )
    policy.channels.set(list(channels))
    return policy


def hours_before(clock: Clock, session: Session, hours: float) -> None:
    """Move the clock to `hours` before the session starts."""
    target = session.starts_at - dt.timedelta(hours=hours)
    clock.shift(target - clock())


@pytest.fixture
def staff(make_staff: Callable[..., User], organizer: Organizer) -> User:
    """A service desk member of the organizer (may view and refund orders)."""
    return make_staff(organizer, role=Role.SERVICE, email="desk@example.com")


@pytest.fixture
def finance(make_staff: Callable[..., User], organizer: Organizer) -> User:
    """The organizer's finance staff (alerted when a refund fails for good)."""
    user = make_staff(organizer, role=Role.FINANCE, email="finance@example.com")
    User.objects.filter(pk=user.pk).update(preferred_language="en")  # alerts asserted in English
    user.preferred_language = "en"
    return user
