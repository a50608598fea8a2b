"""Payments state.

The sandbox gateway keeps its own books here (`SandboxTransaction`, `SandboxDelivery`,
`SandboxRefund`) exactly as an outside gateway would: our order side only ever learns about a
payment through a signed notification or a query, never by reading these rows.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from piaowu.core.models import PublicIdModel, TimestampedModel


class SandboxTransaction(PublicIdModel, TimestampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PAID = "paid", _("Paid")
        FAILED = "failed", _("Failed")
        ABANDONED = "abandoned", _("Abandoned")

    reference = models.CharField(_("reference"), max_length=64, unique=True)
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    subject = models.CharField(_("subject"), max_length=200)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    notify_url = models.URLField(_("notify URL"), max_length=500)
    return_url = models.URLField(_("return URL"), max_length=500, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sandbox transaction")
        verbose_name_plural = _("sandbox transactions")

    def __str__(self) -> str:
        return f"{self.reference} {self.amount} {self.currency} {self.status}"


class SandboxDelivery(models.Model):
    """One notification the sandbox owes a merchant; retried with backoff until acknowledged."""

    transaction = models.ForeignKey(
        SandboxTransaction, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(_("event"), max_length=10)
    attempt = models.PositiveIntegerField(_("attempts made"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    last_status = models.IntegerField(_("last HTTP status"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox delivery")
        verbose_name_plural = _("sandbox deliveries")
        indexes = [models.Index(fields=["next_attempt_at"], name="payments_sbx_delivery_due")]

    def __str__(self) -> str:
        return f"{self.transaction.reference} {self.event} #{self.attempt}"


class SandboxRefund(models.Model):
    transaction = models.ForeignKey(
        SandboxTransaction, on_delete=models.CASCADE, related_name="refunds"
    )
    refund_reference = models.CharField(_("refund reference"), max_length=64, unique=True)
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox refund")
        verbose_name_plural = _("sandbox refunds")

    def __str__(self) -> str:
        return f"{self.refund_reference} {self.amount}"


class NotificationNonce(models.Model):
    """Nonces of notifications already accepted, so a captured notification cannot be replayed.

    Rows older than the accepted clock skew can be deleted: their timestamp alone rejects them.
    """

    provider = models.CharField(max_length=20)
    nonce = models.CharField(max_length=64)
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "nonce"], name="payments_nonce_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.nonce}"


class Payment(PublicIdModel, TimestampedModel):
    """One attempt to pay one order through one provider (a buyer may try several).

    `reference` is what the provider knows the payment by. `settles_order` marks the single
    payment that paid its order (a unique partial index): a second payment that also succeeds —
    the buyer paid twice, or paid after the order expired — is refunded automatically.
    """

    class Status(models.TextChoices):
        STARTED = "started", _("Started")
        PAID = "paid", _("Paid")
        FAILED = "failed", _("Failed")
        CLOSED = "closed", _("Closed")
        REFUNDING = "refunding", _("Refund in progress")
        REFUNDED = "refunded", _("Refunded")

    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="payments", verbose_name=_("order")
    )
    provider = models.CharField(_("provider"), max_length=20)
    reference = models.CharField(_("reference"), max_length=64, unique=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.STARTED
    )
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    provider_transaction_id = models.CharField(
        _("provider transaction id"), max_length=64, blank=True
    )
    redirect_url = models.CharField(_("redirect URL"), max_length=1000, blank=True)
    qr_code_payload = models.CharField(_("QR code payload"), max_length=500, blank=True)
    settles_order = models.BooleanField(_("settles the order"), default=False)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    refunded_amount = models.DecimalField(
        _("refunded (after-sales)"), max_digits=12, decimal_places=2, default=0
    )
    refund_reason = models.CharField(_("refund reason"), max_length=40, blank=True)
    refunded_at = models.DateTimeField(_("refunded at"), null=True, blank=True)
    last_checked_at = models.DateTimeField(_("last queried at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order"],
                condition=models.Q(settles_order=True),
                name="payment_one_settles_order",
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_transaction_id"],
                condition=~models.Q(provider_transaction_id=""),
                name="payment_provider_txn_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["started", "paid", "failed", "closed", "refunding", "refunded"]
                ),
                name="payment_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__gt=0), name="payment_amount_positive"
            ),
            # After-sales refunds reserve their amount here with a conditional UPDATE; the
            # database refuses to give back more than was captured, whatever races.
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0)
                & models.Q(refunded_amount__lte=models.F("amount")),
                name="payment_refunded_within_amount",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="payment_status_created")]

    def __str__(self) -> str:
        return f"{self.reference} {self.provider} {self.amount} {self.currency} {self.status}"


class LedgerEntry(models.Model):
    """One money movement, append-only: captured from a buyer (+) or refunded to one (−).

    `reference` is unique (the payment reference for a capture, the refund number for a
    refund), so an at-least-once caller records each movement exactly once. Balances are sums.
    """

    class Kind(models.TextChoices):
        CAPTURE = "capture", _("Captured")
        REFUND = "refund", _("Refunded")

    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="ledger", verbose_name=_("order")
    )
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    reference = models.CharField(_("reference"), max_length=64, unique=True)
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger")
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind="capture") & models.Q(amount__gt=0))
                | (models.Q(kind="refund") & models.Q(amount__lt=0)),
                name="ledger_sign_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} ({self.reference})"
