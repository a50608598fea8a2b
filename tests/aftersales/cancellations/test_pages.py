"""What customers see on the session and order pages after a cancellation or a reschedule."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import User
from piaowu.aftersales.services.cancellations import (
    session_cancel,
    session_cancellation_run,
    session_reschedule,
)
from piaowu.aftersales.services.refunds import refunds_process_due
from piaowu.catalog.models import Session
from piaowu.core import clock as core_clock
from piaowu.orders.models import Order
from tests.aftersales.cancellations.conftest import Buy, Clock, clock, reserved_session

__all__ = ["clock", "reserved_session"]

pytestmark = pytest.mark.django_db


def session_page(session: Session) -> str:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    response = client.get(reverse("web:session", args=[session.public_id]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def fan(make_user: Callable[..., User]) -> User:
    return make_user(email="fan@example.com")


def order_page(order: Order, user: User) -> str:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    response = client.get(reverse("web:order", args=[order.public_id]))
    assert response.status_code == 200
    return response.content.decode()


def test_an_untouched_session_shows_no_notice(session: Session) -> None:
    assert "data-session-change" not in session_page(session)


def test_a_cancelled_session_page_says_everyone_is_refunded(
    session: Session, manager: User
) -> None:
    session_cancel(session=session, actor=manager, reason="Storm")

    html = session_page(session)

    assert 'data-session-change="cancelled"' in html
    assert "Everyone who bought tickets gets their money back in full" in html
    assert 'id="hold-panel"' not in html


def test_the_order_page_follows_the_refund(
    session: Session, manager: User, buy: Buy, fan: User
) -> None:
    order = buy(session, seats=["M-1-1"], customer=fan, email=fan.email)
    cancellation = session_cancel(session=session, actor=manager, reason="Storm")

    assert "Cancelled — your money is being refunded." in order_page(order, fan)
    session_cancellation_run(cancellation=cancellation)
    assert "Cancelled — your money is being refunded." in order_page(order, fan)
    refunds_process_due()
    assert "Cancelled — your money has been refunded." in order_page(order, fan)


def test_an_unpaid_order_of_a_cancelled_session_says_only_cancelled(
    session: Session, manager: User, buy: Buy, fan: User
) -> None:
    order = buy(session, seats=["M-1-1"], customer=fan, email=fan.email, paid=False)
    session_cancel(session=session, actor=manager, reason="Storm")

    html = order_page(order, fan)

    assert "This session has been cancelled." in html
    assert "refunded" not in html.split('data-session-change="cancelled"')[1].split("</div>")[0]


def test_a_rescheduled_session_shows_the_new_time_and_the_free_refund_window(
    session: Session, manager: User, buy: Buy, fan: User, clock: Clock
) -> None:
    order = buy(session, seats=["M-1-1"], customer=fan, email=fan.email)
    new_start = session.starts_at + dt.timedelta(days=2)
    reschedule = session_reschedule(
        session=session,
        new_starts_at=new_start,
        new_ends_at=new_start + dt.timedelta(hours=2),
        actor=manager,
        reason="Venue repairs",
        free_refund_days=3,
    )
    tz = session.venue.tzinfo
    local = new_start.astimezone(tz)
    until = reschedule.free_refund_until.astimezone(tz)

    for html in (session_page(session), order_page(order, fan)):
        assert 'data-session-change="rescheduled"' in html
        assert "Rescheduled to" in html and f"{local:%H:%M}" in html
        assert "Venue repairs" in html
        assert "free of charge until" in html and f"{until:%H:%M}" in html

    clock.shift(dt.timedelta(days=3, minutes=5))
    assert reschedule.free_refund_until < core_clock.now()
    html = session_page(session)
    assert "Rescheduled to" in html
    assert "free of charge until" not in html
