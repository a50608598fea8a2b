"""Exchanges (改签) through `aftersales.services.exchanges`: downgrades and equal exchanges that
complete at once (with a refund of what is left), upgrades paid in full by a new order and
completed when it is paid, abandoned upgrades, and every refusal — each leaving the old tickets
and their seats exactly as they were."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks
from pytest_django.fixtures import Settings as SettingsWrapper

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import Exchange, ExchangeItem, Notice, Refund, RefundPolicy
from piaowu.aftersales.selectors.exchanges import exchange_quote, exchange_state
from piaowu.aftersales.services.exchanges import (
    exchange_cancel,
    exchange_start,
    exchanges_abandon_unpaid,
)
from piaowu.aftersales.services.refunds import refund_request, refunds_process_due
from piaowu.catalog.models import Session
from piaowu.catalog.services import TierSpec
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, SeatState
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.services import order_checkout
from piaowu.orders.states import OrderState
from piaowu.payments.models import LedgerEntry, Payment, SandboxRefund, SandboxTransaction
from piaowu.payments.services import payment_start, sandbox_deliver_due, sandbox_pay
from piaowu.tickets.models import Ticket
from piaowu.tickets.services import ticket_transfer_to
from tests.aftersales.exchanges.conftest import (
    AddSession,
    Bought,
    MakeBought,
    exchange_rule,
    hours_before,
    ids,
    make_other_event,
    pay,
    seat_state,
    sold_seats,
    valid_tickets,
)
from tests.aftersales.refunds.conftest import NOTIFY_URL, _merchant
from tests.checkin.conftest import Door, _fresh_keys, make_door
from tests.inventory.conftest import Clock
from tests.orders.conftest import PHONE, web_channel

__all__ = ["_fresh_keys", "make_door"]

pytestmark = pytest.mark.django_db

MakeDoor = Callable[..., Door]


def refused(call: Callable[[], Any]) -> DomainError:
    with pytest.raises(DomainError) as info:
        call()
    return info.value


def start(old: Bought, session: Session, **kw: Any) -> Exchange:
    kw.setdefault("tier_code", session.price_tiers.first().code)  # type: ignore[union-attr]
    kw.setdefault("actor", old.order.customer)
    kw.setdefault("process", False)
    return exchange_start(order=old.order, session=session, **kw)


def assert_untouched(old: Bought) -> None:
    """The old order's tickets are valid and their seats still sold to it."""
    assert [t.pk for t in valid_tickets(old.order)] == [t.pk for t in old.tickets]
    assert sold_seats(old.session) == ["M-1-5", "M-1-6"]
    assert Payment.objects.get(pk=old.payment.pk).refunded_amount == 0


# --- Downgrade and equal: completed at once ------------------------------------------------------


def test_a_downgrade_completes_at_once_and_refunds_the_difference(
    old: Bought, add_session: AddSession
) -> None:
    target = add_session(old.session.event, price="100")

    exchange = start(old, target)

    # old 2 × 180 = 360, new 2 × 100 = 200, fee 10 % of 360 = 36 → 124 back
    assert exchange.state == Exchange.State.COMPLETED
    assert (exchange.old_value, exchange.new_value, exchange.fee_amount) == (
        Decimal("360.00"),
        Decimal("200.00"),
        Decimal("36.00"),
    )
    assert exchange.difference == Decimal("-124.00")
    new_order = Order.objects.get(pk=exchange.to_order_id)
    assert new_order.state == OrderState.PAID
    assert new_order.total_amount == Decimal("200.00")
    assert new_order.session_id == target.pk
    assert new_order.customer_id == old.order.customer_id
    assert OrderHistory.objects.filter(
        order=new_order, to_state=OrderState.PAID, reason=f"exchange from {old.order.code}"
    ).exists()
    assert not Payment.objects.filter(order=new_order).exists()  # paid by credit
    new_tickets = valid_tickets(new_order)
    assert len(new_tickets) == 2 and all(t.session_id == target.pk for t in new_tickets)
    assert sold_seats(target) == sorted(t.seat.code for t in new_tickets)  # type: ignore[union-attr]
    # The old tickets are void and their seats on sale again.
    assert valid_tickets(old.order) == []
    assert set(Ticket.objects.filter(order=old.order).values_list("void_reason", flat=True)) == {
        "exchanged"
    }
    assert sold_seats(old.session) == []
    assert seat_state(old.session, "M-1-5") == SeatState.State.AVAILABLE
    # The rest is refunded from the old order's payment.
    refund = exchange.refund
    assert refund is not None
    assert (refund.kind, refund.amount, refund.order_id, refund.payment_id) == (
        Refund.Kind.EXCHANGE,
        Decimal("124.00"),
        old.order.pk,
        old.payment.pk,
    )
    assert refund.state == Refund.State.APPROVED
    assert Payment.objects.get(pk=old.payment.pk).refunded_amount == Decimal("124.00")
    assert refunds_process_due() == 1
    refund.refresh_from_db()
    assert refund.state == Refund.State.SUCCEEDED
    assert LedgerEntry.objects.get(reference=refund.number).amount == Decimal("-124.00")
    assert SandboxRefund.objects.get(refund_reference=refund.number).amount == Decimal("124.00")
    assert Notice.objects.filter(topic=f"exchange:{exchange.public_id}:completed").exists()


