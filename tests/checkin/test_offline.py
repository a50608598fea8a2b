"""Session packs, `OfflineVerifier` (the same rules without a database) and offline sync."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Callable

import pytest

from piaowu.catalog.models import Session
from piaowu.checkin.models import Admission, Scan
from piaowu.checkin.offline import OfflineVerifier, PackError
from piaowu.checkin.pack import session_pack
from piaowu.checkin.selectors import scan_conflicts, session_counts
from piaowu.checkin.services import SyncScan, checkin_sync
from piaowu.core.errors import DomainError
from piaowu.tickets import codec
from piaowu.tickets.models import SigningKey, Ticket
from piaowu.tickets.selectors import ticket_claims, ticket_rotation_secret
from piaowu.tickets.services import signing_key_revoke, ticket_reissue, ticket_void
from tests.checkin.conftest import Door, MakeDoor, session_flags
from tests.checkin.test_scan import flip_bit
from tests.tickets.conftest import MakePaidOrder


def verifier(door: Door) -> OfflineVerifier:
    # Through JSON, as a scanner receives it.
    return OfflineVerifier(json.loads(json.dumps(session_pack(door.session))))


def now_of(door: Door) -> float:
    return door.clock().timestamp()


# --- The pack ---------------------------------------------------------------------------------


def test_the_pack_describes_the_session(door: Door) -> None:
    pack = session_pack(door.session)
    assert pack["format"] == "piaowu.checkin.pack/1"
    assert pack["session"]["id"] == door.session.pk
    assert pack["session"]["public_id"] == door.session.public_id
    assert pack["session"]["reentry_allowed"] is False
    key = SigningKey.objects.get(pk=door.tickets[0].signing_key_id)
    assert pack["keys"] == [
        {
            "kid": key.kid,
            "public_key": base64.b64encode(bytes(key.public_key)).decode(),
            "status": "active",
        }
    ]
    assert pack["rotation"]["keys"] == {}  # not a rotating session
    assert pack["revoked"] == {} and pack["admitted"] == {}
    seat = door.tickets[0].seat
    assert seat is not None
    assert pack["seats"][str(seat.pk)]["label"] == "Row 1, seat 5"
    assert pack["gates"] == [{"id": door.gate.public_id, "name": door.gate.name, "entrances": []}]
    tier = door.tickets[0].tier
    assert pack["tiers"][str(tier.pk)] == {"name": tier.name, "audience": "any"}
    text = json.dumps(pack)
    assert "private" not in text and door.tickets[0].serial not in text


def test_the_pack_lists_revoked_and_admitted_tickets_and_leaves_out_revoked_keys(
    door: Door,
) -> None:
    door.scan(door.qr(0))
    ticket_reissue(ticket=door.tickets[1], actor=None, reason="reprint")
    pack = session_pack(door.session)
    t0, t1 = door.tickets
    assert pack["revoked"] == {str(t1.token): 2}
    assert pack["admitted"][str(t0.token)]["gate"] == door.gate.name
    assert pack["admitted"][str(t0.token)]["inside"] is True
    ticket_void(ticket=t1, actor=None, reason="refund")
    assert session_pack(door.session)["revoked"] == {str(t1.token): 0}
    signing_key_revoke(key=SigningKey.objects.get(pk=t0.signing_key_id))
    kids = {k["kid"] for k in session_pack(door.session)["keys"]}
    assert t0.signing_key.kid not in kids


def test_a_malformed_pack_is_refused() -> None:
    with pytest.raises(PackError):
        OfflineVerifier({"format": "something/else"})
    with pytest.raises(PackError):
        OfflineVerifier({"format": "piaowu.checkin.pack/1"})


# --- OfflineVerifier: the same outcomes as online -------------------------------------------


def test_offline_admits_once_and_remembers(door: Door) -> None:
    offline = verifier(door)
    outcome, claims = offline.check(door.qr(), gate_id=door.gate.public_id, now=now_of(door))
    assert outcome == "valid" and claims is not None and claims.token == door.tickets[0].token
    again, _ = offline.check(door.qr(), gate_id=door.gate.public_id, now=now_of(door))
    assert again == "already_used"


def test_offline_knows_admissions_made_before_the_pack(door: Door) -> None:
    door.scan(door.qr())
    assert verifier(door).check(door.qr(), gate_id=None, now=now_of(door))[0] == "already_used"


def test_offline_outcomes_match_online(door: Door) -> None:
    qr = door.qr()
    offline = verifier(door)
    now = now_of(door)
    cases = {
        "": "unreadable",
        "x" * 10_000: "unreadable",
        "\x00\xff junk": "unreadable",
        "'; DROP TABLE x; --": "unreadable",
        door.tickets[0].serial: "unknown_ticket",  # serials are checked online only
        flip_bit(qr, 14 * 8 + 7): "forged",
        flip_bit(qr, 50 * 8): "forged",
    }
    for text, expected in cases.items():
        assert offline.check(text, gate_id=None, now=now)[0] == expected, text[:20]
    private, _ = codec.new_key_pair()
    claims = ticket_claims(Ticket.objects.select_related("signing_key").get(pk=door.tickets[0].pk))
    assert offline.check(codec.encode(claims, private), gate_id=None, now=now)[0] == "forged"
    other_session = dataclasses.replace(claims, session_id=claims.session_id + 1)
    own_key = bytes(door.tickets[0].signing_key.private_key)
    assert (
        offline.check(codec.encode(other_session, own_key), gate_id=None, now=now)[0]
        == "wrong_session"
    )
    assert offline.check(qr, gate_id=None, now=claims.valid_from - 1)[0] == "not_yet_open"
    assert offline.check(qr, gate_id=None, now=claims.valid_until + 1)[0] == "expired"
    assert offline.check(qr, gate_id=None, now=now, direction="exit")[0] == "not_inside"


def test_offline_revoked_versions_and_void_tickets(door: Door) -> None:
    old = door.qr(0)
    ticket_reissue(ticket=door.tickets[0], actor=None, reason="reprint")
    ticket_void(ticket=door.tickets[1], actor=None, reason="refund")
    offline = verifier(door)
    now = now_of(door)
    assert offline.check(old, gate_id=None, now=now)[0] == "revoked"
    assert offline.check(door.qr(0), gate_id=None, now=now)[0] == "valid"
    void_qr = door.qr(1)
    assert offline.check(void_qr, gate_id=None, now=now)[0] == "revoked"


def test_offline_revoked_key_reads_as_forged(door: Door) -> None:
    qr = door.qr()
    signing_key_revoke(key=SigningKey.objects.get(pk=door.tickets[0].signing_key_id))
    assert verifier(door).check(qr, gate_id=None, now=now_of(door))[0] == "forged"


def test_offline_gate_entrances(
    paid_order: MakePaidOrder, reserved_session: Callable[..., Session], make_door: MakeDoor
) -> None:
    session = reserved_session(entrance="A口")
    tickets = list(Ticket.objects.filter(order=paid_order(session=session)))
    a = make_door(session, entrances="A口", tickets=tickets)
    b = make_door(session, entrances="B口", tickets=tickets)
    a.open_doors()
    offline = verifier(a)
    now = now_of(a)
    assert offline.check(a.qr(), gate_id=b.gate.public_id, now=now)[0] == "wrong_gate"
    assert offline.check(a.qr(), gate_id=a.gate.public_id, now=now)[0] == "valid"


def test_offline_rotating_codes(
    paid_order: MakePaidOrder, reserved_session: Callable[..., Session], make_door: MakeDoor
) -> None:
    session = session_flags(reserved_session(), rotating_qr=True)
    tickets = list(Ticket.objects.filter(order=paid_order(session=session)).order_by("id"))
    door = make_door(session, tickets=tickets)
    door.open_doors()
    offline = verifier(door)
    now = now_of(door)
    ticket = Ticket.objects.select_related("signing_key").get(pk=tickets[0].pk)
    secret = ticket_rotation_secret(ticket)
    live = door.qr(0) + ":" + codec.rotating_code(secret, int(now // 15))
    stale = door.qr(0) + ":" + codec.rotating_code(secret, int(now // 15) - 5)
    assert offline.check(door.qr(0), gate_id=None, now=now)[0] == "code_expired"
    assert offline.check(stale, gate_id=None, now=now)[0] == "code_expired"
    assert offline.check(live, gate_id=None, now=now)[0] == "valid"


def test_offline_reentry(door: Door) -> None:
    session_flags(door.session, reentry_allowed=True)
    offline = verifier(door)
    now = now_of(door)
    steps = [("entry", "valid"), ("entry", "already_used"), ("exit", "exit_recorded"),
             ("exit", "not_inside"), ("entry", "reentry")]  # fmt: skip
    for direction, expected in steps:
        assert offline.check(door.qr(), gate_id=None, now=now, direction=direction)[0] == expected


def test_offline_without_reentry(door: Door) -> None:
    offline = verifier(door)
    now = now_of(door)
    assert offline.check(door.qr(), gate_id=None, now=now)[0] == "valid"
    assert offline.check(door.qr(), gate_id=None, now=now, direction="exit")[0] == "exit_recorded"
    assert offline.check(door.qr(), gate_id=None, now=now)[0] == "already_used"


# --- Sync -------------------------------------------------------------------------------------


def synced(door: Door, code: str, nonce: str, *, accepted: bool = True, **kw: object) -> SyncScan:
    return SyncScan(
        nonce=nonce,
        gate=kw.get("gate", door.gate),  # type: ignore[arg-type]
        session=door.session,
        code=code,
        direction=str(kw.get("direction", "entry")),
        scanned_at=kw.get("at", door.clock()),  # type: ignore[arg-type]
        device_accepted=accepted,
    )


def test_sync_records_offline_admissions(door: Door) -> None:
    results = checkin_sync(
        device=door.device, scans=[synced(door, door.qr(0), "o1"), synced(door, door.qr(1), "o2")]
    )
    assert [(r.nonce, r.outcome, r.conflict, r.replayed) for r in results] == [
        ("o1", "valid", False, False),
        ("o2", "valid", False, False),
    ]
    assert Admission.objects.filter(session=door.session).count() == 2
    assert set(Scan.objects.values_list("source", flat=True)) == {"offline"}


def test_a_scan_the_device_refused_admits_nobody(door: Door) -> None:
    # given an offline device that turned the holder away (say its pack was stale)
    [result] = checkin_sync(
        device=door.device, scans=[synced(door, door.qr(0), "o1", accepted=False)]
    )
    # then the sync records it without admitting the ticket
    assert (result.outcome, result.accepted, result.conflict) == ("turned_away", False, False)
    assert not Admission.objects.filter(session=door.session).exists()
    # and the holder still gets in at the next gate
    again = checkin_sync(device=door.device, scans=[synced(door, door.qr(0), "o2")])
    assert again[0].outcome == "valid"


def test_a_replayed_batch_changes_nothing(door: Door) -> None:
    batch = [
        synced(door, door.qr(0), "o1"),
        synced(door, door.qr(0), "o2", direction="exit"),
        synced(door, "junk", "o3", accepted=False),
    ]
    first = checkin_sync(device=door.device, scans=batch)
    before = (
        list(Scan.objects.order_by("id").values_list("nonce", "outcome")),
        list(Admission.objects.values_list("ticket_id", "inside", "entries", "last_at")),
    )
    again = checkin_sync(device=door.device, scans=batch)
    after = (
        list(Scan.objects.order_by("id").values_list("nonce", "outcome")),
        list(Admission.objects.values_list("ticket_id", "inside", "entries", "last_at")),
    )
    assert before == after
    assert [r.outcome for r in again] == [r.outcome for r in first]
    assert all(r.replayed for r in again) and not any(r.replayed for r in first)


def test_two_offline_devices_admitting_one_ticket_make_a_conflict(
    door: Door, make_door: MakeDoor
) -> None:
    other = make_door(door.session)
    t = door.clock()
    a = checkin_sync(device=door.device, scans=[synced(door, door.qr(), "a1", at=t)])
    b = checkin_sync(
        device=other.device,
        scans=[synced(other, door.qr(), "b1", gate=other.gate, at=t + dt.timedelta(minutes=1))],
    )
    assert (a[0].outcome, a[0].conflict) == ("valid", False)
    assert (b[0].outcome, b[0].accepted, b[0].conflict) == ("already_used", False, True)
    conflicts = list(scan_conflicts(door.session))
    assert [(s.nonce, s.device_id) for s in conflicts] == [("b1", other.device.pk)]
    assert session_counts(door.session).conflicts == 1
    assert Admission.objects.filter(session=door.session).count() == 1


def test_a_device_that_refused_the_second_scan_is_no_conflict(
    door: Door, make_door: MakeDoor
) -> None:
    other = make_door(door.session)
    door.scan(door.qr())
    result = checkin_sync(
        device=other.device, scans=[synced(other, door.qr(), "b1", gate=other.gate, accepted=False)]
    )
    assert (result[0].outcome, result[0].conflict) == ("turned_away", False)
    assert not scan_conflicts(door.session).exists()


def test_sync_checks_each_scan_as_of_when_it_was_made(door: Door) -> None:
    # Scanned inside the window, synced after it closed: still a valid admission.
    scanned = door.clock()
    door.clock.shift(door.tickets[0].valid_until - door.clock() + dt.timedelta(hours=1))
    result = checkin_sync(device=door.device, scans=[synced(door, door.qr(), "o1", at=scanned)])
    assert result[0].outcome == "valid"
    assert Admission.objects.get(ticket=door.tickets[0]).first_at == scanned


def test_sync_applies_scans_in_the_order_they_were_made(door: Door) -> None:
    session_flags(door.session, reentry_allowed=True)
    t = door.clock()
    batch = [
        synced(door, door.qr(), "late-entry", at=t + dt.timedelta(minutes=2)),
        synced(door, door.qr(), "exit", at=t + dt.timedelta(minutes=1), direction="exit"),
        synced(door, door.qr(), "entry", at=t),
    ]
    results = checkin_sync(device=door.device, scans=batch)
    assert [r.outcome for r in results] == ["reentry", "exit_recorded", "valid"]


def test_sync_refuses_bad_batches_and_records_nothing(door: Door) -> None:
    with pytest.raises(DomainError) as caught:
        checkin_sync(
            device=door.device,
            scans=[synced(door, door.qr(), "same"), synced(door, door.qr(1), "same")],
        )
    assert caught.value.code == "invalid_input"
    with pytest.raises(DomainError) as caught:
        checkin_sync(
            device=door.device, scans=[synced(door, door.qr(), f"n{i}") for i in range(501)]
        )
    assert caught.value.code == "invalid_input"
    with pytest.raises(DomainError) as caught:
        checkin_sync(device=door.device, scans=[synced(door, door.qr(), "x" * 65)])
    assert caught.value.code == "invalid_input"
    assert not Scan.objects.exists()


# --- The worked example of docs/checkin.md ----------------------------------------------------

DOC_QR = (
    "PW1AEA2DMWD2RAAAAAAAAAAAAIAAAACUAAAAPUQAAAAA5UVMN4QNFLH3YAAAFOZIDLQMCEWJZ35TTMSBWLT5ISQMPG"
    "ESUQQ7KSQI5MZACM5SINAGWGPRDN3QFSVGICCPFDDW2DHMLQO3676XFMAV7VZUCJ4EYGAUIAH"
)


def doc_pack(**changes: object) -> dict[str, object]:
    pack: dict[str, object] = {
        "format": "piaowu.checkin.pack/1",
        "session": {"id": 42, "reentry_allowed": False},
        "keys": [
            {
                "kid": "a1b2c3d4",
                "public_key": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
                "status": "active",
            }
        ],
        "rotation": {
            "step_seconds": 15,
            "tolerance_steps": 2,
            "keys": {"a1b2c3d4": "OmYmUbGG9rlL+0jsS+J7mLRkQRNsCYZ0qYchwDvDztg="},
        },
        "revoked": {},
        "admitted": {},
        "seats": {"1001": {"label": "", "section": "", "entrance": "A口"}},
        "gates": [{"id": "north", "entrances": ["A口"]}, {"id": "south", "entrances": ["B口"]}],
    }
    pack.update(changes)
    return pack


def test_the_documented_example_checks_as_documented() -> None:
    at = 1767265200.0
    live = DOC_QR + ":MLMUTQF2"
    assert OfflineVerifier(doc_pack()).check(live, gate_id="south", now=at)[0] == "wrong_gate"
    assert OfflineVerifier(doc_pack()).check(DOC_QR, gate_id="north", now=at)[0] == "code_expired"
    outcome, claims = OfflineVerifier(doc_pack()).check(live, gate_id="north", now=at)
    assert outcome == "valid" and claims is not None
    assert (claims.token, claims.session_id, claims.seat_id) == (4611686018427387905, 42, 1001)
    revoked = doc_pack(revoked={"4611686018427387905": 2})
    assert OfflineVerifier(revoked).check(live, gate_id="north", now=at)[0] == "revoked"
    no_keys = doc_pack(keys=[])
    assert OfflineVerifier(no_keys).check(live, gate_id="north", now=at)[0] == "forged"
