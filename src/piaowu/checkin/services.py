"""Every write of check-in: gates, devices, scans (online and synced) and admissions.

Single use is kept by the database: the first admitting scan INSERTs the ticket's one
`Admission` row (unique per ticket); every other scan of the ticket fails that INSERT in a
savepoint and reads `already_used`. Re-entry flips `Admission.inside` with one conditional
UPDATE each way. Every scan writes its `Scan` row in the same transaction as its effect; the row
is unique per (device, nonce), so a retried scan — or a replayed offline batch — rolls back
whatever it did and answers the first scan's stored outcome (`replayed`).

Keys: each process keeps the organizer keys it has used in a small LRU keyed by kid. An entry
is trusted for `KEY_STATUS_TTL_SECONDS` (5 s) and then its status is read again, so a revoked
key stops verifying within 5 seconds in every worker, without a query per scan.

`PIAOWU_CHECKIN_UNSAFE_ADMISSION` (tests only) replaces the INSERT with read-then-write and a
pause, for the control run that shows two gates admitting the same ticket without the guard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from piaowu.accounts.models import User
from piaowu.catalog.models import Seat, Session, Venue
from piaowu.checkin import verify
from piaowu.checkin.models import Admission, Device, Gate, Scan
from piaowu.checkin.selectors import (
    devices_by_token_hash,
    gate_not_found,
    gates_by_public_id,
    session_not_found,
    sessions_by_public_id,
    ticket_for_scan,
    tickets_for_scan,
)
from piaowu.core import clock, rawsql
from piaowu.core.errors import DomainError
from piaowu.tickets import codec
from piaowu.tickets.models import SigningKey, Ticket
from piaowu.tickets.selectors import ticket_claims

OUTCOMES = verify.OUTCOMES

# The one-liner a checker reads on the scanner, per outcome.
OUTCOME_MESSAGES = {
    verify.VALID: gettext_lazy("Welcome — admit."),
    verify.REENTRY: gettext_lazy("Re-entry — admit."),
    verify.EXIT_RECORDED: gettext_lazy("Exit recorded."),
    verify.ALREADY_USED: gettext_lazy("Already used — do not admit."),
    verify.WRONG_SESSION: gettext_lazy("Ticket for another session."),
    verify.WRONG_GATE: gettext_lazy("Wrong gate — send to the entrance on the ticket."),
    verify.NOT_YET_OPEN: gettext_lazy("Doors are not open yet for this ticket."),
    verify.EXPIRED: gettext_lazy("Admission time is over for this ticket."),
    verify.REVOKED: gettext_lazy("Ticket revoked (refunded, exchanged or reprinted)."),
    verify.FORGED: gettext_lazy("Not a genuine ticket — do not admit."),
    verify.CODE_EXPIRED: gettext_lazy("Code expired — ask for the live ticket page."),
    verify.UNREADABLE: gettext_lazy("Not a ticket code."),
    verify.UNKNOWN_TICKET: gettext_lazy("No ticket with this number."),
    verify.NOT_INSIDE: gettext_lazy("This ticket is not inside."),
    verify.TURNED_AWAY: gettext_lazy("Refused by the gate device while offline; not admitted."),
}

KEY_STATUS_TTL_SECONDS = 5.0
KEY_CACHE_SIZE = 256
MAX_NONCE = 64
MAX_SYNC_BATCH = 500
RAW_CHARS = 400
UNSAFE_PAUSE_SECONDS = 0.05
# How often a device's last_seen_at is written (each write is an UPDATE on the scan path).
_SEEN_EVERY = dt.timedelta(seconds=60)


# --- Keys -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Key:
    organizer_id: int
    status: str
    public: Ed25519PublicKey
    private: bytes
    read_at: float
    rotation: dict[int, bytes] = field(default_factory=dict)


_keys: OrderedDict[str, _Key] = OrderedDict()
_keys_lock = threading.Lock()


def key_cache_clear() -> None:
    """Forget every cached key (tests; a key status change is picked up within the TTL
    anyway)."""
    with _keys_lock:
        _keys.clear()


def _key(kid: str) -> _Key | None:
    now = time.monotonic()
    with _keys_lock:
        entry = _keys.get(kid)
        if entry is not None and now - entry.read_at < KEY_STATUS_TTL_SECONDS:
            _keys.move_to_end(kid)
            return entry
    row = (
        SigningKey.objects.filter(kid=kid)
        .values_list("organizer_id", "status", "public_key", "private_key")
        .first()
    )
    if row is None:
        with _keys_lock:
            _keys.pop(kid, None)
        return None
    organizer_id, status, public, private = row
    if entry is not None and bytes(public) == entry.public.public_bytes_raw():
        entry.status, entry.read_at = status, now  # same key, fresh status
    else:
        entry = _Key(
            organizer_id=organizer_id,
            status=status,
            public=Ed25519PublicKey.from_public_bytes(bytes(public)),
            private=bytes(private),
            read_at=now,
        )
    with _keys_lock:
        _keys[kid] = entry
        _keys.move_to_end(kid)
        while len(_keys) > KEY_CACHE_SIZE:
            _keys.popitem(last=False)
    return entry


class _DatabaseKnowledge:
    """`verify.Knowledge` from the database, for scans at a gate of `organizer_id`."""

    def __init__(self, organizer_id: int, ticket: Ticket | None) -> None:
        self.organizer_id = organizer_id
        self.ticket = ticket

    def _usable(self, kid: str) -> _Key | None:
        key = _key(kid)
        if key is None or key.organizer_id != self.organizer_id:
            return None
        if key.status == SigningKey.Status.REVOKED:
            return None
        return key

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._usable(kid)
        return key.public if key is not None else None

    def rotation_key(self, kid: str, session_id: int) -> bytes | None:
        key = self._usable(kid)
        if key is None:
            return None
        rotation = key.rotation.get(session_id)
        if rotation is None:
            rotation = codec.rotation_key(key.private, session_id)
            key.rotation[session_id] = rotation
        return rotation

    def seat_entrance(self, seat_id: int) -> str:
        ticket = self.ticket
        if ticket is not None and ticket.seat_id == seat_id and ticket.seat is not None:
            return ticket.seat.section.entrance
        entrance = (
            Seat.objects.filter(pk=seat_id).values_list("section__entrance", flat=True).first()
        )
        return entrance or ""

    def ticket_status(self, token: int) -> verify.TicketStatus:
        ticket = self.ticket
        if ticket is None or ticket.token != token:
            return verify.TicketStatus(known=False)
        return verify.TicketStatus(
            void=ticket.state != Ticket.State.VALID, secret_version=ticket.secret_version
        )


# --- Gates and devices ------------------------------------------------------------------------


def _clean_entrances(entrances: str) -> str:
    return ",".join(sorted(verify.parse_entrances(entrances)))


def gate_create(*, venue: Venue, name: str, entrances: str = "") -> Gate:
    """A gate of `venue`; `entrances` lists the section entrances it admits (comma separated,
    blank: all). Errors: `invalid_input` (details.fields), `gate_name_taken`."""
    name = name.strip()
    if not name or len(name) > 60:
        raise DomainError(
            "invalid_input",
            _("Some fields are not valid."),
            {"fields": {"name": _("Give the gate a name of at most 60 characters.")}},
        )
    cleaned = _clean_entrances(entrances)
    if len(cleaned) > 200:
        raise DomainError(
            "invalid_input",
            _("Some fields are not valid."),
            {"fields": {"entrances": _("At most 200 characters.")}},
        )
    try:
        with transaction.atomic():
            return Gate.objects.create(venue=venue, name=name, entrances=cleaned)
    except IntegrityError:
        raise DomainError(
            "gate_name_taken",
            _("This venue already has a gate with this name."),
            {"fields": {"name": _("This venue already has a gate with this name.")}},
        ) from None


def gate_update(
    *, gate: Gate, name: str | None = None, entrances: str | None = None, active: bool | None = None
) -> Gate:
    """Rename a gate, change its entrances or (de)activate it. Errors as `gate_create`."""
    values: dict[str, object] = {}
    if name is not None:
        name = name.strip()
        if not name or len(name) > 60:
            raise DomainError(
                "invalid_input",
                _("Some fields are not valid."),
                {"fields": {"name": _("Give the gate a name of at most 60 characters.")}},
            )
        values["name"] = name
    if entrances is not None:
        values["entrances"] = _clean_entrances(entrances)
    if active is not None:
        values["is_active"] = active
    try:
        with transaction.atomic():
            Gate.objects.filter(pk=gate.pk).update(**values)
    except IntegrityError:
        raise DomainError(
            "gate_name_taken",
            _("This venue already has a gate with this name."),
            {"fields": {"name": _("This venue already has a gate with this name.")}},
        ) from None
    gate.refresh_from_db()
    return gate


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def device_register(*, venue: Venue, name: str, actor: User | None) -> tuple[Device, str]:
    """A scanner for `venue`. Returns the device and its token — shown this once: only its
    SHA-256 is stored. Errors: `invalid_input` (details.fields)."""
    name = name.strip()
    if not name or len(name) > 60:
        raise DomainError(
            "invalid_input",
            _("Some fields are not valid."),
            {"fields": {"name": _("Give the device a name of at most 60 characters.")}},
        )
    token = secrets.token_urlsafe(32)
    device = Device.objects.create(
        venue=venue,
        name=name,
        token_hash=token_hash(token),
        created_by=actor,
        created_at=clock.now(),
    )
    return device, token


def device_deactivate(*, device: Device, actor: User | None = None) -> Device:
    """The device's token stops working at once (lost or stolen scanner). Harmless twice."""
    Device.objects.filter(pk=device.pk).update(is_active=False)
    device.is_active = False
    return device


