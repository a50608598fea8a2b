"""The refund workflow (AFT-2): requested → approved (at once, or by staff) → processing at the
provider → succeeded; rejected; what a refund gives back (tickets void, seats and quota back
on sale, ledger rows, the order's state, notices) and every refusal the issue lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Notice, Refund, RefundHistory, RefundItem
from piaowu.aftersales.services.refunds import (
    funding_payment,
    refund_approve,
    refund_money,
    refund_process,
    refund_reject,
    refund_request,
    refunds_process_due,
)
from piaowu.checkin.services import checkin_scan, device_register, gate_create, key_cache_clear
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.inventory.models import SeatState
from piaowu.inventory.selectors import session_availability
from piaowu.inventory.services import hold_quantity
from piaowu.orders.models import OrderHistory
from piaowu.orders.services import order_checkout
from piaowu.orders.states import OrderState
from piaowu.payments.models import LedgerEntry, Payment, SandboxRefund
from piaowu.tickets.models import Ticket, TicketHistory
from piaowu.tickets.selectors import ticket_qr_text
from tests.aftersales.refunds.conftest import (
    Bought,
    Clock,
    MakeBought,
    hours_before,
    refund_rule,
)
from tests.orders.conftest import web_channel

pytestmark = pytest.mark.django_db


def seat_state(bought: Bought, code: str) -> str:
    return str(
        SeatState.objects.filter(session=bought.session, seat__code=code)
        .values_list("state", flat=True)
        .first()
        or "available"
    )


def ticket_states(bought: Bought) -> list[str]:
    return list(
        Ticket.objects.filter(order=bought.order).order_by("id").values_list("state", flat=True)
    )


def ledger(bought: Bought) -> list[tuple[str, Decimal, str]]:
    return list(
        LedgerEntry.objects.filter(order=bought.order)
        .order_by("at", "id")
        .values_list("kind", "amount", "reference")
    )


def steps(refund: Refund) -> list[tuple[str, str]]:
    return list(
        RefundHistory.objects.filter(refund=refund)
        .order_by("at", "id")
        .values_list("from_state", "to_state")
    )


def topics(refund: Refund) -> set[tuple[str, str]]:
    return set(
        Notice.objects.filter(topic__startswith=f"refund:{refund.number}:").values_list(
            "topic", "kind"
        )
    )


def refused(code: str, call: Callable[[], object]) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.code == code, (caught.value.code, caught.value.details)
    return caught.value


# --- A refund that needs nobody --------------------------------------------------------------


def test_a_free_refund_of_one_ticket_goes_through_at_once(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    ticket = purchase.ticket("M-1-5")

    refund = refund_request(order=purchase.order, tickets=[ticket], actor=buyer, reason="有事")

    # the refund went through the provider, with its number as the provider's request number
    assert refund.state == Refund.State.SUCCEEDED
    assert (refund.gross_amount, refund.fee_amount, refund.amount) == (
        Decimal("180"),
        Decimal("0"),
        Decimal("180"),
    )
    assert refund.kind == Refund.Kind.CUSTOMER and refund.requested_by == buyer
    assert refund.succeeded_at is not None and refund.attempts == 1
    sandbox = SandboxRefund.objects.get(refund_reference=refund.number)
    assert sandbox.amount == Decimal("180") and refund.provider_refund_id == str(sandbox.pk)
    assert steps(refund) == [
        ("", "requested"),
        ("requested", "approved"),
        ("approved", "processing"),
        ("processing", "succeeded"),
    ]
    # the ticket is void (with its history), the other one still valid
    assert ticket_states(purchase) == ["void", "valid"]
    assert TicketHistory.objects.filter(ticket=ticket, action="voided").count() == 1
    # the seat is on sale again, the other one still sold
    assert seat_state(purchase, "M-1-5") == "available"
    assert seat_state(purchase, "M-1-6") == "sold"
    # the money: captured 360, refunded 180 under the refund's number; reserved on the payment
    assert ledger(purchase) == [
        ("capture", Decimal("360"), purchase.payment.reference),
        ("refund", Decimal("-180"), refund.number),
    ]
    assert Payment.objects.get(pk=purchase.payment.pk).refunded_amount == Decimal("180")
    # the order is partially refunded, and says why
    purchase.order.refresh_from_db()
    assert purchase.order.state == OrderState.PARTIALLY_REFUNDED
    assert OrderHistory.objects.filter(
        order=purchase.order, to_state="partially_refunded", reason=f"refund {refund.number}"
    ).exists()
    # the buyer is told by e-mail and SMS, once per step
    assert topics(refund) == {
        (f"refund:{refund.number}:{step}", kind)
        for step in ("approved", "succeeded")
        for kind in ("email", "sms")
    }
    mail = Notice.objects.get(topic=f"refund:{refund.number}:succeeded", kind="email")
    assert mail.recipient == buyer.email
    assert mail.subject == f"Refund {refund.number} completed: 180.00 CNY returned"
    assert purchase.order.code in mail.body
    assert f"/refunds/{refund.public_id}/" in mail.body


def test_refunding_the_last_ticket_makes_the_order_refunded(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    first = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)
    second = refund_request(order=purchase.order, tickets=purchase.tickets[1:], actor=buyer)

    purchase.order.refresh_from_db()
    assert purchase.order.state == OrderState.REFUNDED
    assert [r.state for r in (first, second)] == ["succeeded", "succeeded"]
    assert sum(amount for _kind, amount, _ref in ledger(purchase)) == Decimal("0")
    assert Payment.objects.get(pk=purchase.payment.pk).refunded_amount == Decimal("360")
    assert {seat_state(purchase, s) for s in ("M-1-5", "M-1-6")} == {"available"}


def test_a_refund_of_the_whole_order_by_default(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)

    refund = refund_request(order=purchase.order, actor=buyer)

    assert refund.items.count() == 2 and refund.amount == Decimal("360")
    purchase.order.refresh_from_db()
    assert purchase.order.state == OrderState.REFUNDED


def test_a_fee_is_kept_and_only_the_rest_goes_back(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 30)  # 10 %

    refund = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)

    assert (refund.gross_amount, refund.fee_amount, refund.amount) == (
        Decimal("180"),
        Decimal("18"),
        Decimal("162"),
    )
    item = RefundItem.objects.get(refund=refund)
    assert (item.gross_amount, item.fee_amount) == (Decimal("180"), Decimal("18"))
    assert SandboxRefund.objects.get(refund_reference=refund.number).amount == Decimal("162")
    assert ledger(purchase)[-1] == ("refund", Decimal("-162"), refund.number)


def test_a_refund_the_fee_eats_entirely_completes_without_the_provider(
    bought: MakeBought, buyer: User, clock: Clock, reserved_session: Callable[..., object]
) -> None:
    from piaowu.catalog.services import TierSpec

    session = reserved_session(tiers=[TierSpec(code="std", name="特价", price=Decimal("2"))])
    purchase = bought(session=session)
    refund_rule(purchase.session.event, minimum_fee="5")
    hours_before(clock, purchase.session, 30)

    refund = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)

    assert refund.state == Refund.State.SUCCEEDED and refund.amount == Decimal("0")
    assert not SandboxRefund.objects.exists()
    assert [kind for kind, _a, _r in ledger(purchase)] == ["capture"]
    assert seat_state(purchase, "M-1-5") == "available"


def test_general_admission_refunds_put_the_count_back_on_sale(
    bought: MakeBought, buyer: User, make_user: Callable[..., User]
) -> None:
    purchase = bought(ga=3)
    refund_rule(purchase.session.event)
    before = session_availability(purchase.session)["available"]

    refund_request(order=purchase.order, tickets=purchase.tickets[:2], actor=buyer)

    assert session_availability(purchase.session)["available"] == before + 2
    assert ticket_states(purchase) == ["void", "void", "valid"]
    # the returned admissions can really be bought again
    assert hold_quantity(
        session=purchase.session, tier_code="ga", quantity=2, holder_key="next-buyer"
    )


def test_sold_out_general_admission_is_buyable_again_after_a_refund(
    bought: MakeBought,
    buyer: User,
    ga_session: Callable[..., object],
    organizer: Organizer,
    django_capture_on_commit_callbacks: Callable[..., object],
) -> None:
    session = ga_session(capacity=2)
    purchase = bought(session=session, ga=2)
    refund_rule(purchase.session.event)
    refused(
        "sold_out",
        lambda: hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="x"),
    )

    # (after the commit the sold-out marker is cleared: admissions came back)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)

    hold = hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="x")
    order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="x", contact_phone="13900000000"
    )
    refused(
        "sold_out",
        lambda: hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="y"),
    )


def test_availability_counts_a_refunded_admission_as_available_not_sold(
    bought: MakeBought, buyer: User, ga_session: Callable[..., object]
) -> None:
    session = ga_session(capacity=4)
    purchase = bought(session=session, ga=3)
    refund_rule(purchase.session.event)

    refund_request(order=purchase.order, tickets=purchase.tickets[:2], actor=buyer)

    counts = session_availability(session)  # type: ignore[arg-type]
    assert (counts["sold"], counts["available"], counts["capacity"]) == (1, 3, 4)


# --- The old QR stops working ----------------------------------------------------------------


def test_a_refunded_tickets_qr_is_refused_at_the_gate(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    key_cache_clear()
    purchase = bought()
    refund_rule(purchase.session.event)
    ticket, kept = purchase.tickets
    old_qr = ticket_qr_text(Ticket.objects.select_related("signing_key").get(pk=ticket.pk))
    refund_request(order=purchase.order, tickets=[ticket], actor=buyer)
    venue = purchase.session.venue
    gate = gate_create(venue=venue, name="1号门")
    device, _token = device_register(venue=venue, name="扫码枪", actor=None)
    hours_before(clock, purchase.session, 0.5)  # doors open

    def scan(code: str, nonce: str) -> str:
        return checkin_scan(
            device=device, gate=gate, session=purchase.session, code=code, nonce=nonce
        ).outcome

    assert scan(old_qr, "n-1") == "revoked"
    kept_qr = ticket_qr_text(Ticket.objects.select_related("signing_key").get(pk=kept.pk))
    assert scan(kept_qr, "n-2") == "valid"
    key_cache_clear()


# --- Approval by staff -------------------------------------------------------------------------


def test_a_rule_needing_approval_waits_for_staff_with_nothing_given_back(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)

    refund = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)

    assert refund.state == Refund.State.REQUESTED
    assert ticket_states(purchase) == ["valid", "valid"]
    assert seat_state(purchase, "M-1-5") == "sold"
    assert Payment.objects.get(pk=purchase.payment.pk).refunded_amount == Decimal("0")
    assert not SandboxRefund.objects.exists()
    assert topics(refund) == {
        (f"refund:{refund.number}:requested", "email"),
        (f"refund:{refund.number}:requested", "sms"),
    }
    # the job leaves a request alone
    assert refunds_process_due() == 0
    assert Refund.objects.get(pk=refund.pk).state == Refund.State.REQUESTED


def test_staff_approve_a_waiting_refund_and_it_goes_through(
    bought: MakeBought, buyer: User, staff: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    refund = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)

    refund_approve(refund=refund, actor=staff)

    refund.refresh_from_db()
    assert refund.state == Refund.State.SUCCEEDED
    assert RefundHistory.objects.get(refund=refund, to_state="approved").actor == staff
    assert ticket_states(purchase) == ["void", "valid"]
    assert seat_state(purchase, "M-1-5") == "available"
    refused("refund_state_changed", lambda: refund_approve(refund=refund, actor=staff))


def test_staff_reject_a_refund_with_a_reason_and_the_ticket_can_be_asked_for_again(
    bought: MakeBought, buyer: User, staff: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    refund = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)
    refused("refund_reason_required", lambda: refund_reject(refund=refund, actor=staff, reason=" "))

    refund_reject(refund=refund, actor=staff, reason="演出前一天不受理")

    refund.refresh_from_db()
    assert refund.state == Refund.State.REJECTED
    assert not RefundItem.objects.get(refund=refund).live
    entry = RefundHistory.objects.get(refund=refund, to_state="rejected")
    assert (entry.actor, entry.note) == (staff, "演出前一天不受理")
    assert (
        "演出前一天不受理"
        in Notice.objects.get(topic=f"refund:{refund.number}:rejected", kind="email").body
    )
    assert ticket_states(purchase) == ["valid", "valid"]
    refused("refund_state_changed", lambda: refund_approve(refund=refund, actor=staff))
    # the same ticket may be asked for again
    again = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)
    assert again.state == Refund.State.REQUESTED


def test_only_staff_who_may_refund_at_the_organizer_approve_reject_or_retry(
    bought: MakeBought,
    buyer: User,
    make_staff: Callable[..., User],
    organizer: Organizer,
    other_organizer: Organizer,
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    refund = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)
    checker = make_staff(organizer, role=Role.CHECKER)
    rival = make_staff(other_organizer, role=Role.ADMIN)

    for actor in (checker, rival, buyer):
        refused("forbidden", lambda actor=actor: refund_approve(refund=refund, actor=actor))
        refused(
            "forbidden",
            lambda actor=actor: refund_reject(refund=refund, actor=actor, reason="no"),
        )
    assert Refund.objects.get(pk=refund.pk).state == Refund.State.REQUESTED


# --- Staff on the customer's behalf -------------------------------------------------------------


def test_staff_refund_on_behalf_after_the_cut_off_with_a_reason_and_no_fee(
    bought: MakeBought, staff: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    hours_before(clock, purchase.session, 1)

    refund = refund_request(
        order=purchase.order,
        tickets=purchase.tickets[:1],
        actor=staff,
        kind=Refund.Kind.STAFF,
        reason="顾客住院，凭证已核",
        waive_fee=True,
    )

    assert refund.state == Refund.State.SUCCEEDED  # staff need no approval
    assert refund.amount == Decimal("180") and refund.fee_amount == Decimal("0")
    assert refund.kind == "staff" and refund.requested_by == staff
    assert refund.reason == "顾客住院，凭证已核"
    first = RefundHistory.objects.filter(refund=refund).order_by("at", "id").first()
    assert first is not None and (first.actor, first.note) == (staff, "顾客住院，凭证已核")


def test_staff_refund_needs_a_reason_and_the_refund_permission(
    bought: MakeBought,
    staff: User,
    make_staff: Callable[..., User],
    organizer: Organizer,
    other_organizer: Organizer,
) -> None:
    purchase = bought()
    refused(
        "refund_reason_required",
        lambda: refund_request(order=purchase.order, actor=staff, kind=Refund.Kind.STAFF),
    )
    for actor in (make_staff(organizer, role=Role.FINANCE), make_staff(other_organizer), None):
        refused(
            "forbidden",
            lambda actor=actor: refund_request(
                order=purchase.order, actor=actor, kind=Refund.Kind.STAFF, reason="goodwill"
            ),
        )
    assert not Refund.objects.exists()


# --- Money without tickets -----------------------------------------------------------------------


def test_a_money_refund_is_approved_at_once_and_processed_by_the_job(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()

    refund = refund_money(
        order=purchase.order,
        amount=Money(Decimal("50"), "CNY"),
        kind=Refund.Kind.EXCHANGE,
        reason="差价",
        actor=buyer,
    )

    assert refund.state == Refund.State.APPROVED
    assert Payment.objects.get(pk=purchase.payment.pk).refunded_amount == Decimal("50")
    assert refunds_process_due() == 1
    refund.refresh_from_db()
    assert refund.state == Refund.State.SUCCEEDED
    purchase.order.refresh_from_db()
    assert purchase.order.state == OrderState.PAID  # no ticket was given back
    assert ledger(purchase)[-1] == ("refund", Decimal("-50"), refund.number)


def test_a_money_refund_is_refused_when_it_is_not_positive_or_not_the_paid_currency(
    bought: MakeBought,
) -> None:
    order = bought().order

    def give(amount: Money) -> Callable[[], Refund]:
        return lambda: refund_money(
            order=order, amount=amount, kind=Refund.Kind.EXCHANGE, reason="", actor=None
        )

    refused("refund_amount_invalid", give(Money(Decimal("0"), "CNY")))
    refused("refund_amount_invalid", give(Money(Decimal("-1"), "CNY")))
    refused("refund_currency_mismatch", give(Money(Decimal("10"), "USD")))
    refused("refund_exceeds_payment", give(Money(Decimal("360.01"), "CNY")))
    assert not Refund.objects.exists()


# --- Bad input ----------------------------------------------------------------------------------


def test_a_refund_after_the_non_refundable_cut_off_is_refused_and_nothing_written(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 1.5)

    error = refused(
        "refund_not_allowed",
        lambda: refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer),
    )

    assert error.status == 400
    assert error.details == {"ticket": purchase.tickets[0].serial}
    assert str(error.message) == "This ticket can no longer be refunded under the event's rules."
    assert not Refund.objects.exists() and not Notice.objects.exists()
    assert ticket_states(purchase) == ["valid", "valid"]


def test_a_used_ticket_cannot_be_refunded(bought: MakeBought, buyer: User, clock: Clock) -> None:
    key_cache_clear()
    purchase = bought()
    refund_rule(purchase.session.event, tiers=((0, "10"),))  # refundable until the start
    venue = purchase.session.venue
    gate = gate_create(venue=venue, name="1号门")
    device, _token = device_register(venue=venue, name="扫码枪", actor=None)
    hours_before(clock, purchase.session, 0.5)
    used = Ticket.objects.select_related("signing_key").get(pk=purchase.tickets[0].pk)
    scanned = checkin_scan(
        device=device, gate=gate, session=purchase.session, code=ticket_qr_text(used), nonce="n1"
    )
    assert scanned.outcome == "valid"

    error = refused(
        "ticket_used",
        lambda: refund_request(order=purchase.order, tickets=[used], actor=buyer),
    )
    assert error.details == {"ticket": used.serial}
    # staff cannot refund it either
    refused(
        "ticket_used",
        lambda: refund_request(
            order=purchase.order, tickets=[used], actor=None, kind=Refund.Kind.CANCELLATION
        ),
    )
    # the unused ticket can still be refunded
    refund = refund_request(order=purchase.order, tickets=purchase.tickets[1:], actor=buyer)
    assert refund.state == Refund.State.SUCCEEDED
    key_cache_clear()


def test_asking_twice_for_the_same_ticket_is_refused(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)

    error = refused(
        "refund_in_progress",
        lambda: refund_request(order=purchase.order, tickets=purchase.tickets, actor=buyer),
    )

    assert error.status == 409 and error.details == {"ticket": purchase.tickets[0].serial}
    assert Refund.objects.count() == 1


def test_a_refunded_ticket_cannot_be_refunded_again(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)

    error = refused(
        "ticket_void",
        lambda: refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer),
    )
    assert error.status == 409
    assert SandboxRefund.objects.count() == 1


def test_tickets_must_be_of_the_order_each_once(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    other = bought(seats=["M-2-1"])
    refund_rule(purchase.session.event)
    order = purchase.order

    refused("refund_tickets_invalid", lambda: refund_request(order=order, tickets=[], actor=buyer))
    refused(
        "refund_tickets_invalid",
        lambda: refund_request(order=order, tickets=[purchase.tickets[0]] * 2, actor=buyer),
    )
    refused(
        "refund_tickets_invalid",
        lambda: refund_request(order=order, tickets=other.tickets, actor=buyer),
    )
    assert not Refund.objects.exists()


def test_an_unpaid_order_cannot_be_refunded(
    organizer: Organizer, reserved_session: Callable[..., object], buyer: User
) -> None:
    from piaowu.inventory.services import hold_seats

    session = reserved_session()
    hold = hold_seats(session=session, seat_codes=["M-1-1"], holder_key="k")  # type: ignore[arg-type]
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="k", customer=buyer
    )

    error = refused("order_not_refundable", lambda: refund_request(order=order, actor=buyer))
    assert error.status == 409 and error.details == {"state": "awaiting_payment"}
    assert funding_payment(order) is None


def test_a_refunded_order_cannot_be_refunded_again(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    refund_request(order=purchase.order, actor=buyer)

    refused("order_not_refundable", lambda: refund_request(order=purchase.order, actor=buyer))


def test_processing_a_refund_twice_calls_the_provider_once(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    refund = refund_request(
        order=purchase.order, tickets=purchase.tickets[:1], actor=buyer, process=False
    )
    assert refund.state == Refund.State.APPROVED

    refund_process(refund=refund)
    refund_process(refund=refund)
    assert refunds_process_due(now=refund.created_at + dt.timedelta(hours=2)) == 0

    assert Refund.objects.get(pk=refund.pk).attempts == 1
    assert SandboxRefund.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="refund").count() == 1
