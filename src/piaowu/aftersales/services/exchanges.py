"""Exchanges (改签, AFT-3): move valid, unused tickets of a paid order to another session of the
same event, or to another tier of the same session — same number of tickets.

* **Start** (`exchange_start`, one transaction). Lock the payment the old order was paid with
  and the old tickets (`SELECT … FOR UPDATE`, the order a refund locks them in), check the
  tickets afresh (valid, not admitted, in no live refund, exchange or transfer) and the rule of
  their session (`selectors.exchanges.exchange_terms`: exchanges allowed and the time rule
  still allowing a refund; staff may go outside it). Then **hold the new seats first**, as the
  buyer's hold. If that fails (a full session: `exchange_target_sold_out`) the transaction
  rolls back: the old tickets stay valid and their seats are never released.
* **Downgrade or equal** (new value + fee ≤ old value): complete at once, in that transaction.
  The new order is made from the hold paid by credit (`orders.services.
  order_create_paid_by_credit`: its tickets are issued), the old tickets are voided ("exchanged")
  and their seats put back on sale (`inventory.services.sold_return`), and what is left
  (old value − new value − fee) is refunded from the old order (`refunds.refund_money`, kind
  `exchange`; the provider is called after the commit). A later refund of the new order goes
  back through the old order's payment (`refunds.funding_payment`), whose `refunded_amount`
  CHECK keeps everything ever refunded ≤ what was paid.
* **Upgrade** (new value + fee > old value): the new order is checked out from the hold and
  awaits payment **in full** through its own payment. When it is paid — in the transaction
  that makes it paid (an `on_order_paid` hook, registered in `AftersalesConfig.ready`) — the
  old tickets are locked and checked again, voided, their seats returned, and the old order
  refunded old value − fee with `refund_money`. Net for the buyer: difference + fee. If the old
  tickets cannot be given up any more (used at the gate meanwhile), the hook refuses with
  `order_not_payable`, so the payment service refunds that payment automatically.
* **Abandon.** An upgrade whose new order is cancelled (`exchange_cancel`, or the order page)
  or expires unpaid is abandoned: the old tickets were never touched; their exchange items stop
  being live so they can be refunded or exchanged again. `exchanges_abandon_unpaid` (a job,
  also run for an order before it starts a new exchange) tidies up; reads already treat such an
  exchange as abandoned (`selectors.exchanges.exchange_state`).

A ticket is in at most one live exchange (partial unique index), and the service refuses a
ticket in a live refund; under the ticket row locks, an exchange racing a refund of the same
ticket is decided by whoever locks the ticket first: the other finds it void.

Error codes (`selectors.exchanges.REASONS`): `order_not_exchangeable` (409),
`exchange_tickets_invalid`, `ticket_void` (409), `ticket_used` (409), `ticket_transferred`,
`transfer_pending` (409), `refund_in_progress` (409), `exchange_in_progress` (409),
`exchange_not_allowed`, `exchange_cutoff_passed`, `exchange_other_event`, `exchange_same_tier`,
`exchange_tier_not_found`, `tier_required`, `exchange_currency_mismatch`,
`exchange_quantity_mismatch`, `exchange_target_sold_out` (409, details `reason`: the inventory
code), `exchange_not_pending` (409); and those of the hold services (`sales_closed`,
`seat_taken`, `over_limit`, …) and of checkout (`channel_inactive`, …).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import User
from piaowu.aftersales.models import Exchange, ExchangeItem, Refund, RefundItem
from piaowu.aftersales.selectors.exchanges import (
    CONFLICTS,
    EXCHANGEABLE_ORDER_STATES,
    REASONS,
    ExchangeTerms,
    exchange_fee,
    exchange_terms,
    exchange_tickets,
    old_value,
    same_tier,
    ticket_refusal,
)
from piaowu.aftersales.services.notices import notice_language, notice_queue, order_recipients
from piaowu.aftersales.services.refunds import funding_payment, refund_money, refund_process
from piaowu.catalog.models import PriceTier, SalesChannel, Session
from piaowu.catalog.selectors import sales_channel_for
from piaowu.checkin.models import Admission
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.inventory.models import Hold
from piaowu.inventory.services import hold_best_available, hold_seats, sold_return
from piaowu.orders.models import Order
from piaowu.orders.services import (
    order_cancel,
    order_checkout,
    order_create_paid_by_credit,
    order_expire_if_overdue,
)
from piaowu.orders.states import OrderState
from piaowu.payments.models import Payment
from piaowu.tickets.models import Ticket
from piaowu.tickets.services import ticket_void

logger = logging.getLogger(__name__)

ABANDON_BATCH = 200
#: Inventory refusals that mean "the target has no room": answered `exchange_target_sold_out`.
SOLD_OUT_CODES = frozenset({"sold_out", "not_enough_seats"})


def _error(code: str, details: dict[str, Any] | None = None, message: Any = None) -> DomainError:
    error = DomainError(code, message if message is not None else REASONS[code], details)
    error.status = 409 if code in CONFLICTS else 400
    return error


def _not_pending(exchange: Exchange) -> DomainError:
    error = DomainError(
        "exchange_not_pending",
        _("This exchange is no longer waiting for payment."),
        {"state": exchange.state},
    )
    error.status = 409
    return error


# --- Start ---------------------------------------------------------------------------------------


def _target_tier(order: Order, session: Session, tier_code: str | None) -> PriceTier | None:
    """The active tier `tier_code` of `session` (None when seats are chosen instead)."""
    if not tier_code:
        return None
    tier = session.price_tiers.filter(code=tier_code, is_active=True).first()
    if tier is None:
        raise _error("exchange_tier_not_found", {"tier": tier_code})
    if tier.currency != order.currency:
        raise _error("exchange_currency_mismatch", {"tier": tier_code})
    return tier


def _check_target(
    order: Order,
    session: Session,
    tier_code: str | None,
    seat_codes: list[str] | None,
) -> tuple[PriceTier | None, list[str] | None]:
    """Input checks that need no lock (nothing is written before they pass)."""
    if session.event_id != order.session.event_id:
        raise _error("exchange_other_event", {"session": session.public_id})
    if seat_codes is not None:
        seat_codes = list(dict.fromkeys(c.strip() for c in seat_codes if c and c.strip()))
        return None, seat_codes
    if not tier_code:
        raise DomainError("tier_required", _("Choose a ticket type."))
    return _target_tier(order, session, tier_code), None


def _lock_payment(order: Order) -> None:
    """Lock the row of the payment a refund of `order` goes back through, first — as a refund
    does — so an exchange and a refund of the same order never wait on each other in a cycle."""
    payment = funding_payment(order)
    if payment is not None:
        list(Payment.objects.select_for_update().filter(pk=payment.pk).values_list("pk"))


def _lock_tickets(ids: list[int]) -> list[Ticket]:
    """The tickets, locked for the caller's transaction (id order), read afresh."""
    return list(
        Ticket.objects.select_for_update(of=("self",))
        .filter(pk__in=ids)
        .select_related("order_line", "tier", "seat")
        .order_by("id")
    )