def device_for_staff(*, user: User, venue: Venue) -> Device:
    """The browser scanner of a signed-in checker at `venue`, made on first use (one per user
    and venue; its token is random and never shown: the browser signs in instead). Two first
    scans at once: the partial unique index lets one insert win; the other reads it."""
    device = Device.objects.filter(venue=venue, browser_user=user).first()
    if device is not None:
        return device
    label = (user.get_full_name() or user.email or str(user.pk))[:50]
    try:
        with transaction.atomic():
            return Device.objects.create(
                venue=venue,
                name=f"browser · {label}",
                token_hash=token_hash(secrets.token_urlsafe(32)),
                browser_user=user,
                created_by=user,
                created_at=clock.now(),
            )
    except IntegrityError:
        return Device.objects.get(venue=venue, browser_user=user)


def device_touch(*, device: Device, pack: bool = False) -> None:
    """Note that the device called (at most one write a minute), or fetched a pack."""
    now = clock.now()
    values: dict[str, object] = {}
    if device.last_seen_at is None or now - device.last_seen_at > _SEEN_EVERY:
        values["last_seen_at"] = now
    if pack:
        values["last_pack_at"] = now
    if values:
        Device.objects.filter(pk=device.pk).update(**values)
        for name, value in values.items():
            setattr(device, name, value)


