"""Check-in: online scans, session packs for offline scanners, offline sync and live counts.

Who may call: a registered scanner (`Authorization: Device <token>`; the device belongs to one
venue), or a signed-in staff member holding `gate.scan` at the venue's organizer (a browser:
the CSRF token is required on POSTs, and the scans are recorded under the user's own browser
device for that venue). The rules live in `checkin.services` / `checkin.selectors` /
`checkin.pack`; docs/checkin.md describes the pack and the sync protocol for scanner makers.
A refused ticket is an answer (`outcome`, 200), not an error; errors are about the request.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Field, Router, Schema

from piaowu.accounts.models import User
from piaowu.accounts.permissions import Perm, require_perm
from piaowu.api.errors import ErrorOut
from piaowu.api.v1.holds import csrf_check, errors_doc, request_customer
from piaowu.catalog.models import Session, Venue
from piaowu.checkin.models import Device, Gate
from piaowu.checkin.pack import session_pack
from piaowu.checkin.selectors import (
    device_by_token,
    gate_get,
    session_counts,
    session_for_checkin,
    ticket_display,
)
from piaowu.checkin.services import (
    MAX_SYNC_BATCH,
    ScanAttempt,
    ScanResult,
    SyncScan,
    checkin_scan_many,
    checkin_sync,
    device_for_staff,
    device_touch,
    device_unauthorized,
    device_wrong_venue,
)
from piaowu.core.errors import DomainError

router = Router(tags=["checkin"])

CHECKIN_ERRORS: dict[str, str] = {
    "device_unauthorized": "401 — no `Authorization: Device <token>` header and no signed-in "
    "staff, or the token is unknown or its device was switched off.",
    "forbidden": "403 — the signed-in user lacks `gate.scan` at the venue's organizer, or a "
    "session cookie came without its CSRF token (`X-CSRFToken`).",
    "device_wrong_venue": "403 — the device belongs to another venue than the gate / session.",
    "gate_not_found": "404 — no gate with this id (details.gate).",
    "session_not_found": "404 — no session with this id (details.session).",
    "gate_wrong_venue": "400 — the gate is not at the session's venue.",
    "gate_inactive": "400 — the gate is closed (details.gate).",
    "invalid_input": "400 — the body is not valid: nonce 1–64 printable characters, "
    f"direction `entry` or `exit`, at most {MAX_SYNC_BATCH} scans, a nonce twice in one batch "
    "(details.fields).",
}
SCAN_ERRORS = tuple(CHECKIN_ERRORS)
READ_ERRORS = (
    "device_unauthorized",
    "forbidden",
    "device_wrong_venue",
    "session_not_found",
)
RESPONSES: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}


# --- The caller -------------------------------------------------------------------------------


def _device_token(request: HttpRequest) -> str | None:
    """The token of `Authorization: Device <token>`; None without the header."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _sep, token = header.strip().partition(" ")
    if scheme.lower() != "device":
        raise device_unauthorized()
    return token.strip()


def _device_from_header(request: HttpRequest) -> Device | None:
    """The device named by `Authorization: Device <token>`; None without the header."""
    token = _device_token(request)
    if token is None:
        return None
    return _active(device_by_token(token))


def _active(device: Device | None) -> Device:
    if device is None or not device.is_active:
        raise device_unauthorized()
    return device


class Caller:
    """Who scans: a device (token) or a staff user (then `device` is the user's browser
    device at the venue, made on first use)."""

    def __init__(self, request: HttpRequest, *, mutating: bool) -> None:
        self.device = _device_from_header(request)
        self.user: User | None = None
        if self.device is None:
            self.user = request_customer(request)
            if self.user is None:
                raise device_unauthorized()
            if mutating:
                csrf_check(request)

    def device_at(self, venue: Venue) -> Device:
        """The device scanning at `venue`, after checking it may."""
        if self.device is not None:
            if self.device.venue_id != venue.pk:
                raise device_wrong_venue()
            device_touch(device=self.device)
            return self.device
        assert self.user is not None
        require_perm(self.user, venue.organizer_id, Perm.GATE_SCAN)
        device = device_for_staff(user=self.user, venue=venue)
        if not device.is_active:
            raise device_unauthorized()
        return device


def _session_for(caller: Caller, session_id: str) -> tuple[Session, Device]:
    """The session, after the caller proves it may scan at its venue. A device of another
    venue gets `session_not_found` only for an unknown id, else `device_wrong_venue`."""
    session = session_for_checkin(session_id)
    return session, caller.device_at(session.venue)


# --- Shapes -----------------------------------------------------------------------------------

Direction = Literal["entry", "exit"]


class ScanIn(Schema):
    gate: str = Field(..., min_length=1, max_length=40, description="The gate's public id.")
    session: str = Field(..., min_length=1, max_length=40, description="The session's public id.")
    code: str = Field(
        ...,
        max_length=16384,
        description="What the scanner read: the QR text (`PW1…`, with `:code` for a rotating "
        "ticket) or a serial typed by hand (`XXXX-XXXX-XXXX`). Anything else is `unreadable`.",
    )
    nonce: str = Field(
        ..., min_length=1, max_length=64, description="Unique per device; a retry reuses it."
    )
    direction: Direction = "entry"


