"""Real concurrency on PostgreSQL for paying orders: threads, each with its own connection,
released together on a barrier (see tests/orders/test_races.py).

Controls. A green race test proves something only if the race really happens, so where a
test-only switch can take the protection away, a control run shows the bad outcome:

* two payments of one order (race 2): the partial unique index `payment_one_settles_order` is
  what stops both from settling; the control drops it for the run and both settle, nothing is
  refunded — the buyer is charged twice.
* the same notification delivered eight times (race 1) and a payment racing the expiry sweeper
  (race 3) have no control that can show anything: in race 1 every delivery after the first
  updates the same `Payment` row, whose row lock queues them behind the first settlement
  whatever the order guard does; in race 3, with the order guard switched off
  (`PIAOWU_ORDERS_UNSAFE_TRANSITIONS`), the hold's own guards (`hold_convert` refuses a released
  hold, `hold_release` a converted one) still roll the loser back — the same reason
  tests/orders/test_races.py has no pay-vs-expiry control. We say so rather than show a
  control that cannot fail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from pytest_django.fixtures import Settings

from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.services import order_expire_overdue
from piaowu.orders.states import OrderState
from piaowu.payments.models import Payment, SandboxRefund
from piaowu.payments.providers.sandbox import signed_notification
from piaowu.payments.services import payment_notification_receive, sandbox_pay
from tests.orders.conftest import checkout, clock, reserved_session
from tests.payments.helpers import Recorded
from tests.payments.keys import private_pem, public_pem
from tests.payments.test_alipay import APP_ID, fake_gateway, form
from tests.payments.test_order_payments import (
    alipay_paid_form,
    sandbox_txn,
    seat_states,
    start,
)
from tests.races import race

__all__ = ["checkout", "clock", "reserved_session"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

Checkout = Callable[..., Order]


def receive(provider: str, headers: dict[str, str], body: bytes) -> int:
    ack, _payment = payment_notification_receive(provider_name=provider, headers=headers, body=body)
    return ack.status


def history(order: Order, to_state: str) -> int:
    return OrderHistory.objects.filter(order=order, to_state=to_state).count()


# --- 1. The same paid notification, eight times at once -------------------------------------


def test_the_same_paid_notification_eight_times_at_once_pays_once(
    transactional_db: None, checkout: Checkout
) -> None:
    for _round in range(3):
        order = checkout()
        payment = start(order)
        txn = sandbox_pay(transaction=sandbox_txn(payment))
        # The gateway's retries overlapping with slow answers: eight posts, distinct nonces.
        notes = [signed_notification(txn) for _ in range(8)]

        results = race([lambda n=n: receive("sandbox", *n) for n in notes])  # type: ignore[misc]

        assert results == [200] * 8, results
        order.refresh_from_db()
        payment.refresh_from_db()
        assert order.state == OrderState.PAID
        assert history(order, OrderState.PAID) == 1
        assert (payment.status, payment.settles_order) == (Payment.Status.PAID, True)
        assert seat_states(order) == {"sold"}
        assert not SandboxRefund.objects.exists()


# --- 2. Two payments of one order, paid at the same moment ------------------------------------

REFUND_OK = {
    "code": "10000",
    "msg": "Success",
    "trade_no": "T-REFUNDED",
    "fund_change": "Y",
}


@pytest.fixture
def alipay_gateway(settings: Settings) -> Iterator[list[Recorded]]:
    """Alipay enabled, its gateway a local fake that accepts refunds."""
    with fake_gateway({"alipay.trade.refund": REFUND_OK}) as (url, seen):
        settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox", "alipay"]
        settings.PIAOWU_ALIPAY_APP_ID = APP_ID
        settings.PIAOWU_ALIPAY_APP_PRIVATE_KEY = private_pem("alipay-app")
        settings.PIAOWU_ALIPAY_PUBLIC_KEY = public_pem("alipay-gateway")
        settings.PIAOWU_ALIPAY_GATEWAY = url + "/gateway.do"
        yield seen


def two_payments_race(checkout: Checkout) -> tuple[Order, list[Payment], list[Any]]:
    """The buyer pays one order with Alipay and with the sandbox; both notifications land at
    once."""
    order = checkout()
    by_alipay, by_sandbox = start(order, provider="alipay"), start(order)
    alipay_note = form(alipay_paid_form(by_alipay))
    sandbox_note = signed_notification(sandbox_pay(transaction=sandbox_txn(by_sandbox)))
    results = race(
        [lambda: receive("alipay", {}, alipay_note), lambda: receive("sandbox", *sandbox_note)]
    )
    for payment in (by_alipay, by_sandbox):
        payment.refresh_from_db()
    order.refresh_from_db()
    return order, [by_alipay, by_sandbox], results


def refund_requests(seen: list[Recorded]) -> int:
    return sum(b"alipay.trade.refund" in r.path.encode() for r in seen)


def test_two_payments_of_one_order_paid_at_once_settle_once_and_refund_the_other(
    transactional_db: None, checkout: Checkout, alipay_gateway: list[Recorded]
) -> None:
    for _round in range(3):
        refunds_before = refund_requests(alipay_gateway)
        order, payments, results = two_payments_race(checkout)

        assert results == [200, 200], results
        settling = [p for p in payments if p.settles_order]
        refunded = [p for p in payments if not p.settles_order]
        assert len(settling) == 1 and len(refunded) == 1, [(p.provider, p.status) for p in payments]
        assert settling[0].status == Payment.Status.PAID
        loser = refunded[0]
        assert (loser.status, loser.refund_reason) == (
            Payment.Status.REFUNDED,
            "duplicate_payment",
        )
        # Exactly one refund, at the loser's provider.
        alipay_refunds = refund_requests(alipay_gateway) - refunds_before
        sandbox_refunds = SandboxRefund.objects.filter(
            transaction__reference=payments[1].reference
        ).count()
        expected = (1, 0) if loser.provider == "alipay" else (0, 1)
        assert (alipay_refunds, sandbox_refunds) == expected
        assert order.state == OrderState.PAID and history(order, OrderState.PAID) == 1
        assert seat_states(order) == {"sold"}


def test_control_without_the_unique_settlement_index_both_payments_settle(
    transactional_db: None, checkout: Checkout, alipay_gateway: list[Recorded]
) -> None:
    constraint = next(c for c in Payment._meta.constraints if c.name == "payment_one_settles_order")
    with connection.schema_editor() as editor:
        editor.remove_constraint(Payment, constraint)
    try:
        _order, payments, results = two_payments_race(checkout)
        assert results == [200, 200], results
        # The bug the index stops: the order is paid twice over and nobody is refunded.
        assert [p.settles_order for p in payments] == [True, True]
        assert [p.status for p in payments] == [Payment.Status.PAID] * 2
        assert refund_requests(alipay_gateway) == 0 and not SandboxRefund.objects.exists()
    finally:
        Payment.objects.update(settles_order=False)
        with connection.schema_editor() as editor:
            editor.add_constraint(Payment, constraint)


# --- 3. A payment landing as the sweeper expires the order ------------------------------------


def test_payment_racing_expiry_ends_paid_with_seats_or_expired_and_refunded(
    transactional_db: None, checkout: Checkout
) -> None:
    # Four rounds: on this machine both endings turn up (the winner depends on scheduling);
    # each round must end in one of the two consistent states.
    for _round in range(4):
        order = checkout()
        payment = start(order)
        note = signed_notification(sandbox_pay(transaction=sandbox_txn(payment)))

        def expire(order: Order = order) -> int:
            # The sweeper runs just after the deadline, while the buyer's payment lands just
            # before it (the hold is still valid by the real clock).
            return order_expire_overdue(now=order.payment_deadline + dt.timedelta(seconds=1))

        results = race([lambda note=note: receive("sandbox", *note), expire])  # type: ignore[misc]

        assert results[0] == 200 and results[1] in (0, 1), results
        order.refresh_from_db()
        payment.refresh_from_db()
        refunds = SandboxRefund.objects.filter(transaction__reference=payment.reference).count()
        if order.state == OrderState.PAID:
            assert results[1] == 0
            assert (payment.status, payment.settles_order, refunds) == ("paid", True, 0)
            assert seat_states(order) == {"sold"}
            assert history(order, OrderState.EXPIRED) == 0
        else:
            assert order.state == OrderState.EXPIRED, order.state
            assert results[1] == 1
            assert (payment.status, payment.refund_reason, refunds) == (
                "refunded",
                "order_not_payable",
                1,
            )
            assert not payment.settles_order
            assert seat_states(order) == {"available"}
            assert history(order, OrderState.PAID) == 0
