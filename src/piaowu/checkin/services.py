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
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from piaowu.accounts.models import User
from piaowu.catalog.models import Seat, Session, Venue
from piaowu.checkin import verify
from piaowu.checkin.models import Admission, Device, Gate, Scan
from piaowu.core import clock
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


def _ticket_query() -> QuerySet[Ticket]:
    return Ticket.objects.select_related("signing_key", "seat__section", "tier")


def _sanitize(raw: str) -> str:
    # PostgreSQL text holds neither NUL nor lone surrogates; the log keeps what it can.
    text = raw[:RAW_CHARS].encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text


def _check_place(*, device: Device, gate: Gate, session: Session, direction: str) -> None:
    if not device.is_active:
        error = DomainError("device_unauthorized", _("This scanner has been switched off."))
        error.status = 401
        raise error
    if gate.venue_id != device.venue_id:
        error = DomainError("device_wrong_venue", _("This scanner belongs to another venue."))
        error.status = 403
        raise error
    if gate.venue_id != session.venue_id:
        raise DomainError(
            "gate_wrong_venue",
            _("This gate is not at the session's venue."),
            {"gate": gate.public_id, "session": session.public_id},
        )
    if not gate.is_active:
        raise DomainError("gate_inactive", _("This gate is closed."), {"gate": gate.public_id})
    if direction not in verify.DIRECTIONS:
        raise DomainError(
            "invalid_input",
            _("Some fields are not valid."),
            {"fields": {"direction": _("entry or exit")}},
        )


def _check_nonce(nonce: str) -> None:
    printable = isinstance(nonce, str) and nonce.isprintable()
    if not printable or not 1 <= len(nonce) <= MAX_NONCE or _sanitize(nonce) != nonce:
        raise DomainError(
            "invalid_input",
            _("Some fields are not valid."),
            {"fields": {"nonce": _("1 to 64 characters, unique per scanner.")}},
        )


def _verify(
    code: str, *, session: Session, gate: Gate, direction: str, at: dt.datetime
) -> tuple[str | None, Ticket | None]:
    """Steps 1–8 online: (failing outcome or None, the ticket when the code is trusted)."""
    reading = verify.read(code)
    if reading is None:
        return verify.UNREADABLE, None
    parsed = reading.parsed
    if reading.serial is not None:
        ticket = _ticket_query().filter(serial=reading.serial).first()
        if ticket is None:
            return verify.UNKNOWN_TICKET, None
        claims = ticket_claims(ticket)
    else:
        assert parsed is not None
        claims = parsed.claims
        ticket = _ticket_query().filter(token=claims.token).first()
    failure = verify.verify(
        claims,
        parsed=parsed,
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


def _admit(
    *,
    ticket: Ticket,
    session: Session,
    gate: Gate,
    device: Device,
    direction: str,
    at: dt.datetime,
) -> tuple[str, Admission | None]:
    """Step 9 in the caller's transaction: one INSERT or conditional UPDATE decides."""
    if direction == verify.EXIT:
        left = Admission.objects.filter(ticket=ticket, inside=True).update(inside=False, last_at=at)
        return (verify.EXIT_RECORDED if left else verify.NOT_INSIDE), None
    row = Admission(
        ticket=ticket,
        session_id=ticket.session_id,
        first_at=at,
        first_gate=gate,
        first_device=device,
        last_at=at,
    )
    if _unsafe():
        # TEST-ONLY control: read, pause, then write as if nobody else could be scanning.
        seen = Admission.objects.filter(ticket=ticket).exists()
        time.sleep(UNSAFE_PAUSE_SECONDS)
        if not seen:
            Admission.objects.bulk_create([row], ignore_conflicts=True)
            return verify.VALID, None
    else:
        try:
            with transaction.atomic():
                row.save(force_insert=True)
            return verify.VALID, None
        except IntegrityError:
            pass
    if session.reentry_allowed:
        back = Admission.objects.filter(ticket=ticket, inside=False).update(
            inside=True, entries=F("entries") + 1, last_at=at
        )
        if back:
            return verify.REENTRY, None
    first = Admission.objects.select_related("first_gate").get(ticket=ticket)
    return verify.ALREADY_USED, first


def _replay(scan: Scan) -> ScanResult:
    ticket = None
    first = None
    if scan.ticket_id is not None:
        ticket = _ticket_query().get(pk=scan.ticket_id)
        if scan.outcome == verify.ALREADY_USED:
            admission = Admission.objects.select_related("first_gate").filter(ticket=ticket).first()
            if admission is not None:
                first = (admission.first_at, admission.first_gate.name)
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
            first: Admission | None = None
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
            Scan.objects.create(
                device=device,
                nonce=nonce,
                gate=gate,
                session=session,
                ticket=ticket,
                direction=direction,
                source=source,
                raw=_sanitize(code),
                outcome=outcome,
                accepted=OUTCOMES[outcome],
                device_accepted=device_accepted,
                conflict=conflict,
                scanned_at=scanned_at,
                recorded_at=clock.now(),
                operator=operator,
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
        first_admission=(first.first_at, first.first_gate.name) if first is not None else None,
        conflict=conflict,
        nonce=nonce,
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
    _check_nonce(nonce)
    _check_place(device=device, gate=gate, session=session, direction=direction)
    return _record(
        device=device,
        gate=gate,
        session=session,
        code=code,
        nonce=nonce,
        direction=direction,
        scanned_at=clock.now(),
        source=Scan.Source.ONLINE,
        device_accepted=None,
        operator=operator,
    )


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
