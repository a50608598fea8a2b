"""Reads of check-in: who is scanning where, live counts, conflicts and the scan log."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from piaowu.catalog.models import Event, Session, Venue
from piaowu.checkin.models import Admission, Device, Gate, Scan
from piaowu.core import clock
from piaowu.core.errors import NotFound
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import seat_label


def device_by_token(token: str) -> Device | None:
    """The device whose token this is (active or not), with its venue and organizer."""
    if not token or len(token) > 200:
        return None
    digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
    return Device.objects.select_related("venue").filter(token_hash=digest).first()


def gate_get(public_id: str) -> Gate:
    """A gate by its public id, with its venue. Error: `gate_not_found` (404)."""
    gate = Gate.objects.select_related("venue").filter(public_id=public_id).first()
    if gate is None:
        raise NotFound("gate", _("No such gate."), {"gate": public_id})
    return gate


def session_for_checkin(public_id: str) -> Session:
    """Any session by public id (published or not: staff check in), with event and venue.
    Error: `session_not_found` (404)."""
    session = Session.objects.select_related("event", "venue").filter(public_id=public_id).first()
    if session is None:
        raise NotFound("session", _("No such session."), {"session": public_id})
    return session


def gates_for_venue(venue_id: int, *, active_only: bool = True) -> QuerySet[Gate]:
    gates = Gate.objects.filter(venue_id=venue_id)
    if active_only:
        gates = gates.filter(is_active=True)
    return gates.order_by("name")


@dataclass(frozen=True, slots=True)
class GateCount:
    gate: Gate
    admitted: int


@dataclass(frozen=True, slots=True)
class SessionCounts:
    tickets: int  # valid tickets of the session
    admitted: int  # tickets that got in (once each)
    inside: int  # admitted and not scanned out
    conflicts: int  # synced double admissions
    gates: list[GateCount]

    def as_json(self) -> dict[str, Any]:
        """The shape of `GET …/counts` (also the dashboard's refresh)."""
        return {
            "tickets": self.tickets,
            "admitted": self.admitted,
            "inside": self.inside,
            "conflicts": self.conflicts,
            "gates": [
                {"id": row.gate.public_id, "name": row.gate.name, "admitted": row.admitted}
                for row in self.gates
            ],
        }


def session_counts(session: Session) -> SessionCounts:
    """Live counts for the dashboard and `GET …/counts`: five indexed aggregate queries."""
    tickets = Ticket.objects.filter(session=session, state=Ticket.State.VALID).count()
    totals = Admission.objects.filter(session=session).aggregate(
        admitted=Count("id"), inside=Count("id", filter=Q(inside=True))
    )
    conflicts = Scan.objects.filter(session=session, conflict=True).count()
    per_gate = dict(
        Admission.objects.filter(session=session)
        .values_list("first_gate_id")
        .annotate(n=Count("id"))
        .values_list("first_gate_id", "n")
    )
    gates = Gate.objects.filter(
        Q(venue_id=session.venue_id, is_active=True) | Q(pk__in=list(per_gate))
    ).order_by("name")
    return SessionCounts(
        tickets=tickets,
        admitted=totals["admitted"] or 0,
        inside=totals["inside"] or 0,
        conflicts=conflicts,
        gates=[GateCount(gate, per_gate.get(gate.pk, 0)) for gate in gates],
    )


def scan_conflicts(session: Session) -> QuerySet[Scan]:
    """Synced entries the device admitted although another gate had admitted the ticket
    first — double admissions for the staff to look into, newest first."""
    return (
        Scan.objects.filter(session=session, conflict=True)
        .select_related("device", "gate", "ticket")
        .order_by("-scanned_at", "-id")
    )


def scans_recent(
    session: Session, *, gate: Gate | None = None, refused: bool = False, limit: int = 50
) -> list[Scan]:
    """The latest scans of the session (at one gate; only the refused ones), newest first."""
    scans = Scan.objects.filter(session=session)
    if gate is not None:
        scans = scans.filter(gate=gate)
    if refused:
        scans = scans.filter(accepted=False)
    return list(
        scans.select_related("device", "gate", "ticket").order_by("-scanned_at", "-id")[
            : max(1, min(limit, 500))
        ]
    )


def ticket_display(ticket: Ticket) -> dict[str, Any]:
    """What the checker sees of a scanned ticket (seat, section and tier preloaded)."""
    seat = ticket.seat
    section = seat.section if seat is not None else None
    return {
        "serial": ticket.serial,
        "seat": seat_label(ticket),
        "section": section.tr("name") if section is not None else None,
        "entrance": (section.entrance or None) if section is not None else None,
        "tier": ticket.tier.tr("name"),
        "audience": ticket.tier.audience,
        "attendee_name": ticket.attendee_name or None,
        "attendee_id_masked": ticket.attendee_id_masked or None,
    }


# --- What a checker may pick ----------------------------------------------------------------


def venues_for_checker(allowed: set[int] | None) -> QuerySet[Venue]:
    """Active venues of the organizers in `allowed` (None: every organizer)."""
    venues = Venue.objects.filter(is_active=True)
    if allowed is not None:
        venues = venues.filter(organizer_id__in=allowed)
    return venues.order_by("city", "name")


def sessions_for_gate(
    venue: Venue, *, now: dt.datetime | None = None, limit: int = 40
) -> list[Session]:
    """Today's sessions (in the venue's time zone) and the upcoming ones whose doors have not
    closed, earliest first."""
    now = now or clock.now()
    local_today = timezone.localtime(now, venue.tzinfo).date()
    day_start = dt.datetime.combine(local_today, dt.time.min, tzinfo=venue.tzinfo)
    still_admitting = now - dt.timedelta(minutes=settings.PIAOWU_ADMIT_AFTER_END_MINUTES)
    return list(
        Session.objects.filter(venue=venue, status=Session.Status.SCHEDULED)
        .filter(Q(starts_at__gte=day_start) | Q(ends_at__gt=still_admitting))
        .exclude(event__status__in=[Event.Status.DRAFT, Event.Status.CANCELLED])
        .select_related("event", "venue")
        .order_by("starts_at")[:limit]
    )
