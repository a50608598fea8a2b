"""Issuing: a paid order gets one ticket per seat / GA admission in the paid transaction, with
unique serials and tokens, a verifiable QR, history, and its e-mail / SMS deliveries queued."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import CapacityMode, Session
from piaowu.catalog.services import TierSpec
from piaowu.core.errors import DomainError
from piaowu.inventory.services import hold_quantity, hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_cancel, order_checkout, order_mark_paid
from piaowu.orders.states import OrderState
from piaowu.tickets import codec
from piaowu.tickets.models import Delivery, Ticket, TicketHistory
from piaowu.tickets.selectors import (
    ticket_eticket,
    ticket_qr_text,
    ticket_rotation_secret,
    tickets_for_order,
)
from piaowu.tickets.services import admission_window, tickets_issue_for_order
from tests.factories import make_event, make_session, make_venue
from tests.orders.conftest import PHONE, web_channel
from tests.tickets.conftest import MakePaidOrder


def test_one_ticket_per_seat(paid_order: MakePaidOrder) -> None:
    order = paid_order(seats=["M-1-5", "M-1-6", "M-2-1"])
    tickets = list(Ticket.objects.filter(order=order).order_by("seat__code"))
    assert [t.seat.code for t in tickets if t.seat] == ["M-1-5", "M-1-6", "M-2-1"]
    start, end = admission_window(order.session)
    for ticket in tickets:
        assert ticket.state == Ticket.State.VALID and ticket.secret_version == 1
        assert ticket.session == order.session and ticket.tier.code == "std"
        assert ticket.organizer == order.session.event.organizer
        assert (ticket.valid_from, ticket.valid_until) == (start, end)
        assert start < order.session.starts_at < order.session.ends_at < end
        assert not ticket.rotating


def test_one_ticket_per_ga_admission(paid_order: MakePaidOrder) -> None:
    order = paid_order(ga=3)
    tickets = list(order.tickets.order_by("index"))
    assert [t.index for t in tickets] == [0, 1, 2]
    assert all(t.seat is None and t.order_line == tickets[0].order_line for t in tickets)


def test_serials_and_tokens_are_unique(paid_order: MakePaidOrder) -> None:
    paid_order(ga=6)
    paid_order(ga=5, holder_key="another")
    paid_order(seats=["M-1-1", "M-1-2", "M-1-3"])
    serials = list(Ticket.objects.values_list("serial", flat=True))
    tokens = list(Ticket.objects.values_list("token", flat=True))
    assert len(serials) == len(set(serials)) == 14
    assert len(tokens) == len(set(tokens)) == 14
    assert all(codec.normalize_serial(s) == s for s in serials)
    assert all(0 <= t < 2**63 for t in tokens)


def test_the_qr_names_the_ticket_and_verifies(paid_order: MakePaidOrder) -> None:
    ticket = paid_order().tickets.select_related("signing_key").first()
    assert ticket is not None
    parsed = codec.parse(ticket_qr_text(ticket))
    claims = parsed.claims
    assert (claims.token, claims.session_id, claims.seat_id, claims.tier_id) == (
        ticket.token,
        ticket.session_id,
        ticket.seat_id,
        ticket.tier_id,
    )
    assert claims.kid == ticket.signing_key.kid and claims.secret_version == 1
    assert claims.valid_from == int(ticket.valid_from.timestamp())
    public = Ed25519PublicKey.from_public_bytes(bytes(ticket.signing_key.public_key))
    assert parsed.verify(public)
    assert ticket_qr_text(ticket) == ticket_qr_text(ticket)  # deterministic


def test_issuing_again_changes_nothing(paid_order: MakePaidOrder) -> None:
    order = paid_order()
    before = list(order.tickets.order_by("id").values_list("id", "serial", "token"))
    deliveries = Delivery.objects.filter(order=order).count()

    again = tickets_issue_for_order(order)
    order_mark_paid(order=order)  # a second payment notification

    assert sorted(t.pk for t in again) == [pk for pk, _s, _t in before]
    assert list(order.tickets.order_by("id").values_list("id", "serial", "token")) == before
    assert TicketHistory.objects.filter(ticket__order=order, action="issued").count() == 2
    assert Delivery.objects.filter(order=order).count() == deliveries


def test_an_unpaid_order_gets_no_tickets(
    organizer: Organizer, reserved_session: Callable[..., Session]
) -> None:
    session = reserved_session()
    hold = hold_seats(session=session, seat_codes=["M-1-1"], holder_key="b")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="b", contact_phone=PHONE
    )
    assert not order.tickets.exists()
    with pytest.raises(DomainError) as exc:
        tickets_issue_for_order(order)
    assert exc.value.code == "order_not_paid"
    order_cancel(order=order)
    order.refresh_from_db()
    with pytest.raises(DomainError):
        tickets_issue_for_order(order)
    assert not Ticket.objects.exists() and not Delivery.objects.exists()


def test_a_free_order_is_issued_at_checkout(organizer: Organizer, free_ga_session: Session) -> None:
    hold = hold_quantity(session=free_ga_session, tier_code="invite", quantity=2, holder_key="b")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="b", contact_phone=PHONE
    )
    assert order.state == OrderState.PAID and order.total_amount == Decimal("0")
    assert order.tickets.count() == 2


def test_history_records_the_issue(paid_order: MakePaidOrder) -> None:
    order = paid_order(ga=2)
    rows = TicketHistory.objects.filter(ticket__order=order)
    assert sorted(rows.values_list("action", "secret_version", "reason")) == [
        ("issued", 1, "paid"),
        ("issued", 1, "paid"),
    ]


def test_a_guest_with_a_phone_gets_an_sms(paid_order: MakePaidOrder) -> None:
    order = paid_order()
    rows = list(Delivery.objects.filter(order=order).values_list("kind", "recipient", "status"))
    assert rows == [("sms", "13800138000", "pending")]


def test_an_email_is_queued_when_one_is_known(
    paid_order: MakePaidOrder, make_user: Callable[..., User]
) -> None:
    with_contact = paid_order(contact_email="wang@example.com")
    assert set(Delivery.objects.filter(order=with_contact).values_list("kind", "recipient")) == {
        ("email", "wang@example.com"),
        ("sms", "13800138000"),
    }
    customer = make_user(email="li@example.com")
    account = paid_order(seats=["M-3-1"], customer=customer, contact_phone="")
    assert list(Delivery.objects.filter(order=account).values_list("kind", "recipient")) == [
        ("email", "li@example.com")
    ]


def test_deliveries_are_due_at_once(paid_order: MakePaidOrder) -> None:
    order = paid_order()
    delivery = Delivery.objects.get(order=order)
    assert delivery.next_attempt_at <= delivery.created_at + dt.timedelta(seconds=1)
    assert delivery.attempts == 0


def test_a_failing_issue_rolls_the_payment_back(
    paid_order: MakePaidOrder,
    organizer: Organizer,
    reserved_session: Callable[..., Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = reserved_session()
    hold = hold_seats(session=session, seat_codes=["M-1-1"], holder_key="b")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="b", contact_phone=PHONE
    )

    def broken(order: Order, now: Any) -> None:
        raise RuntimeError("outbox down")

    monkeypatch.setattr("piaowu.tickets.services._deliveries_queue", broken)
    with pytest.raises(RuntimeError):
        order_mark_paid(order=order)
    order.refresh_from_db()
    assert order.state == OrderState.AWAITING_PAYMENT
    assert not Ticket.objects.filter(order=order).exists()


def test_a_rotating_session_issues_rotating_tickets(organizer: Organizer) -> None:
    event = make_event(organizer, title="热门演唱会")
    session = make_session(
        event,
        venue=make_venue(organizer, name="体育场"),
        capacity_mode=CapacityMode.GENERAL,
        capacity=10,
        tiers=[TierSpec(code="ga", name="看台", price=Decimal("480"))],
        rotating_qr=True,
    )
    hold = hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="b")
    order = order_mark_paid(
        order=order_checkout(
            hold=hold, channel=web_channel(organizer), holder_key="b", contact_phone=PHONE
        )
    )
    ticket = tickets_for_order(order).get()
    assert ticket.rotating and codec.parse(ticket_qr_text(ticket)).claims.rotating
    shown = ticket_eticket(ticket)
    assert shown.rotating and shown.step_seconds == 15
    assert shown.rotation_secret is not None
    padded = shown.rotation_secret + "=" * (-len(shown.rotation_secret) % 8)
    assert base64.b32decode(padded) == ticket_rotation_secret(ticket)


def test_a_static_tickets_eticket_has_no_rotation_secret(paid_order: MakePaidOrder) -> None:
    ticket = tickets_for_order(paid_order()).first()
    assert ticket is not None
    shown = ticket_eticket(ticket)
    assert shown.qr == ticket_qr_text(ticket)
    assert not shown.rotating and shown.rotation_secret is None and shown.step_seconds is None
