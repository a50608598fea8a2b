"""`OfflineVerifier`: what a scanner without a network does with a session pack.

Pure Python, no database, no Django: give it the pack (`GET …/sessions/{id}/pack`, format
`piaowu.checkin.pack/1`, see docs/checkin.md) and call `check` for each scan. It runs the same
rules as the online service (`checkin.verify`) and remembers the admissions it grants, so the
same ticket scanned twice at this device is `already_used`. Admissions at other devices since
the pack was made are unknown to it: the sync (`POST /checkin/sync`) finds those and flags the
double admissions as conflicts.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from piaowu.checkin import verify
from piaowu.tickets import codec

PACK_FORMAT = "piaowu.checkin.pack/1"


class PackError(ValueError):
    """The pack is not a `piaowu.checkin.pack/1` document."""


@dataclass(slots=True)
class _Inside:
    inside: bool


class _PackKnowledge:
    def __init__(self, pack: dict[str, Any]) -> None:
        self.keys: dict[str, Ed25519PublicKey] = {}
        for key in pack.get("keys", []):
            if key.get("status") in {"active", "retired"}:
                raw = base64.b64decode(key["public_key"])
                self.keys[key["kid"]] = Ed25519PublicKey.from_public_bytes(raw)
        rotation = pack.get("rotation") or {}
        self.rotation_keys = {
            kid: base64.b64decode(value) for kid, value in (rotation.get("keys") or {}).items()
        }
        self.revoked = {int(token): int(v) for token, v in (pack.get("revoked") or {}).items()}
        self.entrances = {
            int(seat_id): str(seat.get("entrance") or "")
            for seat_id, seat in (pack.get("seats") or {}).items()
        }

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self.keys.get(kid)

    def rotation_key(self, kid: str, session_id: int) -> bytes | None:
        return self.rotation_keys.get(kid)

    def seat_entrance(self, seat_id: int) -> str:
        return self.entrances.get(seat_id, "")

    def ticket_status(self, token: int) -> verify.TicketStatus:
        version = self.revoked.get(token)
        if version is None:
            return verify.TicketStatus()
        if version == 0:
            return verify.TicketStatus(void=True)
        return verify.TicketStatus(secret_version=version)


class OfflineVerifier:
    """Checks scans against one session pack and keeps this device's admissions."""

    def __init__(self, pack: dict[str, Any]) -> None:
        if not isinstance(pack, dict) or pack.get("format") != PACK_FORMAT:
            raise PackError(f"not a {PACK_FORMAT} document")
        try:
            session = pack["session"]
            self.session_id = int(session["id"])
            self.reentry_allowed = bool(session.get("reentry_allowed", False))
            rotation = pack.get("rotation") or {}
            self.step_seconds = int(rotation.get("step_seconds", 15))
            self.tolerance_steps = int(rotation.get("tolerance_steps", 2))
            self.knowledge = _PackKnowledge(pack)
            self.gates = {
                str(gate["id"]): frozenset(str(e) for e in gate.get("entrances", []) if e)
                for gate in pack.get("gates", [])
            }
            self.admitted: dict[int, _Inside] = {
                int(token): _Inside(bool(entry.get("inside", True)))
                for token, entry in (pack.get("admitted") or {}).items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise PackError(f"malformed pack: {exc}") from exc

    def check(
        self, text: str, *, gate_id: str | None, now: float, direction: str = verify.ENTRY
    ) -> tuple[str, codec.Claims | None]:
        """The outcome of one scan at `now` (Unix seconds) and the ticket's claims (None when
        the code could not be trusted). Accepted entries and exits are remembered.

        A typed serial is `unknown_ticket` here: the pack has no serial index, so serials are
        checked online only."""
        reading = verify.read(text)
        if reading is None:
            return verify.UNREADABLE, None
        if reading.parsed is None:
            return verify.UNKNOWN_TICKET, None
        claims = reading.parsed.claims
        entrances = self.gates.get(gate_id, frozenset()) if gate_id is not None else frozenset()
        failure = verify.verify(
            claims,
            parsed=reading.parsed,
            check=verify.Check(
                session_id=self.session_id,
                gate_entrances=entrances,
                now=now,
                direction=direction,
                step_seconds=self.step_seconds,
                tolerance_steps=self.tolerance_steps,
            ),
            knowledge=self.knowledge,
        )
        if failure is not None:
            return failure, None if failure == verify.FORGED else claims
        state = self.admitted.get(claims.token)
        outcome = verify.admission_decision(
            direction=direction,
            admitted=state is not None,
            inside=state.inside if state is not None else False,
            reentry_allowed=self.reentry_allowed,
        )
        if outcome in {verify.VALID, verify.REENTRY}:
            self.admitted[claims.token] = _Inside(True)
        elif outcome == verify.EXIT_RECORDED and state is not None:
            state.inside = False
        return outcome, claims