# --- Scans ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The answer to one scan (see `OUTCOMES`)."""

    outcome: str
    accepted: bool
    replayed: bool
    ticket: Ticket | None  # None when the code could not be trusted (unreadable, forged …)
    first_admission: tuple[dt.datetime, str] | None = None  # (when, gate name): already_used
    conflict: bool = False
    nonce: str = ""

    @property
    def message(self) -> str:
        return str(OUTCOME_MESSAGES[self.outcome])


@dataclass(frozen=True, slots=True)
class SyncScan:
    """One scan an offline device made (see `checkin_sync`)."""

    nonce: str
    gate: Gate
    session: Session
    code: str
    direction: str
    scanned_at: dt.datetime
    device_accepted: bool


def _unsafe() -> bool:
    return bool(getattr(settings, "PIAOWU_CHECKIN_UNSAFE_ADMISSION", False))


def _sanitize(raw: str) -> str:
    # PostgreSQL text holds neither NUL nor lone surrogates; the log keeps what it can.
    text = raw[:RAW_CHARS].encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text


def _check_place(*, device: Device, gate: Gate, session: Session, direction: str) -> None:
    if not device.is_active:
        error = DomainError(
            "device_unauthorized", gettext_lazy("This scanner has been switched off.")
        )
        error.status = 401
        raise error
    if gate.venue_id != device.venue_id:
        raise device_wrong_venue()
    if gate.venue_id != session.venue_id:
        raise DomainError(
            "gate_wrong_venue",
            gettext_lazy("This gate is not at the session's venue."),
            {"gate": gate.public_id, "session": session.public_id},
        )
    if not gate.is_active:
        raise DomainError(
            "gate_inactive", gettext_lazy("This gate is closed."), {"gate": gate.public_id}
        )
    if direction not in verify.DIRECTIONS:
        raise DomainError(
            "invalid_input",
            gettext_lazy("Some fields are not valid."),
            {"fields": {"direction": gettext_lazy("entry or exit")}},
        )


def _check_nonce(nonce: str) -> None:
    printable = isinstance(nonce, str) and nonce.isprintable()
    if not printable or not 1 <= len(nonce) <= MAX_NONCE or _sanitize(nonce) != nonce:
        raise DomainError(
            "invalid_input",
            gettext_lazy("Some fields are not valid."),
            {"fields": {"nonce": gettext_lazy("1 to 64 characters, unique per scanner.")}},
        )


def _verify(
    code: str, *, session: Session, gate: Gate, direction: str, at: dt.datetime
) -> tuple[str | None, Ticket | None]:
    """Steps 1–8 online: (failing outcome or None, the ticket when the code is trusted)."""
    reading = verify.read(code)
    if reading is None:
        return verify.UNREADABLE, None
    if reading.serial is not None:
        ticket = ticket_for_scan(serial=reading.serial)
        if ticket is None:
            return verify.UNKNOWN_TICKET, None
        claims = ticket_claims(ticket)
    else:
        assert reading.parsed is not None
        claims = reading.parsed.claims
        ticket = ticket_for_scan(token=claims.token)
    return _judge(claims, reading, ticket, session=session, gate=gate, direction=direction, at=at)


