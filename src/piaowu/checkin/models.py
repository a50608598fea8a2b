"""Gates, devices, admissions and the scan log.

Single use is kept by the database: an `Admission` row is unique per ticket and created with
an INSERT that fails on conflict; re-entry flips `inside` with one conditional UPDATE. Every scan
(online or synced from an offline device) is a `Scan` row unique per (device, nonce), so a
device retrying a scan — or replaying a whole offline batch — gets the first answer back.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from piaowu.catalog.models import Session, Venue
from piaowu.core.models import PublicIdModel
from piaowu.tickets.models import Ticket


class Gate(PublicIdModel):
    venue = models.ForeignKey(Venue, on_delete=models.CASCADE, related_name="gates")
    name = models.CharField(_("name"), max_length=60)
    entrances = models.CharField(
        _("entrances"),
        max_length=200,
        blank=True,
        help_text=_("Section entrances this gate admits, comma separated (blank: all)."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("gate")
        verbose_name_plural = _("gates")
        constraints = [
            models.UniqueConstraint(fields=["venue", "name"], name="gate_name_unique_per_venue")
        ]

    def __str__(self) -> str:
        return f"{self.venue} · {self.name}"


class Device(PublicIdModel):
    """A scanner (phone, handheld, turnstile). API calls authenticate with its token, whose
    SHA-256 is all we store."""

    venue = models.ForeignKey(Venue, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(_("name"), max_length=60)
    token_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_pack_at = models.DateTimeField(null=True, blank=True)
    # Set for the scanner a signed-in checker's browser uses at this venue (one per user and
    # venue, created on first scan; its token is never shown). Null for registered devices.
    browser_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        constraints = [
            models.UniqueConstraint(
                fields=["venue", "browser_user"],
                condition=Q(browser_user__isnull=False),
                name="device_one_browser_per_user_venue",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Admission(models.Model):
    """The one row that says a ticket got in. `inside` is for re-entry sessions."""

    ticket = models.OneToOneField(Ticket, on_delete=models.PROTECT, related_name="admission")
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="admissions")
    first_at = models.DateTimeField()
    first_gate = models.ForeignKey(Gate, on_delete=models.PROTECT, related_name="+")
    first_device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="+")
    inside = models.BooleanField(default=True)
    entries = models.PositiveIntegerField(default=1)
    last_at = models.DateTimeField()

    class Meta:
        verbose_name = _("admission")
        verbose_name_plural = _("admissions")
        indexes = [
            models.Index(fields=["session", "first_gate"], name="admission_session_gate_idx")
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} @ {self.first_at:%Y-%m-%d %H:%M}"


class Scan(models.Model):
    """Every scan and its answer, append-only."""

    class Direction(models.TextChoices):
        ENTRY = "entry", _("Entry")
        EXIT = "exit", _("Exit")

    class Source(models.TextChoices):
        ONLINE = "online", _("Online")
        OFFLINE = "offline", _("Offline (synced)")

    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="scans")
    nonce = models.CharField(max_length=64)
    gate = models.ForeignKey(Gate, on_delete=models.PROTECT, related_name="scans")
    session = models.ForeignKey(
        Session, on_delete=models.PROTECT, null=True, blank=True, related_name="scans"
    )
    ticket = models.ForeignKey(
        Ticket, on_delete=models.PROTECT, null=True, blank=True, related_name="scans"
    )
    direction = models.CharField(max_length=5, choices=Direction.choices, default=Direction.ENTRY)
    source = models.CharField(max_length=7, choices=Source.choices, default=Source.ONLINE)
    raw = models.CharField(max_length=400, blank=True)  # what the scanner read (truncated)
    outcome = models.CharField(max_length=20)  # see checkin.services.OUTCOMES
    accepted = models.BooleanField()
    # Offline scans: the device's answer at the gate, and whether the server found that another
    # gate had already admitted the ticket (a double admission to show the staff).
    device_accepted = models.BooleanField(null=True, blank=True)
    conflict = models.BooleanField(default=False)
    scanned_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("scan")
        verbose_name_plural = _("scans")
        ordering = ["-scanned_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["device", "nonce"], name="scan_device_nonce_unique")
        ]
        indexes = [
            models.Index(fields=["session", "gate", "accepted"], name="scan_session_gate_idx"),
            models.Index(
                fields=["session"], condition=Q(conflict=True), name="scan_session_conflict_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.nonce}: {self.outcome}"