def test_an_exchange_worth_exactly_the_old_value_with_the_fee_refunds_nothing(
    old: Bought, add_session: AddSession
) -> None:
    # new 2 × 162 = 324, fee 36: 324 + 36 = 360, the old value.
    target = add_session(old.session.event, price="162")

    exchange = start(old, target)

    assert exchange.state == Exchange.State.COMPLETED
    assert exchange.difference == Decimal("0.00")
    assert exchange.refund is None
    assert not Refund.objects.exists()
    assert valid_tickets(old.order) == []
    assert len(valid_tickets(Order.objects.get(pk=exchange.to_order_id))) == 2
    assert Payment.objects.get(pk=old.payment.pk).refunded_amount == 0


def test_an_equal_exchange_without_a_fee_moves_the_seats_and_no_money(
    old: Bought, add_session: AddSession
) -> None:
    RefundPolicy.objects.update(exchange_fee_percent=Decimal(0))
    target = add_session(old.session.event, price="180")

    exchange = start(old, target, ticket_ids=ids(old.tickets[:1]))

    assert exchange.state == Exchange.State.COMPLETED
    assert (exchange.fee_amount, exchange.difference, exchange.refund) == (
        Decimal("0.00"),
        Decimal("0.00"),
        None,
    )
    # Only the chosen ticket moved; the other stays valid on its seat.
    assert [t.pk for t in valid_tickets(old.order)] == [old.tickets[1].pk]
    assert sold_seats(old.session) == ["M-1-6"]
    assert len(sold_seats(target)) == 1


def test_a_refund_of_the_new_order_goes_back_through_the_old_payment(
    old: Bought, add_session: AddSession
) -> None:
    target = add_session(old.session.event, price="100")
    exchange = start(old, target)
    new_order = Order.objects.get(pk=exchange.to_order_id)

    refund = refund_request(order=new_order, actor=old.order.customer, process=False)

    assert refund.payment_id == old.payment.pk
    assert refund.amount == Decimal("200.00")  # free refunds 3 days ahead
    # 124 (the exchange's rest) + 200 = 324 ≤ 360 paid; the fee stays with the organizer.
    assert Payment.objects.get(pk=old.payment.pk).refunded_amount == Decimal("324.00")
    assert sold_seats(target) == []


def test_another_tier_of_the_same_session_keeps_the_per_customer_count(
    bought: MakeBought, add_session: AddSession, organizer: Organizer
) -> None:
    # Four GA admissions moved to another tier of the same session: the buyer holds 4 + 4
    # for a moment, over the per-customer limit of 6, yet ends with 4 — so it is allowed.
    tiers = [
        TierSpec(code="ga", name="通票", price=Decimal("280")),
        TierSpec(code="early", name="早鸟票", price=Decimal("200")),
    ]
    session = add_session(make_other_event(organizer), ga=20, tiers=tiers)
    exchange_rule(session.event, fee_percent="0")
    old = bought(session=session, ga=4)

    exchange = start(old, session, tier_code="early")

    assert exchange.state == Exchange.State.COMPLETED
    assert exchange.refund is not None and exchange.refund.amount == Decimal("320.00")
    new_tickets = valid_tickets(Order.objects.get(pk=exchange.to_order_id))
    assert [t.tier.code for t in new_tickets] == ["early"] * 4
    assert valid_tickets(old.order) == []
    quote = exchange_quote(order=Order.objects.get(pk=exchange.to_order_id))
    assert quote.ok  # the new tickets may be exchanged again