def _judge(
    claims: codec.Claims,
    reading: verify.Reading,
    ticket: Ticket | None,
    *,
    session: Session,
    gate: Gate,
    direction: str,
    at: dt.datetime,
) -> tuple[str | None, Ticket | None]:
    """The verdict of steps 2–8 on a read code and the ticket it names (None: unknown)."""
    failure = verify.verify(
        claims,
        parsed=reading.parsed,
        check=verify.Check(
            session_id=session.pk,
            gate_entrances=verify.parse_entrances(gate.entrances),
            now=at.timestamp(),
            direction=direction,
            step_seconds=int(settings.PIAOWU_ROTATING_QR_STEP_SECONDS),
            tolerance_steps=int(settings.PIAOWU_ROTATING_QR_TOLERANCE_STEPS),
        ),
        knowledge=_DatabaseKnowledge(gate.venue.organizer_id, ticket),
    )
    if failure == verify.FORGED:
        return failure, None
    if failure is None and ticket is None:
        return verify.UNKNOWN_TICKET, None
    return failure, ticket


_ADMIT_SQL = rawsql.compose(
    """
INSERT INTO {admission}
    (ticket_id, session_id, first_at, first_gate_id, first_device_id, inside, entries, last_at)
VALUES (%s, %s, %s, %s, %s, %s, 1, %s)
ON CONFLICT (ticket_id) DO NOTHING
RETURNING id
""",
    admission=Admission,
)
_LEAVE_SQL = rawsql.compose(
    "UPDATE {admission} SET inside = %s, last_at = %s WHERE ticket_id = %s AND inside = %s",
    admission=Admission,
)
_REENTER_SQL = rawsql.compose(
    "UPDATE {admission} SET inside = %s, entries = entries + 1, last_at = %s "
    "WHERE ticket_id = %s AND inside = %s",
    admission=Admission,
)
_FIRST_ADMISSION_SQL = rawsql.compose(
    "SELECT a.first_at, g.name FROM {admission} a JOIN {gate} g ON g.id = a.first_gate_id "
    "WHERE a.ticket_id = %s",
    admission=Admission,
    gate=Gate,
)
_SCAN_SQL = rawsql.compose(
    """
INSERT INTO {scan}
    (device_id, nonce, gate_id, session_id, ticket_id, direction, source, raw, outcome,
     accepted, device_accepted, conflict, scanned_at, recorded_at, operator_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
""",
    scan=Scan,
)


# The batch's statements: their VALUES lists vary with the batch, so they are not prepared.
_ADMIT_MANY_SQL = rawsql.compose(
    """
INSERT INTO {admission}
    (ticket_id, session_id, first_at, first_gate_id, first_device_id, inside, entries, last_at)
VALUES {{rows}}
ON CONFLICT (ticket_id) DO NOTHING
RETURNING ticket_id
""",
    admission=Admission,
)
_ADMIT_ROW = "(%s, %s, %s, %s, %s, %s, 1, %s)"
# Right before admitting: which of these tickets are still valid, share-locked until the
# commit, so a refund or exchange voiding one of them waits for this scan (and then finds the
# admission), and a scan after a void finds it void. SQLite serialises writers instead.
_STILL_VALID_SQL = rawsql.compose(
    "SELECT id FROM {ticket} WHERE id IN ({{ids}}) AND state = 'valid'{{lock}}", ticket=Ticket
)
_LOG_MANY_SQL = rawsql.compose(
    """
INSERT INTO {scan}
    (device_id, nonce, gate_id, session_id, ticket_id, direction, source, raw, outcome,
     accepted, device_accepted, conflict, scanned_at, recorded_at, operator_id)
VALUES {{rows}}
ON CONFLICT (device_id, nonce) DO NOTHING
RETURNING id
""",
    scan=Scan,
)
_FIRST_ADMISSIONS_SQL = rawsql.compose(
    "SELECT a.ticket_id, a.first_at, g.name FROM {admission} a "
    "JOIN {gate} g ON g.id = a.first_gate_id WHERE a.ticket_id IN ({{values}})",
    admission=Admission,
    gate=Gate,
)


def _first_admissions(ticket_ids: set[int]) -> dict[int, tuple[dt.datetime, str]]:
    """When and at which gate each of these tickets first got in."""
    if not ticket_ids:
        return {}
    sql = _FIRST_ADMISSIONS_SQL.format(values=rawsql.placeholders(len(ticket_ids)))
    firsts = {}
    for ticket_id, first_at, gate_name in rawsql.fetch_all(sql, sorted(ticket_ids), prepare=False):
        at = rawsql.to_datetime(first_at)
        assert at is not None
        firsts[ticket_id] = (at, str(gate_name))
    return firsts


