"""Ticket transfers through the services: offering (who may, which tickets, until when, to
whom), cancelling, accepting (the ticket moves, its QR is reissued, the old one stops
verifying at a gate), expiring, the notices each step queues, and every refusal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import User
from piaowu.aftersales.models import (
    Exchange,
    ExchangeItem,
    Notice,
    Refund,
    RefundItem,
    Transfer,
)
from piaowu.aftersales.selectors.transfers import (
    ticket_holder_id,
    tickets_held_by,
    transfer_state,
    transfers_received,
    transfers_sent,
)
from piaowu.aftersales.services.transfers import (
    ACCEPT_PATH,
    OFFER_VALID_FOR,
    transfer_accept,
    transfer_cancel,
    transfer_offer,
    transfers_expire_overdue,
)
from piaowu.cli.jobs import register_jobs
from piaowu.core.errors import DomainError
from piaowu.core.jobs import JobRegistry
from piaowu.orders.models import Order
from piaowu.payments.models import Payment
from piaowu.tickets.models import Ticket, TicketHistory
from piaowu.tickets.selectors import ticket_qr_text
from piaowu.tickets.services import ticket_void
from tests.aftersales.transfers.conftest import (
    RECEIVER_EMAIL,
    RECEIVER_PHONE,
    Bought,
    MakeBought,
    notices,
)
from tests.checkin.conftest import MakeDoor
from tests.inventory.conftest import Clock
from tests.tickets.conftest import MakePaidOrder

pytestmark = pytest.mark.django_db


def offer(bought: Bought, **kw: Any) -> Transfer:
    kw.setdefault("ticket", bought.ticket)
    kw.setdefault("sender", bought.buyer)
    kw.setdefault("receiver_contact", RECEIVER_PHONE)
    kw.setdefault("receiver_name", "王小明")
    return transfer_offer(**kw)


def refused(call: Callable[[], object]) -> DomainError:
    with pytest.raises(DomainError) as exc:
        call()
    return exc.value


def history(ticket: Ticket) -> list[tuple[str, int]]:
    return list(
        TicketHistory.objects.filter(ticket=ticket)
        .order_by("id")
        .values_list("action", "secret_version")
    )


# --- Offering ----------------------------------------------------------------------------------


def test_an_offer_is_pending_for_48_hours_and_texts_the_receiver(
    bought: Bought, clock: Clock
) -> None:
    transfer = offer(bought)

    assert transfer.state == Transfer.State.PENDING
    assert transfer.sender == bought.buyer
    assert transfer.receiver_contact == "13900139000"  # normalized
    assert transfer.receiver_name == "王小明"
    assert abs(transfer.expires_at - (clock() + OFFER_VALID_FOR)) < dt.timedelta(seconds=5)
    sent = notices(transfer.public_id)
    assert [(n.kind, n.recipient) for n in sent] == [("sms", "13900139000")]
    assert ACCEPT_PATH.format(code=transfer.code) in sent[0].body
    assert "王小明" not in sent[0].recipient
    # The ticket itself has not changed hands yet: same holder, same QR.
    ticket = bought.fresh()
    assert ticket.holder_id is None and ticket.secret_version == 1


def test_an_offer_by_e_mail_mails_the_code_and_the_link(bought: Bought) -> None:
    transfer = offer(bought, receiver_contact="  Friend@Example.com ")

    assert transfer.receiver_contact == RECEIVER_EMAIL
    (mail,) = notices(transfer.public_id)
    assert (mail.kind, mail.recipient) == ("email", RECEIVER_EMAIL)
    assert transfer.code in mail.body
    assert ACCEPT_PATH.format(code=transfer.code) in mail.body
    assert "王小明" in mail.body


def test_an_offer_expires_at_the_cut_off_when_that_comes_first(
    make_bought: MakeBought, clock: Clock
) -> None:
    bought = make_bought(cutoff_hours=3)
    # The session starts in 3 days; 20 hours before the start the cut-off (start − 3 h)
    # comes before the 48 hours.
    clock.shift(bought.session.starts_at - dt.timedelta(hours=20) - clock())

    transfer = offer(bought)

    assert transfer.expires_at == bought.session.starts_at - dt.timedelta(hours=3)


def test_a_session_without_transfers_refuses(make_bought: MakeBought) -> None:
    bought = make_bought(allowed=False)
    assert refused(lambda: offer(bought)).code == "transfers_not_allowed"
    assert not Transfer.objects.exists()


def test_after_the_cut_off_an_offer_is_refused(make_bought: MakeBought, clock: Clock) -> None:
    bought = make_bought(cutoff_hours=2)
    clock.shift(bought.session.starts_at - dt.timedelta(hours=2) - clock())

    error = refused(lambda: offer(bought))

    assert error.code == "transfer_cutoff_passed"
    assert "2 hours" in str(error.message)
    assert not Transfer.objects.exists()


def test_a_ticket_used_at_the_gate_cannot_be_transferred(
    make_bought: MakeBought, make_door: MakeDoor
) -> None:
    # Cut-off 0 h: the doors are open and transfers are not closed yet; only the scan refuses.
    bought = make_bought(cutoff_hours=0)
    door = make_door(bought.session, tickets=bought.tickets)
    door.open_doors()
    assert door.scan(door.qr()).outcome == "valid"

    assert refused(lambda: offer(bought)).code == "ticket_used"
    assert offer(bought, ticket=bought.tickets[1]).state == Transfer.State.PENDING


def test_a_void_ticket_cannot_be_transferred(bought: Bought) -> None:
    ticket_void(ticket=bought.ticket, actor=None, reason="refund")
    error = refused(lambda: offer(bought))
    assert (error.code, error.status) == ("ticket_void", 409)


def test_only_the_holder_may_transfer(
    bought: Bought, make_user: Callable[..., User], paid_order: MakePaidOrder
) -> None:
    stranger = make_user()
    error = refused(lambda: offer(bought, sender=stranger))
    assert (error.code, error.status) == ("ticket_not_yours", 403)

    guest_order = paid_order(session=bought.session, seats=["M-2-1"], holder_key="guest")
    guest_ticket = Ticket.objects.select_related("order").get(order=guest_order)
    assert refused(lambda: offer(bought, ticket=guest_ticket)).code == "ticket_not_yours"
    assert not Transfer.objects.exists()


def test_the_buyer_cannot_transfer_a_ticket_already_given_away(
    bought: Bought, receiver: User, make_user: Callable[..., User]
) -> None:
    transfer_accept(code=offer(bought).code, receiver=receiver)

    error = refused(lambda: offer(bought, receiver_contact="third@example.com"))
    assert error.code == "ticket_not_yours"

    # The receiver holds it now and may pass it on.
    onward = offer(bought, sender=receiver, receiver_contact="third@example.com")
    assert onward.state == Transfer.State.PENDING and onward.sender == receiver


@pytest.mark.parametrize("contact", ["buyer-self", "138 0013 8000"])
def test_a_transfer_to_yourself_is_refused(bought: Bought, contact: str) -> None:
    # The order's contact phone is 138 0013 8000 (tests/orders/conftest.py).
    value = bought.buyer.email.upper() if contact == "buyer-self" else contact
    error = refused(lambda: offer(bought, receiver_contact=value))
    assert (error.code, error.details["field"]) == ("transfer_to_self", "receiver_contact")


@pytest.mark.parametrize(
    "contact", ["", "   ", "abc", "12", "friend@", "@example.com", "138-abc-8000", "+" + "1" * 40]
)
def test_a_bad_contact_is_refused(bought: Bought, contact: str) -> None:
    error = refused(lambda: offer(bought, receiver_contact=contact))
    assert (error.code, error.details["field"]) == ("invalid_contact", "receiver_contact")
    assert not Transfer.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "名" * 81])
def test_a_bad_receiver_name_is_refused(bought: Bought, name: str) -> None:
    error = refused(lambda: offer(bought, receiver_name=name))
    assert (error.code, error.details["field"]) == ("invalid_receiver_name", "receiver_name")


def test_a_second_offer_while_one_is_pending_is_refused(bought: Bought) -> None:
    first = offer(bought)

    error = refused(lambda: offer(bought, receiver_contact=RECEIVER_EMAIL))

    assert (error.code, error.status) == ("transfer_pending", 409)
    assert list(Transfer.objects.values_list("pk", flat=True)) == [first.pk]
    # The other ticket of the order is free to go.
    assert offer(bought, ticket=bought.tickets[1]).state == Transfer.State.PENDING


def test_an_offer_past_its_expiry_no_longer_blocks_a_new_one(bought: Bought, clock: Clock) -> None:
    first = offer(bought)
    clock.shift(OFFER_VALID_FOR + dt.timedelta(minutes=1))

    second = offer(bought, receiver_contact=RECEIVER_EMAIL)

    first.refresh_from_db()
    assert first.state == Transfer.State.EXPIRED
    assert second.state == Transfer.State.PENDING


def _live_refund(order: Order, ticket: Ticket) -> None:
    # Rows as the refund workflow writes them (its service is built alongside this one).
    payment = Payment.objects.create(
        order=order,
        provider="sandbox",
        reference=f"pay-{order.code}",
        status="paid",
        amount=order.total_amount,
        currency=order.currency,
    )
    refund = Refund.objects.create(
        order=order,
        payment=payment,
        kind=Refund.Kind.CUSTOMER,
        gross_amount=Decimal("100"),
        fee_amount=Decimal("0"),
        amount=Decimal("100"),
        currency=order.currency,
    )
    RefundItem.objects.create(
        refund=refund, ticket=ticket, gross_amount=Decimal("100"), fee_amount=Decimal("0")
    )


def test_a_ticket_in_a_live_refund_or_exchange_cannot_be_transferred(bought: Bought) -> None:
    _live_refund(bought.order, bought.tickets[0])
    exchange = Exchange.objects.create(
        from_order=bought.order,
        state=Exchange.State.AWAITING_PAYMENT,
        old_value=Decimal("100"),
        new_value=Decimal("150"),
        fee_amount=Decimal("0"),
        difference=Decimal("50"),
        currency=bought.order.currency,
    )
    ExchangeItem.objects.create(exchange=exchange, ticket=bought.tickets[1])

    assert refused(lambda: offer(bought)).code == "ticket_in_refund"
    assert refused(lambda: offer(bought, ticket=bought.tickets[1])).code == "ticket_in_exchange"

    # A refund that is no longer live (rejected) does not block.
    RefundItem.objects.filter(ticket=bought.tickets[0]).update(live=False)
    assert offer(bought).state == Transfer.State.PENDING


def test_a_ticket_of_an_order_no_longer_paid_cannot_be_transferred(bought: Bought) -> None:
    # No service leaves a valid ticket on a refunded order (refunds void the tickets): this
    # pokes the state to show the guard behind that.
    Order.objects.filter(pk=bought.order.pk).update(state="refunded")
    error = refused(lambda: offer(bought))
    assert (error.code, error.details["state"]) == ("order_not_paid", "refunded")


# --- Cancelling --------------------------------------------------------------------------------


def test_the_sender_cancels_a_pending_transfer_and_the_receiver_is_told(
    offered: Transfer, bought: Bought
) -> None:
    cancelled = transfer_cancel(transfer=offered, actor=bought.buyer)

    assert cancelled.state == Transfer.State.CANCELLED
    assert [n.kind for n in notices(f"{offered.public_id}:cancelled")] == ["sms"]
    assert bought.fresh().secret_version == 1  # the ticket never moved
    # … and may be offered again.
    assert offer(bought).state == Transfer.State.PENDING


def test_only_the_sender_may_cancel(offered: Transfer, receiver: User) -> None:
    error = refused(lambda: transfer_cancel(transfer=offered, actor=receiver))
    assert (error.code, error.status) == ("transfer_not_found", 404)
    offered.refresh_from_db()
    assert offered.state == Transfer.State.PENDING


def test_an_accepted_or_expired_transfer_cannot_be_cancelled(
    offered: Transfer, bought: Bought, receiver: User, make_bought: MakeBought, clock: Clock
) -> None:
    transfer_accept(code=offered.code, receiver=receiver)
    error = refused(lambda: transfer_cancel(transfer=offered, actor=bought.buyer))
    assert (error.code, error.details["state"]) == ("transfer_not_pending", "accepted")

    other = make_bought()
    late = offer(other)
    clock.shift(OFFER_VALID_FOR + dt.timedelta(seconds=1))
    error = refused(lambda: transfer_cancel(transfer=late, actor=other.buyer))
    assert (error.code, error.details["state"]) == ("transfer_not_pending", "expired")


# --- Accepting ---------------------------------------------------------------------------------


def test_accepting_moves_the_ticket_with_a_fresh_qr_and_tells_the_sender(
    offered: Transfer, bought: Bought, receiver: User
) -> None:
    old_qr = ticket_qr_text(bought.fresh())

    accepted = transfer_accept(code=offered.code, receiver=receiver)

    assert accepted.state == Transfer.State.ACCEPTED
    assert accepted.receiver == receiver and accepted.accepted_at is not None
    ticket = bought.fresh()
    assert ticket.holder == receiver
    assert ticket.attendee_name == "王小明"
    assert ticket.secret_version == 2
    assert ticket_qr_text(ticket) != old_qr
    assert history(ticket) == [("issued", 1), ("transferred", 2)]
    row = TicketHistory.objects.get(ticket=ticket, action="transferred")
    assert row.actor == receiver and receiver.email in row.reason
    (told,) = notices(f"{offered.public_id}:accepted")
    assert (told.kind, told.recipient) == ("email", bought.buyer.email)
    assert "王小明" in told.subject
    # The other ticket of the order stays with the buyer.
    assert bought.fresh(1).holder_id is None


def test_the_old_qr_stops_verifying_at_the_gate_and_the_new_one_admits(
    offered: Transfer, bought: Bought, receiver: User, make_door: MakeDoor
) -> None:
    door = make_door(bought.session, tickets=bought.tickets)
    old_qr = door.qr(0)

    transfer_accept(code=offered.code, receiver=receiver)
    door.open_doors()

    assert door.scan(old_qr).outcome == "revoked"
    assert door.scan(door.qr(0)).outcome == "valid"


def test_the_code_may_be_typed_loosely(offered: Transfer, receiver: User) -> None:
    typed = " " + "-".join([offered.code[:4], offered.code[4:8], offered.code[8:]]).lower()
    typed = typed.replace("0", "o").replace("1", "l")
    assert transfer_accept(code=typed, receiver=receiver).state == Transfer.State.ACCEPTED


@pytest.mark.parametrize("code", ["", "NOPE", "ZZZZZZZZZZZZ"])
def test_a_wrong_code_is_refused(offered: Transfer, receiver: User, code: str) -> None:
    error = refused(lambda: transfer_accept(code=code, receiver=receiver))
    assert (error.code, error.status) == ("transfer_code_invalid", 404)


def test_an_expired_offer_cannot_be_accepted(
    offered: Transfer, receiver: User, bought: Bought, clock: Clock
) -> None:
    clock.shift(OFFER_VALID_FOR + dt.timedelta(seconds=1))
    error = refused(lambda: transfer_accept(code=offered.code, receiver=receiver))
    assert (error.code, error.status) == ("transfer_expired", 409)
    assert bought.fresh().holder_id is None


def test_a_cancelled_offer_cannot_be_accepted(
    offered: Transfer, receiver: User, bought: Bought
) -> None:
    transfer_cancel(transfer=offered, actor=bought.buyer)
    error = refused(lambda: transfer_accept(code=offered.code, receiver=receiver))
    assert error.code == "transfer_cancelled"
    assert bought.fresh().holder_id is None


def test_a_used_code_and_a_second_accept_are_refused(
    offered: Transfer, receiver: User, make_user: Callable[..., User], bought: Bought
) -> None:
    transfer_accept(code=offered.code, receiver=receiver)

    again = refused(lambda: transfer_accept(code=offered.code, receiver=receiver))
    assert (again.code, again.status) == ("transfer_already_accepted", 409)
    other = refused(lambda: transfer_accept(code=offered.code, receiver=make_user()))
    assert (other.code, other.status) == ("transfer_code_used", 409)
    ticket = bought.fresh()
    assert ticket.holder == receiver and ticket.secret_version == 2


def test_the_sender_cannot_accept_their_own_offer(offered: Transfer, bought: Bought) -> None:
    error = refused(lambda: transfer_accept(code=offered.code, receiver=bought.buyer))
    assert error.code == "transfer_to_self"
    offered.refresh_from_db()
    assert offered.state == Transfer.State.PENDING


def test_a_ticket_voided_after_the_offer_cannot_be_accepted(
    offered: Transfer, bought: Bought, receiver: User
) -> None:
    ticket_void(ticket=bought.ticket, actor=None, reason="refund")
    assert refused(lambda: transfer_accept(code=offered.code, receiver=receiver)).code == (
        "ticket_void"
    )
    offered.refresh_from_db()
    assert offered.state == Transfer.State.PENDING and offered.receiver is None


def test_a_ticket_put_in_a_refund_after_the_offer_cannot_be_accepted(
    offered: Transfer, bought: Bought, receiver: User
) -> None:
    _live_refund(bought.order, bought.ticket)
    error = refused(lambda: transfer_accept(code=offered.code, receiver=receiver))
    assert error.code == "ticket_in_refund"
    assert bought.fresh().holder_id is None


# --- Expiring ----------------------------------------------------------------------------------


def test_the_job_expires_overdue_offers_and_tells_their_senders(
    make_bought: MakeBought, receiver: User, clock: Clock
) -> None:
    overdue = offer(make_bought())
    accepted = offer(make_bought())
    transfer_accept(code=accepted.code, receiver=receiver)
    clock.shift(OFFER_VALID_FOR + dt.timedelta(seconds=1))
    fresh = offer(make_bought())

    assert transfer_state(overdue) == "expired"  # already, before the job runs
    assert transfers_expire_overdue() == 1
    assert transfers_expire_overdue() == 0

    states = {t.pk: t.state for t in Transfer.objects.all()}
    assert states == {overdue.pk: "expired", accepted.pk: "accepted", fresh.pk: "pending"}
    (told,) = notices(f"{overdue.public_id}:expired")
    assert (told.kind, told.recipient) == ("email", overdue.sender.email)


def test_the_worker_runs_the_expiry_job(offered: Transfer, clock: Clock) -> None:
    jobs = {job.name: job for job in register_jobs(JobRegistry()).jobs()}
    job = jobs["aftersales.transfers_expire_overdue"]
    assert job.func() == 0
    clock.shift(OFFER_VALID_FOR + dt.timedelta(seconds=1))
    assert job.func() == 1
    offered.refresh_from_db()
    assert offered.state == Transfer.State.EXPIRED


# --- Who holds what ----------------------------------------------------------------------------


def test_held_tickets_follow_the_transfer(
    offered: Transfer, bought: Bought, receiver: User
) -> None:
    assert set(tickets_held_by(bought.buyer)) == set(bought.tickets)
    assert list(tickets_held_by(receiver)) == []

    transfer_accept(code=offered.code, receiver=receiver)

    assert list(tickets_held_by(bought.buyer)) == [bought.tickets[1]]
    assert list(tickets_held_by(receiver)) == [bought.tickets[0]]
    assert ticket_holder_id(bought.fresh()) == receiver.pk
    assert list(transfers_sent(bought.buyer)) == [offered]
    assert list(transfers_received(receiver)) == [offered]
    assert list(transfers_received(bought.buyer)) == []


def test_no_notice_is_queued_for_a_refused_offer(bought: Bought) -> None:
    refused(lambda: offer(bought, receiver_contact="nope"))
    assert not Notice.objects.exists()
