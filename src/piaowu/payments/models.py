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
