"""The worker's `payments.reconcile` job is the one that rescues a paid order whose
notification was lost (tests/core/test_jobs.py checks the job list and intervals)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from piaowu.cli.jobs import PAYMENTS_RECONCILE_EVERY, register_jobs
from piaowu.core.jobs import JobRegistry
from piaowu.orders.models import Order
from piaowu.orders.states import OrderState
from piaowu.payments.models import SandboxDelivery
from piaowu.payments.services import RECONCILE_AFTER_SECONDS, sandbox_pay
from tests.orders.conftest import Clock, checkout, clock, reserved_session
from tests.payments.test_order_payments import sandbox_txn, start

__all__ = ["checkout", "clock", "reserved_session"]


@pytest.mark.django_db
def test_the_registered_reconcile_job_pays_an_order_whose_notification_was_lost(
    checkout: Callable[..., Order], clock: Clock
) -> None:
    jobs = {job.name: job for job in register_jobs(JobRegistry()).jobs()}
    reconcile = jobs["payments.reconcile"]
    assert reconcile.every == PAYMENTS_RECONCILE_EVERY
    order = checkout()
    txn = sandbox_pay(transaction=sandbox_txn(start(order)))
    SandboxDelivery.objects.filter(transaction=txn).delete()

    clock.shift(dt.timedelta(seconds=RECONCILE_AFTER_SECONDS + 1))
    assert reconcile.func() == 1

    order.refresh_from_db()
    assert order.state == OrderState.PAID
