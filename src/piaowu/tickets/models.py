"""Tickets: what a paid order becomes, and the keys that make its QR codes unforgeable.

A ticket's QR carries a payload signed with the organizer's Ed25519 key (see `codec`). The
payload names the ticket's `token` and its `secret_version`; reprinting, exchanging or refunding
a ticket bumps or voids that version, which revokes every QR made before. Nothing about a
ticket's admission lives here: gates, scans and admissions belong to `checkin`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import PriceTier, Seat, Session
from piaowu.core.models import PublicIdModel
from piaowu.orders.models import Order, OrderLine


class SigningKey(models.Model):
    """An organizer's Ed25519 key pair. One is active (signs new tickets); retired keys keep
    verifying the tickets issued under them; a revoked key verifies nothing."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        RETIRED = "retired", _("Retired")
        REVOKED = "revoked", _("Revoked")

    organizer = models.ForeignKey(Organizer, on_delete=models.PROTECT, related_name="signing_keys")
    kid = models.CharField(_("key id"), max_length=8, unique=True)  # 8 hex chars = 4 bytes
    public_key = models.BinaryField(_("public key"))  # 32 raw bytes
    private_key = models.BinaryField(_("private key"))  # 32 raw bytes (encrypted at rest: SEC-4)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE
    )
    created_at = models.DateTimeField(_("created"))
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("signing key")
        verbose_name_plural = _("signing keys")
        constraints = [
            models.UniqueConstraint(
                fields=["organizer"],
                condition=Q(status="active"),
                name="signingkey_one_active_per_organizer",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "retired", "revoked"]),
                name="signingkey_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organizer} · {self.kid} ({self.status})"


class Ticket(PublicIdModel):
    """One admission: a seat of a reserved session, or one unit of a GA/daily tier."""

    class State(models.TextChoices):
        VALID = "valid", _("Valid")
        VOID = "void", _("Void")  # refunded, exchanged away, or the order was reversed

    serial = models.CharField(_("serial"), max_length=16, unique=True)  # human: XXXX-XXXX-XXXX
    token = models.BigIntegerField(_("token"), unique=True)  # random 63-bit id carried in the QR
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="tickets")
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="tickets")
    index = models.PositiveIntegerField(default=0)  # n-th unit of the line (GA quantity > 1)
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="tickets")
    organizer = models.ForeignKey(Organizer, on_delete=models.PROTECT, related_name="tickets")
    tier = models.ForeignKey(PriceTier, on_delete=models.PROTECT, related_name="+")
    seat = models.ForeignKey(
        Seat, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.VALID)
    void_reason = models.CharField(_("void reason"), max_length=40, blank=True)
    secret_version = models.PositiveIntegerField(_("secret version"), default=1)
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="tickets")
    rotating = models.BooleanField(_("rotating QR"), default=False)
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="held_tickets",
        verbose_name=_("holder"),
        help_text=_("Who the ticket was transferred to; empty: the buyer of the order."),
    )
    attendee_name = models.CharField(_("attendee"), max_length=80, blank=True)
    attendee_id_masked = models.CharField(_("attendee ID (masked)"), max_length=32, blank=True)
    issued_at = models.DateTimeField(_("issued"))

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["order_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order_line", "index"], name="ticket_line_unit_unique"),
            models.CheckConstraint(
                condition=Q(state__in=["valid", "void"]), name="ticket_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(valid_until__gt=models.F("valid_from")), name="ticket_window_order"
            ),
        ]
        indexes = [models.Index(fields=["session", "state"], name="ticket_session_state_idx")]

    def __str__(self) -> str:
        return self.serial


class TicketHistory(models.Model):
    """Append-only: issued, reissued (new secret version), voided, printed, redeemed."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="history")
    action = models.CharField(max_length=20)
    secret_version = models.PositiveIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()

    class Meta:
        verbose_name = _("ticket history")
        verbose_name_plural = _("ticket history")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} v{self.secret_version}"


class PrintLog(models.Model):
    """Every paper print: who printed which ticket version, when, on which device, which layout."""

    class Layout(models.TextChoices):
        THERMAL_80 = "thermal80", _("80 mm thermal")
        A4 = "a4", _("A4")

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="prints")
    secret_version = models.PositiveIntegerField()
    layout = models.CharField(max_length=12, choices=Layout.choices)
    device = models.CharField(_("device"), max_length=80)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reprint = models.BooleanField(default=False)
    at = models.DateTimeField()

    class Meta:
        verbose_name = _("print")
        verbose_name_plural = _("prints")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.layout} v{self.secret_version}"


class RedemptionBatch(PublicIdModel):
    """A batch of codes an organizer sold (e.g. to a company), each worth one ticket of a tier
    code in any session of the event that has that tier."""

    organizer = models.ForeignKey(Organizer, on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey("catalog.Event", on_delete=models.PROTECT, related_name="+")
    tier_code = models.SlugField(_("tier code"), max_length=40)
    name = models.CharField(_("name"), max_length=120)
    size = models.PositiveIntegerField(_("codes"))
    valid_until = models.DateTimeField(_("redeem by"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("redemption batch")
        verbose_name_plural = _("redemption batches")

    def __str__(self) -> str:
        return self.name


class RedemptionCode(models.Model):
    batch = models.ForeignKey(RedemptionBatch, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(_("code"), max_length=20, unique=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    order = models.OneToOneField(
        Order, on_delete=models.PROTECT, null=True, blank=True, related_name="redemption"
    )

    class Meta:
        verbose_name = _("redemption code")
        verbose_name_plural = _("redemption codes")
        constraints = [
            # Redeemed exactly when it has an order: the conditional UPDATE sets both at once.
            models.CheckConstraint(
                condition=Q(redeemed_at__isnull=True, order__isnull=True)
                | Q(redeemed_at__isnull=False, order__isnull=False),
                name="redemptioncode_redeemed_has_order",
            )
        ]

    def __str__(self) -> str:
        return self.code


class Delivery(models.Model):
    """Outbox: a ticket e-mail or SMS notice for a paid order, written in the paid transaction
    and sent by the `tickets.deliver_due` job with retries, so the payment never waits on mail."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("SMS")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")  # gave up after the last retry; staff can resend

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    recipient = models.CharField(max_length=254)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(fields=["order", "kind"], name="delivery_one_per_order_kind")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.kind} → {self.recipient}"
