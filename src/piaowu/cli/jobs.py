"""The periodic jobs of selling and admission, registered with `piaowu.core.jobs`.

They are registered here (presentation) because the core may not import the domain apps that
own them. `piaowu worker` and the embedded `piaowu demo` both call `register_jobs()`.
"""

from __future__ import annotations

from datetime import timedelta

from piaowu.core import clock
from piaowu.core.idempotency import idempotency_keys_purge
from piaowu.core.jobs import JobRegistry, registry
from piaowu.inventory.services import holds_sweep
from piaowu.orders.services import order_expire_overdue
from piaowu.payments.providers.base import notification_nonces_purge
from piaowu.payments.services import payments_reconcile, sandbox_deliver_due
from piaowu.tickets.delivery import deliveries_send_due

HOLDS_SWEEP_EVERY = timedelta(seconds=30)
ORDERS_EXPIRE_EVERY = timedelta(seconds=15)
SANDBOX_DELIVER_EVERY = timedelta(seconds=2)
PAYMENTS_RECONCILE_EVERY = timedelta(seconds=30)
TICKETS_DELIVER_EVERY = timedelta(seconds=10)
HOUSEKEEPING_EVERY = timedelta(hours=1)


def _holds_sweep() -> int:
    return holds_sweep()


def _orders_expire_overdue() -> int:
    # Seats of an unpaid order return when its deadline passes (availability already treats
    # the expired hold as free); this moves the order itself to `expired`.
    return order_expire_overdue()


def _sandbox_deliver_due() -> int:
    return sandbox_deliver_due()


def _payments_reconcile() -> int:
    # A lost notification must not leave a paid order unpaid: ask the provider.
    return payments_reconcile()


def _tickets_deliver_due() -> int:
    # Ticket e-mails and SMS notices queued when orders were paid, retried with backoff.
    return deliveries_send_due()


def _housekeeping() -> int:
    # Stored idempotent answers and seen notification nonces are only needed for a while.
    return idempotency_keys_purge() + notification_nonces_purge(now=clock.now())


def register_jobs(target: JobRegistry | None = None) -> JobRegistry:
    """Register the periodic jobs (idempotent: registering again replaces them)."""
    jobs = target if target is not None else registry
    jobs.register("inventory.holds_sweep", HOLDS_SWEEP_EVERY, _holds_sweep)
    jobs.register("orders.expire_overdue", ORDERS_EXPIRE_EVERY, _orders_expire_overdue)
    jobs.register("payments.sandbox_deliver_due", SANDBOX_DELIVER_EVERY, _sandbox_deliver_due)
    jobs.register("payments.reconcile", PAYMENTS_RECONCILE_EVERY, _payments_reconcile)
    jobs.register("tickets.deliver_due", TICKETS_DELIVER_EVERY, _tickets_deliver_due)
    jobs.register("housekeeping", HOUSEKEEPING_EVERY, _housekeeping)
    return jobs