def test_explicit_seats_can_be_chosen_in_a_reserved_session(
    old: Bought, add_session: AddSession
) -> None:
    target = add_session(old.session.event, price="150")

    exchange = start(old, target, tier_code=None, seat_codes=["M-2-3", "M-2-4"])

    assert exchange.state == Exchange.State.COMPLETED
    assert sold_seats(target) == ["M-2-3", "M-2-4"]


# --- Upgrade: the new order is paid in full, then the exchange completes -------------------------


def test_an_upgrade_awaits_payment_and_completes_when_the_new_order_is_paid(
    old: Bought,
    add_session: AddSession,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    target = add_session(old.session.event, price="300")

    exchange = start(old, target)

    # new 600 + fee 36 > old 360: pay 600 for the new tickets, get 324 back.
    assert exchange.state == Exchange.State.AWAITING_PAYMENT
    assert exchange.difference == Decimal("276.00")
    new_order = Order.objects.get(pk=exchange.to_order_id)
    assert new_order.state == OrderState.AWAITING_PAYMENT
    assert new_order.total_amount == Decimal("600.00")
    assert len(sold_seats(target)) == 0
    assert SeatState.objects.filter(session=target, state=SeatState.State.HELD).count() == 2
    assert_untouched(old)  # nothing happens to the old tickets before the payment
    assert ExchangeItem.objects.filter(exchange=exchange, live=True).count() == 2
    # While it waits, the old tickets cannot be refunded.
    assert refused(lambda: refund_request(order=old.order, actor=None)).code == (
        "refund_in_progress"
    )

    with django_capture_on_commit_callbacks(execute=True):
        new_payment = pay(new_order)

    exchange.refresh_from_db()
    assert exchange.state == Exchange.State.COMPLETED
    assert exchange.completed_at is not None
    assert new_payment.amount == Decimal("600.00")
    assert len(valid_tickets(new_order)) == 2
    assert len(sold_seats(target)) == 2
    assert valid_tickets(old.order) == []
    assert sold_seats(old.session) == []
    refund = exchange.refund
    assert refund is not None
    assert (refund.kind, refund.amount, refund.payment_id, refund.state) == (
        Refund.Kind.EXCHANGE,
        Decimal("324.00"),
        old.payment.pk,
        Refund.State.SUCCEEDED,  # processed after the payment's commit
    )
    assert Payment.objects.get(pk=old.payment.pk).refunded_amount == Decimal("324.00")
    assert Payment.objects.get(pk=new_payment.pk).refunded_amount == 0


def test_an_upgrade_not_paid_in_time_is_abandoned_and_leaves_the_old_tickets_valid(
    old: Bought, add_session: AddSession, clock: Clock
) -> None:
    target = add_session(old.session.event, price="300")
    exchange = start(old, target)

    clock.shift(dt.timedelta(minutes=16))  # past the 15-minute payment deadline
    assert exchange_state(Exchange.objects.select_related("to_order").get(pk=exchange.pk)) == (
        Exchange.State.ABANDONED  # already, before the job runs
    )
    assert exchanges_abandon_unpaid() == 1

    exchange.refresh_from_db()
    assert exchange.state == Exchange.State.ABANDONED
    assert Order.objects.get(pk=exchange.to_order_id).state == OrderState.EXPIRED
    assert not ExchangeItem.objects.filter(exchange=exchange, live=True).exists()
    assert_untouched(old)
    assert SeatState.objects.filter(session=target).exclude(state="available").count() == 0
    assert exchanges_abandon_unpaid() == 0
    # The old tickets are free again: they can be refunded.
    assert refund_request(order=old.order, actor=None, process=False).amount == Decimal("360.00")


def test_the_buyer_can_cancel_an_upgrade_before_paying(
    old: Bought, add_session: AddSession
) -> None:
    target = add_session(old.session.event, price="300")
    exchange = start(old, target)

    exchange_cancel(exchange=exchange, actor=old.order.customer)

    assert exchange.state == Exchange.State.ABANDONED
    assert Order.objects.get(pk=exchange.to_order_id).state == OrderState.CANCELLED
    assert_untouched(old)
    assert refused(lambda: exchange_cancel(exchange=exchange, actor=None)).code == (
        "exchange_not_pending"
    )
    # A new exchange of the same tickets may start.
    assert start(old, target).state == Exchange.State.AWAITING_PAYMENT


def test_a_completed_exchange_cannot_be_cancelled(old: Bought, add_session: AddSession) -> None:
    exchange = start(old, add_session(old.session.event, price="100"))

    error = refused(lambda: exchange_cancel(exchange=exchange, actor=None))

    assert (error.code, error.status) == ("exchange_not_pending", 409)


def test_an_upgrade_whose_old_ticket_was_used_meanwhile_refunds_the_new_payment(
    bought: MakeBought,
    add_session: AddSession,
    organizer: Organizer,
    make_door: MakeDoor,
    clock: Clock,
    settings: SettingsWrapper,
) -> None:
    settings.PIAOWU_PAYMENT_DEADLINE_SECONDS = 4 * 3600
    event = make_other_event(organizer)
    exchange_rule(event, tiers=[(2, "10")])
    first = add_session(event)
    target = add_session(event, price="300")
    old = bought(session=first)
    hours_before(clock, first, 3)
    exchange = start(old, target)
    new_order = Order.objects.get(pk=exchange.to_order_id)
    # The buyer goes to the old session anyway and gets in before paying the new order.
    door = make_door(first, tickets=old.tickets)
    door.open_doors()
    assert door.scan(door.qr()).outcome == "valid"

    payment = payment_start(order=new_order, provider_name="sandbox", notify_url=NOTIFY_URL)
    sandbox_pay(transaction=SandboxTransaction.objects.get(reference=payment.reference))
    sandbox_deliver_due(send=_merchant)

    payment.refresh_from_db()
    assert payment.status in (Payment.Status.REFUNDING, Payment.Status.REFUNDED)
    assert payment.refund_reason == "order_not_payable"
    assert Order.objects.get(pk=new_order.pk).state == OrderState.AWAITING_PAYMENT
    exchange.refresh_from_db()
    assert exchange.state == Exchange.State.AWAITING_PAYMENT
    assert len(valid_tickets(old.order)) == 2  # nothing was voided
    assert not Refund.objects.exists()


# --- Refused: nothing changes --------------------------------------------------------------------


def test_an_exchange_into_a_full_reserved_session_changes_nothing(
    old: Bought, add_session: AddSession, bought: MakeBought, make_user: Callable[..., User]
) -> None:
    target = add_session(old.session.event, rows=1, seats_per_row=2)
    bought(session=target, seats=["M-1-1", "M-1-2"], customer=make_user())

    error = refused(lambda: start(old, target))

    assert (error.code, error.status) == ("exchange_target_sold_out", 409)
    assert error.details["reason"] == "not_enough_seats"
    assert_untouched(old)
    assert not Exchange.objects.exists()
    assert not Hold.objects.filter(session=target, status=Hold.Status.ACTIVE).exists()


def test_an_exchange_into_a_sold_out_general_admission_session_changes_nothing(
    old: Bought, add_session: AddSession, bought: MakeBought, make_user: Callable[..., User]
) -> None:
    target = add_session(old.session.event, ga=3, price="100")
    bought(session=target, ga=2, customer=make_user())  # one left, two wanted

    error = refused(lambda: start(old, target))

    assert error.code == "exchange_target_sold_out"
    assert (error.details["reason"], error.details["available"]) == ("sold_out", 1)
    assert_untouched(old)
    assert not Exchange.objects.exists()


def test_taken_seats_chosen_by_code_are_refused(
    old: Bought, add_session: AddSession, bought: MakeBought, make_user: Callable[..., User]
) -> None:
    target = add_session(old.session.event)
    bought(session=target, seats=["M-1-1"], customer=make_user())

    error = refused(lambda: start(old, target, tier_code=None, seat_codes=["M-1-1", "M-1-2"]))

    assert error.code == "seat_taken"
    assert_untouched(old)


def test_a_session_of_another_event_is_refused(
    old: Bought, add_session: AddSession, organizer: Organizer
) -> None:
    elsewhere = add_session(make_other_event(organizer))

    error = refused(lambda: start(old, elsewhere))

    assert error.code == "exchange_other_event"
    assert_untouched(old)


def test_a_used_ticket_is_refused(
    old: Bought, add_session: AddSession, make_door: MakeDoor, clock: Clock
) -> None:
    target = add_session(old.session.event)
    door = make_door(old.session, tickets=old.tickets)
    door.open_doors()
    assert door.scan(door.qr()).outcome == "valid"
    clock.shift(-dt.timedelta(days=2))  # back to when exchanges are still allowed

    error = refused(lambda: start(old, target))

    assert (error.code, error.status) == ("ticket_used", 409)
    assert error.details["ticket"] == old.tickets[0].serial
    assert not Exchange.objects.exists()
    # Even staff cannot exchange a used ticket.
    assert refused(lambda: start(old, target, by_staff=True)).code == "ticket_used"


def test_a_void_ticket_is_refused(old: Bought, add_session: AddSession) -> None:
    refund_request(order=old.order, tickets=old.tickets[:1], actor=None, process=False)

    error = refused(lambda: start(old, add_session(old.session.event), ticket_ids=ids(old.tickets)))

    assert (error.code, error.status) == ("ticket_void", 409)


def test_a_ticket_in_a_pending_refund_is_refused(old: Bought, add_session: AddSession) -> None:
    RefundPolicy.objects.update(needs_approval=True)
    refund_request(order=old.order, tickets=old.tickets[:1], actor=None, process=False)

    error = refused(lambda: start(old, add_session(old.session.event, price="100")))

    assert (error.code, error.status) == ("refund_in_progress", 409)
    assert_untouched(old)


def test_a_ticket_in_an_exchange_awaiting_payment_is_refused(
    old: Bought, add_session: AddSession
) -> None:
    start(old, add_session(old.session.event, price="300"))

    error = refused(lambda: start(old, add_session(old.session.event, price="100")))

    assert (error.code, error.status) == ("exchange_in_progress", 409)
    assert Exchange.objects.count() == 1


def test_exchanges_switched_off_by_the_rule_are_refused_for_customers_not_staff(
    old: Bought, add_session: AddSession
) -> None:
    RefundPolicy.objects.update(exchanges_allowed=False)
    target = add_session(old.session.event, price="100")

    error = refused(lambda: start(old, target))

    assert error.code == "exchange_not_allowed"
    assert_untouched(old)
    assert start(old, target, by_staff=True).state == Exchange.State.COMPLETED


def test_without_any_rule_customers_cannot_exchange(
    bought: MakeBought, reserved_session: Callable[..., Session], add_session: AddSession
) -> None:
    old = bought(session=reserved_session())

    error = refused(lambda: start(old, add_session(old.session.event)))

    assert error.code == "exchange_not_allowed"


def test_past_the_cut_off_customers_cannot_exchange_but_staff_can(
    old: Bought, add_session: AddSession, clock: Clock
) -> None:
    target = add_session(old.session.event, price="100")
    hours_before(clock, old.session, 1)  # the last tier ends 2 h before the start

    error = refused(lambda: start(old, target))

    assert error.code == "exchange_cutoff_passed"
    assert_untouched(old)
    exchange = start(old, target, by_staff=True, waive_fee=True)
    assert exchange.fee_amount == 0 and exchange.refund is not None
    assert exchange.refund.amount == Decimal("160.00")


def test_the_same_tier_of_the_same_session_is_refused(old: Bought) -> None:
    error = refused(lambda: start(old, old.session))

    assert error.code == "exchange_same_tier"
    assert_untouched(old)


def test_an_unknown_tier_and_a_missing_tier_are_refused(
    old: Bought, add_session: AddSession
) -> None:
    target = add_session(old.session.event)

    assert refused(lambda: start(old, target, tier_code="nope")).code == "exchange_tier_not_found"
    assert refused(lambda: start(old, target, tier_code=None)).code == "tier_required"
    assert not Exchange.objects.exists()


def test_a_different_number_of_seats_is_refused(old: Bought, add_session: AddSession) -> None:
    target = add_session(old.session.event)

    error = refused(lambda: start(old, target, tier_code=None, seat_codes=["M-2-1"]))

    assert error.code == "exchange_quantity_mismatch"
    assert (error.details["tickets"], error.details["seats"]) == (2, 1)
    assert not Hold.objects.filter(session=target).exists()


def test_tickets_of_another_order_or_named_twice_are_refused(
    old: Bought, bought: MakeBought, add_session: AddSession
) -> None:
    other = bought(session=old.session, seats=["M-3-1"])
    target = add_session(old.session.event)

    for chosen in (ids(other.tickets), ids(old.tickets[:1]) * 2, []):
        error = refused(lambda chosen=chosen: start(old, target, ticket_ids=chosen))
        assert error.code == "exchange_tickets_invalid", chosen


def test_an_unpaid_order_is_refused(
    organizer: Organizer, reserved_session: Callable[..., Session], add_session: AddSession
) -> None:
    session = reserved_session()
    exchange_rule(session.event)
    hold = hold_seats(session=session, seat_codes=["M-1-1"], holder_key="guest")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="guest", contact_phone=PHONE
    )

    error = refused(
        lambda: exchange_start(
            order=order, session=add_session(session.event), tier_code="std", ticket_ids=None
        )
    )

    assert (error.code, error.status) == ("order_not_exchangeable", 409)
    quote = exchange_quote(order=order)
    assert quote.refusal is not None and quote.refusal.code == "order_not_exchangeable"