def _hold_new(
    *,
    order: Order,
    session: Session,
    quantity: int,
    tier: PriceTier | None,
    seat_codes: list[str] | None,
) -> Hold:
    """Hold the new seats as the buyer's hold (the old order's holder key, so whoever may open
    the old order may open the new one). Moving to another tier of the same session adds no
    ticket to the buyer's count, so the per-customer limit is not counted again there."""
    same_session = session.pk == order.session_id
    common: dict[str, Any] = {
        "session": session,
        "holder_key": order.hold.holder_key,
        "customer": None if same_session else order.customer,
        "fresh_holder": same_session,
    }
    try:
        if seat_codes is not None:
            return hold_seats(seat_codes=seat_codes, **common)
        assert tier is not None
        return hold_best_available(quantity=quantity, tier_code=tier.code, **common)
    except DomainError as exc:
        if exc.code in SOLD_OUT_CODES:
            raise _error(
                "exchange_target_sold_out",
                {"reason": exc.code, "session": session.public_id, **exc.details},
            ) from exc
        raise


def _channel(order: Order, session: Session) -> SalesChannel:
    """The new order sells through the old order's channel, or the web if that is closed."""
    if order.channel.is_active:
        return order.channel
    return sales_channel_for(session)


def _claim(exchange: Exchange, tickets: list[Ticket]) -> None:
    """One live exchange item per ticket; the partial unique index refuses a second exchange
    of a ticket, also one that got past the checks at the same moment."""
    try:
        with transaction.atomic():
            ExchangeItem.objects.bulk_create(
                ExchangeItem(exchange=exchange, ticket=ticket) for ticket in tickets
            )
    except IntegrityError:
        raise _error("exchange_in_progress", {"ticket": ""}) from None


