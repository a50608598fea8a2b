"""Payments writes. For now: the sandbox gateway's side of a payment (hosted page outcomes,
notification delivery with retries, refunds)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction as db_transaction
from django.db.models import Sum
from django.utils.translation import gettext_lazy as _

from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound
from piaowu.core.money import Money
from piaowu.payments.models import SandboxDelivery, SandboxRefund, SandboxTransaction
from piaowu.payments.providers.base import PaymentRequest
from piaowu.payments.providers.sandbox import signed_notification

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
        headers, body = signed_notification(delivery.transaction, now=now)
        status = send(delivery.transaction.notify_url, headers, body)
        attempts += 1
        delivery.attempt += 1
        delivery.last_status = status
        if 200 <= status < 300:
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        elif delivery.attempt >= DELIVERY_MAX_ATTEMPTS:
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = now + delivery_backoff(delivery.attempt)
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
