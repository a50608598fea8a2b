"""Reads about exchanges (改签, AFT-3): whether tickets of an order may be exchanged now, where
to (the sessions and tiers of the same event on sale) and at what cost, and an exchange by id.
The service (`aftersales.services.exchanges`) checks with the same functions, under row locks,
before it writes.

The rule of the old tickets' session decides (`aftersales.policy.rule_for`): a customer may
exchange only when its policy allows exchanges and the time rule still allows a refund (a tier
applies, or a reschedule's free window is open); staff may go outside both. The fee is the
policy's `exchange_fee_percent` of each old ticket's price (no fee in a free window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from piaowu.aftersales.models import Exchange, ExchangeItem, RefundItem, RefundPolicy, Transfer
from piaowu.aftersales.policy import rule_for, ticket_fee
from piaowu.catalog.models import CapacityMode, PriceTier, Session
from piaowu.checkin.models import Admission
from piaowu.core import clock
from piaowu.core.errors import NotFound
from piaowu.core.money import Money
from piaowu.inventory.selectors import session_availability
from piaowu.orders.models import Order
from piaowu.orders.states import OrderState
from piaowu.tickets.models import Ticket

#: Orders whose valid tickets may be exchanged.
EXCHANGEABLE_ORDER_STATES = frozenset(
    {OrderState.PAID, OrderState.FULFILLED, OrderState.PARTIALLY_REFUNDED}
)

#: Why an exchange is refused: the stable codes the service raises, with their messages.
REASONS = {
    "order_not_exchangeable": _("Only tickets of a paid order can be exchanged."),
    "exchange_tickets_invalid": _("Choose the tickets to exchange, each once, from this order."),
    "ticket_void": _("This ticket was already refunded or exchanged."),
    "ticket_used": _("This ticket has been used at the gate and cannot be exchanged."),
    "ticket_transferred": _("A ticket you received as a transfer cannot be exchanged."),
    "transfer_pending": _("This ticket is being transferred; cancel the transfer first."),
    "refund_in_progress": _("A refund of this ticket is in progress."),
    "exchange_in_progress": _("An exchange of this ticket is already in progress."),
    "exchange_not_allowed": _("Tickets for this session cannot be exchanged."),
    "exchange_cutoff_passed": _("It is too late to exchange tickets for this session."),
    "exchange_other_event": _("Tickets can only be exchanged for a session of the same event."),
    "exchange_same_tier": _("Choose another session or ticket type than the one you have."),
    "exchange_tier_not_found": _("No such ticket type for this session."),
    "exchange_currency_mismatch": _("This ticket type is sold in another currency."),
    "exchange_quantity_mismatch": _("Choose as many seats as tickets you exchange."),
    "exchange_target_sold_out": _("Not enough tickets are left for the session you chose."),
}

#: Codes answered with 409 Conflict (the tickets' state, not the request, is the problem).
CONFLICTS = frozenset(
    {
        "order_not_exchangeable",
        "ticket_void",
        "ticket_used",
        "transfer_pending",
        "refund_in_progress",
        "exchange_in_progress",
        "exchange_target_sold_out",
    }
)


# --- The rule ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeTerms:
    """What the rule of a session says about exchanging its tickets at one moment."""

    allowed: bool  # a policy exists and allows exchanges
    in_time: bool  # the time rule still allows a refund (or a free window is open)
    fee_percent: Decimal  # 0 in a reschedule's free window
    free: bool

    @property
    def refusal(self) -> str:
        """The code a customer is refused with ("" if they may exchange)."""
        if self.free:
            return ""
        if not self.allowed:
            return "exchange_not_allowed"
        if not self.in_time:
            return "exchange_cutoff_passed"
        return ""


def _policy_for(session: Session) -> RefundPolicy | None:
    """The session's own policy, else its event's (as `policy.rule_for` resolves it)."""
    return (
        RefundPolicy.objects.filter(session=session).first()
        or RefundPolicy.objects.filter(event_id=session.event_id, session__isnull=True).first()
    )


def exchange_terms(session: Session, *, now: datetime | None = None) -> ExchangeTerms:
    now = now or clock.now()
    rule = rule_for(session, now=now)
    free = rule.free_until is not None and now <= rule.free_until
    policy = _policy_for(session)
    allowed = policy is not None and policy.exchanges_allowed
    percent = Decimal(policy.exchange_fee_percent) if policy is not None else Decimal(0)
    return ExchangeTerms(
        allowed=allowed,
        in_time=rule.tier_at(session.starts_at, now) is not None,
        fee_percent=Decimal(0) if free else percent,
        free=free,
    )


# --- The tickets ---------------------------------------------------------------------------------


def exchange_tickets(order: Order, public_ids: list[str] | None = None) -> list[Ticket]:
    """The tickets of `order` named by `public_ids` (default: its valid ones), with what pricing
    and the checks read. Unknown, foreign or repeated ids give an empty list, which the caller
    refuses as `exchange_tickets_invalid`."""
    tickets = Ticket.objects.filter(order=order).select_related("order_line", "tier", "seat")
    if public_ids is None:
        return list(tickets.filter(state=Ticket.State.VALID).order_by("id"))
    found = list(tickets.filter(public_id__in=public_ids).order_by("id"))
    if not public_ids or len(set(public_ids)) != len(public_ids) or len(found) != len(public_ids):
        return []
    return found


@dataclass(frozen=True, slots=True)
class TicketRefusal:
    code: str
    ticket: Ticket | None

    @property
    def message(self) -> str:
        return str(REASONS[self.code])


def ticket_refusal(order: Order, tickets: list[Ticket], *, by_staff: bool) -> TicketRefusal | None:
    """The first reason `tickets` of `order` cannot be given up in an exchange, or None. Reads
    the current rows: call it under the tickets' row locks before writing."""
    if order.state not in EXCHANGEABLE_ORDER_STATES:
        return TicketRefusal("order_not_exchangeable", None)
    if not tickets:
        return TicketRefusal("exchange_tickets_invalid", None)
    ids = [t.pk for t in tickets]
    used = set(Admission.objects.filter(ticket_id__in=ids).values_list("ticket_id", flat=True))
    refunding = set(
        RefundItem.objects.filter(ticket_id__in=ids, live=True).values_list("ticket_id", flat=True)
    )
    exchanging = set(
        ExchangeItem.objects.filter(ticket_id__in=ids, live=True).values_list(
            "ticket_id", flat=True
        )
    )
    transferring = set(
        Transfer.objects.filter(
            ticket_id__in=ids, state=Transfer.State.PENDING, expires_at__gt=clock.now()
        ).values_list("ticket_id", flat=True)
    )
    for ticket in tickets:
        if ticket.order_id != order.pk:
            return TicketRefusal("exchange_tickets_invalid", ticket)
        if ticket.state != Ticket.State.VALID:
            return TicketRefusal("ticket_void", ticket)
        if ticket.pk in used:
            return TicketRefusal("ticket_used", ticket)
        if ticket.pk in refunding:
            return TicketRefusal("refund_in_progress", ticket)
        if ticket.pk in exchanging:
            return TicketRefusal("exchange_in_progress", ticket)
        if ticket.pk in transferring:
            return TicketRefusal("transfer_pending", ticket)
        if not by_staff and ticket.holder_id is not None and ticket.holder_id != order.customer_id:
            return TicketRefusal("ticket_transferred", ticket)
    return None