def _first_admission(ticket_id: int) -> tuple[dt.datetime, str] | None:
    row = rawsql.fetch_one(_FIRST_ADMISSION_SQL, [ticket_id])
    if row is None:
        return None
    at = rawsql.to_datetime(row[0])
    assert at is not None
    return at, str(row[1])


def _admit(
    *,
    ticket: Ticket,
    session: Session,
    gate: Gate,
    device: Device,
    direction: str,
    at: dt.datetime,
) -> tuple[str, tuple[dt.datetime, str] | None]:
    """Step 9 in the caller's transaction: one INSERT or conditional UPDATE decides. Returns
    the outcome and, for `already_used`, when and at which gate the ticket got in."""
    if direction == verify.EXIT:
        left = rawsql.execute(_LEAVE_SQL, [False, at, ticket.pk, True])
        return (verify.EXIT_RECORDED if left else verify.NOT_INSIDE), None
    if _unsafe():
        # TEST-ONLY control: read, pause, then write as if nobody else could be scanning.
        seen = Admission.objects.filter(ticket=ticket).exists()
        time.sleep(UNSAFE_PAUSE_SECONDS)
        if not seen:
            Admission.objects.bulk_create(
                [
                    Admission(
                        ticket=ticket,
                        session_id=ticket.session_id,
                        first_at=at,
                        first_gate=gate,
                        first_device=device,
                        last_at=at,
                    )
                ],
                ignore_conflicts=True,
            )
            return verify.VALID, None
    elif not _still_valid([ticket.pk]):
        return verify.REVOKED, None
    elif rawsql.fetch_one(
        _ADMIT_SQL, [ticket.pk, ticket.session_id, at, gate.pk, device.pk, True, at]
    ):
        return verify.VALID, None
    if session.reentry_allowed and rawsql.execute(_REENTER_SQL, [True, at, ticket.pk, False]):
        return verify.REENTRY, None
    return verify.ALREADY_USED, _first_admission(ticket.pk)


def _replay(scan: Scan) -> ScanResult:
    ticket = None
    first = None
    if scan.ticket_id is not None:
        ticket = ticket_for_scan(
            token=Ticket.objects.values_list("token", flat=True).get(pk=scan.ticket_id)
        )
        if scan.outcome == verify.ALREADY_USED:
            first = _first_admission(scan.ticket_id)
    return ScanResult(
        outcome=scan.outcome,
        accepted=scan.accepted,
        replayed=True,
        ticket=ticket,
        first_admission=first,
        conflict=scan.conflict,
        nonce=scan.nonce,
    )


def _record(
    *,
    device: Device,
    gate: Gate,
    session: Session,
    code: str,
    nonce: str,
    direction: str,
    scanned_at: dt.datetime,
    source: str,
    device_accepted: bool | None,
    operator: User | None,
) -> ScanResult:
    # No read of the nonce first: a retried scan is rare, and the (device, nonce) unique index
    # turns it into an IntegrityError below, which rolls back whatever it did.
    failure, ticket = _verify(code, session=session, gate=gate, direction=direction, at=scanned_at)
    try:
        with transaction.atomic():
            first: tuple[dt.datetime, str] | None = None
            if failure is None and source == Scan.Source.OFFLINE and device_accepted is False:
                outcome = verify.TURNED_AWAY
            elif failure is None:
                assert ticket is not None
                outcome, first = _admit(
                    ticket=ticket,
                    session=session,
                    gate=gate,
                    device=device,
                    direction=direction,
                    at=scanned_at,
                )
            else:
                outcome = failure
            conflict = bool(
                source == Scan.Source.OFFLINE
                and device_accepted
                and direction == verify.ENTRY
                and outcome == verify.ALREADY_USED
            )
            # The nonce's unique index: a concurrent retry of this scan waits here for us, then
            # fails and rolls back whatever it did (see the IntegrityError below).
            rawsql.execute(
                _SCAN_SQL,
                [
                    device.pk,
                    nonce,
                    gate.pk,
                    session.pk,
                    ticket.pk if ticket is not None else None,
                    direction,
                    source,
                    _sanitize(code),
                    outcome,
                    OUTCOMES[outcome],
                    device_accepted,
                    conflict,
                    scanned_at,
                    clock.now(),
                    operator.pk if operator is not None else None,
                ],
            )
    except IntegrityError:
        stored = Scan.objects.filter(device=device, nonce=nonce).first()
        if stored is None:
            raise
        return _replay(stored)
    return ScanResult(
        outcome=outcome,
        accepted=OUTCOMES[outcome],
        replayed=False,
        ticket=ticket,
        first_admission=first,
        conflict=conflict,
        nonce=nonce,
    )