def test_a_ticket_transferred_away_cannot_be_exchanged_by_the_buyer(
    old: Bought, add_session: AddSession, make_user: Callable[..., User]
) -> None:
    friend = make_user(email="friend@example.com")
    ticket_transfer_to(ticket=old.tickets[0], holder=friend, attendee_name="朋友", actor=friend)

    error = refused(lambda: start(old, add_session(old.session.event)))

    assert error.code == "ticket_transferred"


def test_a_session_not_on_sale_is_refused(
    old: Bought, add_session: AddSession, clock: Clock
) -> None:
    target = add_session(old.session.event)
    Session.objects.filter(pk=target.pk).update(status=Session.Status.CANCELLED)
    target.refresh_from_db()

    error = refused(lambda: start(old, target))

    assert error.code == "sales_closed"
    assert_untouched(old)


# --- The quote ---------------------------------------------------------------------------------


def test_the_quote_lists_every_tier_of_the_event_on_sale_with_its_cost(
    old: Bought, add_session: AddSession, organizer: Organizer
) -> None:
    cheaper = add_session(old.session.event, price="100")
    dearer = add_session(old.session.event, price="300")
    add_session(make_other_event(organizer))  # not the same event: not offered

    quote = exchange_quote(order=old.order)

    assert quote.ok
    assert (quote.old_value.amount, quote.fee.amount) == (Decimal("360.00"), Decimal("36.00"))
    options = {(o.session.pk, o.tier.code): o for o in quote.options}
    # The session the tickets are for has one tier, theirs: nothing to move to there.
    assert set(options) == {(cheaper.pk, "std"), (dearer.pk, "std")}
    down, up = options[(cheaper.pk, "std")], options[(dearer.pk, "std")]
    assert (down.upgrade, down.pay_now.amount, down.refund.amount) == (
        False,
        Decimal(0),
        Decimal("124.00"),
    )
    assert (up.upgrade, up.pay_now.amount, up.refund.amount, up.difference.amount) == (
        True,
        Decimal("600.00"),
        Decimal("324.00"),
        Decimal("276.00"),
    )
    assert down.available == 30


def test_the_quote_says_why_the_tickets_cannot_be_exchanged(
    old: Bought, add_session: AddSession, clock: Clock
) -> None:
    add_session(old.session.event)
    hours_before(clock, old.session, 1)

    quote = exchange_quote(order=old.order)

    assert not quote.ok and quote.refusal is not None
    assert quote.refusal.code == "exchange_cutoff_passed"
    assert quote.refusal.message == "It is too late to exchange tickets for this session."
