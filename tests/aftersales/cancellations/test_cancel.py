"""Cancelling a session (`session_cancel`) and refunding it (`session_cancellation_run`, the
`aftersales.cancellations_run_due` job): sales stop at once, unpaid orders are cancelled, paid
orders are refunded in full exactly once, holders are told once per order."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pytest_django.fixtures import Settings

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund, RefundItem, SessionCancellation
from piaowu.aftersales.selectors.cancellations import (
    cancellation_preview,
    cancellation_progress,
    orders_to_refund,
)
from piaowu.aftersales.services import cancellations
from piaowu.aftersales.services.cancellations import (
    cancellations_run_due,
    session_cancel,
    session_cancellation_run,
)
from piaowu.aftersales.services.refunds import refund_quote, refund_request, refunds_process_due
from piaowu.catalog.models import CatalogChange, Session
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, SeatState
from piaowu.orders.models import Order
from piaowu.orders.states import OrderState
from piaowu.payments.models import Payment, SandboxRefund
from piaowu.tickets.models import Ticket
from tests.aftersales.cancellations.conftest import (
    Buy,
    Clock,
    clock,
    ga_session,
    hold_for,
    notices,
    pay,
    refund_rule,
    reserved_session,
    seats,
    start_payment,
)

__all__ = ["clock", "ga_session", "reserved_session"]

pytestmark = pytest.mark.django_db

REASON = "The lead singer is ill"


def seat_state(session: Session, code: str) -> str:
    return SeatState.objects.get(session=session, seat__code=code).state


# --- Sales stop --------------------------------------------------------------------------------


def test_cancelling_stops_sales_at_once(session: Session, manager: User) -> None:
    session_cancel(session=session, actor=manager, reason=REASON)

    fresh = Session.objects.select_related("event").get(pk=session.pk)
    assert fresh.status == Session.Status.CANCELLED
    assert fresh.sales_state() == "cancelled"
    with pytest.raises(DomainError) as caught:
        hold_for(fresh, seats=["M-2-1"])
    assert caught.value.code == "sales_closed"
    assert caught.value.details == {"sales_state": "cancelled"}
    assert not Hold.objects.filter(session=session, items__seat__code="M-2-1").exists()


def test_cancelling_stops_general_admission_sales_too(
    ga_session: type[Session], manager: User
) -> None:
    ga = ga_session(capacity=10)  # type: ignore[call-arg]
    session_cancel(session=ga, actor=manager, reason=REASON)

    with pytest.raises(DomainError) as caught:
        hold_for(Session.objects.select_related("event").get(pk=ga.pk), ga=1)
    assert caught.value.code == "sales_closed"


def test_cancel_records_who_why_and_how_many_orders(
    session: Session, manager: User, buy: Buy
) -> None:
    buy(session, seats=["M-1-1", "M-1-2"])
    buy(session, seats=["M-1-3"])
    buy(session, seats=["M-1-4"], paid=False)

    cancellation = session_cancel(session=session, actor=manager, reason=f"  {REASON}  ")

    assert cancellation.state == SessionCancellation.State.RUNNING
    assert (cancellation.reason, cancellation.requested_by) == (REASON, manager)
    assert cancellation.orders_total == 2  # the unpaid order is cancelled, not refunded
    change = CatalogChange.objects.get(action="piaowu.catalog.session.cancelled")
    assert change.object_ref == session.public_id
    assert change.actor == manager
    assert change.changes["reason"] == REASON


def test_cancelling_twice_is_refused(session: Session, manager: User) -> None:
    session_cancel(session=session, actor=manager, reason=REASON)

    with pytest.raises(DomainError) as caught:
        session_cancel(session=session, actor=manager, reason="again")

    assert caught.value.code == "session_already_cancelled"
    assert caught.value.status == 409
    assert SessionCancellation.objects.filter(session=session).count() == 1


@pytest.mark.parametrize("reason", ["", "   "])
def test_cancel_needs_a_reason(session: Session, manager: User, reason: str) -> None:
    with pytest.raises(DomainError) as caught:
        session_cancel(session=session, actor=manager, reason=reason)

    assert caught.value.code == "reason_required"
    session.refresh_from_db()
    assert session.status == Session.Status.SCHEDULED
    assert not SessionCancellation.objects.exists()


# --- Unpaid orders and holds -------------------------------------------------------------------


def test_orders_awaiting_payment_are_cancelled_and_their_seats_come_back(
    session: Session, manager: User, buy: Buy, settings: Settings
) -> None:
    settings.LANGUAGE_CODE = "en"  # guests hear in the site's language; assert English
    unpaid = buy(session, seats=["M-3-1", "M-3-2"], paid=False)
    assert seat_state(session, "M-3-1") == SeatState.State.HELD

    session_cancel(session=session, actor=manager, reason=REASON)

    unpaid.refresh_from_db()
    assert unpaid.state == OrderState.CANCELLED
    assert unpaid.hold.status == Hold.Status.RELEASED
    assert seat_state(session, "M-3-1") == seat_state(session, "M-3-2") == "available"
    told = notices(f"session-cancelled:{unpaid.public_id}")
    assert {n.kind for n in told} == {"email", "sms"}
    assert "nothing was charged" in told[0].body


def test_a_late_payment_for_a_cancelled_order_is_refunded_automatically(
    session: Session, manager: User, buy: Buy
) -> None:
    unpaid = buy(session, seats=["M-3-1"], paid=False)
    payment = start_payment(unpaid)  # the buyer is on the payment page …

    session_cancel(session=session, actor=manager, reason=REASON)
    pay(unpaid, payment)  # … and pays after the cancellation

    payment.refresh_from_db()
    unpaid.refresh_from_db()
    assert unpaid.state == OrderState.CANCELLED
    assert payment.status == Payment.Status.REFUNDED
    assert not Ticket.objects.filter(order=unpaid).exists()


def test_loose_holds_are_released(session: Session, manager: User) -> None:
    hold = hold_for(session, seats=["M-2-5"])

    session_cancel(session=session, actor=manager, reason=REASON)

    hold.refresh_from_db()
    assert hold.status == Hold.Status.RELEASED
    assert seat_state(session, "M-2-5") == "available"


# --- Refunding ---------------------------------------------------------------------------------


def test_the_run_refunds_every_paid_order_in_full_without_a_fee(
    session: Session, manager: User, buy: Buy, clock: Clock
) -> None:
    # Given a rule that would charge 50 % this close to the start
    refund_rule(session, tiers=[(1, "50")])
    orders = [buy(session, seats=pair) for pair in seats(3)]
    assert refund_quote(order=orders[0]).fee.amount == Decimal("180.00")
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)

    # When the run refunds them (batches of two) and the provider is asked
    result = session_cancellation_run(cancellation=cancellation, batch=2)
    assert refunds_process_due() == 3

    # Then every order got one refund of all it paid, no fee
    assert (result.refunded, result.failed, result.finished) == (3, 0, True)
    for order in orders:
        order.refresh_from_db()
        refund = Refund.objects.get(order=order)
        assert refund.kind == Refund.Kind.CANCELLATION
        assert (refund.gross_amount, refund.fee_amount, refund.amount) == (
            Decimal("360.00"),
            Decimal("0.00"),
            Decimal("360.00"),
        )
        assert refund.state == Refund.State.SUCCEEDED
        assert refund.reason == REASON and refund.requested_by == manager
        assert order.state == OrderState.REFUNDED
        assert not Ticket.objects.filter(order=order, state=Ticket.State.VALID).exists()
    assert SandboxRefund.objects.count() == 3
    cancellation.refresh_from_db()
    assert cancellation.state == SessionCancellation.State.DONE
    assert cancellation.finished_at is not None
    assert (cancellation.orders_done, cancellation.orders_total) == (3, 3)


def test_running_again_refunds_nothing_twice(session: Session, manager: User, buy: Buy) -> None:
    for pair in seats(2):
        buy(session, seats=pair)
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)
    session_cancellation_run(cancellation=cancellation)

    again = session_cancellation_run(cancellation=cancellation)

    assert (again.refunded, again.failed) == (0, 0)
    assert Refund.objects.count() == 2
    assert RefundItem.objects.count() == 4


def test_a_partly_refunded_order_gets_the_rest_back(
    session: Session, manager: User, buy: Buy
) -> None:
    order = buy(session, seats=["M-1-1", "M-1-2"])
    first = Ticket.objects.filter(order=order).order_by("id").first()
    assert first is not None
    refund_request(order=order, tickets=[first], actor=manager, kind=Refund.Kind.STAFF,
                   reason="asked by phone", process=False)  # fmt: skip
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)

    session_cancellation_run(cancellation=cancellation)

    refund = Refund.objects.get(order=order, kind=Refund.Kind.CANCELLATION)
    assert list(refund.items.values_list("ticket__seat__code", flat=True)) == ["M-1-2"]
    assert refund.amount == Decimal("180.00")
    assert not orders_to_refund(session).exists()


def test_a_refund_request_waiting_for_staff_is_superseded_by_the_full_refund(
    session: Session, manager: User, buy: Buy, make_user: type[User]
) -> None:
    refund_rule(session, tiers=[(1, "10")], needs_approval=True)
    customer = make_user(email="fan@example.com")  # type: ignore[call-arg]
    order = buy(session, seats=["M-1-1", "M-1-2"], customer=customer, email=customer.email)
    waiting = refund_request(order=order, actor=customer)
    assert waiting.state == Refund.State.REQUESTED and waiting.fee_amount > 0
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)

    session_cancellation_run(cancellation=cancellation)

    waiting.refresh_from_db()
    assert waiting.state == Refund.State.REJECTED
    full = Refund.objects.get(order=order, kind=Refund.Kind.CANCELLATION)
    assert (full.amount, full.fee_amount, full.items.count()) == (Decimal("360.00"), 0, 2)


def test_a_free_order_is_voided_and_counted(
    ga_session: type[Session], manager: User, buy: Buy, settings: Settings
) -> None:
    settings.LANGUAGE_CODE = "en"  # guests hear in the site's language; assert English
    from piaowu.catalog.services import TierSpec

    free = ga_session(  # type: ignore[call-arg]
        capacity=10, tiers=[TierSpec(code="invite", name="邀请票", price=Decimal("0"))]
    )
    order = buy(free, ga=2)
    assert order.state == OrderState.PAID and order.total_amount == 0
    cancellation = session_cancel(session=free, actor=manager, reason=REASON)

    result = session_cancellation_run(cancellation=cancellation)

    order.refresh_from_db()
    assert (result.refunded, result.finished) == (1, True)
    assert order.state == OrderState.REFUNDED
    assert not Ticket.objects.filter(order=order, state=Ticket.State.VALID).exists()
    assert not Refund.objects.exists()
    assert cancellation_progress(cancellation).done == 1
    told = notices(f"session-cancelled:{order.public_id}")
    assert told and "tickets of order" in told[0].body


def test_holders_are_told_once_per_order(
    session: Session, manager: User, buy: Buy, settings: Settings
) -> None:
    settings.LANGUAGE_CODE = "en"  # guests hear in the site's language; assert English
    first = buy(session, seats=["M-1-1"], email="a@example.com")
    second = buy(session, seats=["M-1-2"], email="a@example.com")  # same buyer, two orders
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)

    session_cancellation_run(cancellation=cancellation)
    session_cancellation_run(cancellation=cancellation)
    cancellations_run_due()

    for order in (first, second):
        told = notices(f"session-cancelled:{order.public_id}")
        assert sorted((n.kind, n.recipient) for n in told) == [
            ("email", "a@example.com"),
            ("sms", "13800138000"),
        ]
        assert REASON in told[0].body and order.code in told[0].body
        assert "refunded in full" in told[0].body


def test_a_refused_order_is_left_for_the_next_run(
    session: Session, manager: User, buy: Buy, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = [buy(session, seats=pair) for pair in seats(3)]
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)
    real = cancellations.refund_request

    def refuse_second(**kw: object) -> Refund:
        if kw["order"] == orders[1]:
            raise DomainError("refund_exceeds_payment", "no")
        return real(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cancellations, "refund_request", refuse_second)
    result = session_cancellation_run(cancellation=cancellation)

    assert (result.refunded, result.failed, result.finished) == (2, 1, False)
    progress = cancellation_progress(cancellation)
    assert (progress.done, progress.remaining, progress.total) == (2, 1, 3)
    assert [o.pk for o in progress.stuck] == [orders[1].pk]
    assert not notices(f"session-cancelled:{orders[1].public_id}")

    monkeypatch.setattr(cancellations, "refund_request", real)
    assert cancellations_run_due() == 1
    cancellation.refresh_from_db()
    assert cancellation.state == SessionCancellation.State.DONE
    assert Refund.objects.filter(kind=Refund.Kind.CANCELLATION).count() == 3


def test_a_crash_in_the_middle_loses_nothing_and_refunds_nothing_twice(
    session: Session, manager: User, buy: Buy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given five paid orders, and a run that dies while telling the holders of the third
    orders = [buy(session, seats=pair) for pair in seats(5)]
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)
    real = cancellations._notify_cancelled
    calls = {"n": 0}

    def die_on_third(*args: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cancellations, "_notify_cancelled", die_on_third)

    # When it runs, then runs again
    with pytest.raises(RuntimeError):
        session_cancellation_run(cancellation=cancellation, batch=2)
    # the third order's refund rolled back with it
    assert Refund.objects.count() == 2
    assert cancellation_progress(cancellation).remaining == 3
    session_cancellation_run(cancellation=cancellation, batch=2)

    # Then each order has exactly one refund
    for order in orders:
        assert Refund.objects.filter(order=order).count() == 1
    assert RefundItem.objects.count() == 10
    cancellation.refresh_from_db()
    assert (cancellation.state, cancellation.orders_done, cancellation.orders_total) == (
        SessionCancellation.State.DONE,
        5,
        5,
    )


def test_limit_bounds_one_call(session: Session, manager: User, buy: Buy) -> None:
    for pair in seats(3):
        buy(session, seats=pair)
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)

    first = session_cancellation_run(cancellation=cancellation, batch=50, limit=2)

    assert (first.refunded, first.finished) == (2, False)
    cancellation.refresh_from_db()
    assert (cancellation.orders_done, cancellation.orders_total) == (2, 3)
    assert session_cancellation_run(cancellation=cancellation, limit=2).finished


def test_a_payment_after_the_run_finished_is_refunded_by_the_job(
    session: Session, manager: User, buy: Buy
) -> None:
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)
    assert session_cancellation_run(cancellation=cancellation).finished
    # A hold made by a process whose cached session still said "on sale" (up to
    # PIAOWU_HOT_CATALOG_SECONDS after the cancel), checked out and paid later: simulated by
    # selling while the row says scheduled.
    Session.objects.filter(pk=session.pk).update(status=Session.Status.SCHEDULED)
    late = buy(Session.objects.get(pk=session.pk), seats=["M-3-10"])
    Session.objects.filter(pk=session.pk).update(status=Session.Status.CANCELLED)

    assert cancellations_run_due() == 1

    late.refresh_from_db()
    assert Refund.objects.get(order=late).kind == Refund.Kind.CANCELLATION
    cancellation.refresh_from_db()
    assert cancellation.state == SessionCancellation.State.DONE
    assert (cancellation.orders_done, cancellation.orders_total) == (1, 1)


def test_the_job_leaves_long_finished_cancellations_alone(
    session: Session, manager: User, buy: Buy, clock: Clock
) -> None:
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)
    session_cancellation_run(cancellation=cancellation)
    clock.shift(dt.timedelta(days=2))
    Session.objects.filter(pk=session.pk).update(status=Session.Status.SCHEDULED)
    buy(Session.objects.get(pk=session.pk), seats=["M-3-10"])
    Session.objects.filter(pk=session.pk).update(status=Session.Status.CANCELLED)

    assert cancellations_run_due() == 0


# --- What staff see ----------------------------------------------------------------------------


def test_the_preview_shows_what_will_be_refunded(session: Session, manager: User, buy: Buy) -> None:
    buy(session, seats=["M-1-1", "M-1-2"])
    buy(session, seats=["M-1-3"])
    buy(session, seats=["M-1-4"], paid=False)

    preview = cancellation_preview(session)

    assert (preview.orders, preview.tickets, preview.unpaid_orders) == (2, 3, 1)
    assert [str(m) for m in preview.amounts] == ["¥540.00"]


def test_progress_counts_refunds_by_state_and_lists_failed_ones(
    session: Session,
    manager: User,
    buy: Buy,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
) -> None:
    orders = [buy(session, seats=pair) for pair in seats(2)]
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)
    session_cancellation_run(cancellation=cancellation)
    progress = cancellation_progress(cancellation)
    assert [(r.state, r.count, [str(a) for a in r.amounts]) for r in progress.refunds] == [
        (Refund.State.APPROVED, 2, ["¥720.00"])
    ]
    assert progress.money_pending == 2

    # The provider refuses one of them every time, until the refund gives up.
    from piaowu.payments.providers.sandbox import SandboxProvider

    real = SandboxProvider.refund
    refused = Refund.objects.get(order=orders[0]).number

    def flaky(self: SandboxProvider, **kw: object) -> object:
        if kw["refund_reference"] == refused:
            raise DomainError("payment_provider_error", "down")
        return real(self, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(SandboxProvider, "refund", flaky)
    for _attempt in range(8):
        refunds_process_due()
        clock.shift(dt.timedelta(hours=2))

    progress = cancellation_progress(cancellation)
    assert {r.state: r.count for r in progress.refunds} == {
        Refund.State.SUCCEEDED: 1,
        Refund.State.FAILED: 1,
    }
    assert [r.number for r in progress.failed] == [refused]
    assert progress.failed_count == 1
    assert (progress.done, progress.remaining, progress.percent) == (2, 0, 100)


def test_orders_of_other_sessions_are_untouched(
    session: Session, reserved_session: type[Session], manager: User, buy: Buy
) -> None:
    other = reserved_session()  # type: ignore[call-arg]
    kept = buy(other, seats=["M-1-1"])
    buy(session, seats=["M-1-1"])
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)

    session_cancellation_run(cancellation=cancellation)

    kept.refresh_from_db()
    assert kept.state == OrderState.PAID
    assert not Refund.objects.filter(order=kept).exists()
    assert Order.objects.get(pk=kept.pk).tickets.filter(state=Ticket.State.VALID).count() == 1
