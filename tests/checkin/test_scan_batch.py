"""`checkin_scan_many`: a batch of online scans answered one by one as `checkin_scan` would,
recorded in one transaction."""

from __future__ import annotations

import pytest

from piaowu.checkin.models import Admission, Scan
from piaowu.checkin.services import ScanAttempt, ScanResult, checkin_scan_many
from piaowu.core.errors import DomainError
from piaowu.tickets.models import Ticket
from tests.checkin.conftest import Door, MakeDoor, nonce, session_flags
from tests.checkin.test_scan import _same_organizer_other_venue

pytestmark = pytest.mark.django_db


def attempt(door: Door, code: str, **changes: str) -> ScanAttempt:
    fields = {
        "gate": door.gate.public_id,
        "session": door.session.public_id,
        "code": code,
        "nonce": nonce(),
        "direction": "entry",
        "device_token": door.token,
    }
    fields.update(changes)
    return ScanAttempt(**fields)  # type: ignore[arg-type]


def results(batch: list[ScanAttempt]) -> list[ScanResult]:
    answers = checkin_scan_many(batch)
    assert all(isinstance(answer, ScanResult) for answer in answers), answers
    return [answer for answer in answers if isinstance(answer, ScanResult)]


def test_two_scans_of_one_ticket_in_a_batch_admit_it_once(door: Door) -> None:
    qr = door.qr(0)
    first, second = results([attempt(door, qr), attempt(door, qr)])
    assert (first.outcome, second.outcome) == ("valid", "already_used")
    assert second.first_admission is not None
    assert second.first_admission[1] == door.gate.name
    assert Admission.objects.filter(ticket=door.tickets[0]).count() == 1
    assert list(Scan.objects.order_by("id").values_list("outcome", flat=True)) == [
        "valid",
        "already_used",
    ]


def test_results_keep_the_order_of_the_attempts(door: Door) -> None:
    batch = [attempt(door, door.qr(1)), attempt(door, "garbage"), attempt(door, door.qr(0))]
    assert [r.outcome for r in results(batch)] == ["valid", "unreadable", "valid"]
    assert checkin_scan_many([]) == []


def test_refused_attempts_are_errors_and_record_nothing_the_rest_go_in(
    door: Door, make_door: MakeDoor
) -> None:
    elsewhere = make_door(_same_organizer_other_venue(door.session))
    qr = door.qr(0)
    batch = [
        attempt(door, qr, device_token="not-a-token"),
        attempt(door, qr, gate="no-such-gate"),
        attempt(elsewhere, qr, gate=door.gate.public_id),  # a scanner of another venue
        attempt(door, qr, session="no-such-session"),
        attempt(door, qr, nonce=""),
        attempt(door, qr),
    ]
    answers = checkin_scan_many(batch)
    errors = [(a.code, a.status) for a in answers[:5] if isinstance(a, DomainError)]
    assert errors == [
        ("device_unauthorized", 401),
        ("gate_not_found", 404),
        ("device_wrong_venue", 403),
        ("session_not_found", 404),
        ("invalid_input", 400),
    ]
    last = answers[5]
    assert isinstance(last, ScanResult) and last.outcome == "valid"
    assert Scan.objects.count() == 1


def test_a_nonce_already_stored_replays_and_the_others_are_still_recorded(door: Door) -> None:
    stored = results([attempt(door, door.qr(0), nonce="retry-1")])[0]
    assert stored.outcome == "valid"
    retry, fresh = results([attempt(door, door.qr(0), nonce="retry-1"), attempt(door, door.qr(1))])
    assert (retry.outcome, retry.replayed) == ("valid", True)
    assert (fresh.outcome, fresh.replayed) == ("valid", False)
    assert Scan.objects.count() == 2
    assert Admission.objects.count() == 2


def test_one_nonce_twice_in_a_batch_answers_the_second_as_a_replay(door: Door) -> None:
    first, again = results(
        [attempt(door, door.qr(0), nonce="twice"), attempt(door, door.qr(0), nonce="twice")]
    )
    assert (first.outcome, first.replayed) == ("valid", False)
    assert (again.outcome, again.replayed) == ("valid", True)
    assert Scan.objects.count() == 1


def test_exits_and_reentry_sessions_are_answered_in_the_batch(door: Door) -> None:
    session_flags(door.session, reentry_allowed=True)
    qr = door.qr(0)
    assert results([attempt(door, qr)])[0].outcome == "valid"
    out, back, again = results(
        [
            attempt(door, qr, direction="exit"),
            attempt(door, door.qr(1)),
            attempt(door, qr, direction="exit"),
        ]
    )
    assert (out.outcome, back.outcome, again.outcome) == ("exit_recorded", "valid", "not_inside")
    assert results([attempt(door, qr)])[0].outcome == "reentry"
    assert Admission.objects.get(ticket=door.tickets[0]).entries == 2


def test_a_typed_serial_and_a_qr_of_the_same_ticket_in_one_batch(door: Door) -> None:
    ticket = Ticket.objects.get(pk=door.tickets[1].pk)
    by_serial, by_qr = results([attempt(door, ticket.serial), attempt(door, door.qr(1))])
    assert (by_serial.outcome, by_qr.outcome) == ("valid", "already_used")
    assert by_serial.ticket is not None and by_serial.ticket.serial == ticket.serial
