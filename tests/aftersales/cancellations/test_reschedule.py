"""Rescheduling a session (`session_reschedule`): the session and its tickets' admission windows
move, holders are told, and refunds are free until the window closes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pytest_django.fixtures import Settings

from piaowu.accounts.models import User
from piaowu.aftersales.models import SessionReschedule
from piaowu.aftersales.services.cancellations import session_cancel, session_reschedule
from piaowu.aftersales.services.refunds import refund_quote
from piaowu.catalog.models import CatalogChange, Session
from piaowu.core import clock as core_clock
from piaowu.core.errors import DomainError
from piaowu.orders.models import Order
from piaowu.tickets import codec
from piaowu.tickets.models import Ticket, TicketHistory
from piaowu.tickets.selectors import ticket_qr_text
from piaowu.tickets.services import admission_window
from tests.aftersales.cancellations.conftest import (
    Buy,
    Clock,
    clock,
    notices,
    refund_rule,
    reserved_session,
)

__all__ = ["clock", "reserved_session"]

pytestmark = pytest.mark.django_db

REASON = "The venue needs repairs"


def later(session: Session, days: int = 7) -> tuple[dt.datetime, dt.datetime]:
    return (
        session.starts_at + dt.timedelta(days=days),
        session.ends_at + dt.timedelta(days=days),
    )


def test_rescheduling_moves_the_session_and_its_sales_close(
    session: Session, manager: User
) -> None:
    old_start, old_end, old_close = session.starts_at, session.ends_at, session.sales_close_at
    starts, ends = later(session)

    reschedule = session_reschedule(
        session=session, new_starts_at=starts, new_ends_at=ends, actor=manager, reason=REASON
    )

    session.refresh_from_db()
    assert (session.starts_at, session.ends_at) == (starts, ends)
    assert session.sales_close_at == old_close + dt.timedelta(days=7)
    assert (reschedule.old_starts_at, reschedule.old_ends_at) == (old_start, old_end)
    assert (reschedule.reason, reschedule.requested_by) == (REASON, manager)
    change = CatalogChange.objects.get(action="piaowu.catalog.session.rescheduled")
    assert change.changes["starts_at"] == starts.isoformat()


def test_valid_tickets_follow_the_new_time(session: Session, manager: User, buy: Buy) -> None:
    order = buy(session, seats=["M-1-1", "M-1-2"])
    ticket = Ticket.objects.filter(order=order).select_related("signing_key").first()
    assert ticket is not None
    old_qr = ticket_qr_text(ticket)
    starts, ends = later(session, days=10)

    session_reschedule(
        session=session, new_starts_at=starts, new_ends_at=ends, actor=manager, reason=REASON
    )

    session.refresh_from_db()
    window = admission_window(session)
    for each in Ticket.objects.filter(order=order):
        assert (each.valid_from, each.valid_until) == window
        assert each.valid_from > starts - dt.timedelta(hours=6)
    ticket.refresh_from_db()
    claims = codec.parse(ticket_qr_text(ticket)).claims
    assert claims.valid_from == int(window[0].timestamp())
    assert ticket_qr_text(ticket) != old_qr  # the code shown now admits at the new time
    assert TicketHistory.objects.filter(action="rewindowed").count() == 2


def test_void_tickets_keep_their_window(session: Session, manager: User, buy: Buy) -> None:
    order = buy(session, seats=["M-1-1"])
    Ticket.objects.filter(order=order).update(state=Ticket.State.VOID)
    before = Ticket.objects.get(order=order).valid_from

    session_reschedule(
        session=session, new_starts_at=later(session)[0], new_ends_at=later(session)[1],
        actor=manager, reason=REASON,
    )  # fmt: skip

    assert Ticket.objects.get(order=order).valid_from == before


def test_holders_are_told_once_per_order_with_the_free_refund_window(
    session: Session, manager: User, buy: Buy, settings: Settings
) -> None:
    settings.LANGUAGE_CODE = "en"  # guests hear in the site's language; assert English
    paid = buy(session, seats=["M-1-1", "M-1-2"], email="fan@example.com")
    unpaid = buy(session, seats=["M-2-1", "M-2-2"], paid=False, email="late@example.com")
    starts, ends = later(session)

    reschedule = session_reschedule(
        session=session, new_starts_at=starts, new_ends_at=ends, actor=manager, reason=REASON
    )

    told = notices(f"session-rescheduled:{reschedule.pk}:")
    assert sorted((n.kind, n.recipient) for n in told) == [
        ("email", "fan@example.com"),
        ("sms", "13800138000"),
    ]
    email = next(n for n in told if n.kind == "email")
    assert paid.code in email.body and REASON in email.body
    assert "without any fee until" in email.body
    local = starts.astimezone(ZoneInfo(session.venue.timezone))
    assert f"{local:%Y-%m-%d %H:%M}" in email.subject
    assert not notices(f"session-rescheduled:{reschedule.pk}:{unpaid.public_id}")


def test_refunds_are_free_inside_the_window_and_follow_the_rule_after(
    session: Session, manager: User, buy: Buy, clock: Clock
) -> None:
    refund_rule(session, tiers=[(1, "20")])
    order = buy(session, seats=["M-1-1"])
    assert refund_quote(order=order).fee.amount == Decimal("36.00")
    starts, ends = later(session, days=20)

    reschedule = session_reschedule(
        session=session,
        new_starts_at=starts,
        new_ends_at=ends,
        actor=manager,
        reason=REASON,
        free_refund_days=3,
    )

    assert reschedule.free_refund_until == pytest.approx(
        core_clock.now() + dt.timedelta(days=3), abs=dt.timedelta(seconds=5)
    )
    quote = refund_quote(order=Order.objects.get(pk=order.pk))
    assert (quote.ok, quote.fee.amount, quote.amount.amount) == (True, 0, Decimal("180.00"))
    clock.shift(dt.timedelta(days=3, minutes=1))
    after = refund_quote(order=Order.objects.get(pk=order.pk))
    assert (after.ok, after.fee.amount) == (True, Decimal("36.00"))


def test_free_refunds_end_at_the_new_start_at_the_latest(session: Session, manager: User) -> None:
    starts = core_clock.now() + dt.timedelta(days=1)

    reschedule = session_reschedule(
        session=session,
        new_starts_at=starts,
        new_ends_at=starts + dt.timedelta(hours=2),
        actor=manager,
        reason=REASON,
        free_refund_days=7,
    )

    assert reschedule.free_refund_until == starts


def test_a_naive_time_is_venue_wall_clock_time(session: Session, manager: User) -> None:
    tz = ZoneInfo(session.venue.timezone)
    local = (
        (core_clock.now() + dt.timedelta(days=9))
        .astimezone(tz)
        .replace(hour=19, minute=30, second=0, microsecond=0, tzinfo=None)
    )

    session_reschedule(
        session=session,
        new_starts_at=local,
        new_ends_at=local + dt.timedelta(hours=2),
        actor=manager,
        reason=REASON,
    )

    session.refresh_from_db()
    assert session.local_starts_at.replace(tzinfo=None) == local


# --- Bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "change"),
    [
        ("reschedule_in_past", lambda s: (core_clock.now() - dt.timedelta(minutes=1), s.ends_at)),
        ("reschedule_ends_before_start", lambda s: (s.starts_at, s.starts_at)),
        (
            "reschedule_ends_before_start",
            lambda s: (s.starts_at + dt.timedelta(days=1), s.starts_at),
        ),
        ("reschedule_unchanged", lambda s: (s.starts_at, s.ends_at)),
    ],
)
def test_bad_times_are_refused(
    session: Session,
    manager: User,
    code: str,
    change: Callable[[Session], tuple[dt.datetime, dt.datetime]],
) -> None:
    starts, ends = change(session)
    before = (session.starts_at, session.ends_at)

    with pytest.raises(DomainError) as caught:
        session_reschedule(
            session=session, new_starts_at=starts, new_ends_at=ends, actor=manager, reason=REASON
        )

    assert caught.value.code == code
    session.refresh_from_db()
    assert (session.starts_at, session.ends_at) == before
    assert not SessionReschedule.objects.exists()


@pytest.mark.parametrize("days", [-1, 91])
def test_free_refund_days_out_of_range_are_refused(
    session: Session, manager: User, days: int
) -> None:
    with pytest.raises(DomainError) as caught:
        session_reschedule(
            session=session, new_starts_at=later(session)[0], new_ends_at=later(session)[1],
            actor=manager, reason=REASON, free_refund_days=days,
        )  # fmt: skip
    assert caught.value.code == "invalid_free_refund_days"


def test_a_reason_is_required(session: Session, manager: User) -> None:
    with pytest.raises(DomainError) as caught:
        session_reschedule(
            session=session, new_starts_at=later(session)[0], new_ends_at=later(session)[1],
            actor=manager, reason=" ",
        )  # fmt: skip
    assert caught.value.code == "reason_required"


def test_a_cancelled_session_cannot_be_rescheduled(session: Session, manager: User) -> None:
    session_cancel(session=session, actor=manager, reason="storm")

    with pytest.raises(DomainError) as caught:
        session_reschedule(
            session=session, new_starts_at=later(session)[0], new_ends_at=later(session)[1],
            actor=manager, reason=REASON,
        )  # fmt: skip

    assert (caught.value.code, caught.value.status) == ("session_cancelled", 409)
    assert not SessionReschedule.objects.exists()


def test_moving_before_sales_open_is_refused(
    reserved_session: Callable[..., Session], manager: User
) -> None:
    session = reserved_session(sales_open_in=dt.timedelta(days=2))  # starts in 3 days

    with pytest.raises(DomainError) as caught:
        session_reschedule(
            session=session,
            new_starts_at=core_clock.now() + dt.timedelta(days=1),
            new_ends_at=core_clock.now() + dt.timedelta(days=1, hours=2),
            actor=manager,
            reason=REASON,
        )

    assert caught.value.code == "reschedule_before_sales_open"


def test_a_stale_session_object_cannot_move_a_session_moved_meanwhile(
    session: Session, manager: User
) -> None:
    stale = Session.objects.get(pk=session.pk)
    session_reschedule(
        session=session, new_starts_at=later(session)[0], new_ends_at=later(session)[1],
        actor=manager, reason=REASON,
    )  # fmt: skip

    # The service reads the session again, so a second move from the stale copy works from
    # the fresh times (and is refused only when nothing would change).
    with pytest.raises(DomainError) as caught:
        session_reschedule(
            session=stale, new_starts_at=later(stale)[0], new_ends_at=later(stale)[1],
            actor=manager, reason=REASON,
        )  # fmt: skip
    assert caught.value.code == "reschedule_unchanged"
