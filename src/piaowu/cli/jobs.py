"""The periodic jobs of selling and admission, registered with `piaowu.core.jobs`.

They are registered here (presentation) because the core may not import the domain apps that
own them. `piaowu worker` and the embedded `piaowu demo` both call `register_jobs()`.
"""

from __future__ import annotations

from datetime import timedelta

from piaowu.aftersales.services.cancellations import cancellations_run_due
from piaowu.aftersales.services.exchanges import exchanges_abandon_unpaid
from piaowu.aftersales.services.notices import notices_send_due
from piaowu.aftersales.services.refunds import refunds_process_due
from piaowu.aftersales.services.transfers import transfers_expire_overdue
from piaowu.aftersales.services.waitlist import (
    waitlist_expire_due,
    waitlist_fulfil_due,
    waitlist_offer_due,
)
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
REFUNDS_PROCESS_EVERY = timedelta(seconds=10)
NOTICES_SEND_EVERY = timedelta(seconds=10)


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


def _refunds_process_due() -> int:
    # Approved refunds not yet at the provider, and retries of failed provider calls.
    return refunds_process_due()


def _notices_send_due() -> int:
    # After-sales e-mails and SMS (refund progress, cancellations, waitlist offers, transfers).
    return notices_send_due()


TRANSFERS_EXPIRE_EVERY = timedelta(minutes=1)


def _transfers_expire_overdue() -> int:
    # Pending ticket transfers past their expiry (they already count as expired); tells the
    # senders their tickets stayed theirs.
    return transfers_expire_overdue()


CANCELLATIONS_RUN_EVERY = timedelta(seconds=15)


def _cancellations_run_due() -> int:
    # Refunds of cancelled sessions, resumed where an interrupted run stopped.
    return cancellations_run_due()


WAITLIST_SERVE_EVERY = timedelta(seconds=5)
WAITLIST_EXPIRE_EVERY = timedelta(minutes=1)


def _waitlist_offer_due() -> int:
    # Offer mode: lapsed offers pass on; returned admissions are held for the next in line.
    return waitlist_offer_due()


def _waitlist_fulfil_due() -> int:
    # Prepaid mode (候补): returned admissions are bought for the queue with the deposits.
    return waitlist_fulfil_due()


def _waitlist_expire_due() -> int:
    # Entries past their deadline end (prepaid deposits refunded in full); unpaid deposits.
    return waitlist_expire_due()


EXCHANGES_ABANDON_EVERY = timedelta(minutes=1)


def _exchanges_abandon_unpaid() -> int:
    # Exchanges into dearer tickets whose new order was not paid in time (they already count
    # as abandoned): their old tickets may be refunded or exchanged again.
    return exchanges_abandon_unpaid()


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
    jobs.register("aftersales.refunds_process_due", REFUNDS_PROCESS_EVERY, _refunds_process_due)
    jobs.register("aftersales.notices_send_due", NOTICES_SEND_EVERY, _notices_send_due)
    jobs.register(
        "aftersales.transfers_expire_overdue", TRANSFERS_EXPIRE_EVERY, _transfers_expire_overdue
    )
    jobs.register(
        "aftersales.cancellations_run_due", CANCELLATIONS_RUN_EVERY, _cancellations_run_due
    )
    jobs.register("aftersales.waitlist_offer_due", WAITLIST_SERVE_EVERY, _waitlist_offer_due)
    jobs.register("aftersales.waitlist_fulfil_due", WAITLIST_SERVE_EVERY, _waitlist_fulfil_due)
    jobs.register("aftersales.waitlist_expire_due", WAITLIST_EXPIRE_EVERY, _waitlist_expire_due)
    jobs.register(
        "aftersales.exchanges_abandon_unpaid", EXCHANGES_ABANDON_EVERY, _exchanges_abandon_unpaid
    )
    jobs.register("housekeeping", HOUSEKEEPING_EVERY, _housekeeping)
    return jobs
