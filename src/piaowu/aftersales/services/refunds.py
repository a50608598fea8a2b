"""Refunds (AFT-2): requested → approved → processing → succeeded | failed; or rejected.

* **Request** (one transaction): price the tickets with the refund rule (`aftersales.policy`),
  write the refund and one item per ticket. A ticket is in at most one live refund or exchange:
  a partial unique index refuses the second request, also when two arrive at once.
* **Approve** (at once when the rule allows, else by staff; same transaction as the request
  when automatic): reserve the amount on the payment with one conditional UPDATE
  (`refunded_amount + x <= amount`, a CHECK backs it), void the tickets (their QR stops
  working at once) and put the seats back on sale. Concurrent partial refunds that together
  exceed what was paid cannot both reserve.
* **Process** (no transaction open while the provider is called): ask the provider to refund
  with the refund's number as its idempotent request number — asking again after a crash or
  a timeout refunds once. Success appends the ledger row, moves the order to partially
  refunded / refunded and tells the customer. A failure is retried with backoff by the
  `aftersales.refunds_process_due` job; after the last attempt the refund is `failed`, the
  organizer's finance staff are alerted, and staff can retry it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Membership, Role, User
from piaowu.accounts.permissions import Perm, require_perm
from piaowu.aftersales.models import (
    Exchange,
    ExchangeItem,
    Refund,
    RefundHistory,
    RefundItem,
    WaitlistEntry,
)
from piaowu.aftersales.policy import REASONS, Quote, quote
from piaowu.aftersales.services.notices import (
    Recipients,
    notice_language,
    notice_queue,
    order_recipients,
)
from piaowu.checkin.models import Admission
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.inventory.services import sold_return
from piaowu.orders.models import Order
from piaowu.orders.states import OrderState, transition
from piaowu.payments.models import LedgerEntry, Payment
from piaowu.payments.providers import get_provider
from piaowu.tickets.delivery import public_url
from piaowu.tickets.models import Ticket
from piaowu.tickets.services import ticket_void

logger = logging.getLogger(__name__)

#: Provider attempts before a refund is `failed` and staff are alerted.
MAX_ATTEMPTS = 6
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600

REFUNDABLE_ORDER_STATES = frozenset(
    {OrderState.PAID, OrderState.FULFILLED, OrderState.PARTIALLY_REFUNDED}
)
#: Refunds whose money is owed or on its way (their tickets are given back).
MONEY_STATES = frozenset(
    {Refund.State.APPROVED, Refund.State.PROCESSING, Refund.State.SUCCEEDED, Refund.State.FAILED}
)
#: Refunds whose money is owed but not back yet.
OWED_STATES = frozenset({Refund.State.APPROVED, Refund.State.PROCESSING, Refund.State.FAILED})
#: Where the customer follows a refund (the web page; `PIAOWU_PUBLIC_URL` in front).
REFUND_PATH = "/refunds/{public_id}/"
#: TEST-ONLY pause of the unsafe reservation (see `_reserve`).
UNSAFE_PAUSE_SECONDS = 0.05


def retry_delay(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failed provider call: 30 s, 90 s, 270 s … capped at 1 h."""
    seconds = RETRY_BASE_SECONDS * 3 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, RETRY_MAX_SECONDS))


def _error(
    code: str, message: Any, details: dict[str, Any] | None = None, status: int = 400
) -> DomainError:
    error = DomainError(code, message, details)
    error.status = status
    return error


def _history(
    refund: Refund, from_state: str, to_state: str, actor: User | None, note: str = ""
) -> None:
    RefundHistory.objects.create(
        refund=refund,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        note=note[:300],
        at=clock.now(),
    )


def _move(refund: Refund, from_states: list[str], to: str, **fields: Any) -> bool:
    """The refund's one conditional state change; False when someone else moved it first."""
    changed = Refund.objects.filter(pk=refund.pk, state__in=from_states).update(
        state=to, updated_at=clock.now(), **fields
    )
    if changed:
        refund.state = to
        for name, value in fields.items():
            if not isinstance(value, F):
                setattr(refund, name, value)
    return bool(changed)