def old_value(tickets: list[Ticket], currency: str) -> Money:
    """What the buyer paid for `tickets` (their lines' unit prices)."""
    return Money(sum((Decimal(t.order_line.unit_price) for t in tickets), Decimal(0)), currency)


def exchange_fee(tickets: list[Ticket], terms: ExchangeTerms, currency: str) -> Money:
    """The fee: `fee_percent` of each ticket's price, to the cent (`policy.ticket_fee`)."""
    fee = sum(
        (
            ticket_fee(Decimal(t.order_line.unit_price), terms.fee_percent, Decimal(0))
            for t in tickets
        ),
        Decimal(0),
    )
    return Money(fee, currency)


# --- Where to ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeOption:
    """One session and tier the tickets could move to, and what that costs."""

    session: Session
    tier: PriceTier
    quantity: int
    old_value: Money
    new_value: Money
    fee: Money
    available: int | None  # tickets left (quota sessions) or free seats (reserved); None: unknown

    @property
    def difference(self) -> Money:
        """new value + fee − old value: to pay when positive, refunded when negative."""
        return self.new_value + self.fee - self.old_value

    @property
    def upgrade(self) -> bool:
        """The new order is paid in full; the old tickets are refunded minus the fee."""
        return self.difference.amount > 0

    @property
    def pay_now(self) -> Money:
        """What the buyer pays now: the new tickets in full for an upgrade, else nothing."""
        return self.new_value if self.upgrade else Money(Decimal(0), self.new_value.currency)

    @property
    def refund(self) -> Money:
        """What goes back to the buyer: old value − fee for an upgrade (once the new tickets
        are paid), old value − fee − new value otherwise."""
        if self.upgrade:
            return self.old_value - self.fee
        return Money(Decimal(0), self.old_value.currency) - self.difference

    @property
    def sold_out(self) -> bool:
        return self.available is not None and self.available < self.quantity


