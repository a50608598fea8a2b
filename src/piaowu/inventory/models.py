"""What is left to sell of a session: seat states, quota buckets and holds.

Rows here change only through `inventory.services`, always in single conditional statements
(see the module docstring there). Time is data: a hold whose `expires_at` / a seat whose
`held_until` lies in the past is free, whatever its stored state says.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from piaowu.catalog.models import PriceTier, Seat, Session
from piaowu.core.models import PublicIdModel


class Hold(PublicIdModel):
    """Seats or quantities reserved for one buyer for a short time, all or nothing."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        RELEASED = "released", _("Released")
        CONVERTED = "converted", _("Converted")

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="holds")
    holder_key = models.CharField(_("holder"), max_length=64, db_index=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    expires_at = models.DateTimeField(_("expires"))
    extended = models.BooleanField(_("extended"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "released", "converted"]),
                name="hold_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["session", "holder_key", "status"], name="hold_holder_idx"),
            models.Index(fields=["status", "expires_at"], name="hold_status_expiry_idx"),
        ]

    def __str__(self) -> str:
        return self.public_id


class HoldItem(models.Model):
    """One seat (reserved) or a quantity of a tier (general admission / daily) of a hold."""

    hold = models.ForeignKey(Hold, on_delete=models.CASCADE, related_name="items")
    seat = models.ForeignKey(
        Seat, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    tier = models.ForeignKey(PriceTier, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name = _("hold item")
        verbose_name_plural = _("hold items")
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="holditem_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.seat or self.tier} × {self.quantity}"


class SeatState(models.Model):
    """The state of one seat of a reserved session (of the session's pinned seat-map version)."""

    class State(models.TextChoices):
        AVAILABLE = "available", _("Available")
        HELD = "held", _("Held")
        SOLD = "sold", _("Sold")
        BLOCKED = "blocked", _("Blocked")

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="seat_states")
    seat = models.ForeignKey(Seat, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.AVAILABLE
    )
    hold = models.ForeignKey(
        Hold, on_delete=models.SET_NULL, null=True, blank=True, related_name="seat_states"
    )
    held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("seat state")
        verbose_name_plural = _("seat states")
        constraints = [
            models.UniqueConstraint(fields=["session", "seat"], name="seatstate_unique"),
            models.CheckConstraint(
                condition=Q(state__in=["available", "held", "sold", "blocked"]),
                name="seatstate_state_valid",
            ),
            models.CheckConstraint(
                condition=~Q(state="held") | (Q(hold__isnull=False) & Q(held_until__isnull=False)),
                name="seatstate_held_has_hold",
            ),
        ]
        indexes = [models.Index(fields=["session", "state"], name="seatstate_session_state_idx")]

    def __str__(self) -> str:
        return f"{self.seat_id}: {self.state}"


class Quota(models.Model):
    """How many admissions of a general-admission / daily session (tier null) or of one tier
    with its own capacity (e.g. a flight cabin) may be sold; split into buckets."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="quotas")
    tier = models.ForeignKey(
        PriceTier, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    capacity = models.PositiveIntegerField()

    class Meta:
        verbose_name = _("quota")
        verbose_name_plural = _("quotas")
        constraints = [
            models.UniqueConstraint(
                fields=["session"], condition=Q(tier__isnull=True), name="quota_session_unique"
            ),
            models.UniqueConstraint(
                fields=["session", "tier"],
                condition=Q(tier__isnull=False),
                name="quota_tier_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.tier_id or '*'}: {self.capacity}"


class QuotaBucket(models.Model):
    """A slice of a quota. `taken` counts sold and held (not yet reclaimed) admissions; the
    database refuses `taken > capacity`."""

    quota = models.ForeignKey(Quota, on_delete=models.CASCADE, related_name="buckets")
    index = models.PositiveSmallIntegerField()
    capacity = models.PositiveIntegerField()
    taken = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("quota bucket")
        verbose_name_plural = _("quota buckets")
        constraints = [
            models.UniqueConstraint(fields=["quota", "index"], name="bucket_index_unique"),
            models.CheckConstraint(
                condition=Q(taken__lte=models.F("capacity")), name="bucket_not_over_capacity"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quota_id}#{self.index}: {self.taken}/{self.capacity}"


class QuotaAllocation(models.Model):
    """What one hold took from one bucket. ACTIVE allocations past `expires_at` are free: the
    next buyer that finds the quota short flips them to FREED and gives the count back."""

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        CONVERTED = "converted", _("Converted")
        FREED = "freed", _("Freed")

    hold = models.ForeignKey(Hold, on_delete=models.CASCADE, related_name="allocations")
    bucket = models.ForeignKey(QuotaBucket, on_delete=models.CASCADE, related_name="allocations")
    quantity = models.PositiveIntegerField()
    # Admissions of a converted allocation given back later (refunds, exchanges).
    returned = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = _("quota allocation")
        verbose_name_plural = _("quota allocations")
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["active", "converted", "freed"]),
                name="allocation_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(returned__lte=models.F("quantity")),
                name="allocation_returned_within_quantity",
            ),
        ]
        indexes = [
            models.Index(fields=["bucket", "state", "expires_at"], name="allocation_expiry_idx")
        ]

    def __str__(self) -> str:
        return f"{self.hold_id}@{self.bucket_id}: {self.quantity} {self.state}"