# --- Pricing ---------------------------------------------------------------------------------


def funding_payment(order: Order) -> Payment | None:
    """The payment a refund of `order` goes back through: the one that paid it; for an order
    paid by credit — an exchange's new order, a fulfilled prepaid waitlist entry — the payment
    that credit came from."""
    own = Payment.objects.filter(order=order, settles_order=True).first()
    if own is not None:
        return own
    exchange = (
        Exchange.objects.filter(to_order=order, state=Exchange.State.COMPLETED)
        .select_related("from_order")
        .first()
    )
    if exchange is not None:
        return funding_payment(exchange.from_order)
    entry = WaitlistEntry.objects.filter(order=order).select_related("deposit_order").first()
    if entry is not None and entry.deposit_order is not None:
        return funding_payment(entry.deposit_order)
    return None


def refund_quote(
    *,
    order: Order,
    tickets: list[Ticket] | None = None,
    by_staff: bool = False,
    waive_fee: bool = False,
    now: datetime | None = None,
) -> Quote:
    """What refunding `tickets` (default: every valid ticket of the order) would give back now,
    ticket by ticket, with the rule in force — what the customer sees before confirming."""
    now = now or clock.now()
    if tickets is None:
        tickets = list(
            Ticket.objects.filter(order=order, state=Ticket.State.VALID)
            .select_related("order_line")
            .order_by("id")
        )
    ids = [t.pk for t in tickets]
    used = set(Admission.objects.filter(ticket_id__in=ids).values_list("ticket_id", flat=True))
    busy = set(
        RefundItem.objects.filter(ticket_id__in=ids, live=True).values_list("ticket_id", flat=True)
    ) | set(
        ExchangeItem.objects.filter(ticket_id__in=ids, live=True).values_list(
            "ticket_id", flat=True
        )
    )
    return quote(
        order=order,
        tickets=tickets,
        now=now,
        used=used,
        busy=busy,
        by_staff=by_staff,
        waive_fee=waive_fee,
    )


# --- Request, approve, reject ----------------------------------------------------------------


def _tickets_of(order: Order, serials_or_tickets: list[Ticket]) -> list[Ticket]:
    ids = [t.pk for t in serials_or_tickets]
    if not ids or len(set(ids)) != len(ids):
        raise _error("refund_tickets_invalid", _("Choose the tickets to refund, each once."))
    tickets = list(
        Ticket.objects.filter(pk__in=ids, order=order).select_related("order_line").order_by("id")
    )
    if len(tickets) != len(ids):
        raise _error(
            "refund_tickets_invalid", _("Some of these tickets do not belong to this order.")
        )
    return tickets