def _give_up(order: Order, tickets: list[Ticket], actor: User | None) -> None:
    """Void the old tickets (their QR stops working) and put their seats back on sale."""
    for ticket in tickets:
        ticket_void(ticket=ticket, actor=actor, reason="exchanged")
    seat_ids = [t.seat_id for t in tickets if t.seat_id is not None]
    quantities = Counter(t.tier_id for t in tickets if t.seat_id is None)
    sold_return(hold=order.hold, seat_ids=seat_ids, tier_quantities=dict(quantities))


def _refund_rest(
    exchange: Exchange, order: Order, amount: Decimal, actor: User | None
) -> Refund | None:
    """Refund `amount` of the old order for the exchange (nothing when it is 0)."""
    if amount <= 0:
        return None
    refund = refund_money(
        order=order,
        amount=Money(amount, exchange.currency),
        kind=Refund.Kind.EXCHANGE,
        reason=f"exchange {exchange.public_id}",
        actor=actor,
    )
    exchange.refund = refund
    Exchange.objects.filter(pk=exchange.pk).update(refund=refund, updated_at=clock.now())
    return refund


def _process_after_commit(refund: Refund | None, process: bool | None) -> None:
    """Ask the provider once the transaction committed (never with a lock held); if the call
    fails, the refunds job retries it."""
    if refund is None or refund.state != Refund.State.APPROVED:
        return
    inline = (
        process
        if process is not None
        else bool(getattr(settings, "PIAOWU_REFUNDS_PROCESS_INLINE", True))
    )
    if inline:
        transaction.on_commit(lambda: refund_process(refund=refund), robust=True)


def exchange_start(
    *,
    order: Order,
    session: Session,
    ticket_ids: list[str] | None = None,
    tier_code: str | None = None,
    seat_codes: list[str] | None = None,
    actor: User | None = None,
    by_staff: bool = False,
    waive_fee: bool = False,
    process: bool | None = None,
) -> Exchange:
    """Exchange the tickets `ticket_ids` (public ids; default every valid ticket) of `order` for
    as many of tier `tier_code` of `session` (best available for reserved seating), or for the
    seats `seat_codes`. Completes at once when the new tickets plus the fee cost no more than
    the old (any rest is refunded), else the exchange awaits payment of its new order (see the
    module docstring). `by_staff`: outside the rule's time limit and exchange switch;
    `waive_fee` (with `by_staff` only): no fee. Errors: see the module docstring."""
    now = clock.now()
    exchanges_abandon_unpaid(order=order, now=now)
    tier, seat_codes = _check_target(order, session, tier_code, seat_codes)
    refund: Refund | None = None
    with transaction.atomic():
        order = Order.objects.select_related(
            "session__event", "channel", "customer", "hold__session"
        ).get(pk=order.pk)
        if order.state not in EXCHANGEABLE_ORDER_STATES:
            raise _error("order_not_exchangeable", {"state": order.state})
        chosen = exchange_tickets(order, ticket_ids)
        if not chosen:
            raise _error("exchange_tickets_invalid")
        _lock_payment(order)
        tickets = _lock_tickets([t.pk for t in chosen])
        refusal = ticket_refusal(order, tickets, by_staff=by_staff)
        if refusal is not None:
            serial = refusal.ticket.serial if refusal.ticket is not None else ""
            raise _error(refusal.code, {"ticket": serial})
        terms = exchange_terms(order.session, now=now)
        if not by_staff and terms.refusal:
            raise _error(terms.refusal)
        if tier is not None and same_tier(order, tickets, session, tier):
            raise _error("exchange_same_tier")
        if seat_codes is not None and len(seat_codes) != len(tickets):
            raise _error(
                "exchange_quantity_mismatch", {"tickets": len(tickets), "seats": len(seat_codes)}
            )
        # The new seats first: if they cannot be held, nothing below happens.
        hold = _hold_new(
            order=order, session=session, quantity=len(tickets), tier=tier, seat_codes=seat_codes
        )
        items = list(hold.items.all())
        if any(item.tier.currency != order.currency for item in items):
            raise _error("exchange_currency_mismatch")
        currency = order.currency
        new = sum((Decimal(item.tier.price) * item.quantity for item in items), Decimal(0))
        old = old_value(tickets, currency).amount
        fee = Decimal(0) if waive_fee and by_staff else _fee(tickets, terms, currency)
        upgrade = new + fee > old
        exchange = Exchange.objects.create(
            from_order=order,
            state=Exchange.State.AWAITING_PAYMENT if upgrade else Exchange.State.COMPLETED,
            old_value=old,
            new_value=new,
            fee_amount=fee,
            difference=new + fee - old,
            currency=currency,
            requested_by=actor,
            completed_at=None if upgrade else now,
        )
        _claim(exchange, tickets)
        channel = _channel(order, session)
        if upgrade:
            new_order = order_checkout(
                hold=hold,
                channel=channel,
                holder_key=hold.holder_key,
                customer=order.customer,
                contact_phone=order.contact_phone,
                contact_email=order.contact_email,
            )
        else:
            new_order = order_create_paid_by_credit(
                hold=hold,
                channel=channel,
                customer=order.customer,
                contact_phone=order.contact_phone,
                contact_email=order.contact_email,
                reason=f"exchange from {order.code}"[:200],
            )
        exchange.to_order = new_order
        Exchange.objects.filter(pk=exchange.pk).update(to_order=new_order)
        if not upgrade:
            _give_up(order, tickets, actor)
            refund = _refund_rest(exchange, order, old - new - fee, actor)
            _notify_completed(exchange)
        _process_after_commit(refund, process)
    return exchange