@dataclass(frozen=True, slots=True)
class ScanAttempt:
    """One online scan as a gate sends it: the gate and session by public id, and either a
    scanner's token (`device_token`) or the staff browser's device already found
    (`device`, with the signed-in `operator`)."""

    gate: str
    session: str
    code: str
    nonce: str
    direction: str = verify.ENTRY
    device_token: str | None = None
    device: Device | None = None
    operator: User | None = None


def device_unauthorized() -> DomainError:
    """401: no usable scanner token and no signed-in gate staff (API and scan lane alike)."""
    error = DomainError(
        "device_unauthorized",
        gettext_lazy("Scan with a registered device, or sign in as gate staff."),
    )
    error.status = 401
    return error


def device_wrong_venue() -> DomainError:
    error = DomainError(
        "device_wrong_venue", gettext_lazy("This scanner belongs to another venue.")
    )
    error.status = 403
    return error


@dataclass(slots=True)
class _Pending:
    """A scan of the batch that passed the checks, on its way to the database."""

    index: int
    device: Device
    gate: Gate
    session: Session
    attempt: ScanAttempt
    failure: str | None = None
    ticket: Ticket | None = None
    outcome: str = ""
    first: tuple[dt.datetime, str] | None = None


class _NonceTaken(Exception):
    """A scan of the batch reused a nonce already stored: undo the batch, answer it a replay."""


def checkin_scan_many(attempts: list[ScanAttempt]) -> list[ScanResult | DomainError]:
    """Check and record a batch of online scans, each answered as `checkin_scan` would.

    Why batches: at a busy venue dozens of gates scan at once, and a scan's cost is mostly the
    statements around it, not its checks. The batch reads its scanners, gates, sessions and
    tickets in one statement each, admits every plain entry with one `INSERT … ON CONFLICT
    DO NOTHING` (single use is still the unique admission per ticket: of two scans of one
    ticket in a batch the first is admitted, the other answers `already_used`), logs every
    scan with one INSERT and commits once. Exits, re-entry sessions and the test-only unsafe
    mode take the one-at-a-time path (`_record`). A reused nonce undoes the batch; its scan
    answers `replayed` and the rest are recorded again.

    Results come back in the order of `attempts`: a `ScanResult`, or the `DomainError` that
    refused the scan (nothing recorded for it)."""
    results: list[ScanResult | DomainError | None] = [None] * len(attempts)
    devices = devices_by_token_hash(
        {token_hash(a.device_token) for a in attempts if a.device_token is not None}
    )
    gates = gates_by_public_id({a.gate for a in attempts})
    sessions = sessions_by_public_id({a.session for a in attempts})
    now = clock.now()
    batch: list[_Pending] = []
    alone: list[_Pending] = []
    touched: set[int] = set()
    for index, attempt in enumerate(attempts):
        try:
            device, gate, session = _place(attempt, devices, gates, sessions)
            _check_nonce(attempt.nonce)
            _check_place(device=device, gate=gate, session=session, direction=attempt.direction)
        except DomainError as error:
            results[index] = error
            continue
        if device.pk not in touched:
            touched.add(device.pk)
            device_touch(device=device)
        pending = _Pending(index, device, gate, session, attempt)
        simple = attempt.direction == verify.ENTRY and not session.reentry_allowed
        (batch if simple and not _unsafe() else alone).append(pending)
    for pending in alone:
        results[pending.index] = _record(
            device=pending.device,
            gate=pending.gate,
            session=pending.session,
            code=pending.attempt.code,
            nonce=pending.attempt.nonce,
            direction=pending.attempt.direction,
            scanned_at=now,
            source=Scan.Source.ONLINE,
            device_accepted=None,
            operator=pending.attempt.operator,
        )
    if batch:
        _verify_batch(batch, now)
        for pending, result in zip(batch, _record_batch(batch, now), strict=True):
            results[pending.index] = result
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def _place(
    attempt: ScanAttempt,
    devices: dict[str, Device],
    gates: dict[str, Gate],
    sessions: dict[str, Session],
) -> tuple[Device, Gate, Session]:
    """Who scans where, refused in the order the API documents: 401, gate 404, 403, session
    404."""
    if attempt.device is not None:
        device: Device | None = attempt.device
    elif attempt.device_token is not None:
        device = devices.get(token_hash(attempt.device_token))
    else:
        device = None
    if device is None or not device.is_active:
        raise device_unauthorized()
    gate = gates.get(attempt.gate)
    if gate is None:
        raise gate_not_found(attempt.gate)
    if gate.venue_id != device.venue_id:
        raise device_wrong_venue()
    session = sessions.get(attempt.session)
    if session is None:
        raise session_not_found(attempt.session)
    return device, gate, session