def refund_request(
    *,
    order: Order,
    tickets: list[Ticket] | None = None,
    actor: User | None,
    kind: str = Refund.Kind.CUSTOMER,
    reason: str = "",
    waive_fee: bool = False,
    process: bool | None = None,
) -> Refund:
    """Ask for the refund of `tickets` (default: every valid ticket) of a paid order.

    `kind` CUSTOMER follows the rule; STAFF (on the customer's behalf; `reason` required) may
    go outside the time rule and waive the fee; CANCELLATION refunds everything without a fee.
    Approved at once unless the rule needs staff approval. The provider is called after the
    commit (`process`, default `PIAOWU_REFUNDS_PROCESS_INLINE`, else the job does it).

    Errors: `forbidden` (403, STAFF without `Perm.ORDERS_REFUND` at the order's organizer),
    `order_not_refundable` (409), `refund_tickets_invalid`, `refund_reason_required`,
    `ticket_void` / `ticket_used` / `ticket_transferred` / `refund_in_progress` (409) /
    `refund_not_allowed` / `channel_not_refundable` (details `ticket`: the serial),
    `refund_exceeds_payment` (409).
    """
    by_staff = kind != Refund.Kind.CUSTOMER
    if kind == Refund.Kind.STAFF and not reason.strip():
        raise _error("refund_reason_required", _("Say why you refund on the customer's behalf."))
    with transaction.atomic():
        order = Order.objects.select_related("session__event", "session__venue", "customer").get(
            pk=order.pk
        )
        if kind == Refund.Kind.STAFF:
            require_perm(actor, order.session.event.organizer_id, Perm.ORDERS_REFUND)
        if order.state not in REFUNDABLE_ORDER_STATES:
            raise _error(
                "order_not_refundable",
                _("Only a paid order can be refunded."),
                {"state": order.state},
                status=409,
            )
        payment = funding_payment(order)
        if payment is None:
            raise _error(
                "order_not_refundable",
                _("This order has no payment to refund."),
                {"state": order.state},
                status=409,
            )
        chosen = _tickets_of(order, tickets) if tickets is not None else None
        priced = refund_quote(
            order=order,
            tickets=chosen,
            by_staff=by_staff,
            waive_fee=waive_fee or kind == Refund.Kind.CANCELLATION,
        )
        if not priced.items:
            raise _error("refund_tickets_invalid", _("This order has no tickets left to refund."))
        refused = priced.first_refusal()
        if refused is not None:
            raise _error(
                refused.refusal,
                REASONS[refused.refusal],
                {"ticket": refused.ticket.serial},
                status=409 if refused.refusal in ("refund_in_progress", "ticket_void") else 400,
            )
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            kind=kind,
            gross_amount=priced.gross.amount,
            fee_amount=priced.fee.amount,
            amount=priced.amount.amount,
            currency=order.currency,
            reason=reason[:200],
            requested_by=actor,
        )
        try:
            with transaction.atomic():
                RefundItem.objects.bulk_create(
                    RefundItem(
                        refund=refund,
                        ticket=item.ticket,
                        gross_amount=item.gross,
                        fee_amount=item.fee,
                    )
                    for item in priced.items
                )
        except IntegrityError:
            # A request for one of these tickets committed first (the unique live item).
            taken = (
                RefundItem.objects.filter(ticket__in=[i.ticket for i in priced.items], live=True)
                .values_list("ticket__serial", flat=True)
                .first()
            )
            raise _error(
                "refund_in_progress",
                REASONS["refund_in_progress"],
                {"ticket": taken or ""},
                status=409,
            ) from None
        _history(refund, "", Refund.State.REQUESTED, actor, reason)
        if not priced.needs_approval:
            _approve(refund, actor, order=order)
        else:
            _notify(refund, "requested")
    if refund.state == Refund.State.APPROVED and _process_inline(process):
        refund_process(refund=refund)
        refund.refresh_from_db()
    return refund


def refund_money(
    *, order: Order, amount: Money, kind: str, reason: str, actor: User | None
) -> Refund:
    """Give back money without tickets (an exchange's difference, an unfulfilled prepaid
    waitlist): approved at once, then processed like any refund. Inside the caller's
    transaction; the provider is called by `refund_process` after it commits."""
    amount = amount.quantized()
    if amount.amount <= 0:
        raise _error("refund_amount_invalid", _("The refund amount must be positive."))
    payment = funding_payment(order)
    if payment is None:
        raise _error("order_not_refundable", _("This order has no payment to refund."), status=409)
    if amount.currency != payment.currency:
        raise _error(
            "refund_currency_mismatch",
            _("The refund must be in the currency that was paid."),
            {"currency": payment.currency},
        )
    with transaction.atomic():
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            kind=kind,
            gross_amount=amount.amount,
            fee_amount=Decimal(0),
            amount=amount.amount,
            currency=amount.currency,
            reason=reason[:200],
            requested_by=actor,
        )
        _history(refund, "", Refund.State.REQUESTED, actor, reason)
        _approve(refund, actor, order=order)
    return refund


