"""Bulk cancellation on a real PostgreSQL: a run interrupted in the middle resumes and refunds
every order exactly once; two workers running the same cancellation at once (threads, each
with its own connection, released together by `tests.races.race`) never refund an order twice.

Control. With `PIAOWU_CANCELLATIONS_UNSAFE_RUN` the run takes no order lock and does not
re-check an order before refunding it: the two workers then really collide on the same orders
(one of each pair is refused by the backstop — the partial unique index on live refund items,
and the tickets already void), which shows the race test's workers do overlap. Even then no
order is refunded twice: what the lock adds is that workers share the work instead of
fighting over it.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund, RefundItem, SessionCancellation
from piaowu.aftersales.selectors.cancellations import cancellation_progress
from piaowu.aftersales.services import cancellations
from piaowu.aftersales.services.cancellations import (
    RunResult,
    session_cancel,
    session_cancellation_run,
)
from piaowu.aftersales.services.refunds import refunds_process_due
from piaowu.catalog.models import Session
from piaowu.orders.models import Order
from piaowu.orders.states import OrderState
from piaowu.payments.models import SandboxRefund
from piaowu.tickets.models import Ticket
from tests.aftersales.cancellations.conftest import Buy, reserved_session, seats
from tests.races import race

__all__ = ["reserved_session"]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

REASON = "Typhoon warning"


def paid_orders(session: Session, buy: Buy, n: int) -> list[Order]:
    return [buy(session, seats=pair) for pair in seats(n)]


def assert_each_refunded_once(orders: list[Order]) -> None:
    per_order = Counter(
        Refund.objects.filter(kind=Refund.Kind.CANCELLATION).values_list("order_id", flat=True)
    )
    assert per_order == {order.pk: 1 for order in orders}
    tickets = Counter(RefundItem.objects.filter(live=True).values_list("ticket_id", flat=True))
    assert set(tickets.values()) == {1}
    assert len(tickets) == 2 * len(orders)
    assert not Ticket.objects.filter(order__in=orders, state=Ticket.State.VALID).exists()


@pytest.mark.parametrize("where", ["refund", "after_refund"])
def test_bulk_cancellation_resumes_after_an_interruption(
    session: Session,
    manager: User,
    buy: Buy,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    # Given twelve paid orders and a worker that dies on the fifth order — before its refund
    # is written, or after it is written but before its transaction commits
    orders = paid_orders(session, buy, 12)
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)
    name = "refund_request" if where == "refund" else "_notify_cancelled"
    real = getattr(cancellations, name)
    calls = {"n": 0}

    def dies_on_fifth(*args: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("worker killed")
        return real(*args, **kw)

    monkeypatch.setattr(cancellations, name, dies_on_fifth)

    # When the run is interrupted …
    with pytest.raises(RuntimeError):
        session_cancellation_run(cancellation=cancellation, batch=4)

    # … four orders are refunded, nothing of the fifth was written, the rest wait
    progress = cancellation_progress(cancellation)
    assert (progress.done, progress.remaining, progress.total) == (4, 8, 12)
    assert Refund.objects.count() == 4
    cancellation.refresh_from_db()
    assert cancellation.state == SessionCancellation.State.RUNNING
    assert (cancellation.orders_done, cancellation.orders_total) == (4, 12)  # first batch

    # And when it runs again, it resumes where it stopped
    result = session_cancellation_run(cancellation=cancellation, batch=4)

    assert (result.refunded, result.failed, result.finished) == (8, 0, True)
    assert_each_refunded_once(orders)
    cancellation.refresh_from_db()
    assert (cancellation.state, cancellation.orders_done, cancellation.orders_total) == (
        SessionCancellation.State.DONE,
        12,
        12,
    )
    # The money goes back once per order at the provider too.
    assert refunds_process_due() == 12
    assert SandboxRefund.objects.count() == 12
    assert {r.amount for r in SandboxRefund.objects.all()} == {Decimal("360.00")}
    assert set(
        Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("state", flat=True)
    ) == {OrderState.REFUNDED}


def test_two_workers_running_the_same_cancellation_refund_each_order_once(
    session: Session, manager: User, buy: Buy
) -> None:
    orders = paid_orders(session, buy, 10)
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)

    results = race([lambda: session_cancellation_run(cancellation=cancellation, batch=3)] * 2)

    assert all(isinstance(r, RunResult) for r in results), results
    assert sum(r.refunded for r in results) == 10
    assert sum(r.failed for r in results) == 0  # they shared the work, never fought over it
    assert_each_refunded_once(orders)
    cancellation.refresh_from_db()
    assert (cancellation.state, cancellation.orders_done) == (SessionCancellation.State.DONE, 10)


def test_control_without_the_lock_the_workers_collide_but_the_backstop_holds(
    session: Session, manager: User, buy: Buy, settings: SettingsWrapper
) -> None:
    orders = paid_orders(session, buy, 6)
    cancellation = session_cancel(session=session, actor=manager, reason=REASON)
    settings.PIAOWU_CANCELLATIONS_UNSAFE_RUN = True

    results = race([lambda: session_cancellation_run(cancellation=cancellation, batch=6)] * 2)

    assert all(isinstance(r, RunResult) for r in results), results
    assert sum(r.failed for r in results) > 0  # the same order, tried by both
    assert_each_refunded_once(orders)