def _verify_batch(batch: list[_Pending], at: dt.datetime) -> None:
    """Steps 1–8 for every scan of the batch, with one read of all their tickets."""
    readings = [verify.read(pending.attempt.code) for pending in batch]
    tokens = {r.parsed.claims.token for r in readings if r is not None and r.parsed is not None}
    serials = {r.serial for r in readings if r is not None and r.serial is not None}
    tickets = tickets_for_scan(tokens=tokens, serials=serials)
    by_token = {ticket.token: ticket for ticket in tickets}
    by_serial = {ticket.serial: ticket for ticket in tickets}
    for pending, reading in zip(batch, readings, strict=True):
        if reading is None:
            pending.failure = verify.UNREADABLE
            continue
        if reading.serial is not None:
            ticket = by_serial.get(reading.serial)
            if ticket is None:
                pending.failure = verify.UNKNOWN_TICKET
                continue
            claims = ticket_claims(ticket)
        else:
            assert reading.parsed is not None
            claims = reading.parsed.claims
            ticket = by_token.get(claims.token)
        pending.failure, pending.ticket = _judge(
            claims,
            reading,
            ticket,
            session=pending.session,
            gate=pending.gate,
            direction=pending.attempt.direction,
            at=at,
        )


def _record_batch(batch: list[_Pending], at: dt.datetime) -> list[ScanResult]:
    """Step 9 and the log for the batch, in one transaction (see `checkin_scan_many`)."""
    seen: set[tuple[int, str]] = set()
    first_tries: list[_Pending] = []
    repeats: list[_Pending] = []
    for pending in batch:  # the same nonce twice in one batch: the later ones replay
        key = (pending.device.pk, pending.attempt.nonce)
        (repeats if key in seen else first_tries).append(pending)
        seen.add(key)
    try:
        with transaction.atomic():
            _admit_batch(first_tries, at)
            _log_batch(first_tries, at)
    except _NonceTaken:
        return _after_nonce_taken(batch, at)
    answers = {id(p): _result(p) for p in first_tries}
    for pending in repeats:
        answers[id(pending)] = _replay_of(pending)
    return [answers[id(pending)] for pending in batch]


def _still_valid(ticket_ids: list[int]) -> set[int]:
    if not ticket_ids:
        return set()
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    sql = _STILL_VALID_SQL.format(ids=rawsql.placeholders(len(ticket_ids)), lock=lock)
    return {row[0] for row in rawsql.fetch_all(sql, ticket_ids, prepare=False)}


def _admit_batch(batch: list[_Pending], at: dt.datetime) -> None:
    admitting: dict[int, _Pending] = {}
    for pending in batch:
        if pending.failure is not None:
            pending.outcome = pending.failure
            continue
        assert pending.ticket is not None
        pending.outcome = verify.ALREADY_USED  # unless its admission goes in below
        admitting.setdefault(pending.ticket.pk, pending)
    valid = _still_valid(list(admitting))
    for ticket_id in [t for t in admitting if t not in valid]:
        for pending in batch:
            if pending.ticket is not None and pending.ticket.pk == ticket_id:
                pending.outcome = verify.REVOKED
        del admitting[ticket_id]
    if admitting:
        rows = [
            [p.ticket.pk, p.ticket.session_id, at, p.gate.pk, p.device.pk, True, at]
            for p in admitting.values()
            if p.ticket is not None
        ]
        admitted = {
            row[0]
            for row in rawsql.fetch_all(
                _ADMIT_MANY_SQL.format(rows=", ".join([_ADMIT_ROW] * len(rows))),
                [value for row in rows for value in row],
                prepare=False,
            )
        }
        for ticket_id in admitted:
            admitting[ticket_id].outcome = verify.VALID
    used = {p.ticket.pk for p in batch if p.outcome == verify.ALREADY_USED and p.ticket}
    firsts = _first_admissions(used)
    for pending in batch:
        if pending.outcome == verify.ALREADY_USED and pending.ticket is not None:
            pending.first = firsts.get(pending.ticket.pk)


def _log_batch(batch: list[_Pending], at: dt.datetime) -> None:
    rows = [
        [
            p.device.pk,
            p.attempt.nonce,
            p.gate.pk,
            p.session.pk,
            p.ticket.pk if p.ticket is not None else None,
            p.attempt.direction,
            Scan.Source.ONLINE,
            _sanitize(p.attempt.code),
            p.outcome,
            OUTCOMES[p.outcome],
            None,
            False,
            at,
            at,
            p.attempt.operator.pk if p.attempt.operator is not None else None,
        ]
        for p in batch
    ]
    placeholders = "(" + rawsql.placeholders(15) + ")"
    logged = rawsql.fetch_all(
        _LOG_MANY_SQL.format(rows=", ".join([placeholders] * len(rows))),
        [value for row in rows for value in row],
        prepare=False,
    )
    if len(logged) != len(batch):
        raise _NonceTaken


