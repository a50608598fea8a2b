"""Console: the gate scanner and a session's check-in dashboard.

The scanner page is a shell. The checker picks venue → gate → session here; the page's script
(`console/gate.js`) then talks only to the check-in API (`/api/v1/checkin/…`) with the staff
session and its CSRF token: scans, the session pack for offline checking, the sync of offline
scans and the live counts. The views read only what the page needs to set up (venues, gates,
sessions) and, for the dashboard, the session's counts, refusals and offline conflicts.

Scope: a checker sees the venues of organizers where they hold `gate.scan`; the dashboard also
opens for `orders.view`. Anything of another organizer is a 404, as in the admin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from piaowu.accounts.models import User
from piaowu.accounts.permissions import Perm, organizer_ids_with
from piaowu.catalog.models import Session
from piaowu.checkin import selectors as checkin_selectors
from piaowu.checkin.models import Gate, Scan
from piaowu.checkin.verify import parse_entrances
from piaowu.core import clock
from piaowu.tickets.selectors import seat_label

#: How many sessions the picker lists per venue, and refusals the dashboard shows.
SESSION_LIMIT = 40
REFUSAL_LIMIT = 50
CONFLICT_LIMIT = 200


# --- Scope -------------------------------------------------------------------------------------


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required ran first
    return user


def _organizers(request: HttpRequest, perms: Iterable[Perm]) -> set[int] | None:
    """Organizer ids where the signed-in user holds any of `perms` (None: every organizer).
    A user holding none of them anywhere gets a 403."""
    user = _user(request)
    allowed: set[int] = set()
    for perm in perms:
        ids = organizer_ids_with(user, perm)
        if ids is None:
            return None
        allowed |= ids
    if not allowed:
        raise PermissionDenied(_("Only gate staff may open this page."))
    return allowed


def _scoped(queryset: QuerySet[Any], path: str, allowed: set[int] | None) -> QuerySet[Any]:
    return queryset if allowed is None else queryset.filter(**{f"{path}__in": allowed})


def _session_days(sessions: list[Session], today: dt.date) -> list[dict[str, Any]]:
    days: dict[dt.date, list[Session]] = {}
    for session in sessions:
        days.setdefault(session.local_starts_at.date(), []).append(session)
    return [{"date": day, "today": day == today, "sessions": items} for day, items in days.items()]


# --- Pages ---------------------------------------------------------------------------------------


@require_GET
@login_required
def picker(request: HttpRequest) -> HttpResponse:
    """Venue → gate → session. `?venue=<id>` shows that venue's gates and sessions."""
    allowed = _organizers(request, [Perm.GATE_SCAN])
    venues = list(checkin_selectors.venues_for_checker(allowed))
    venue_id = request.GET.get("venue", "")
    if not venue_id and len(venues) == 1:
        venue_id = venues[0].public_id
    venue = next((v for v in venues if v.public_id == venue_id), None)
    if venue_id and venue is None:
        raise Http404(_("No such venue."))
    context: dict[str, Any] = {"venues": venues, "venue": venue}
    if venue is not None:
        sessions = checkin_selectors.sessions_for_gate(venue, limit=SESSION_LIMIT)
        today = timezone.localtime(clock.now(), venue.tzinfo).date()
        context |= {
            "gates": list(checkin_selectors.gates_for_venue(venue.pk)),
            "session_days": _session_days(sessions, today),
            "has_sessions": bool(sessions),
        }
    return render(request, "console/gate/picker.html", context)


