"""Customer-service case setup: customers with paid orders (built through the real services),
staff of two organizers with each role, and a case opened through `case_open`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Case
from piaowu.aftersales.services.cases import case_open
from piaowu.catalog.models import Session
from piaowu.orders.models import Order
from tests.inventory.conftest import Clock, clock, ga_session, reserved_session
from tests.tickets.conftest import paid_order

__all__ = ["Clock", "clock", "ga_session", "paid_order", "reserved_session"]

MakePaidOrder = Callable[..., Order]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Argon2 is deliberately slow; these tests sign in with force_login."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def customer(make_user: Callable[..., User]) -> User:
    # Prefers English, so the notices' texts can be asserted in English.
    return make_user(email="mei@example.com", display_name="Mei", preferred_language="en")


@pytest.fixture
def other_customer(make_user: Callable[..., User]) -> User:
    return make_user(email="bo@example.com")


@pytest.fixture
def order(paid_order: MakePaidOrder, customer: User) -> Order:
    """A paid order of `customer` at `organizer` (seats M-1-5, M-1-6), with a phone contact."""
    return paid_order(customer=customer, holder_key=f"user:{customer.pk}")


@pytest.fixture
def other_order(
    paid_order: MakePaidOrder, other_customer: User, reserved_session: Callable[..., Session]
) -> Order:
    return paid_order(
        session=reserved_session(), customer=other_customer, holder_key=f"user:{other_customer.pk}"
    )


@pytest.fixture
def service_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.SERVICE, email="service-a@example.com")


@pytest.fixture
def admin_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.ADMIN, email="admin-a@example.com")


@pytest.fixture
def seller_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.SELLER, email="seller-a@example.com")


@pytest.fixture
def service_b(make_staff: Callable[..., User], other_organizer: Organizer) -> User:
    return make_staff(other_organizer, Role.SERVICE, email="service-b@example.com")


@pytest.fixture
def operator(make_user: Callable[..., User]) -> User:
    return make_user(email="root@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def case(customer: User, order: Order) -> Case:
    """An open refund dispute of `customer` about `order` (organizer `organizer`)."""
    return case_open(
        customer=customer,
        kind=Case.Kind.REFUND_DISPUTE,
        subject="退款还没到账",
        message="我上周申请了退款，钱还没有退回来。",
        order_id=order.public_id,
    )


@pytest.fixture
def general_case(customer: User) -> Case:
    """A question of `customer` about no order: no organizer, for platform operators."""
    return case_open(
        customer=customer, kind=Case.Kind.QUESTION, subject="发票", message="怎么开发票？"
    )


def signed_in(user: User) -> Client:
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    return client