def _fee(tickets: list[Ticket], terms: ExchangeTerms, currency: str) -> Decimal:
    return exchange_fee(tickets, terms, currency).amount


# --- Upgrade: completed when the new order is paid -----------------------------------------------


def _unpayable(order: Order, exchange: Exchange, reason: str) -> DomainError:
    """`order_not_payable` from inside the payment's transaction: it rolls back, and the
    payment service refunds the payment automatically."""
    error = DomainError(
        "order_not_payable",
        _("This order can no longer be paid."),
        {"state": order.state, "order": order.public_id, "exchange": exchange.public_id},
    )
    error.status = 409
    logger.warning(
        "exchange %s cannot complete (%s): its new order %s is refused payment",
        exchange.public_id,
        reason,
        order.code,
    )
    return error


def exchange_on_order_paid(order: Order) -> None:
    """The `on_order_paid` hook: inside the transaction that makes `order` paid, complete the
    upgrade whose new order it is (nothing for any other order). The old tickets are locked and
    checked again, voided and their seats returned; the old order is refunded old value − fee."""
    exchange = (
        Exchange.objects.filter(to_order_id=order.pk)
        .select_related("from_order__hold__session", "from_order__session", "from_order__customer")
        .first()
    )
    if exchange is None or exchange.state == Exchange.State.COMPLETED:
        return
    if exchange.state == Exchange.State.ABANDONED:
        raise _unpayable(order, exchange, "abandoned")
    old_order = exchange.from_order
    ids = list(exchange.items.filter(live=True).values_list("ticket_id", flat=True))
    _lock_payment(old_order)
    tickets = _lock_tickets(ids)
    if len(tickets) != len(ids) or any(t.state != Ticket.State.VALID for t in tickets):
        raise _unpayable(order, exchange, "ticket_void")
    if Admission.objects.filter(ticket_id__in=ids).exists():
        raise _unpayable(order, exchange, "ticket_used")
    if RefundItem.objects.filter(ticket_id__in=ids, live=True).exists():
        raise _unpayable(order, exchange, "refund_in_progress")
    now = clock.now()
    if not Exchange.objects.filter(pk=exchange.pk, state=Exchange.State.AWAITING_PAYMENT).update(
        state=Exchange.State.COMPLETED, completed_at=now, updated_at=now
    ):
        raise _unpayable(order, exchange, "state_changed")
    exchange.state = Exchange.State.COMPLETED
    exchange.completed_at = now
    _give_up(old_order, tickets, None)
    amount = Decimal(exchange.old_value) - Decimal(exchange.fee_amount)
    refund = _refund_rest(exchange, old_order, amount, None)
    _notify_completed(exchange)
    _process_after_commit(refund, None)