def _approve(refund: Refund, actor: User | None, *, order: Order) -> None:
    """Inside the caller's transaction: reserve the money, lock and re-check the tickets, void
    them, return the seats. Locks are taken payment first, then tickets (as an exchange of the
    same order does: `services.exchanges._lock_payment`), so the two never deadlock."""
    if not _move(refund, [Refund.State.REQUESTED], Refund.State.APPROVED):
        raise _state_changed(refund)
    if not _reserve(refund):
        raise _error(
            "refund_exceeds_payment",
            _("This refund would give back more than was paid."),
            {"amount": str(refund.amount)},
            status=409,
        )
    ids = list(refund.items.values_list("ticket_id", flat=True))
    # Lock the tickets (PostgreSQL; SQLite serialises writers anyway) so an exchange cannot
    # take them between this check and the void.
    tickets = list(
        Ticket.objects.select_for_update()
        .filter(pk__in=ids, state=Ticket.State.VALID)
        .order_by("id")
    )
    if len(tickets) != len(ids):
        raise _error("ticket_void", REASONS["ticket_void"], {"ticket": ""}, status=409)
    if refund.kind == Refund.Kind.CUSTOMER:
        # A transfer accepted after the quote: the receiver holds it now.
        moved = [t for t in tickets if t.holder_id not in (None, order.customer_id)]
        if moved:
            raise _error(
                "ticket_transferred", REASONS["ticket_transferred"], {"ticket": moved[0].serial}
            )
    used = list(
        Admission.objects.filter(ticket_id__in=ids).values_list("ticket__serial", flat=True)
    )
    if used:
        raise _error("ticket_used", REASONS["ticket_used"], {"ticket": used[0]})
    # An exchange that locked the tickets first and committed is visible now.
    exchanging = list(
        ExchangeItem.objects.filter(ticket_id__in=ids, live=True).values_list(
            "ticket__serial", flat=True
        )
    )
    if exchanging:
        raise _error(
            "refund_in_progress",
            REASONS["refund_in_progress"],
            {"ticket": exchanging[0]},
            status=409,
        )
    for ticket in tickets:
        ticket_void(ticket=ticket, actor=actor, reason="refunded")
    if tickets:
        seat_ids = [t.seat_id for t in tickets if t.seat_id is not None]
        quantities = Counter(t.tier_id for t in tickets if t.seat_id is None)
        sold_return(hold=order.hold, seat_ids=seat_ids, tier_quantities=dict(quantities))
    _history(refund, Refund.State.REQUESTED, Refund.State.APPROVED, actor)
    _notify(refund, "approved")
    if refund.amount == 0:
        # Nothing to pay back (the fee took it all): done without the provider.
        _succeed(refund, provider_refund_id="")


def _reserve(refund: Refund) -> bool:
    """Add the refund's amount to its payment's `refunded_amount` if it still fits under the
    captured amount: one conditional UPDATE (of two at once, only what fits wins; the CHECK
    `payment_refunded_within_amount` backs it). False when it does not fit."""
    if refund.amount == 0:
        return True
    try:
        with transaction.atomic():
            if getattr(settings, "PIAOWU_REFUNDS_UNSAFE_RESERVE", False):
                # TEST-ONLY control: read, pause, then add without the condition.
                paid, refunded = Payment.objects.values_list("amount", "refunded_amount").get(
                    pk=refund.payment_id
                )
                time.sleep(UNSAFE_PAUSE_SECONDS)
                if refunded + refund.amount > paid:
                    return False
                return bool(
                    Payment.objects.filter(pk=refund.payment_id).update(
                        refunded_amount=F("refunded_amount") + refund.amount
                    )
                )
            return bool(
                Payment.objects.filter(
                    pk=refund.payment_id, refunded_amount__lte=F("amount") - refund.amount
                ).update(refunded_amount=F("refunded_amount") + refund.amount)
            )
    except IntegrityError:  # the CHECK refused it
        return False