class TicketOut(Schema):
    serial: str
    seat: str | None = Field(None, description="Row and number, e.g. `Row 1, seat 5`.")
    section: str | None
    entrance: str | None
    tier: str
    audience: str = Field(..., description="`any`, `adult`, `child`, `student`, `senior` …")
    attendee_name: str | None
    attendee_id_masked: str | None


class FirstAdmissionOut(Schema):
    at: str = Field(..., description="ISO 8601 UTC.")
    gate: str = Field(..., description="The gate's name.")


class ScanOut(Schema):
    outcome: str = Field(
        ...,
        description="`valid`, `reentry`, `exit_recorded` (accepted); `already_used`, "
        "`wrong_session`, `wrong_gate`, `not_yet_open`, `expired`, `revoked`, `forged`, "
        "`code_expired`, `unreadable`, `unknown_ticket`, `not_inside` (refused).",
    )
    accepted: bool = Field(..., description="Let the person through.")
    message: str = Field(..., description="A one-liner for the checker, in their language.")
    replayed: bool = Field(..., description="This nonce was scanned before: its first answer.")
    ticket: TicketOut | None
    first_admission: FirstAdmissionOut | None = Field(
        None, description="For `already_used`: when and where the ticket got in."
    )


class SyncScanIn(ScanIn):
    scanned_at: dt.datetime = Field(..., description="When the device scanned (ISO 8601).")
    device_accepted: bool = Field(..., description="Whether the device let the person in.")


class SyncIn(Schema):
    scans: list[SyncScanIn] = Field(..., max_length=MAX_SYNC_BATCH)


class SyncResultOut(Schema):
    nonce: str
    outcome: str
    accepted: bool
    conflict: bool = Field(
        ..., description="The device admitted a ticket another gate had admitted first."
    )
    replayed: bool


class SyncOut(Schema):
    results: list[SyncResultOut]


class GateCountOut(Schema):
    id: str
    name: str
    admitted: int


class CountsOut(Schema):
    tickets: int = Field(..., description="Valid tickets of the session.")
    admitted: int = Field(..., description="Tickets that got in (each once).")
    inside: int = Field(..., description="Admitted and not scanned out.")
    conflicts: int = Field(..., description="Synced double admissions.")
    gates: list[GateCountOut]


class PackSessionOut(Schema):
    id: int = Field(..., description="The session id as carried in the QR.")
    public_id: str
    title: str
    starts_at: str
    reentry_allowed: bool
    valid_from: str
    valid_until: str


class PackKeyOut(Schema):
    kid: str
    public_key: str = Field(..., description="Base64 of the 32 raw Ed25519 bytes.")
    status: str = Field(..., description="`active` or `retired` (revoked keys are left out).")


class PackRotationOut(Schema):
    step_seconds: int
    tolerance_steps: int
    keys: dict[str, str] = Field(..., description="kid → base64 of the session rotation key.")


class PackAdmittedOut(Schema):
    at: str
    gate: str
    inside: bool


class PackTierOut(Schema):
    name: str
    audience: str


class PackSeatOut(Schema):
    label: str
    section: str
    entrance: str


class PackGateOut(Schema):
    id: str
    name: str
    entrances: list[str]


class PackOut(Schema):
    format: str = Field(..., description="`piaowu.checkin.pack/1`.")
    generated_at: str
    session: PackSessionOut
    keys: list[PackKeyOut]
    rotation: PackRotationOut
    revoked: dict[str, int] = Field(
        ...,
        description="Token (decimal string) → current secret version, or 0 for a void "
        "ticket. A code is revoked when its token is here and the value is 0 or differs from "
        "the code's secret version.",
    )
    admitted: dict[str, PackAdmittedOut] = Field(..., description="Token → first admission.")
    tiers: dict[str, PackTierOut]
    seats: dict[str, PackSeatOut]
    gates: list[PackGateOut]


def scan_out(result: ScanResult) -> dict[str, Any]:
    first = result.first_admission
    return {
        "outcome": result.outcome,
        "accepted": result.accepted,
        "message": result.message,
        "replayed": result.replayed,
        "ticket": ticket_display(result.ticket) if result.ticket is not None else None,
        "first_admission": (
            {"at": first[0].astimezone(dt.UTC).isoformat().replace("+00:00", "Z"), "gate": first[1]}
            if first is not None
            else None
        ),
    }


# --- Endpoints --------------------------------------------------------------------------------


