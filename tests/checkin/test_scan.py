"""Online scans: every outcome, in the verification order, through `checkin_scan`."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest
from pytest_django import DjangoAssertNumQueries

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import Session
from piaowu.checkin import services
from piaowu.checkin.models import Admission, Scan
from piaowu.checkin.services import checkin_scan, device_deactivate, device_register, gate_create
from piaowu.core.errors import DomainError
from piaowu.tickets import codec
from piaowu.tickets.models import SigningKey, Ticket
from piaowu.tickets.selectors import ticket_claims, ticket_qr_text, ticket_rotation_secret
from piaowu.tickets.services import (
    signing_key_revoke,
    signing_key_rotate,
    ticket_reissue,
    ticket_void,
)
from tests.checkin.conftest import Door, MakeDoor, nonce, session_flags
from tests.tickets.conftest import MakePaidOrder


def flip_bit(text: str, position: int) -> str:
    """The QR text with one bit of the signed blob flipped."""
    body = text[3:]
    blob = bytearray(base64.b32decode(body + "=" * (-len(body) % 8)))
    blob[position // 8] ^= 1 << (position % 8)
    return "PW1" + base64.b32encode(bytes(blob)).decode().rstrip("=")


# --- Accepted ---------------------------------------------------------------------------------


def test_a_genuine_ticket_is_admitted_once(door: Door) -> None:
    first = door.scan(door.qr())
    assert (first.outcome, first.accepted, first.replayed) == ("valid", True, False)
    assert first.ticket is not None and first.ticket.pk == door.tickets[0].pk
    admission = Admission.objects.get(ticket=door.tickets[0])
    assert admission.first_gate == door.gate and admission.inside

    second = door.scan(door.qr())
    assert (second.outcome, second.accepted) == ("already_used", False)
    assert second.first_admission is not None
    assert second.first_admission[1] == door.gate.name
    assert second.first_admission[0] == admission.first_at
    assert Admission.objects.filter(ticket=door.tickets[0]).count() == 1
    assert Scan.objects.filter(ticket=door.tickets[0]).count() == 2


def test_already_used_at_another_gate_names_the_first_gate(door: Door, make_door: MakeDoor) -> None:
    other = make_door(door.session)
    door.scan(door.qr())
    again = other.scan(door.qr())
    assert again.outcome == "already_used"
    assert again.first_admission is not None and again.first_admission[1] == door.gate.name


def test_a_typed_serial_admits_and_accepts_sloppy_typing(door: Door) -> None:
    serial = door.tickets[1].serial
    sloppy = serial.replace("-", " ").lower()
    assert door.scan(sloppy).outcome == "valid"
    assert door.scan(serial).outcome == "already_used"


def test_each_ticket_of_an_order_is_admitted_on_its_own(door: Door) -> None:
    assert door.scan(door.qr(0)).outcome == "valid"
    assert door.scan(door.qr(1)).outcome == "valid"


# --- Unreadable and unknown -------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "x" * 10_000,
        "PW1" + "A" * 10_000,
        "\x00\x01\x02\xff\ud800junk",
        "'; DROP TABLE checkin_scan; --",
        "PW1' OR 1=1 --",
        "PW1AAAA",
        "https://example.com/?t=1",
        "票务",
    ],
    ids=[
        "empty",
        "blank",
        "10kB",
        "10kB-prefixed",
        "binary",
        "sql",
        "sql-prefixed",
        "short",
        "url",
        "cjk",
    ],
)
def test_garbage_is_unreadable_and_logged(door: Door, garbage: str) -> None:
    result = door.scan(garbage)
    assert (result.outcome, result.accepted, result.ticket) == ("unreadable", False, None)
    scan = Scan.objects.get(device=door.device, outcome="unreadable")
    assert len(scan.raw) <= 400 and "\x00" not in scan.raw
    assert not Admission.objects.exists()


def test_a_wellformed_serial_we_never_issued_is_unknown(door: Door) -> None:
    serial = codec.new_serial()
    assert serial not in {t.serial for t in door.tickets}
    result = door.scan(serial)
    assert (result.outcome, result.ticket) == ("unknown_ticket", None)


def test_a_serial_with_a_wrong_check_character_is_unreadable(door: Door) -> None:
    serial = door.tickets[0].serial
    last = serial[-1]
    wrong = serial[:-1] + ("0" if last != "0" else "1")
    assert door.scan(wrong).outcome == "unreadable"


def test_a_truncated_qr_is_unreadable(door: Door) -> None:
    assert door.scan(door.qr()[:-8]).outcome == "unreadable"


# --- Forged -----------------------------------------------------------------------------------


# Bits of: the key id, the token, the secret version, the signature (start and end).
@pytest.mark.parametrize("bit", [2 * 8 + 3, 14 * 8 + 1, 34 * 8, 36 * 8 + 5, 99 * 8 + 7])
def test_a_flipped_bit_is_forged_or_unreadable_never_valid(door: Door, bit: int) -> None:
    # Flipping a claims bit breaks the signature (or the key id / format); flipping a
    # signature bit breaks the signature.
    result = door.scan(flip_bit(door.qr(), bit))
    assert result.outcome in {"forged", "unreadable"}
    assert not result.accepted and result.ticket is None
    assert not Admission.objects.exists()


def test_a_flipped_token_bit_is_forged(door: Door) -> None:
    assert door.scan(flip_bit(door.qr(), 14 * 8 + 7)).outcome == "forged"


def test_a_ticket_signed_with_a_key_we_do_not_know_is_forged(door: Door) -> None:
    private, _public = codec.new_key_pair()
    claims = ticket_claims(Ticket.objects.select_related("signing_key").get(pk=door.tickets[0].pk))
    assert door.scan(codec.encode(claims, private)).outcome == "forged"  # our kid, wrong key
    unknown_kid = dataclasses.replace(claims, kid="deadbeef")
    assert door.scan(codec.encode(unknown_kid, private)).outcome == "forged"


def test_a_revoked_key_is_forged_and_reissued_tickets_work_again(door: Door) -> None:
    old_qr = door.qr()
    key = SigningKey.objects.get(pk=door.tickets[0].signing_key_id)
    signing_key_revoke(key=key)
    services.key_cache_clear()
    assert door.scan(old_qr).outcome == "forged"
    ticket_reissue(ticket=door.tickets[0], actor=None, reason="key revoked")
    assert door.scan(door.qr()).outcome == "valid"


def test_a_revoked_key_stops_verifying_within_the_cache_ttl(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    qr0, qr1 = door.qr(0), door.qr(1)
    assert door.scan(qr0).outcome == "valid"  # the key is cached now
    signing_key_revoke(key=SigningKey.objects.get(pk=door.tickets[0].signing_key_id))
    later = services.time.monotonic() + services.KEY_STATUS_TTL_SECONDS + 0.1
    monkeypatch.setattr(services.time, "monotonic", lambda: later)
    assert door.scan(qr1).outcome == "forged"


def test_a_retired_key_still_verifies(door: Door, organizer: Organizer) -> None:
    qr = door.qr()
    signing_key_rotate(organizer=organizer)
    assert door.scan(qr).outcome == "valid"


def test_a_qr_of_another_organizer_is_forged(door: Door, other_organizer: Organizer) -> None:
    # A genuine ticket of another organizer, even re-signed by that organizer for our session.
    ticket = _rival_ticket(other_organizer)
    claims = dataclasses.replace(ticket_claims(ticket), session_id=door.session.pk)
    rival_qr = codec.encode(claims, bytes(ticket.signing_key.private_key))
    assert door.scan(rival_qr).outcome == "forged"
    assert door.scan(ticket.serial).outcome == "forged"
    assert not Admission.objects.exists()


def _rival_ticket(organizer: Organizer) -> Ticket:
    from piaowu.catalog.models import CapacityMode
    from piaowu.inventory.services import hold_quantity
    from piaowu.orders.services import order_checkout, order_mark_paid
    from tests.factories import make_event, make_session, make_venue
    from tests.orders.conftest import PHONE, web_channel

    venue = make_venue(organizer, name="对手场馆")
    event = make_event(organizer, title="对手演出")
    session = make_session(event, venue=venue, capacity_mode=CapacityMode.GENERAL, capacity=5)
    hold = hold_quantity(session=session, tier_code="std", quantity=1, holder_key="rival")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="rival", contact_phone=PHONE
    )
    order_mark_paid(order=order)
    ticket = Ticket.objects.select_related("signing_key").get(order=order)
    assert ticket.organizer_id == organizer.pk
    return ticket


# --- Session, gate, window --------------------------------------------------------------------


def test_a_ticket_for_another_session_is_wrong_session(
    door: Door, paid_order: MakePaidOrder
) -> None:
    # Another session at the same venue: the scanner chose door.session.
    other = paid_order(session=_same_venue_session(door.session))
    ticket = Ticket.objects.select_related("signing_key").filter(order=other).first()
    assert ticket is not None
    result = door.scan(ticket_qr_text(ticket))
    assert result.outcome == "wrong_session"
    assert result.ticket is not None and result.ticket.pk == ticket.pk
    assert door.scan(ticket.serial).outcome == "wrong_session"
    assert not Admission.objects.exists()


def _same_venue_session(session: Session) -> Session:
    from tests.factories import make_event, make_session

    event = make_event(session.event.organizer, title="加场")
    return make_session(
        event, venue=session.venue, hall=session.hall, starts_in=dt.timedelta(days=3, hours=5)
    )


def test_wrong_gate_by_section_entrance(
    paid_order: MakePaidOrder, reserved_session: Callable[..., Session], make_door: MakeDoor
) -> None:
    session = reserved_session(entrance="A口")
    tickets = list(Ticket.objects.filter(order=paid_order(session=session)))
    wrong = make_door(session, entrances="B口, C口", tickets=tickets)
    right = make_door(session, entrances="A口,B口", tickets=tickets)
    every = make_door(session, tickets=tickets)
    wrong.open_doors()
    result = wrong.scan(wrong.qr(0))
    assert result.outcome == "wrong_gate" and result.ticket is not None
    assert wrong.scan(tickets[0].serial).outcome == "wrong_gate"
    assert right.scan(right.qr(0)).outcome == "valid"
    assert every.scan(every.qr(1)).outcome == "valid"  # a gate without entrances takes all


def test_ga_tickets_pass_any_gate(paid_order: MakePaidOrder, make_door: MakeDoor) -> None:
    order = paid_order(ga=2)
    tickets = list(Ticket.objects.filter(order=order))
    door = make_door(order.session, entrances="A口", tickets=tickets)
    door.open_doors()
    assert door.scan(door.qr(0)).outcome == "valid"


def test_before_doors_open_and_after_the_window(door: Door) -> None:
    ticket = door.tickets[0]
    door.clock.shift(ticket.valid_from - door.clock() - dt.timedelta(seconds=5))
    early = door.scan(door.qr())
    assert early.outcome == "not_yet_open" and early.ticket is not None
    door.clock.shift(ticket.valid_until - door.clock() + dt.timedelta(seconds=5))
    assert door.scan(door.qr()).outcome == "expired"
    assert door.scan(ticket.serial).outcome == "expired"
    assert not Admission.objects.exists()


def test_the_edges_of_the_window_admit(door: Door) -> None:
    ticket = door.tickets[0]
    door.clock.shift(ticket.valid_from - door.clock())
    assert door.scan(door.qr(0)).outcome == "valid"
    door.clock.shift(ticket.valid_until - door.clock() - dt.timedelta(seconds=1))
    assert door.scan(door.qr(1)).outcome == "valid"


# --- Revocation -------------------------------------------------------------------------------


def test_a_reissued_ticket_revokes_its_old_code_and_paper(door: Door) -> None:
    old = door.qr()
    ticket_reissue(ticket=door.tickets[0], actor=None, reason="reprint")
    result = door.scan(old)
    assert result.outcome == "revoked" and result.ticket is not None
    assert door.scan(door.qr()).outcome == "valid"


def test_a_void_ticket_is_revoked_by_qr_and_serial(door: Door) -> None:
    qr = door.qr()
    ticket_void(ticket=door.tickets[0], actor=None, reason="refund")
    assert door.scan(qr).outcome == "revoked"
    assert door.scan(door.tickets[0].serial).outcome == "revoked"
    assert not Admission.objects.exists()


# --- Rotating codes ---------------------------------------------------------------------------


@pytest.fixture
def rotating_door(
    paid_order: MakePaidOrder, reserved_session: Callable[..., Session], make_door: MakeDoor
) -> Door:
    session = session_flags(reserved_session(), rotating_qr=True)
    tickets = list(Ticket.objects.filter(order=paid_order(session=session)).order_by("id"))
    assert all(t.rotating for t in tickets)
    door = make_door(session, tickets=tickets)
    door.open_doors()
    return door


def rotating_text(door: Door, index: int, at: dt.datetime) -> str:
    ticket = Ticket.objects.select_related("signing_key").get(pk=door.tickets[index].pk)
    secret = ticket_rotation_secret(ticket)
    step = int(at.timestamp() // 15)
    return door.qr(index) + ":" + codec.rotating_code(secret, step)


def test_a_rotating_ticket_needs_its_live_code(rotating_door: Door) -> None:
    door = rotating_door
    assert door.scan(door.qr(0)).outcome == "code_expired"  # a screenshot of the static part
    assert door.scan(rotating_text(door, 0, door.clock())).outcome == "valid"


def test_a_stale_rotating_code_is_expired_but_a_slightly_late_one_passes(
    rotating_door: Door,
) -> None:
    door = rotating_door
    now = door.clock()
    stale = rotating_text(door, 0, now - dt.timedelta(seconds=15 * 4))
    assert door.scan(stale).outcome == "code_expired"
    late = rotating_text(door, 0, now - dt.timedelta(seconds=15))
    assert door.scan(late).outcome == "valid"


def test_a_rotating_code_of_another_ticket_is_expired(rotating_door: Door) -> None:
    door = rotating_door
    other_code = rotating_text(door, 1, door.clock()).rsplit(":", 1)[1]
    assert door.scan(door.qr(0) + ":" + other_code).outcome == "code_expired"


def test_a_typed_serial_of_a_rotating_ticket_skips_the_code(rotating_door: Door) -> None:
    assert rotating_door.scan(rotating_door.tickets[0].serial).outcome == "valid"


# --- Exit and re-entry ------------------------------------------------------------------------


def test_exit_without_entry_is_not_inside(door: Door) -> None:
    result = door.scan(door.qr(), direction="exit")
    assert (result.outcome, result.accepted) == ("not_inside", False)
    assert not Admission.objects.exists()


def test_reentry_allowed(door: Door) -> None:
    session_flags(door.session, reentry_allowed=True)
    assert door.scan(door.qr()).outcome == "valid"
    assert door.scan(door.qr()).outcome == "already_used"  # still inside
    assert door.scan(door.qr(), direction="exit").outcome == "exit_recorded"
    assert door.scan(door.qr(), direction="exit").outcome == "not_inside"
    assert door.scan(door.qr()).outcome == "reentry"
    admission = Admission.objects.get(ticket=door.tickets[0])
    assert (admission.entries, admission.inside) == (2, True)


def test_no_reentry_after_an_exit_when_the_session_forbids_it(door: Door) -> None:
    assert not door.session.reentry_allowed
    assert door.scan(door.qr()).outcome == "valid"
    assert door.scan(door.qr(), direction="exit").outcome == "exit_recorded"
    assert door.scan(door.qr()).outcome == "already_used"
    admission = Admission.objects.get(ticket=door.tickets[0])
    assert (admission.entries, admission.inside) == (1, False)


def test_exits_ignore_the_gate_entrance(
    paid_order: MakePaidOrder, reserved_session: Callable[..., Session], make_door: MakeDoor
) -> None:
    session = reserved_session(entrance="A口")
    tickets = list(Ticket.objects.filter(order=paid_order(session=session)))
    a = make_door(session, entrances="A口", tickets=tickets)
    b = make_door(session, entrances="B口", tickets=tickets)
    a.open_doors()
    assert a.scan(a.qr()).outcome == "valid"
    assert b.scan(b.qr(), direction="exit").outcome == "exit_recorded"


# --- Replay and bad requests ------------------------------------------------------------------


def test_a_replayed_nonce_answers_the_first_answer_and_changes_nothing(door: Door) -> None:
    first = door.scan(door.qr(), nonce_="retry-1")
    again = door.scan(door.qr(), nonce_="retry-1")
    assert (first.outcome, first.replayed) == ("valid", False)
    assert (again.outcome, again.accepted, again.replayed) == ("valid", True, True)
    assert again.ticket is not None and again.ticket.pk == door.tickets[0].pk
    assert Scan.objects.filter(device=door.device).count() == 1
    # Even with another code: the nonce is the scan's identity.
    other = door.scan(door.qr(1), nonce_="retry-1")
    assert other.replayed and other.ticket is not None and other.ticket.pk == door.tickets[0].pk
    assert not Admission.objects.filter(ticket=door.tickets[1]).exists()


def test_a_replayed_already_used_keeps_its_first_admission(door: Door) -> None:
    door.scan(door.qr())
    door.scan(door.qr(), nonce_="dup")
    again = door.scan(door.qr(), nonce_="dup")
    assert again.replayed and again.outcome == "already_used"
    assert again.first_admission is not None and again.first_admission[1] == door.gate.name


def test_the_same_nonce_on_two_devices_is_two_scans(door: Door, make_door: MakeDoor) -> None:
    other = make_door(door.session)
    assert door.scan(door.qr(), nonce_="same").outcome == "valid"
    assert other.scan(door.qr(), nonce_="same").outcome == "already_used"


@pytest.mark.parametrize("bad", ["", "x" * 65, "a\x00b"])
def test_a_bad_nonce_is_refused_and_not_recorded(door: Door, bad: str) -> None:
    with pytest.raises(DomainError) as caught:
        checkin_scan(
            device=door.device, gate=door.gate, session=door.session, code=door.qr(), nonce=bad
        )
    assert caught.value.code == "invalid_input"
    assert not Scan.objects.exists()


def test_a_bad_direction_is_refused(door: Door) -> None:
    with pytest.raises(DomainError) as caught:
        door.scan(door.qr(), direction="sideways")
    assert caught.value.code == "invalid_input"


def test_a_device_of_another_venue_is_refused(door: Door, make_door: MakeDoor) -> None:
    elsewhere = _same_organizer_other_venue(door.session)
    stranger, _token = device_register(venue=elsewhere.venue, name="外场", actor=None)
    with pytest.raises(DomainError) as caught:
        door.scan(door.qr(), device=stranger)
    assert (caught.value.code, caught.value.status) == ("device_wrong_venue", 403)
    far_gate = gate_create(venue=elsewhere.venue, name="远门")
    with pytest.raises(DomainError) as caught:
        door.scan(door.qr(), gate=far_gate)
    assert caught.value.code == "device_wrong_venue"
    with pytest.raises(DomainError) as caught:
        door.scan(door.qr(), session=elsewhere)
    assert caught.value.code == "gate_wrong_venue"
    assert not Scan.objects.exists()


def _same_organizer_other_venue(session: Session) -> Session:
    from piaowu.catalog.models import CapacityMode
    from tests.factories import make_event, make_session, make_venue

    venue = make_venue(session.event.organizer, name="另一场馆")
    event = make_event(session.event.organizer, title="别处")
    return make_session(event, venue=venue, capacity_mode=CapacityMode.GENERAL, capacity=5)


def test_a_switched_off_device_or_closed_gate_is_refused(door: Door) -> None:
    from piaowu.checkin.services import gate_update

    gate_update(gate=door.gate, active=False)
    with pytest.raises(DomainError) as caught:
        door.scan(door.qr())
    assert caught.value.code == "gate_inactive"
    gate_update(gate=door.gate, active=True)
    device_deactivate(device=door.device)
    with pytest.raises(DomainError) as caught:
        door.scan(door.qr())
    assert caught.value.code == "device_unauthorized"


def test_gate_names_are_unique_per_venue(door: Door) -> None:
    with pytest.raises(DomainError) as caught:
        gate_create(venue=door.session.venue, name=door.gate.name)
    assert caught.value.code == "gate_name_taken"
    with pytest.raises(DomainError) as caught:
        gate_create(venue=door.session.venue, name="  ")
    assert caught.value.code == "invalid_input"
    gate = gate_create(venue=door.session.venue, name="东门", entrances=" B口, A口,, ")
    assert gate.entrances == "A口,B口"


def test_a_device_token_is_stored_only_as_its_hash(door: Door) -> None:
    assert door.token not in door.device.token_hash
    assert door.device.token_hash == services.token_hash(door.token)
    _device, token2 = device_register(venue=door.session.venue, name="二号机", actor=None)
    assert token2 != door.token and len(token2) >= 40


def test_every_scan_is_logged_with_its_outcome(door: Door) -> None:
    door.scan("junk")
    door.scan(door.qr())
    door.scan(door.qr())
    outcomes = list(
        Scan.objects.filter(device=door.device).order_by("id").values_list("outcome", "accepted")
    )
    assert outcomes == [("unreadable", False), ("valid", True), ("already_used", False)]
    assert all(s.source == "online" and s.session_id == door.session.pk for s in Scan.objects.all())


def test_nonce_helper_is_unique() -> None:
    assert nonce() != nonce()


def test_recent_scans_newest_first_per_gate(door: Door, make_door: MakeDoor) -> None:
    from piaowu.checkin.selectors import scans_recent

    other = make_door(door.session)
    door.scan(door.qr(0))
    door.clock.shift(dt.timedelta(seconds=1))
    other.scan(door.qr(1))
    assert [s.outcome for s in scans_recent(door.session)] == ["valid", "valid"]
    assert [s.gate_id for s in scans_recent(door.session)] == [other.gate.pk, door.gate.pk]
    assert [s.gate_id for s in scans_recent(door.session, gate=door.gate)] == [door.gate.pk]
    # the refused ones only, however many accepted scans came after them
    door.clock.shift(dt.timedelta(seconds=1))
    door.scan("junk")
    door.clock.shift(dt.timedelta(seconds=1))
    door.scan(door.qr(0))  # already used
    door.clock.shift(dt.timedelta(seconds=1))
    door.scan(door.qr(1), direction="exit")  # accepted
    refused = scans_recent(door.session, refused=True, limit=1)
    assert [s.outcome for s in refused] == ["already_used"]
    assert [s.outcome for s in scans_recent(door.session, refused=True)] == [
        "already_used",
        "unreadable",
    ]


def test_an_online_scan_costs_a_fixed_number_of_queries(
    door: Door, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    qr0, qr1 = door.qr(0), door.qr(1)
    door.scan(qr0)  # warms the key cache
    # Ticket, share-lock of the still-valid ticket, INSERT admission, INSERT scan; the rest is
    # savepoints (the test's transaction turns the outer atomic into one too). No read of the
    # nonce first: the unique index catches a retry.
    with django_assert_max_num_queries(8):
        assert door.scan(qr1).outcome == "valid"
    # Ticket, share-lock, failed INSERT admission, admission read, INSERT scan + savepoints.
    with django_assert_max_num_queries(10):
        assert door.scan(qr1).outcome == "already_used"
