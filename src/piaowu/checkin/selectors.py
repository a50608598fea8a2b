"""Reads of check-in: who is scanning where, live counts, conflicts and the scan log."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy

from piaowu.catalog.models import Event, PriceTier, Seat, Section, Session, Venue
from piaowu.checkin.models import Admission, Device, Gate, Scan
from piaowu.core import clock, rawsql
from piaowu.core.errors import NotFound
from piaowu.tickets.models import SigningKey, Ticket
from piaowu.tickets.selectors import seat_label


def device_by_token(token: str) -> Device | None:
    """The device whose token this is (active or not), with its venue and organizer."""
    if not token or len(token) > 200:
        return None
    digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
    return Device.objects.select_related("venue").filter(token_hash=digest).first()


def gate_not_found(public_id: str) -> NotFound:
    return NotFound("gate", gettext_lazy("No such gate."), {"gate": public_id})


def session_not_found(public_id: str) -> NotFound:
    return NotFound("session", gettext_lazy("No such session."), {"session": public_id})


def gate_get(public_id: str) -> Gate:
    """A gate by its public id, with its venue. Error: `gate_not_found` (404)."""
    gate = Gate.objects.select_related("venue").filter(public_id=public_id).first()
    if gate is None:
        raise gate_not_found(public_id)
    return gate


def session_for_checkin(public_id: str) -> Session:
    """Any session by public id (published or not: staff check in), with event and venue.
    Error: `session_not_found` (404)."""
    session = Session.objects.select_related("event", "venue").filter(public_id=public_id).first()
    if session is None:
        raise session_not_found(public_id)
    return session


# --- The scan path's reads: one statement for a whole batch of scans (core/rawsql.py: why) ---


_DEVICES_SQL = rawsql.compose(
    "SELECT id, public_id, venue_id, is_active, last_seen_at, token_hash FROM {device} "
    "WHERE token_hash IN ({{values}})",
    device=Device,
)
_GATES_SQL = rawsql.compose(
    "SELECT g.id, g.public_id, g.venue_id, g.name, g.entrances, g.is_active, v.organizer_id "
    "FROM {gate} g JOIN {venue} v ON v.id = g.venue_id WHERE g.public_id IN ({{values}})",
    gate=Gate,
    venue=Venue,
)
_SESSIONS_SQL = rawsql.compose(
    "SELECT id, public_id, venue_id, reentry_allowed FROM {session} "
    "WHERE public_id IN ({{values}})",
    session=Session,
)


def devices_by_token_hash(hashes: set[str]) -> dict[str, Device]:
    """Scanners by the SHA-256 of their token, carrying what a scan checks (the other fields
    load on access)."""
    if not hashes:
        return {}
    sql = _DEVICES_SQL.format(values=rawsql.placeholders(len(hashes)))
    return {
        row[5]: rawsql.instance(
            Device,
            {
                "id": row[0],
                "public_id": row[1],
                "venue_id": row[2],
                "is_active": bool(row[3]),
                "last_seen_at": rawsql.to_datetime(row[4]),
            },
        )
        for row in rawsql.fetch_all(sql, sorted(hashes), prepare=False)
    }


def gates_by_public_id(public_ids: set[str]) -> dict[str, Gate]:
    """Gates with `gate.venue` (id and organizer), for scans."""
    if not public_ids:
        return {}
    sql = _GATES_SQL.format(values=rawsql.placeholders(len(public_ids)))
    gates = {}
    for row in rawsql.fetch_all(sql, sorted(public_ids), prepare=False):
        gate = rawsql.instance(
            Gate,
            {
                "id": row[0],
                "public_id": row[1],
                "venue_id": row[2],
                "name": row[3],
                "entrances": row[4],
                "is_active": bool(row[5]),
            },
        )
        gate.venue = rawsql.instance(Venue, {"id": row[2], "organizer_id": row[6]})
        gates[gate.public_id] = gate
    return gates


def sessions_by_public_id(public_ids: set[str]) -> dict[str, Session]:
    """Sessions with what a scan checks (id, venue, re-entry)."""
    if not public_ids:
        return {}
    sql = _SESSIONS_SQL.format(values=rawsql.placeholders(len(public_ids)))
    return {
        row[1]: rawsql.instance(
            Session,
            {
                "id": row[0],
                "public_id": row[1],
                "venue_id": row[2],
                "reentry_allowed": bool(row[3]),
            },
        )
        for row in rawsql.fetch_all(sql, sorted(public_ids), prepare=False)
    }


_TICKET_SQL = rawsql.compose(
    """