@router.post(
    "/checkin/scans",
    response={200: ScanOut, **RESPONSES},
    summary="Scan a ticket at a gate",
    description=(
        "Checks the code for the session at the gate and admits (or, with "
        '`"direction": "exit"`, lets out) its ticket. A refused ticket answers 200 with its '
        "`outcome`. Send a fresh `nonce` per scan; a retry with the same nonce answers the "
        "first answer with `replayed: true` and changes nothing." + errors_doc(CHECKIN_ERRORS)
    ),
)
def checkin_scans_create(request: HttpRequest, payload: ScanIn) -> dict[str, Any]:
    return scan_out(_raise(checkin_scan_many([_request_attempt(request, payload)])[0]))


def scan_attempt(
    payload: ScanIn,
    *,
    device_token: str | None = None,
    device: Device | None = None,
    operator: User | None = None,
) -> ScanAttempt:
    """The scan `payload` asks for, by a scanner (its token, checked with the batch) or by a
    signed-in checker (the browser device of the gate's venue). Also the scanners' lane's."""
    return ScanAttempt(
        gate=payload.gate,
        session=payload.session,
        code=payload.code,
        nonce=payload.nonce,
        direction=payload.direction,
        device_token=device_token,
        device=device,
        operator=operator,
    )


def _request_attempt(request: HttpRequest, payload: ScanIn) -> ScanAttempt:
    token = _device_token(request)
    if token is not None:
        return scan_attempt(payload, device_token=token)
    caller = Caller(request, mutating=True)  # staff: permission and CSRF checked here
    device = caller.device_at(gate_get(payload.gate).venue)
    return scan_attempt(payload, device=device, operator=caller.user)


def _raise(result: ScanResult | DomainError) -> ScanResult:
    if isinstance(result, DomainError):
        raise result
    return result


@router.get(
    "/checkin/sessions/{session_id}/pack",
    response={200: PackOut, **RESPONSES},
    summary="Session pack for offline scanning",
    description=(
        "Everything a scanner needs to check this session's tickets without a network: public "
        "keys, rotation keys, revoked tickets, admissions so far, labels and gates. Format "
        "`piaowu.checkin.pack/1`, described field by field in docs/checkin.md. Fetch it "
        "before doors open and again whenever online." + errors_doc(CHECKIN_ERRORS, READ_ERRORS)
    ),
)
def checkin_pack(request: HttpRequest, session_id: str) -> HttpResponse:
    caller = Caller(request, mutating=False)
    session, device = _session_for(caller, session_id)
    pack = session_pack(session)
    device_touch(device=device, pack=True)
    response = JsonResponse(pack, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    return response


@router.post(
    "/checkin/sync",
    response={200: SyncOut, **RESPONSES},
    summary="Upload an offline device's scans",
    description=(
        f"Up to {MAX_SYNC_BATCH} scans the device made offline, each with the nonce it used, "
        "when it scanned and whether it let the person in. Each is checked as of its "
        "`scanned_at` and recorded; results come back in the same order. Sending a batch again "
        "(a retry after a lost answer) answers `replayed` and changes nothing. `conflict` "
        "marks an entry the device admitted although another gate had admitted the ticket "
        "first." + errors_doc(CHECKIN_ERRORS)
    ),
)
def checkin_sync_create(request: HttpRequest, payload: SyncIn) -> dict[str, Any]:
    caller = Caller(request, mutating=True)
    if not payload.scans:
        return {"results": []}
    gates: dict[str, Gate] = {}
    sessions: dict[str, Session] = {}
    for item in payload.scans:
        if item.gate not in gates:
            gates[item.gate] = gate_get(item.gate)
        if item.session not in sessions:
            sessions[item.session] = session_for_checkin(item.session)
    venues = {gate.venue_id: gate.venue for gate in gates.values()}
    if len(venues) != 1:
        raise device_wrong_venue()
    device = caller.device_at(next(iter(venues.values())))
    results = checkin_sync(
        device=device,
        scans=[
            SyncScan(
                nonce=item.nonce,
                gate=gates[item.gate],
                session=sessions[item.session],
                code=item.code,
                direction=item.direction,
                scanned_at=item.scanned_at
                if item.scanned_at.tzinfo is not None
                else item.scanned_at.replace(tzinfo=dt.UTC),
                device_accepted=item.device_accepted,
            )
            for item in payload.scans
        ],
        operator=caller.user,
    )
    return {
        "results": [
            {
                "nonce": result.nonce,
                "outcome": result.outcome,
                "accepted": result.accepted,
                "conflict": result.conflict,
                "replayed": result.replayed,
            }
            for result in results
        ]
    }


@router.get(
    "/checkin/sessions/{session_id}/counts",
    response={200: CountsOut, **RESPONSES},
    summary="Live counts of a session",
    description="Tickets, admitted, inside, conflicts, and admissions per gate."
    + errors_doc(CHECKIN_ERRORS, READ_ERRORS),
)
def checkin_counts(request: HttpRequest, session_id: str) -> dict[str, Any]:
    caller = Caller(request, mutating=False)
    session, _device = _session_for(caller, session_id)
    return session_counts(session).as_json()