@dataclass(frozen=True, slots=True)
class ExchangeQuote:
    """What exchanging `tickets` of `order` would cost now, and to where."""

    order: Order
    tickets: list[Ticket]
    terms: ExchangeTerms
    old_value: Money
    fee: Money
    options: list[ExchangeOption] = field(default_factory=list)
    refusal: TicketRefusal | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def target_sessions(order: Order, *, now: datetime | None = None) -> QuerySet[Session]:
    """The sessions of the order's event that are on sale now (the order's own included: its
    other tiers), soonest first, with their tiers and venue."""
    now = now or clock.now()
    return (
        Session.objects.filter(
            event_id=order.session.event_id,
            status=Session.Status.SCHEDULED,
            sales_open_at__lte=now,
            sales_close_at__gt=now,
        )
        .select_related("event", "venue")
        .prefetch_related("price_tiers")
        .order_by("starts_at", "id")
    )


def same_tier(order: Order, tickets: list[Ticket], session: Session, tier: PriceTier) -> bool:
    """Moving every ticket to the tier it already has, in the same session, changes nothing."""
    return session.pk == order.session_id and all(t.tier_id == tier.pk for t in tickets)


def _available(session: Session, tier: PriceTier) -> int | None:
    counts = session_availability(session)
    if session.capacity_mode == CapacityMode.RESERVED:
        return int(counts["available"])
    left = counts["tiers"].get(tier.code)
    return int(left) if left is not None else None


def exchange_quote(
    *,
    order: Order,
    ticket_ids: list[str] | None = None,
    by_staff: bool = False,
    now: datetime | None = None,
) -> ExchangeQuote:
    """Price an exchange of the tickets `ticket_ids` (default: every valid ticket) of `order`
    into each active tier of each session of its event on sale now. `refusal` says why the
    tickets cannot be exchanged (the options are listed anyway, for the page to explain)."""
    now = now or clock.now()
    tickets = exchange_tickets(order, ticket_ids)
    terms = exchange_terms(order.session, now=now)
    currency = order.currency
    value = old_value(tickets, currency)
    fee = exchange_fee(tickets, terms, currency)
    refusal = ticket_refusal(order, tickets, by_staff=by_staff)
    if refusal is None and not by_staff and terms.refusal:
        refusal = TicketRefusal(terms.refusal, None)
    options = []
    quantity = len(tickets)
    for session in target_sessions(order, now=now) if tickets else []:
        for tier in sorted(session.price_tiers.all(), key=lambda t: (t.sort_order, t.price)):
            if not tier.is_active or tier.currency != currency:
                continue
            if same_tier(order, tickets, session, tier):
                continue
            options.append(
                ExchangeOption(
                    session=session,
                    tier=tier,
                    quantity=quantity,
                    old_value=value,
                    new_value=Money(Decimal(tier.price) * quantity, currency),
                    fee=fee,
                    available=_available(session, tier),
                )
            )
    return ExchangeQuote(
        order=order,
        tickets=tickets,
        terms=terms,
        old_value=value,
        fee=fee,
        options=options,
        refusal=refusal,
    )


# --- An order's exchanges ------------------------------------------------------------------------


def exchange_state(exchange: Exchange, now: datetime | None = None) -> str:
    """The exchange's state as of `now`: one awaiting payment whose new order was cancelled,
    expired or is past its deadline is `abandoned` at once, before the job tidies it up."""
    if exchange.state != Exchange.State.AWAITING_PAYMENT or exchange.to_order is None:
        return exchange.state
    order = exchange.to_order
    if order.state in (OrderState.CANCELLED, OrderState.EXPIRED):
        return Exchange.State.ABANDONED
    if order.state == OrderState.AWAITING_PAYMENT and order.payment_deadline < (now or clock.now()):
        return Exchange.State.ABANDONED
    return exchange.state


def _exchanges() -> QuerySet[Exchange]:
    return Exchange.objects.select_related(
        "from_order__session__event",
        "to_order__session__event",
        "to_order__session__venue",
        "refund",
    ).prefetch_related("items__ticket__seat", "items__ticket__tier")


def exchange_get(public_id: str) -> Exchange:
    """An exchange by its public id (the caller checks the buyer may see its `from_order`)."""
    exchange = _exchanges().filter(public_id=public_id).first()
    if exchange is None:
        raise NotFound("exchange", _("No such exchange."))
    return exchange