def _state_changed(refund: Refund) -> DomainError:
    current = Refund.objects.filter(pk=refund.pk).values_list("state", flat=True).first()
    return _error(
        "refund_state_changed",
        _("This refund was just changed by someone else; please reload it."),
        {"state": current},
        status=409,
    )


def refund_approve(*, refund: Refund, actor: User) -> Refund:
    """Staff approve a refund that waited for them; the provider is called after commit.
    Errors: `forbidden` (403, without `Perm.ORDERS_REFUND` at the order's organizer),
    `refund_state_changed` (409), `refund_exceeds_payment` (409), `ticket_void` (409),
    `ticket_used`."""
    try:
        with transaction.atomic():
            order = Order.objects.select_related("session__event").get(pk=refund.order_id)
            require_perm(actor, order.session.event.organizer_id, Perm.ORDERS_REFUND)
            _approve(refund, actor, order=order)
    except DomainError:
        refund.refresh_from_db()  # the approval rolled back; so does the in-memory state
        raise
    if refund.state == Refund.State.APPROVED and _process_inline(None):
        refund_process(refund=refund)
        refund.refresh_from_db()
    return refund


def refund_reject(*, refund: Refund, actor: User, reason: str) -> Refund:
    """Staff refuse a refund request (with a reason the customer sees in its history and
    notice); its tickets stay valid and may be asked for again. Errors: `forbidden` (403),
    `refund_reason_required`, `refund_state_changed` (409)."""
    if not reason.strip():
        raise _error("refund_reason_required", _("Say why the refund is refused."))
    organizer_id = (
        Order.objects.filter(pk=refund.order_id)
        .values_list("session__event__organizer_id", flat=True)
        .get()
    )
    require_perm(actor, organizer_id, Perm.ORDERS_REFUND)
    with transaction.atomic():
        if not _move(refund, [Refund.State.REQUESTED], Refund.State.REJECTED):
            raise _state_changed(refund)
        RefundItem.objects.filter(refund=refund).update(live=False)
        _history(refund, Refund.State.REQUESTED, Refund.State.REJECTED, actor, reason)
        _notify(refund, "rejected", note=reason)
    return refund


# --- Processing at the provider --------------------------------------------------------------


def _process_inline(process: bool | None) -> bool:
    if process is not None:
        return process
    return bool(getattr(settings, "PIAOWU_REFUNDS_PROCESS_INLINE", True))


def _claim(refund: Refund, now: datetime) -> bool:
    """Take the refund for one provider call: approved, or processing and due. The retry delay
    is the lease: a worker that dies mid-call is retried then, with the same request number."""
    attempts = refund.attempts + 1
    claimed = (
        Refund.objects.filter(pk=refund.pk, attempts=refund.attempts)
        .filter(
            Q(state=Refund.State.APPROVED)
            | Q(state=Refund.State.PROCESSING, next_attempt_at__lte=now)
        )
        .update(
            state=Refund.State.PROCESSING,
            attempts=attempts,
            next_attempt_at=now + retry_delay(attempts),
            updated_at=now,
        )
    )
    if claimed:
        if refund.state != Refund.State.PROCESSING:
            _history(refund, refund.state, Refund.State.PROCESSING, None)
        refund.state = Refund.State.PROCESSING
        refund.attempts = attempts
    return bool(claimed)


def refund_process(*, refund: Refund, now: datetime | None = None) -> Refund:
    """Ask the provider for an approved (or due) refund. No lock is held during the call."""
    now = now or clock.now()
    refund.refresh_from_db()
    if not _claim(refund, now):
        return refund
    payment = refund.payment
    try:
        result = get_provider(payment.provider).refund(
            reference=payment.reference,
            refund_reference=refund.number,
            amount=Money(Decimal(refund.amount), refund.currency),
        )
    except Exception as exc:
        if isinstance(exc, DomainError):
            error = f"{exc.code}: {exc.message}" + (f" {exc.details}" if exc.details else "")
        else:
            error = f"{type(exc).__name__}: {exc}"
        _record_failure(refund, error)
        return refund
    if result.status == "succeeded":
        with transaction.atomic():
            _succeed(refund, provider_refund_id=result.provider_refund_id)
    elif result.status == "failed":
        _record_failure(refund, "provider answered: failed")
    # "processing": the provider is still working; the job asks again when due.
    return refund


