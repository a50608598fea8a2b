"""Real concurrency on PostgreSQL: one ticket at eight gates at once, a device retrying one nonce
in parallel, two devices syncing the same ticket — threads with their own connections, lined up
on a barrier.

The control run switches the INSERT-based admission off (`PIAOWU_CHECKIN_UNSAFE_ADMISSION`:
read, pause, write) and must let two gates answer `valid` for the same ticket — otherwise a
green race test would prove nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from piaowu.checkin.models import Admission, Scan
from piaowu.checkin.selectors import scan_conflicts
from piaowu.checkin.services import SyncScan, checkin_scan, checkin_sync
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import ticket_qr_text
from tests.checkin.conftest import Door, MakeDoor
from tests.races import race
from tests.tickets.conftest import MakePaidOrder

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

GATES = 8


def _setup(paid_order: MakePaidOrder, make_door: MakeDoor) -> tuple[list[Door], str, Ticket]:
    order = paid_order()
    tickets = list(Ticket.objects.filter(order=order).order_by("id"))
    doors = [make_door(order.session, tickets=tickets) for _ in range(GATES)]
    doors[0].open_doors()
    ticket = Ticket.objects.select_related("signing_key").get(pk=tickets[0].pk)
    return doors, ticket_qr_text(ticket), ticket


def _eight_gates(doors: list[Door], qr: str, round_: int) -> list[Any]:
    def at(door: Door) -> Callable[[], str]:
        return lambda: door.scan(qr, nonce_=f"r{round_}-{door.gate.pk}").outcome

    return race([at(door) for door in doors])


def test_one_ticket_at_eight_gates_at_once_gets_in_once(
    transactional_db: None, paid_order: MakePaidOrder, make_door: MakeDoor
) -> None:
    doors, qr, ticket = _setup(paid_order, make_door)
    results = _eight_gates(doors, qr, 1)
    assert sorted(results) == ["already_used"] * (GATES - 1) + ["valid"], results
    assert Admission.objects.filter(ticket=ticket).count() == 1
    valid = Scan.objects.filter(ticket=ticket, outcome="valid")
    assert valid.count() == 1
    assert Admission.objects.get(ticket=ticket).first_gate_id == valid.get().gate_id


def test_control_read_then_write_admits_twice(
    transactional_db: None, paid_order: MakePaidOrder, make_door: MakeDoor, settings: Any
) -> None:
    doors, qr, ticket = _setup(paid_order, make_door)
    settings.PIAOWU_CHECKIN_UNSAFE_ADMISSION = True
    # The control only has to show the race can happen; allow a few rounds (fresh tickets
    # would need fresh orders, so each round uses a new nonce and clears the admission).
    for round_ in range(5):
        results = _eight_gates(doors, qr, round_)
        if results.count("valid") >= 2:
            break
        Admission.objects.filter(ticket=ticket).delete()
    assert results.count("valid") >= 2, results  # two people through on one ticket
    assert Admission.objects.filter(ticket=ticket).count() == 1


def test_a_device_retrying_one_nonce_in_parallel_gets_one_answer(
    transactional_db: None, paid_order: MakePaidOrder, make_door: MakeDoor
) -> None:
    doors, qr, ticket = _setup(paid_order, make_door)
    door = doors[0]

    def retry() -> tuple[str, bool]:
        result = checkin_scan(
            device=door.device, gate=door.gate, session=door.session, code=qr, nonce="same"
        )
        return result.outcome, result.replayed

    results = race([retry for _ in range(6)])
    assert {outcome for outcome, _replayed in results} == {"valid"}, results
    assert sorted(replayed for _outcome, replayed in results) == [False] + [True] * 5
    assert Scan.objects.filter(device=door.device, nonce="same").count() == 1
    assert Admission.objects.filter(ticket=ticket).count() == 1


def test_two_devices_syncing_one_ticket_at_once_make_one_conflict(
    transactional_db: None, paid_order: MakePaidOrder, make_door: MakeDoor
) -> None:
    doors, qr, ticket = _setup(paid_order, make_door)
    now = doors[0].clock()

    def sync(door: Door) -> Callable[[], tuple[str, bool]]:
        def run() -> tuple[str, bool]:
            item = SyncScan(
                nonce="offline-1",
                gate=door.gate,
                session=door.session,
                code=qr,
                direction="entry",
                scanned_at=now,
                device_accepted=True,
            )
            result = checkin_sync(device=door.device, scans=[item])[0]
            return result.outcome, result.conflict

        return run

    results = race([sync(doors[0]), sync(doors[1])])
    assert sorted(results) == [("already_used", True), ("valid", False)], results
    assert Admission.objects.filter(ticket=ticket).count() == 1
    assert scan_conflicts(doors[0].session).count() == 1