@require_GET
@login_required
def scanner(request: HttpRequest) -> HttpResponse:
    """The scanner for one gate and one session (`?gate=<id>&session=<id>`)."""
    allowed = _organizers(request, [Perm.GATE_SCAN])
    gate_id, session_id = request.GET.get("gate", ""), request.GET.get("session", "")
    if not gate_id or not session_id:
        return redirect("gate:picker")
    gate = (
        _scoped(Gate.objects.filter(is_active=True), "venue__organizer_id", allowed)
        .select_related("venue")
        .filter(public_id=gate_id)
        .first()
    )
    if gate is None:
        raise Http404(_("No such gate."))
    session = (
        Session.objects.filter(public_id=session_id, venue_id=gate.venue_id)
        .select_related("event", "venue")
        .first()
    )
    if session is None:
        raise Http404(_("No such session at this venue."))
    api_root = reverse("api:api-root") + "v1/checkin/"
    session_api = f"{api_root}sessions/{session.public_id}/"
    config = {
        "venue": {
            "id": gate.venue.public_id,
            "name": gate.venue.name,
            "timezone": gate.venue.timezone,
        },
        "gate": {
            "id": gate.public_id,
            "name": gate.name,
            "entrances": sorted(parse_entrances(gate.entrances)),
        },
        "session": {
            "id": session.public_id,
            "title": session.event.title,
            "starts": session.local_starts_at.strftime("%Y-%m-%d %H:%M"),
            "reentry_allowed": session.reentry_allowed,
            "rotating_qr": session.rotating_qr,
        },
        "urls": {
            "scan": f"{api_root}scans",
            "sync": f"{api_root}sync",
            "pack": f"{session_api}pack",
            "counts": f"{session_api}counts",
            "picker": reverse("gate:picker"),
            "scanner": request.get_full_path(),
        },
        "labels": _scanner_labels(),
        "csrf": get_token(request),
    }
    context = {"gate": gate, "session": session, "venue": gate.venue, "config": config}
    return render(request, "console/gate/scanner.html", context)


def _dashboard_session(request: HttpRequest, session_id: str) -> Session:
    allowed = _organizers(request, [Perm.GATE_SCAN, Perm.ORDERS_VIEW])
    session = (
        _scoped(Session.objects.all(), "event__organizer_id", allowed)
        .select_related("event", "venue")
        .filter(public_id=session_id)
        .first()
    )
    if session is None:
        raise Http404(_("No such session."))
    return session


@require_GET
@login_required
def dashboard(request: HttpRequest, session_id: str) -> HttpResponse:
    """Live counts per gate, inside now, recent refusals and offline conflicts of a session."""
    session = _dashboard_session(request, session_id)
    scan_allowed = organizer_ids_with(_user(request), Perm.GATE_SCAN)
    context = {
        "session": session,
        "venue": session.venue,
        "counts": checkin_selectors.session_counts(session).as_json(),
        "refusals": _refusals(session),
        "conflicts": _conflicts(session),
        "counts_url": reverse("gate:dashboard_counts", args=[session.public_id]),
        "can_scan": scan_allowed is None or session.venue.organizer_id in scan_allowed,
    }
    return render(request, "console/gate/dashboard.html", context)


@require_GET
@login_required
def dashboard_counts(request: HttpRequest, session_id: str) -> JsonResponse:
    """The dashboard's live counts (the same shape as the API's `…/counts`, but open to
    `orders.view` too and without registering a scanning device for the viewer)."""
    session = _dashboard_session(request, session_id)
    response = JsonResponse(checkin_selectors.session_counts(session).as_json())
    response["Cache-Control"] = "no-store"
    return response


def _refusals(session: Session) -> list[dict[str, Any]]:
    titles = _scanner_labels()["titles"]
    scans = checkin_selectors.scans_recent(session, refused=True, limit=REFUSAL_LIMIT)
    return [
        {
            "at": scan.scanned_at,
            "gate": scan.gate.name,
            "outcome": scan.outcome,
            "label": titles.get(scan.outcome, scan.outcome),
            "serial": scan.ticket.serial if scan.ticket is not None else "",
            "offline": scan.source == Scan.Source.OFFLINE,
        }
        for scan in scans
    ]


def _conflicts(session: Session) -> list[dict[str, Any]]:
    scans = checkin_selectors.scan_conflicts(session).select_related(
        "ticket__seat", "ticket__admission__first_gate"
    )
    rows = []
    for scan in scans[:CONFLICT_LIMIT]:
        ticket = scan.ticket
        admission = getattr(ticket, "admission", None) if ticket is not None else None
        rows.append(
            {
                "serial": ticket.serial if ticket is not None else scan.raw[:20],
                "seat": seat_label(ticket) if ticket is not None else None,
                "first_at": admission.first_at if admission is not None else None,
                "first_gate": admission.first_gate.name if admission is not None else "",
                "at": scan.scanned_at,
                "gate": scan.gate.name,
                "device": scan.device.name,
            }
        )
    return rows