def _after_nonce_taken(batch: list[_Pending], at: dt.datetime) -> list[ScanResult]:
    """Some nonce of the batch was already stored (a retry): those scans replay their stored
    answer, the others are recorded again without them."""
    stored = {
        (scan.device_id, scan.nonce): scan
        for scan in Scan.objects.filter(
            device_id__in={p.device.pk for p in batch},
            nonce__in={p.attempt.nonce for p in batch},
        )
    }
    fresh = [p for p in batch if (p.device.pk, p.attempt.nonce) not in stored]
    answers: dict[int, ScanResult] = {}
    if fresh:
        for pending in fresh:
            pending.outcome, pending.first = "", None
        for pending, result in zip(fresh, _record_batch(fresh, at), strict=True):
            answers[id(pending)] = result
    for pending in batch:
        scan = stored.get((pending.device.pk, pending.attempt.nonce))
        if scan is not None:
            answers[id(pending)] = _replay(scan)
    return [answers[id(pending)] for pending in batch]


def _replay_of(pending: _Pending) -> ScanResult:
    scan = Scan.objects.get(device_id=pending.device.pk, nonce=pending.attempt.nonce)
    return _replay(scan)


def _result(pending: _Pending) -> ScanResult:
    return ScanResult(
        outcome=pending.outcome,
        accepted=OUTCOMES[pending.outcome],
        replayed=False,
        ticket=pending.ticket,
        first_admission=pending.first,
        nonce=pending.attempt.nonce,
    )


def checkin_scan(
    *,
    device: Device,
    gate: Gate,
    session: Session,
    code: str,
    nonce: str,
    direction: str = verify.ENTRY,
    operator: User | None = None,
) -> ScanResult:
    """Check a code scanned now at `gate` for `session` and admit (or let out) its ticket.

    A refused ticket is an answer, not an error: see `OUTCOMES`. The same (device, nonce) again
    answers the first scan's outcome with `replayed` and changes nothing. Errors (the scan is
    not recorded): `device_unauthorized` (device switched off), `device_wrong_venue` (403),
    `gate_wrong_venue`, `gate_inactive`, `invalid_input` (nonce, direction)."""
    attempt = ScanAttempt(
        gate=gate.public_id,
        session=session.public_id,
        code=code,
        nonce=nonce,
        direction=direction,
        device=device,
        operator=operator,
    )
    (result,) = checkin_scan_many([attempt])
    if isinstance(result, DomainError):
        raise result
    return result


def checkin_sync(
    *, device: Device, scans: list[SyncScan], operator: User | None = None
) -> list[ScanResult]:
    """Record what an offline device scanned, in the order it scanned (by `scanned_at`).

    Each scan is checked as of its `scanned_at` (a device clock ahead of ours counts as now)
    and recorded in its own transaction, so a batch cut off half-way can simply be sent again:
    scans already recorded answer `replayed`. An entry the device admitted that the server
    finds `already_used` (another gate admitted the ticket first) is flagged `conflict`; a scan
    the device refused admits nobody (`turned_away` when the server would have admitted it).
    Results come back in the order of `scans`. Errors (nothing recorded): `invalid_input` (more
    than 500 scans, a nonce twice in the batch, a bad nonce or direction), plus those of
    `checkin_scan` for any scan's gate and session."""
    if len(scans) > MAX_SYNC_BATCH:
        raise DomainError(
            "invalid_input",
            _("Send at most %(n)s scans at a time.") % {"n": MAX_SYNC_BATCH},
            {"fields": {"scans": _("At most %(n)s.") % {"n": MAX_SYNC_BATCH}}},
        )
    if len({scan.nonce for scan in scans}) != len(scans):
        raise DomainError(
            "invalid_input",
            _("Each scan of a batch needs its own nonce."),
            {"fields": {"nonce": _("Repeated within the batch.")}},
        )
    for scan in scans:
        _check_nonce(scan.nonce)
        _check_place(device=device, gate=scan.gate, session=scan.session, direction=scan.direction)
    now = clock.now()
    results: dict[str, ScanResult] = {}
    for scan in sorted(scans, key=lambda s: s.scanned_at):
        results[scan.nonce] = _record(
            device=device,
            gate=scan.gate,
            session=scan.session,
            code=scan.code,
            nonce=scan.nonce,
            direction=scan.direction,
            scanned_at=min(scan.scanned_at, now),
            source=Scan.Source.OFFLINE,
            device_accepted=scan.device_accepted,
            operator=operator,
        )
    return [results[scan.nonce] for scan in scans]
