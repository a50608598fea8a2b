"""Real concurrency on PostgreSQL for exchanges: threads with their own connections, released
together (tests/races.py).

* **Atomicity.** The new seats are held first, inside the exchange's transaction: when the hold
  fails — the target is full, or another buyer takes its last seats at the same moment — the
  transaction rolls back and the old seats are never released, the old tickets never voided.
* **Exchange racing a refund** of the same tickets: both lock the payment, then the tickets
  (`SELECT … FOR UPDATE`) and re-check them under the lock; whoever locks first wins, the other
  finds the tickets void. Exactly one succeeds; the seats are returned once; the money is
  reserved on the payment once.
* **Two exchanges** of the same tickets: one wins, the other finds them void or in a live
  exchange (partial unique index).

No control run: the protection is the ticket row lock plus the `state = 'valid'` re-check in
both services, and no test-only switch removes it without rewriting the services — we say so
rather than show a control that cannot fail (as tests/payments/test_payment_races.py does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import User
from piaowu.aftersales.models import Exchange, Refund
from piaowu.aftersales.services.exchanges import exchange_start
from piaowu.aftersales.services.refunds import refund_request
from piaowu.catalog.models import SalesChannel
from piaowu.inventory.models import Hold, SeatState
from piaowu.orders.models import Order
from piaowu.orders.services import order_purchase
from piaowu.payments.models import Payment
from piaowu.tickets.models import Ticket
from tests.aftersales.exchanges.conftest import (
    AddSession,
    Bought,
    MakeBought,
    exchange_rule,
    sold_seats,
    valid_tickets,
)
from tests.orders.conftest import PHONE, web_channel
from tests.races import race

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

LOSSES = {"ticket_void", "refund_in_progress", "exchange_in_progress"}
#: A refund that loses to a completed downgrade may find the payment's rest too small before it
#: gets to the tickets (it reserves the money first): refused just the same, nothing written.
REFUND_LOSSES = LOSSES | {"refund_exceeds_payment"}


def exchange(bought: Bought, session: Any, delay: float = 0, **kw: Any) -> Callable[[], Exchange]:
    kw.setdefault("ticket_ids", [t.public_id for t in bought.tickets])

    def run() -> Exchange:
        time.sleep(delay)
        return exchange_start(
            order=Order.objects.get(pk=bought.order.pk),
            session=session,
            tier_code="std",
            actor=None,
            process=False,
            **kw,
        )

    return run


def refund(bought: Bought, delay: float = 0) -> Callable[[], Refund]:
    def run() -> Refund:
        time.sleep(delay)
        return refund_request(
            order=Order.objects.get(pk=bought.order.pk),
            tickets=list(Ticket.objects.filter(order=bought.order)),
            actor=None,
            process=False,
        )

    return run


def refunded(bought: Bought) -> Decimal:
    return Payment.objects.get(pk=bought.payment.pk).refunded_amount


# --- Atomicity: the new hold fails, the old seats stay sold --------------------------------------


def test_a_full_target_on_postgresql_leaves_the_old_seats_sold(
    bought: MakeBought,
    reserved_session: Callable[..., Any],
    add_session: AddSession,
    make_user: Callable[..., User],
) -> None:
    old = bought(session=reserved_session())
    exchange_rule(old.session.event)
    target = add_session(old.session.event, rows=1, seats_per_row=2)
    bought(session=target, seats=["M-1-1", "M-1-2"], customer=make_user())

    [result] = race([exchange(old, target)])

    assert result == "exchange_target_sold_out"
    assert sold_seats(old.session) == ["M-1-5", "M-1-6"]
    assert len(valid_tickets(old.order)) == 2
    assert not Exchange.objects.exists()
    assert refunded(old) == 0


def test_an_exchange_and_a_purchase_race_for_the_last_seats(
    bought: MakeBought,
    reserved_session: Callable[..., Any],
    add_session: AddSession,
    make_user: Callable[..., User],
) -> None:
    for round_ in range(6):
        old = bought(session=reserved_session())
        exchange_rule(old.session.event)
        target = add_session(old.session.event, price="100", rows=1, seats_per_row=2)
        channel = web_channel(old.session.event.organizer)
        other = make_user()

        def purchase(
            target: Any = target, other: User = other, channel: SalesChannel = channel
        ) -> Order:
            return order_purchase(
                session=target,
                channel=channel,
                holder_key=f"user:{other.pk}",
                customer=other,
                quantity=2,
                tier_code="std",
                contact_phone=PHONE,
            )

        results = race([exchange(old, target), purchase])

        winners = [r for r in results if isinstance(r, (Exchange, Order))]
        assert len(winners) == 1, (round_, results)
        if isinstance(results[0], Exchange):
            assert results[1] in {"seat_taken", "not_enough_seats", "stranded_seat"}, results
            assert sold_seats(target) == ["M-1-1", "M-1-2"]
            assert sold_seats(old.session) == []
            assert refunded(old) == Decimal("124.00")
        else:
            assert results[0] == "exchange_target_sold_out", results
            # The exchange lost: not one old seat was released, no ticket voided, no money.
            assert sold_seats(old.session) == ["M-1-5", "M-1-6"], round_
            assert len(valid_tickets(old.order)) == 2
            assert not Exchange.objects.filter(from_order=old.order).exists()
            assert refunded(old) == 0
            held = SeatState.objects.filter(session=target, state=SeatState.State.HELD)
            assert held.count() == 2  # the buyer's, awaiting payment
            assert Hold.objects.filter(session=target, status=Hold.Status.ACTIVE).count() == 1


# --- Exchange racing a refund of the same tickets ------------------------------------------------


def test_an_exchange_racing_a_refund_of_the_same_tickets_exactly_one_wins(
    bought: MakeBought,
    reserved_session: Callable[..., Any],
    add_session: AddSession,
    make_user: Callable[..., User],
) -> None:
    session = reserved_session()
    exchange_rule(session.event)
    target = add_session(session.event, price="100")
    outcomes = []
    # Released together, the exchange usually locks first (the refund prices its tickets before
    # it locks anything); staggered starts let each side win some rounds, and the rounds in
    # between race at every distance.
    head_starts = [0, 0, 0.01, 0.03, 0.06, 0.1, 0.5, -0.5]
    for round_, head_start in enumerate(head_starts):
        row = round_ % 3 + 1
        seats = [f"M-{row}-{2 * (round_ // 3) + 1}", f"M-{row}-{2 * (round_ // 3) + 2}"]
        # A buyer per round: each may hold at most 6 tickets of the target session.
        old = bought(session=session, seats=seats, customer=make_user())
        target_sold_before = len(sold_seats(target))

        results = race(
            [
                exchange(old, target, delay=max(head_start, 0)),
                refund(old, delay=max(-head_start, 0)),
            ]
        )

        exchanged, refund_made = results
        tickets = list(Ticket.objects.filter(order=old.order))
        assert all(t.state == Ticket.State.VOID for t in tickets), (round_, results)
        assert not SeatState.objects.filter(
            session=session, seat__code__in=seats, state=SeatState.State.SOLD
        ).exists()
        refunds = list(Refund.objects.filter(order=old.order))
        assert len(refunds) == 1, (round_, results)  # money goes back once
        if isinstance(exchanged, Exchange):
            assert refund_made in REFUND_LOSSES, (round_, results)
            outcomes.append("exchange")
            assert {t.void_reason for t in tickets} == {"exchanged"}
            assert len(sold_seats(target)) == target_sold_before + 2
            assert (refunds[0].kind, refunds[0].amount) == (Refund.Kind.EXCHANGE, Decimal("124"))
            assert refunded(old) == Decimal("124.00")
        else:
            assert isinstance(refund_made, Refund), (round_, results)
            assert exchanged in LOSSES, (round_, results)
            outcomes.append("refund")
            assert {t.void_reason for t in tickets} == {"refunded"}
            # The exchange's new seats were never sold (its hold rolled back with it).
            assert len(sold_seats(target)) == target_sold_before
            assert not Exchange.objects.filter(from_order=old.order).exists()
            assert refunded(old) == Decimal("360.00")
        assert refunded(old) <= old.payment.amount
    # Each round had exactly one winner (asserted above), and both kinds of winner occurred.
    assert set(outcomes) == {"exchange", "refund"}, outcomes


def test_two_exchanges_of_the_same_tickets_at_once_one_wins(
    bought: MakeBought,
    reserved_session: Callable[..., Any],
    add_session: AddSession,
    make_user: Callable[..., User],
) -> None:
    session = reserved_session()
    exchange_rule(session.event)
    cheaper = add_session(session.event, price="100")
    dearer = add_session(session.event, price="300")
    for round_ in range(5):
        old = bought(
            session=session,
            seats=[f"M-1-{2 * round_ + 1}", f"M-1-{2 * round_ + 2}"],
            customer=make_user(),
        )

        results = race([exchange(old, cheaper), exchange(old, dearer)])

        winners = [r for r in results if isinstance(r, Exchange)]
        assert len(winners) == 1, (round_, results)
        assert next(r for r in results if not isinstance(r, Exchange)) in LOSSES, results
        assert Exchange.objects.filter(from_order=old.order).count() == 1
        if winners[0].state == Exchange.State.COMPLETED:  # the downgrade won
            assert refunded(old) == Decimal("124.00")
            assert valid_tickets(old.order) == []
        else:  # the upgrade won: it awaits payment, the old tickets untouched
            assert len(valid_tickets(old.order)) == 2
            assert refunded(old) == 0


def test_an_upgrade_starting_while_a_refund_is_requested_exactly_one_wins(
    bought: MakeBought,
    reserved_session: Callable[..., Any],
    add_session: AddSession,
    make_user: Callable[..., User],
) -> None:
    session = reserved_session()
    exchange_rule(session.event)
    dearer = add_session(session.event, price="300")
    for round_ in range(4):
        old = bought(
            session=session,
            seats=[f"M-1-{2 * round_ + 1}", f"M-1-{2 * round_ + 2}"],
            customer=make_user(),
        )

        results = race([exchange(old, dearer), refund(old)])

        winners = [r for r in results if isinstance(r, (Exchange, Refund))]
        assert len(winners) == 1, (round_, results)
