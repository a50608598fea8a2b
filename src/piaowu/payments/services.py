"""Payments writes: paying orders through a provider (start, notifications, automatic refunds,
the reconcile job), and the sandbox gateway's own side (hosted page outcomes, notification
delivery with retries, refunds)."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError
from django.db import transaction as db_transaction
from django.db.models import Q, Sum
from django.utils.translation import gettext_lazy as _

from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound
from piaowu.core.ids import new_ulid
from piaowu.core.money import Money
from piaowu.orders.models import Order
from piaowu.orders.services import order_expire_if_overdue, order_mark_paid, order_not_payable
from piaowu.orders.states import PAID_STATES, OrderState
from piaowu.payments.models import (
    LedgerEntry,
    Payment,
    SandboxDelivery,
    SandboxRefund,
    SandboxTransaction,
)
from piaowu.payments.providers import get_provider
from piaowu.payments.providers.base import Acknowledgement, PaymentRequest
from piaowu.payments.providers.sandbox import signed_notification

logger = logging.getLogger(__name__)

#: Seconds before retry n (1-based): 5, 15, 45, 135, … capped at one hour.
DELIVERY_BASE_DELAY_SECONDS = 5
DELIVERY_BACKOFF_FACTOR = 3
DELIVERY_MAX_DELAY_SECONDS = 3600
DELIVERY_MAX_ATTEMPTS = 8
#: While one worker is posting a notification, others leave it alone for this long.
DELIVERY_LEASE_SECONDS = 60

#: send(url, headers, body) -> HTTP status, 0 when no answer came back.
Sender = Callable[[str, Mapping[str, str], bytes], int]


def delivery_backoff(attempt: int) -> timedelta:
    """Delay after the `attempt`-th failed attempt."""
    delay = DELIVERY_BASE_DELAY_SECONDS * DELIVERY_BACKOFF_FACTOR ** max(attempt - 1, 0)
    return timedelta(seconds=min(delay, DELIVERY_MAX_DELAY_SECONDS))


def sandbox_transaction_start(*, request: PaymentRequest) -> SandboxTransaction:
    """Open a sandbox transaction for `request.reference`; starting it again returns the same
    pending transaction (the buyer reloaded checkout) as long as the amount is unchanged."""
    amount = request.amount.quantized()
    if amount.amount <= 0:
        raise DomainError("payment_amount_invalid", _("The amount to pay must be positive."))
    with db_transaction.atomic():
        existing = (
            SandboxTransaction.objects.select_for_update()
            .filter(reference=request.reference)
            .first()
        )
        if existing is not None:
            if (
                existing.status != SandboxTransaction.Status.PENDING
                or existing.amount != amount.amount
                or existing.currency != amount.currency
            ):
                raise DomainError(
                    "payment_reference_used",
                    _("A payment with this reference already exists."),
                    {"reference": request.reference},
                )
            return existing
        return SandboxTransaction.objects.create(
            reference=request.reference,
            amount=amount.amount,
            currency=amount.currency,
            subject=request.subject[:200],
            notify_url=request.notify_url,
            return_url=request.return_url,
            expires_at=request.expires_at,
        )


def _sandbox_settle(
    *, transaction: SandboxTransaction, status: str, now: datetime | None
) -> SandboxTransaction:
    now = now or clock.now()
    with db_transaction.atomic():
        txn = SandboxTransaction.objects.select_for_update().get(pk=transaction.pk)
        if txn.status != SandboxTransaction.Status.PENDING:
            raise DomainError(
                "payment_not_pending",
                _("This payment is already settled."),
                {"status": txn.status},
            )
        if status == SandboxTransaction.Status.PAID and txn.expires_at and txn.expires_at < now:
            raise DomainError("payment_expired", _("This payment has expired."))
        txn.status = status
        if status == SandboxTransaction.Status.PAID:
            txn.paid_at = now
        else:
            txn.closed_at = now
        txn.save(update_fields=["status", "paid_at", "closed_at", "updated_at"])
        SandboxDelivery.objects.create(transaction=txn, event=status, next_attempt_at=now)
    return txn


def sandbox_pay(
    *, transaction: SandboxTransaction, now: datetime | None = None
) -> SandboxTransaction:
    """The buyer paid on the hosted page: mark paid and queue the notification."""
    return _sandbox_settle(transaction=transaction, status=SandboxTransaction.Status.PAID, now=now)


def sandbox_fail(
    *, transaction: SandboxTransaction, now: datetime | None = None
) -> SandboxTransaction:
    """The payment was declined: mark failed and queue the notification."""
    return _sandbox_settle(
        transaction=transaction, status=SandboxTransaction.Status.FAILED, now=now
    )


def sandbox_abandon(
    *, transaction: SandboxTransaction, now: datetime | None = None
) -> SandboxTransaction:
    """The buyer gave up: mark abandoned and queue a `closed` notification."""
    return _sandbox_settle(
        transaction=transaction, status=SandboxTransaction.Status.ABANDONED, now=now
    )


def http_send(url: str, headers: Mapping[str, str], body: bytes) -> int:
    if not url.startswith(("http://", "https://")):
        return 0
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def sandbox_deliver_due(*, now: datetime | None = None, send: Sender | None = None) -> int:
    """Post every notification that is due; returns the number of attempts made.

    A 2xx answer is an acknowledgement and ends the delivery; anything else schedules the next
    attempt with exponential backoff, until `DELIVERY_MAX_ATTEMPTS` (then `next_attempt_at` is
    cleared and the delivery is given up). No row lock is held during the HTTP call: a due
    delivery is first leased (its next attempt pushed back) in a short transaction.
    """
    # Each notification is signed (and its next attempt scheduled) at the moment it is sent:
    # a run working through thousands of due deliveries takes minutes, and a signature dated
    # when the run began is refused as `notification_stale` by the time it arrives.
    fixed_now = now
    now = now or clock.now()
    send = send or http_send
    due_ids = list(
        SandboxDelivery.objects.filter(delivered_at__isnull=True, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)
    )
    attempts = 0
    for delivery_id in due_ids:
        with db_transaction.atomic():
            delivery = (
                SandboxDelivery.objects.select_for_update(skip_locked=True)
                .select_related("transaction")
                .filter(pk=delivery_id, delivered_at__isnull=True, next_attempt_at__lte=now)
                .first()
            )
            if delivery is None:
                continue
            delivery.next_attempt_at = now + timedelta(seconds=DELIVERY_LEASE_SECONDS)
            delivery.save(update_fields=["next_attempt_at"])
        sent_at = fixed_now or clock.now()
        headers, body = signed_notification(delivery.transaction, now=sent_at)
        status = send(delivery.transaction.notify_url, headers, body)
        attempts += 1
        delivery.attempt += 1
        delivery.last_status = status
        if 200 <= status < 300:
            delivery.delivered_at = sent_at
            delivery.next_attempt_at = None
        elif delivery.attempt >= DELIVERY_MAX_ATTEMPTS:
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = sent_at + delivery_backoff(delivery.attempt)
        delivery.save(update_fields=["attempt", "last_status", "delivered_at", "next_attempt_at"])
    return attempts


def sandbox_refund(*, reference: str, refund_reference: str, amount: Money) -> SandboxRefund:
    """Refund part or all of a paid sandbox payment. Idempotent on `refund_reference`: asking
    again returns the first refund; reusing the reference for another amount is refused."""
    amount = amount.quantized()
    if amount.amount <= 0:
        raise DomainError("refund_amount_invalid", _("The refund amount must be positive."))
    with db_transaction.atomic():
        txn = SandboxTransaction.objects.select_for_update().filter(reference=reference).first()
        if txn is None:
            raise NotFound("payment", _("No such payment."), {"reference": reference})
        previous = SandboxRefund.objects.filter(refund_reference=refund_reference).first()
        if previous is not None:
            if previous.transaction_id != txn.pk or previous.amount != amount.amount:
                raise DomainError(
                    "refund_reference_conflict",
                    _("This refund reference was already used for another refund."),
                    {"refund_reference": refund_reference},
                )
            return previous
        if txn.status != SandboxTransaction.Status.PAID:
            raise DomainError("payment_not_paid", _("Only a paid payment can be refunded."))
        if amount.currency != txn.currency:
            raise DomainError("refund_currency_mismatch", _("The refund currency differs."))
        refunded = txn.refunds.aggregate(total=Sum("amount"))["total"] or Decimal(0)
        if refunded + amount.amount > txn.amount:
            raise DomainError(
                "refund_exceeds_payment",
                _("The refund exceeds what is left of the payment."),
                {"refundable": str(txn.amount - refunded)},
            )
        return SandboxRefund.objects.create(
            transaction=txn, refund_reference=refund_reference, amount=amount.amount
        )


def sandbox_deliveries_redeliver(*, delivery_ids: list[int], now: datetime | None = None) -> int:
    """Operator tool: make the selected undelivered notifications due right away (also ones
    given up after `DELIVERY_MAX_ATTEMPTS`, which then get one more attempt). Returns how many
    were rescheduled; delivered ones are left alone."""
    now = now or clock.now()
    return SandboxDelivery.objects.filter(pk__in=delivery_ids, delivered_at__isnull=True).update(
        next_attempt_at=now
    )


# --- Paying orders ---------------------------------------------------------------------------
#
# A `Payment` moves started → paid | failed | closed, and paid → refunding → refunded, each step
# one conditional UPDATE. No database transaction is open while a provider is called: the row
# is written before (so a crash leaves a trace the reconcile job finds) and after.

#: A started payment with no notification after this long is queried at its provider.
RECONCILE_AFTER_SECONDS = 60
#: Payments older than this are no longer queried (the provider has closed them long ago).
RECONCILE_HORIZON = timedelta(days=2)
RECONCILE_BATCH = 200


def payment_start(
    *, order: Order, provider_name: str, notify_url: str, return_url: str = ""
) -> Payment:
    """Start paying `order` with a provider and return the payment with where to send the
    buyer (`redirect_url` or `qr_code_payload`). Starting again with the same provider while the
    first attempt is still open returns it. Errors: `order_not_payable` (409),
    `payment_provider_unavailable`, `payment_provider_error`, `payment_currency_unsupported`."""
    provider = get_provider(provider_name)
    # The fields that decide; the session and event the caller loaded stay in memory.
    order.refresh_from_db(fields=["state", "payment_deadline", "total_amount", "currency"])
    if order.state != OrderState.AWAITING_PAYMENT or order.payment_deadline <= clock.now():
        raise order_not_payable(order)
    open_payment = (
        Payment.objects.filter(order=order, provider=provider.name, status=Payment.Status.STARTED)
        .exclude(redirect_url="", qr_code_payload="")
        .order_by("-created_at")
        .first()
    )
    if open_payment is not None:
        return open_payment
    payment = Payment.objects.create(
        order=order,
        provider=provider.name,
        reference=new_ulid(),
        amount=order.total_amount,
        currency=order.currency,
    )
    request = PaymentRequest(
        reference=payment.reference,
        amount=Money(Decimal(order.total_amount), order.currency),
        subject=_payment_subject(order),
        notify_url=notify_url,
        return_url=return_url,
        expires_at=order.payment_deadline,
    )
    try:
        started = provider.start(request)
    except DomainError:
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.STARTED).update(
            status=Payment.Status.FAILED, updated_at=clock.now()
        )
        raise
    payment.redirect_url = started.redirect_url
    payment.qr_code_payload = started.qr_code_payload
    payment.save(update_fields=["redirect_url", "qr_code_payload", "updated_at"])
    return payment


def _payment_subject(order: Order) -> str:
    event = order.session.event
    return f"{event.tr('title')} · {order.code}"[:200]


def payment_notification_receive(
    *, provider_name: str, headers: Mapping[str, str], body: bytes
) -> tuple[Acknowledgement, Payment | None]:
    """Verify a provider's notification and act on it; returns the acknowledgement to answer
    with (a refusal makes the provider retry) and the payment it was about. Forged, tampered,
    replayed, stale or unreadable notifications and wrong amounts are refused and logged; the
    same outcome notified again is acknowledged without doing anything twice."""
    provider = get_provider(provider_name)
    try:
        notification = provider.parse_notification(headers=headers, body=body)
        payment = payment_apply_outcome(
            provider_name=provider.name,
            reference=notification.reference,
            status=notification.status,
            provider_transaction_id=notification.provider_transaction_id,
            amount=notification.amount,
            paid_at=notification.paid_at,
        )
    except DomainError as exc:
        logger.warning(
            "payment notification refused: provider=%s code=%s details=%s",
            provider.name,
            exc.code,
            exc.details,
        )
        return provider.acknowledgement(False), None
    return provider.acknowledgement(True), payment


def payment_apply_outcome(
    *,
    provider_name: str,
    reference: str,
    status: str,
    provider_transaction_id: str,
    amount: Money | None,
    paid_at: datetime | None,
) -> Payment:
    """Apply what a provider says about a payment (from a notification or a query). Paid: the
    order becomes paid — or, if it was cancelled or expired meanwhile, or another payment paid
    it first, this payment is refunded automatically. Failed / closed: the attempt ends; the
    order keeps waiting for another one until its deadline. Errors: `payment_not_found`,
    `notification_amount_mismatch`, `notification_transaction_mismatch`."""
    payment = (
        Payment.objects.select_related("order").filter(reference=reference).first()
        if reference
        else None
    )
    if payment is None or payment.provider != provider_name:
        raise NotFound("payment", _("No such payment."), {"reference": reference})
    # Exact comparison: rounding the notified amount to fen first would accept 359.996 for
    # 360.00.
    if amount is not None and (
        amount.currency != payment.currency or amount.amount != payment.amount
    ):
        raise DomainError(
            "notification_amount_mismatch",
            _("The notified amount differs from the amount to pay."),
            {
                "reference": reference,
                "expected": str(payment.amount),
                "currency": payment.currency,
                "got": str(amount.amount),
                "got_currency": amount.currency,
            },
        )
    if status == "paid":
        return _payment_paid(payment, provider_transaction_id, paid_at or clock.now())
    if status in ("failed", "closed"):
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.STARTED).update(
            status=status, updated_at=clock.now()
        )
    payment.refresh_from_db()
    return payment


def _payment_paid(payment: Payment, provider_transaction_id: str, paid_at: datetime) -> Payment:
    if (
        payment.provider_transaction_id
        and provider_transaction_id
        and payment.provider_transaction_id != provider_transaction_id
    ):
        raise DomainError(
            "notification_transaction_mismatch",
            _("The notification names another transaction for this payment."),
            {"reference": payment.reference},
        )
    # 1. Record that the money arrived (once; also when the buyer's attempt had been closed).
    Payment.objects.filter(
        pk=payment.pk,
        status__in=[Payment.Status.STARTED, Payment.Status.FAILED, Payment.Status.CLOSED],
    ).update(
        status=Payment.Status.PAID,
        provider_transaction_id=provider_transaction_id,
        paid_at=paid_at,
        updated_at=clock.now(),
    )
    payment.refresh_from_db()
    if payment.status != Payment.Status.PAID or payment.settles_order:
        return payment  # a repeated notification, or already refunded: nothing more to do
    return _payment_settle(payment)


def _payment_settle(payment: Payment) -> Payment:
    """Make a paid payment the one that pays its order, or refund it."""
    try:
        with db_transaction.atomic():
            Payment.objects.filter(pk=payment.pk).update(settles_order=True)
            order = order_mark_paid(order=payment.order, paid_at=payment.paid_at)
            LedgerEntry.objects.get_or_create(
                reference=payment.reference,
                defaults={
                    "order_id": payment.order_id,
                    "payment": payment,
                    "kind": LedgerEntry.Kind.CAPTURE,
                    "amount": payment.amount,
                    "currency": payment.currency,
                    "at": payment.paid_at or clock.now(),
                },
            )
            if order.state not in PAID_STATES:  # pragma: no cover - order_mark_paid raises
                raise order_not_payable(order)
    except IntegrityError:
        return payment_refund_automatically(payment=payment, reason="duplicate_payment")
    except DomainError as exc:
        if exc.code != "order_not_payable":
            raise
        # A late payment found the order overdue; the expiry order_mark_paid made rolled back
        # with this transaction, so expire it now rather than on the sweep's next turn.
        order_expire_if_overdue(order=payment.order)
        return payment_refund_automatically(payment=payment, reason="order_not_payable")
    payment.refresh_from_db()
    return payment


def payment_refund_automatically(*, payment: Payment, reason: str) -> Payment:
    """Give the money back for a payment that cannot pay its order (late or duplicate). The
    refund reference is fixed per payment, so retrying after a crash or a provider error refunds
    once; the reconcile job retries `refunding` payments."""
    Payment.objects.filter(pk=payment.pk, status=Payment.Status.PAID, settles_order=False).update(
        status=Payment.Status.REFUNDING, refund_reason=reason[:40], updated_at=clock.now()
    )
    payment.refresh_from_db()
    if payment.status != Payment.Status.REFUNDING:
        return payment
    logger.warning(
        "refunding payment %s of order %s automatically: %s",
        payment.reference,
        payment.order.code,
        payment.refund_reason,
    )
    try:
        result = get_provider(payment.provider).refund(
            reference=payment.reference,
            refund_reference=f"{payment.reference}-R",
            amount=Money(Decimal(payment.amount), payment.currency),
        )
    except DomainError as exc:
        # The money is recorded and the refund is owed: the payment stays `refunding` and the
        # reconcile job asks again (same refund reference, so it refunds once). Refusing the
        # notification instead would only make the gateway re-send what we already know.
        logger.warning(
            "refund of payment %s failed, reconcile will retry: %s %s",
            payment.reference,
            exc.code,
            exc.details,
        )
        return payment
    if result.status == "succeeded":
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.REFUNDING).update(
            status=Payment.Status.REFUNDED, refunded_at=clock.now(), updated_at=clock.now()
        )
    payment.refresh_from_db()
    return payment


def payments_reconcile(*, now: datetime | None = None) -> int:
    """Query providers about payments whose outcome never arrived, so a lost notification
    cannot leave a paid order unpaid; finish settlements and refunds a crash or a provider error
    interrupted. A payment that fails is logged and left for the next run; it never holds up
    the others. Returns how many payments changed (status or settlement)."""
    now = now or clock.now()
    quiet_since = now - timedelta(seconds=RECONCILE_AFTER_SECONDS)
    changed = 0
    started = list(
        Payment.objects.filter(
            status=Payment.Status.STARTED,
            created_at__lt=quiet_since,
            created_at__gte=now - RECONCILE_HORIZON,
        )
        .filter(Q(last_checked_at__isnull=True) | Q(last_checked_at__lt=quiet_since))
        .select_related("order")
        .order_by("last_checked_at", "created_at")[:RECONCILE_BATCH]
    )
    for payment in started:
        Payment.objects.filter(pk=payment.pk).update(last_checked_at=now)
        changed += _reconcile_one(payment, _payment_query_and_apply)
    unfinished = list(
        Payment.objects.filter(
            Q(status=Payment.Status.PAID, settles_order=False) | Q(status=Payment.Status.REFUNDING),
            updated_at__lt=quiet_since,
        )
        .select_related("order")
        .order_by("updated_at", "pk")[:RECONCILE_BATCH]
    )
    for payment in unfinished:
        changed += _reconcile_one(payment, _payment_finish)
    return changed


def _payment_query_and_apply(payment: Payment) -> None:
    status = get_provider(payment.provider).query(reference=payment.reference)
    if status.status in ("paid", "failed", "closed"):
        payment_apply_outcome(
            provider_name=payment.provider,
            reference=payment.reference,
            status=status.status,
            provider_transaction_id=status.provider_transaction_id,
            amount=status.amount,
            paid_at=status.paid_at,
        )


def _payment_finish(payment: Payment) -> None:
    if payment.status == Payment.Status.PAID:
        _payment_settle(payment)
    else:
        payment_refund_automatically(payment=payment, reason=payment.refund_reason)


def _reconcile_one(payment: Payment, step: Callable[[Payment], None]) -> int:
    """Run one reconcile step; 1 if the payment's status or settlement changed."""
    before = (payment.status, payment.settles_order)
    try:
        step(payment)
    except DomainError as exc:
        logger.warning(
            "payment %s could not be reconciled: %s %s", payment.reference, exc.code, exc.details
        )
    except Exception:
        # One broken payment (an adapter bug, an unexpected answer) must not stop the job for
        # every other payment behind it.
        logger.exception("payment %s could not be reconciled", payment.reference)
    after = Payment.objects.filter(pk=payment.pk).values_list("status", "settles_order").first()
    return int(after is not None and after != before)
