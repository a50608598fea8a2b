"""The session pack: what an offline scanner needs to check one session's tickets.

Format `piaowu.checkin.pack/1` (docs/checkin.md describes every field). It carries public
keys, the session's rotation keys (secrets: only registered devices and gate staff get a pack),
the tickets whose older codes no longer admit, the admissions so far, and labels for display.
It never carries the organizer's private keys or buyers' personal data.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from django.conf import settings

from piaowu.catalog.models import PriceTier, Session
from piaowu.checkin.models import Admission, Gate
from piaowu.checkin.verify import parse_entrances
from piaowu.core import clock
from piaowu.tickets import codec
from piaowu.tickets.models import SigningKey, Ticket
from piaowu.tickets.selectors import seat_label
from piaowu.tickets.services import admission_window

PACK_FORMAT = "piaowu.checkin.pack/1"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def session_pack(session: Session, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The pack of `session` as of now (a handful of queries, one row per ticket at most)."""
    now = now or clock.now()
    valid_from, valid_until = admission_window(session)
    keys = list(
        SigningKey.objects.filter(organizer_id=session.event.organizer_id)
        .exclude(status=SigningKey.Status.REVOKED)
        .order_by("created_at", "id")
    )
    rotating = session.rotating_qr or Ticket.objects.filter(session=session, rotating=True).exists()
    revoked: dict[str, int] = {}
    for token, state, version in (
        Ticket.objects.filter(session=session)
        .exclude(state=Ticket.State.VALID, secret_version=1)
        .values_list("token", "state", "secret_version")
    ):
        revoked[str(token)] = 0 if state != Ticket.State.VALID else int(version)
    admitted = {
        str(token): {"at": _iso(at), "gate": gate, "inside": inside}
        for token, at, gate, inside in Admission.objects.filter(session=session).values_list(
            "ticket__token", "first_at", "first_gate__name", "inside"
        )
    }
    tiers = {
        str(tier.pk): {"name": tier.tr("name"), "audience": tier.audience}
        for tier in PriceTier.objects.filter(session=session).order_by("sort_order", "id")
    }
    seats: dict[str, dict[str, str]] = {}
    for ticket in (
        Ticket.objects.filter(session=session, seat__isnull=False)
        .select_related("seat__section")
        .only(
            "seat",
            "seat__row_label",
            "seat__number_label",
            "seat__section",
            "seat__section__name",
            "seat__section__name_en",
            "seat__section__entrance",
        )
    ):
        seat = ticket.seat
        assert seat is not None
        seats[str(seat.pk)] = {
            "label": seat_label(ticket) or "",
            "section": seat.section.tr("name"),
            "entrance": seat.section.entrance,
        }
    gates = [
        {
            "id": gate.public_id,
            "name": gate.name,
            "entrances": sorted(parse_entrances(gate.entrances)),
        }
        for gate in Gate.objects.filter(venue_id=session.venue_id, is_active=True).order_by("name")
    ]
    return {
        "format": PACK_FORMAT,
        "generated_at": _iso(now),
        "session": {
            "id": session.pk,
            "public_id": session.public_id,
            "title": session.event.tr("title"),
            "starts_at": _iso(session.starts_at),
            "reentry_allowed": session.reentry_allowed,
            "valid_from": _iso(valid_from),
            "valid_until": _iso(valid_until),
        },
        "keys": [
            {
                "kid": key.kid,
                "public_key": base64.b64encode(bytes(key.public_key)).decode("ascii"),
                "status": key.status,
            }
            for key in keys
        ],
        "rotation": {
            "step_seconds": int(settings.PIAOWU_ROTATING_QR_STEP_SECONDS),
            "tolerance_steps": int(settings.PIAOWU_ROTATING_QR_TOLERANCE_STEPS),
            "keys": {
                key.kid: base64.b64encode(
                    codec.rotation_key(bytes(key.private_key), session.pk)
                ).decode("ascii")
                for key in keys
            }
            if rotating
            else {},
        },
        "revoked": revoked,
        "admitted": admitted,
        "tiers": tiers,
        "seats": seats,
        "gates": gates,
    }