def _succeed(refund: Refund, *, provider_refund_id: str) -> None:
    """Inside a transaction: record the money back, then move the order's state."""
    now = clock.now()
    from_state = refund.state
    if not _move(
        refund,
        [Refund.State.APPROVED, Refund.State.PROCESSING],
        Refund.State.SUCCEEDED,
        succeeded_at=now,
        provider_refund_id=provider_refund_id[:64],
        next_attempt_at=None,
        last_error="",
    ):
        return  # someone else recorded it
    if refund.amount > 0:
        LedgerEntry.objects.get_or_create(
            reference=refund.number,
            defaults={
                "order_id": refund.order_id,
                "payment_id": refund.payment_id,
                "kind": LedgerEntry.Kind.REFUND,
                "amount": -refund.amount,
                "currency": refund.currency,
                "at": now,
            },
        )
    _history(refund, from_state, Refund.State.SUCCEEDED, None)
    _order_after_refund(refund)
    _notify(refund, "succeeded")


def _order_after_refund(refund: Refund) -> None:
    """The order is refunded once none of its tickets is valid and no other refund of its
    tickets still owes money; partially refunded before that (retrying if a concurrent refund
    of the same order moved it first). An order whose state cannot follow (e.g. moved on by
    another workflow) keeps its state: the money is recorded all the same."""
    if not refund.items.exists():
        return  # money-only refunds (exchange difference) do not change the order's state
    for _attempt in range(5):
        order = Order.objects.get(pk=refund.order_id)
        left = Ticket.objects.filter(order=order, state=Ticket.State.VALID).exists()
        owed = (
            Refund.objects.filter(order=order, state__in=OWED_STATES, items__isnull=False)
            .exclude(pk=refund.pk)
            .exists()
        )
        target = OrderState.PARTIALLY_REFUNDED if left or owed else OrderState.REFUNDED
        if order.state == target == OrderState.REFUNDED:
            return
        try:
            with transaction.atomic():
                transition(order, target, reason=f"refund {refund.number}")
            return
        except DomainError as exc:
            if exc.code == "illegal_transition":
                logger.warning(
                    "refund %s: order %s stays %s", refund.number, order.code, order.state
                )
                return
            if exc.code != "order_state_changed":
                raise
    raise _error("order_state_changed", gettext("The order keeps changing; try again."))


def _record_failure(refund: Refund, error: str) -> None:
    give_up = refund.attempts >= MAX_ATTEMPTS
    logger.warning(
        "refund %s attempt %s failed%s: %s",
        refund.number,
        refund.attempts,
        " for good" if give_up else ", will retry",
        error,
    )
    with transaction.atomic():
        if give_up:
            if _move(
                refund,
                [Refund.State.PROCESSING],
                Refund.State.FAILED,
                last_error=error[:300],
                next_attempt_at=None,
            ):
                _history(refund, Refund.State.PROCESSING, Refund.State.FAILED, None, error)
                _alert_staff(refund, error)
        else:
            Refund.objects.filter(pk=refund.pk, state=Refund.State.PROCESSING).update(
                last_error=error[:300]
            )


def refunds_process_due(*, now: datetime | None = None, limit: int = 100) -> int:
    """The job: process approved refunds and retry due ones. Returns how many succeeded."""
    now = now or clock.now()
    due = list(
        Refund.objects.filter(
            Q(state=Refund.State.APPROVED)
            | Q(state=Refund.State.PROCESSING, next_attempt_at__lte=now)
        )
        .select_related("payment")
        .order_by("next_attempt_at", "pk")[:limit]
    )
    done = 0
    for refund in due:
        try:
            refund_process(refund=refund, now=now)
        except Exception:
            logger.exception("refund %s could not be processed", refund.number)
            continue
        done += refund.state == Refund.State.SUCCEEDED
    return done