SELECT t.id, t.serial, t.token, t.session_id, t.organizer_id, t.tier_id, t.seat_id, t.state,
       t.secret_version, t.rotating, t.valid_from, t.valid_until, t.attendee_name,
       t.attendee_id_masked, t.signing_key_id, k.kid,
       st.row_label, st.number_label, st.section_id, sc.name, sc.name_en, sc.entrance,
       pt.name, pt.name_en, pt.audience
FROM {ticket} t
JOIN {key} k ON k.id = t.signing_key_id
JOIN {tier} pt ON pt.id = t.tier_id
LEFT JOIN {seat} st ON st.id = t.seat_id
LEFT JOIN {section} sc ON sc.id = st.section_id
""",
    ticket=Ticket,
    key=SigningKey,
    tier=PriceTier,
    seat=Seat,
    section=Section,
)


def ticket_for_scan(*, token: int | None = None, serial: str | None = None) -> Ticket | None:
    """The ticket a scan names (by the QR's token or a typed serial), with what the checker
    sees preloaded: signing key id, seat and section, tier."""
    tickets = tickets_for_scan(
        tokens={token} if token is not None else set(),
        serials={serial} if serial is not None else set(),
    )
    return tickets[0] if tickets else None


def tickets_for_scan(*, tokens: set[int], serials: set[str]) -> list[Ticket]:
    """The tickets with these QR tokens or typed serials, loaded as `ticket_for_scan` does."""
    if not tokens and not serials:
        return []
    conditions: list[str] = []
    params: list[int | str] = []
    if tokens:
        conditions.append(f"t.token IN ({rawsql.placeholders(len(tokens))})")
        params += sorted(tokens)
    if serials:
        conditions.append(f"t.serial IN ({rawsql.placeholders(len(serials))})")
        params += sorted(serials)
    sql = _TICKET_SQL + "WHERE " + " OR ".join(conditions)
    return [
        _ticket_from_row(row) for row in rawsql.fetch_all(sql, params, prepare=len(params) == 1)
    ]


def _ticket_from_row(row: tuple[Any, ...]) -> Ticket:
    ticket = rawsql.instance(
        Ticket,
        {
            "id": row[0],
            "serial": row[1],
            "token": row[2],
            "session_id": row[3],
            "organizer_id": row[4],
            "tier_id": row[5],
            "seat_id": row[6],
            "state": row[7],
            "secret_version": row[8],
            "rotating": bool(row[9]),
            "valid_from": rawsql.to_datetime(row[10]),
            "valid_until": rawsql.to_datetime(row[11]),
            "attendee_name": row[12],
            "attendee_id_masked": row[13],
            "signing_key_id": row[14],
        },
    )
    ticket.signing_key = rawsql.instance(SigningKey, {"id": row[14], "kid": row[15]})
    ticket.tier = rawsql.instance(
        PriceTier, {"id": row[5], "name": row[22], "name_en": row[23], "audience": row[24]}
    )
    if row[6] is not None:
        seat = rawsql.instance(
            Seat,
            {"id": row[6], "row_label": row[16], "number_label": row[17], "section_id": row[18]},
        )
        seat.section = rawsql.instance(
            Section, {"id": row[18], "name": row[19], "name_en": row[20], "entrance": row[21]}
        )
        ticket.seat = seat
    return ticket


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
