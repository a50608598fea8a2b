"""Refunds under real concurrency on PostgreSQL: threads with their own connections, released
together (tests/races.py).

* Two requests for the same ticket at once: the partial unique index
  `refunditem_one_live_per_ticket` lets exactly one through. Control: without the index both
  get through (the ticket is asked for twice).
* Partial refunds that each fit but together exceed what is left of the payment: the
  conditional UPDATE of `Payment.refunded_amount` lets one through. Controls: with the
  reservation switched to read-then-write (`PIAOWU_REFUNDS_UNSAFE_RESERVE`) the CHECK
  `payment_refunded_within_amount` still refuses the second; without the CHECK as well, both
  go through and more is refunded than was paid.
* A ticket scanned at the gate while it is being refunded ends up either used or refunded,
  never both, in either order: the scan share-locks the ticket (`SELECT … AND state =
  'valid' FOR SHARE`) right before it inserts the admission, so a refund holding the row makes
  the scan wait and then see `void`, and a scan holding it makes the refund wait and then find
  the admission. (Django's foreign keys are checked only at commit on PostgreSQL, so the
  admission's insert alone takes no lock the refund would wait for.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from pytest_django.fixtures import Settings

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund, RefundItem
from piaowu.aftersales.services import refunds as refunds_module
from piaowu.aftersales.services.refunds import refund_money, refund_request
from piaowu.checkin import services as checkin_services
from piaowu.checkin.models import Admission
from piaowu.checkin.services import checkin_scan, device_register, gate_create, key_cache_clear
from piaowu.core.money import Money
from piaowu.inventory.models import SeatState
from piaowu.payments.models import Payment, SandboxRefund
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import ticket_qr_text
from tests.aftersales.refunds.conftest import Bought, Clock, MakeBought, hours_before, refund_rule
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# --- 1. The same ticket asked for twice at once -------------------------------------------------


def same_ticket_twice(bought: MakeBought, buyer: User) -> tuple[Bought, list[Any]]:
    purchase = bought()
    # Approval needed: the requests do nothing but price and write, as fast as they can.
    refund_rule(purchase.session.event, needs_approval=True)
    ticket = purchase.tickets[0]

    def ask() -> str:
        return refund_request(order=purchase.order, tickets=[ticket], actor=buyer).state

    return purchase, race([ask, ask])


def test_two_requests_for_the_same_ticket_at_once_make_one_refund(
    bought: MakeBought, buyer: User
) -> None:
    for _round in range(4):
        purchase, results = same_ticket_twice(bought, buyer)

        assert sorted(results) == ["refund_in_progress", "requested"], results
        assert Refund.objects.filter(order=purchase.order).count() == 1
        assert RefundItem.objects.filter(ticket=purchase.tickets[0], live=True).count() == 1


def test_control_without_the_unique_live_item_index_the_ticket_is_asked_for_twice(
    bought: MakeBought, buyer: User
) -> None:
    constraint = next(
        c for c in RefundItem._meta.constraints if c.name == "refunditem_one_live_per_ticket"
    )
    with connection.schema_editor() as editor:
        editor.remove_constraint(RefundItem, constraint)
    try:
        # The control only has to show the race can happen; scheduling may line the threads
        # up harmlessly now and then, so allow a few rounds.
        for _round in range(8):
            purchase, results = same_ticket_twice(bought, buyer)
            if results == ["requested", "requested"]:
                break
        assert results == ["requested", "requested"], results
        assert RefundItem.objects.filter(ticket=purchase.tickets[0], live=True).count() == 2
    finally:
        RefundItem.objects.update(live=False)
        with connection.schema_editor() as editor:
            editor.add_constraint(RefundItem, constraint)


# --- 2. Partial refunds summing over what is left ----------------------------------------------


def two_refunds_over_the_rest(bought: MakeBought, staff: User) -> tuple[Bought, list[Any]]:
    """¥360 paid; ¥100 already given back (an exchange's difference): ¥260 left. Two staff
    refunds of one ¥180 ticket each (fee waived): each fits, both together do not."""
    purchase = bought()
    refund_money(
        order=purchase.order,
        amount=Money(Decimal("100"), "CNY"),
        kind=Refund.Kind.EXCHANGE,
        reason="差价",
        actor=None,
    )

    def refund(ticket: Ticket) -> Callable[[], str]:
        return lambda: (
            refund_request(
                order=purchase.order,
                tickets=[ticket],
                actor=staff,
                kind=Refund.Kind.STAFF,
                reason="goodwill",
                waive_fee=True,
            ).state
        )

    return purchase, race([refund(t) for t in purchase.tickets])


def refunded_amount(purchase: Bought) -> Decimal:
    return Decimal(Payment.objects.get(pk=purchase.payment.pk).refunded_amount)


def test_concurrent_partial_refunds_never_give_back_more_than_was_paid(
    bought: MakeBought, staff: User
) -> None:
    for _round in range(4):
        purchase, results = two_refunds_over_the_rest(bought, staff)

        assert sorted(results) == ["refund_exceeds_payment", "succeeded"], results
        assert refunded_amount(purchase) == Decimal("280")
        winner = purchase.tickets[results.index("succeeded")]
        loser = purchase.tickets[results.index("refund_exceeds_payment")]
        # the loser wrote nothing: its ticket is valid, its seat still sold, no refund row
        assert Ticket.objects.get(pk=loser.pk).state == Ticket.State.VALID
        assert Ticket.objects.get(pk=winner.pk).state == Ticket.State.VOID
        assert not RefundItem.objects.filter(ticket=loser).exists()
        assert SeatState.objects.get(session=purchase.session, seat=loser.seat).state == "sold"
        sandbox = SandboxRefund.objects.filter(transaction__reference=purchase.payment.reference)
        assert sum(r.amount for r in sandbox) == Decimal("180")  # the money refund is not due yet


def test_control_a_read_then_write_reservation_is_still_stopped_by_the_check(
    bought: MakeBought, staff: User, settings: Settings
) -> None:
    settings.PIAOWU_REFUNDS_UNSAFE_RESERVE = True

    purchase, results = two_refunds_over_the_rest(bought, staff)

    assert sorted(results) == ["refund_exceeds_payment", "succeeded"], results
    assert refunded_amount(purchase) == Decimal("280")


def test_control_without_the_condition_and_the_check_more_is_refunded_than_was_paid(
    bought: MakeBought, staff: User, settings: Settings
) -> None:
    constraint = next(
        c for c in Payment._meta.constraints if c.name == "payment_refunded_within_amount"
    )
    with connection.schema_editor() as editor:
        editor.remove_constraint(Payment, constraint)
    try:
        settings.PIAOWU_REFUNDS_UNSAFE_RESERVE = True
        for _round in range(5):
            purchase, results = two_refunds_over_the_rest(bought, staff)
            if results == ["succeeded", "succeeded"]:
                break
        # the bug the guards stop: ¥460 "refunded" of ¥360 paid
        assert results == ["succeeded", "succeeded"], results
        assert refunded_amount(purchase) == Decimal("460")
    finally:
        Payment.objects.update(refunded_amount=0)
        with connection.schema_editor() as editor:
            editor.add_constraint(Payment, constraint)


# --- 3. A ticket used at the gate while it is refunded --------------------------------------------


class Door:
    def __init__(self, purchase: Bought, clock: Clock) -> None:
        key_cache_clear()
        venue = purchase.session.venue
        self.session = purchase.session
        self.gate = gate_create(venue=venue, name="1号门")
        self.device, _token = device_register(venue=venue, name="扫码枪", actor=None)
        self.nonces = iter(range(1, 1000))
        hours_before(clock, purchase.session, 0.5)

    def scan(self, ticket: Ticket) -> str:
        code = ticket_qr_text(Ticket.objects.select_related("signing_key").get(pk=ticket.pk))
        return checkin_scan(
            device=self.device,
            gate=self.gate,
            session=self.session,
            code=code,
            nonce=f"n-{next(self.nonces)}",
        ).outcome


def refund_by_staff(purchase: Bought, ticket: Ticket, staff: User) -> Callable[[], str]:
    # Staff at the door: allowed so close to the start (the rule's time limit does not bind).
    return lambda: (
        refund_request(
            order=purchase.order,
            tickets=[ticket],
            actor=staff,
            kind=Refund.Kind.STAFF,
            reason="顾客要求",
        ).state
    )


def test_a_refund_waiting_on_a_scan_that_admitted_the_ticket_is_refused(
    bought: MakeBought, staff: User, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    door = Door(purchase, clock)
    ticket = purchase.tickets[0]
    admitted = threading.Event()
    real_log = checkin_services._log_batch

    def slow_log(*args: Any) -> None:
        # The admission row is written (and the scan logged); the scan's transaction stays
        # open a moment.
        real_log(*args)
        admitted.set()
        time.sleep(0.5)

    monkeypatch.setattr(checkin_services, "_log_batch", slow_log)
    refund = refund_by_staff(purchase, ticket, staff)

    def refund_after_the_admission() -> str:
        assert admitted.wait(10)
        return refund()

    results = race([lambda: door.scan(ticket), refund_after_the_admission])

    assert results == ["valid", "ticket_used"], results
    assert Admission.objects.filter(ticket=ticket).exists()
    assert Ticket.objects.get(pk=ticket.pk).state == Ticket.State.VALID
    assert refunded_amount(purchase) == Decimal("0") and not Refund.objects.exists()
    key_cache_clear()


def test_a_scan_that_read_the_ticket_before_a_refund_voided_it_does_not_admit_it(
    bought: MakeBought, staff: User, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    door = Door(purchase, clock)
    ticket = purchase.tickets[0]
    voided = threading.Event()
    real_void = refunds_module.ticket_void

    def slow_void(**kw: Any) -> Ticket:
        # The ticket is void and locked; the refund's transaction stays open a moment.
        result = real_void(**kw)
        voided.set()
        time.sleep(0.5)
        return result

    monkeypatch.setattr(refunds_module, "ticket_void", slow_void)

    def scan_while_the_refund_is_open() -> str:
        assert voided.wait(10)
        return door.scan(ticket)

    results = race([refund_by_staff(purchase, ticket, staff), scan_while_the_refund_is_open])

    admitted = Admission.objects.filter(ticket=ticket).exists()
    refunded = Refund.objects.filter(state=Refund.State.SUCCEEDED).exists()
    key_cache_clear()
    # a ticket is either refunded or used, never both
    assert not (admitted and refunded), results
