"""The rules a scan goes through, in order — shared by the online service and `OfflineVerifier`.

Pure Python, no database: the caller supplies what it knows through a `Knowledge` (the online
service reads the database, an offline scanner reads its session pack). The order is part of
the contract (docs/checkin.md) because it decides which outcome a bad code gets:

1. read: a typed serial (`codec.normalize_serial`) or a QR text (`codec.parse`); neither →
   `unreadable`; a well-formed serial we never issued → `unknown_ticket`;
2. key by kid: unknown, revoked, or not a key of the gate's organizer → `forged`;
3. signature → `forged` (skipped for a typed serial: the checker read it off the ticket);
4. session: the ticket is for another session than the scanner's → `wrong_session`;
5. gate: the gate lists entrances and the seat's section entrance is not one of them →
   `wrong_gate` (GA tickets and sections without an entrance pass; exits skip this);
6. window: before `valid_from` → `not_yet_open`, after `valid_until` → `expired` (exits skip);
7. revocation: a signed ticket the server never issued → `unknown_ticket`; a void ticket, or
   a secret version other than the current one → `revoked`;
8. rotating: the flag is set and the `:code` is missing or not valid for the current step ±
   tolerance → `code_expired` (skipped for a typed serial);
9. admission: `valid` / `reentry` / `already_used` / `exit_recorded` / `not_inside`
   (see `admission_decision`; the online service does it with conditional SQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from piaowu.tickets import codec

VALID = "valid"
REENTRY = "reentry"
EXIT_RECORDED = "exit_recorded"
ALREADY_USED = "already_used"
WRONG_SESSION = "wrong_session"
WRONG_GATE = "wrong_gate"
NOT_YET_OPEN = "not_yet_open"
EXPIRED = "expired"
REVOKED = "revoked"
FORGED = "forged"
CODE_EXPIRED = "code_expired"
UNREADABLE = "unreadable"
UNKNOWN_TICKET = "unknown_ticket"
NOT_INSIDE = "not_inside"
# Synced only: the offline device refused the person, and whatever the server would have said,
# nobody got in — so nothing is admitted (else the real holder would later read "already used").
TURNED_AWAY = "turned_away"

# Every outcome and whether the person may pass.
OUTCOMES: dict[str, bool] = {
    VALID: True,
    REENTRY: True,
    EXIT_RECORDED: True,
    ALREADY_USED: False,
    WRONG_SESSION: False,
    WRONG_GATE: False,
    NOT_YET_OPEN: False,
    EXPIRED: False,
    REVOKED: False,
    FORGED: False,
    CODE_EXPIRED: False,
    UNREADABLE: False,
    UNKNOWN_TICKET: False,
    NOT_INSIDE: False,
    TURNED_AWAY: False,
}

ENTRY = "entry"
EXIT = "exit"
DIRECTIONS = (ENTRY, EXIT)


@dataclass(frozen=True, slots=True)
class Reading:
    """What the scanner read: a parsed QR (`parsed`) or a typed serial (`serial`)."""

    parsed: codec.ParsedCode | None = None
    serial: str | None = None


def read(text: str) -> Reading | None:
    """Step 1 without the lookup: a serial, a QR payload, or None (`unreadable`)."""
    if not isinstance(text, str) or not text.strip():
        return None
    serial = codec.normalize_serial(text)
    if serial is not None:
        return Reading(serial=serial)
    try:
        return Reading(parsed=codec.parse(text))
    except ValueError:  # codec.CodeError, or anything odd junk makes the decoder raise
        return None


@dataclass(frozen=True, slots=True)
class TicketStatus:
    """What the verifier knows of the ticket now: whether it exists (an online verifier can
    tell), void, and its current secret version (None when the verifier does not know the
    ticket beyond its signed claims — offline)."""

    known: bool = True
    void: bool = False
    secret_version: int | None = None


class Knowledge(Protocol):
    """What the verifier needs from its world (database online, pack offline)."""

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The key `kid` if it may verify tickets at this gate (the gate organizer's key, not
        revoked); else None."""

    def rotation_key(self, kid: str, session_id: int) -> bytes | None:
        """The session's rotation key for tickets signed by `kid` (None: unknown)."""

    def seat_entrance(self, seat_id: int) -> str:
        """The entrance of the seat's section ("" when unknown or none)."""

    def ticket_status(self, token: int) -> TicketStatus:
        """The ticket's current state, as far as known."""


@dataclass(frozen=True, slots=True)
class Check:
    """The scanner's side of one scan."""

    session_id: int
    gate_entrances: frozenset[str]  # empty: the gate admits every entrance
    now: float  # Unix seconds
    direction: str = ENTRY
    step_seconds: int = 15
    tolerance_steps: int = 2


def verify(
    claims: codec.Claims,
    *,
    parsed: codec.ParsedCode | None,
    check: Check,
    knowledge: Knowledge,
) -> str | None:
    """Steps 2–8 for `claims` (from `parsed`, or from the database for a typed serial, then
    `parsed` is None and the signature and rotating steps are skipped). Returns the failing
    outcome, or None when the ticket may go on to admission."""
    key = knowledge.public_key(claims.kid)
    if key is None:
        return FORGED
    if parsed is not None and not parsed.verify(key):
        return FORGED
    if claims.session_id != check.session_id:
        return WRONG_SESSION
    if check.direction == ENTRY:
        if check.gate_entrances and claims.seat_id:
            entrance = knowledge.seat_entrance(claims.seat_id)
            if entrance and entrance not in check.gate_entrances:
                return WRONG_GATE
        if check.now < claims.valid_from:
            return NOT_YET_OPEN
        if check.now > claims.valid_until:
            return EXPIRED
    status = knowledge.ticket_status(claims.token)
    if not status.known:
        return UNKNOWN_TICKET
    if status.void or (
        status.secret_version is not None and status.secret_version != claims.secret_version
    ):
        return REVOKED
    if parsed is not None and claims.rotating:
        if parsed.rotating_code is None:
            return CODE_EXPIRED
        rotation = knowledge.rotation_key(claims.kid, claims.session_id)
        if rotation is None:
            return CODE_EXPIRED
        secret = codec.ticket_rotation_secret(rotation, claims.token, claims.secret_version)
        if not codec.rotating_code_valid(
            secret, parsed.rotating_code, check.now, check.step_seconds, check.tolerance_steps
        ):
            return CODE_EXPIRED
    return None


def admission_decision(
    *, direction: str, admitted: bool, inside: bool, reentry_allowed: bool
) -> str:
    """Step 9 as a table: what a scan does to a ticket that is (not) admitted and (not) inside.
    The online service reaches the same answers with one INSERT / conditional UPDATE each."""
    if direction == EXIT:
        return EXIT_RECORDED if admitted and inside else NOT_INSIDE
    if not admitted:
        return VALID
    if not inside and reentry_allowed:
        return REENTRY
    return ALREADY_USED


def parse_entrances(text: str) -> frozenset[str]:
    """A gate's `entrances` field ("A口, B口") as a set."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())