def _scanner_labels() -> dict[str, Any]:
    """The texts the script shows (it fills the {placeholders}). `titles` head the answer panel;
    `reasons` explain a refusal the device decided itself while offline (online answers carry
    the server's message)."""
    return {
        "titles": {
            "valid": _("OK"),
            "reentry": _("OK — re-entry"),
            "exit_recorded": _("Exit recorded"),
            "already_used": _("Already used"),
            "wrong_session": _("Wrong session"),
            "wrong_gate": _("Wrong gate"),
            "not_yet_open": _("Not yet open"),
            "expired": _("Admission closed"),
            "revoked": _("Refunded / revoked"),
            "forged": _("Forged"),
            "code_expired": _("Code expired"),
            "unreadable": _("Unreadable"),
            "unknown_ticket": _("Unknown ticket"),
            "not_inside": _("Not inside"),
            "serial_offline": _("Cannot check offline"),
            "refused": _("Refused"),
        },
        "reasons": {
            "already_used": _("This ticket has already been used."),
            "wrong_session": _("This ticket is for another session."),
            "wrong_gate": _("This ticket's entrance is not at this gate."),
            "not_yet_open": _("Doors are not open yet for this ticket."),
            "expired": _("Admission for this ticket has closed."),
            "revoked": _("This ticket was refunded, exchanged or replaced by a reprint."),
            "forged": _("The code's signature is not ours: a forged or altered ticket."),
            "code_expired": _("The live code is missing or stale — ask for the live code."),
            "unreadable": _("Not a ticket code or serial."),
            "unknown_ticket": _("No ticket has this serial."),
            "not_inside": _("This ticket is not inside: nothing to record."),
            "serial_offline": _("Serials cannot be checked offline — scan the QR code."),
        },
        "already_used_at": _("Already used at {time} at {gate}"),
        "wrong_gate_go": _("Wrong gate — go to entrance {entrance}"),
        "checking": _("Checking…"),
        "ready": _("Ready — scan a ticket"),
        "error": _("The scan was not recorded: {message}"),
        "signed_out": _("You are signed out — sign in again to scan."),
        "online": _("Online"),
        "online_queued": _("Online — offline scans waiting to sync: {n}"),
        "offline": _("Offline — checking on this device"),
        "offline_queued": _("Offline — scans queued: {n}"),
        "synced": _("Offline scans synced: {n}"),
        "synced_conflicts": _("Offline scans synced: {n}; admitted twice: {c} (see the dashboard)"),
        "sync_failed": _("Offline scans could not be synced: {message}"),
        "pack_ready": _("Offline pack saved at {time} ({tickets} already admitted)"),
        "pack_missing": _("No offline pack yet"),
        "pack_failed": _("Could not download the offline pack"),
        "pack_too_big": _("The offline pack does not fit in this browser's storage"),
        "no_webcrypto": _("Offline checking is unavailable in this browser (no Ed25519)."),
        "offline_no_pack": _("Offline and no pack downloaded — cannot check tickets here."),
        "camera_unsupported": _(
            "This browser cannot read QR codes with the camera; use a scanner or type the serial."
        ),
        "camera_failed": _("The camera could not be started: {message}"),
        "start_camera": _("Start camera"),
        "stop_camera": _("Stop camera"),
        "counts": _("Admitted {admitted} of {tickets} · inside {inside}"),
        "counts_gate": _("{gate}: {admitted}"),
        "seat": _("Seat"),
        "section": _("Section"),
        "entrance": _("Entrance"),
        "tier": _("Tier"),
        "attendee": _("Attendee"),
        "serial": _("Serial"),
        "general_admission": _("General admission"),
        "audiences": {
            "child": _("Child ticket"),
            "student": _("Student ticket"),
            "senior": _("Senior ticket"),
        },
        "checked_offline": _("Checked on this device (offline); will sync."),
        "replayed": _("This scan was already recorded; same answer."),
    }