# --- Abandon -------------------------------------------------------------------------------------


def _abandon(exchange: Exchange) -> bool:
    """awaiting payment → abandoned; its tickets are free for a refund or another exchange."""
    changed = Exchange.objects.filter(pk=exchange.pk, state=Exchange.State.AWAITING_PAYMENT).update(
        state=Exchange.State.ABANDONED, updated_at=clock.now()
    )
    if changed:
        ExchangeItem.objects.filter(exchange=exchange).update(live=False)
        exchange.state = Exchange.State.ABANDONED
    return bool(changed)


def exchange_cancel(*, exchange: Exchange, actor: User | None) -> Exchange:
    """The buyer gives up an upgrade before paying: its new order is cancelled (the new seats
    go back) and the exchange abandoned; the old tickets were never touched. The order row is
    changed first, as a payment does, so a payment arriving at the same moment either pays
    (and this is refused, `exchange_not_pending`) or is refunded. Errors:
    `exchange_not_pending` (409)."""
    exchange.refresh_from_db()
    if exchange.state != Exchange.State.AWAITING_PAYMENT or exchange.to_order is None:
        raise _not_pending(exchange)
    with transaction.atomic():
        new_order = exchange.to_order
        new_order.refresh_from_db()
        if new_order.state == OrderState.AWAITING_PAYMENT:
            try:
                order_cancel(order=new_order, actor=actor, reason="exchange cancelled")
            except DomainError as exc:
                raise _not_pending(exchange) from exc
        elif new_order.state not in (OrderState.CANCELLED, OrderState.EXPIRED):
            raise _not_pending(exchange)
        if not _abandon(exchange):
            exchange.refresh_from_db()
            raise _not_pending(exchange)
    return exchange


def exchanges_abandon_unpaid(*, now: datetime | None = None, order: Order | None = None) -> int:
    """Abandon exchanges whose new order was cancelled, expired, or is past its deadline (it is
    expired first). `order`: only the exchanges out of that order. Safe to run concurrently
    (each change is conditional). Returns how many this call abandoned."""
    now = now or clock.now()
    stale = Exchange.objects.filter(state=Exchange.State.AWAITING_PAYMENT).filter(
        Q(to_order__state__in=[OrderState.CANCELLED, OrderState.EXPIRED])
        | Q(to_order__state=OrderState.AWAITING_PAYMENT, to_order__payment_deadline__lt=now)
    )
    if order is not None:
        stale = stale.filter(from_order=order)
    count = 0
    for exchange in stale.select_related("to_order").order_by("id")[:ABANDON_BATCH]:
        new_order = exchange.to_order
        assert new_order is not None  # the filter above
        if new_order.state == OrderState.AWAITING_PAYMENT:
            order_expire_if_overdue(order=new_order, now=now)
            new_order.refresh_from_db()
        if new_order.state not in (OrderState.CANCELLED, OrderState.EXPIRED):
            continue  # paid at the last moment: the hook completed it
        with transaction.atomic():
            count += _abandon(exchange)
    return count


# --- Telling the buyer ---------------------------------------------------------------------------


def _notify_completed(exchange: Exchange) -> None:
    """Queued in the completing transaction; the new order's tickets are delivered as usual."""
    new_order = exchange.to_order
    if new_order is None:
        return
    recipients = order_recipients(new_order)
    with notice_language(recipients):
        subject = gettext("Exchange completed: your new tickets are in order %(code)s") % {
            "code": new_order.code
        }
        lines = [subject]
        if exchange.refund is not None:
            lines.append(
                gettext("%(amount)s %(currency)s will be refunded to you.")
                % {"amount": exchange.refund.amount, "currency": exchange.currency}
            )
        lines.append(
            gettext("The tickets you exchanged (order %(code)s) no longer admit anyone.")
            % {"code": exchange.from_order.code}
        )
        body = "\n".join(lines)
    notice_queue(
        topic=f"exchange:{exchange.public_id}:completed",
        recipients=recipients,
        subject=subject,
        body=body,
        sms="[Piaowu] " + subject,
    )