def refund_retry(*, refund: Refund, actor: User) -> Refund:
    """Staff try a failed refund again (fresh attempts, same request number, so a refund the
    provider did make in the meantime is not made twice). Errors: `forbidden` (403),
    `refund_state_changed` (409: not failed)."""
    organizer_id = (
        Order.objects.filter(pk=refund.order_id)
        .values_list("session__event__organizer_id", flat=True)
        .get()
    )
    require_perm(actor, organizer_id, Perm.ORDERS_REFUND)
    with transaction.atomic():
        if not _move(
            refund, [Refund.State.FAILED], Refund.State.APPROVED, attempts=0, last_error=""
        ):
            raise _state_changed(refund)
        refund.attempts = 0
        _history(refund, Refund.State.FAILED, Refund.State.APPROVED, actor, "retry")
    if _process_inline(None):
        refund_process(refund=refund)
        refund.refresh_from_db()
    return refund


# --- Telling people --------------------------------------------------------------------------


def _notify(refund: Refund, step: str, note: str = "") -> None:
    order = refund.order
    recipients = order_recipients(order)
    with notice_language(recipients):
        amount = f"{refund.amount} {refund.currency}"
        subjects = {
            "requested": gettext("Refund %(number)s requested; waiting for approval"),
            "approved": gettext("Refund %(number)s approved: %(amount)s on its way"),
            "succeeded": gettext("Refund %(number)s completed: %(amount)s returned"),
            "rejected": gettext("Refund %(number)s was not approved"),
        }
        subject = subjects[step] % {"number": refund.number, "amount": amount}
        link = public_url() + REFUND_PATH.format(public_id=refund.public_id)
        body = "\n".join(
            filter(
                None,
                [
                    subject,
                    gettext("Order %(code)s") % {"code": order.code},
                    note,
                    gettext("Follow your refund: %(link)s") % {"link": link},
                ],
            )
        )
    notice_queue(
        topic=f"refund:{refund.number}:{step}",
        recipients=recipients,
        subject=subject,
        body=body,
        sms="[Piaowu] " + subject,
    )


def _alert_staff(refund: Refund, error: str) -> None:
    """A refund gave up: e-mail the organizer's admins and finance staff."""
    organizer_id = refund.order.session.event.organizer_id
    # Each in their own language.
    emails = sorted(
        set(
            Membership.objects.filter(
                organizer_id=organizer_id,
                is_active=True,
                role__in=[Role.ADMIN, Role.FINANCE],
            )
            .exclude(user__email="")
            .values_list("user__email", "user__preferred_language")
        )
    )
    if not emails:
        logger.error(
            "refund %s failed and organizer %s has nobody to alert", refund.number, organizer_id
        )
    # Each time it gives up is a new alert (after a staff retry it may fail again).
    round_ = RefundHistory.objects.filter(refund=refund, to_state=Refund.State.FAILED).count()
    for email, language in emails:
        recipients = Recipients(email=email, language=language)
        with notice_language(recipients):
            subject = gettext("Refund %(number)s failed: please retry it") % {
                "number": refund.number
            }
            body = gettext(
                "The payment provider did not refund %(amount)s %(currency)s for order "
                "%(code)s after %(attempts)s attempts (%(error)s). Retry it in the console."
            ) % {
                "amount": refund.amount,
                "currency": refund.currency,
                "code": refund.order.code,
                "attempts": refund.attempts,
                "error": error,
            }
        notice_queue(
            topic=f"refund:{refund.number}:failed:{round_}",
            recipients=recipients,
            subject=subject,
            body=body,
        )
