"""Refund rules (AFT-1): which policy applies to a session and what a refund of some tickets
costs, computed the same way for the page that shows the amount and the service that refunds.

A policy's tiers are "at least N hours before the start: fee P %". The tier with the largest N
that still applies sets the fee; with none left (or no policy at all) a customer may not refund.
A tier's fee is P % of the ticket's price, at least the policy's minimum fee (a free tier, P = 0,
charges nothing), never more than the price. A reschedule's free-refund window overrides the
rule: no fee, whatever the time. Staff refunding on a customer's behalf outside the time rule
charge the last (strictest) tier's fee unless they waive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal

from django.utils.formats import date_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from piaowu.aftersales.models import RefundPolicy, RefundTier, SessionReschedule
from piaowu.catalog.models import Session
from piaowu.core.money import CURRENCY_EXPONENT, Money
from piaowu.orders.models import Order
from piaowu.tickets.models import Ticket

CENT = Decimal("0.01")

#: Why a ticket cannot be refunded (the stable codes the service raises).
REASONS = {
    "ticket_void": _("This ticket was already refunded or exchanged."),
    "ticket_used": _("This ticket has been used at the gate and cannot be refunded."),
    "ticket_transferred": _("A ticket you received as a transfer cannot be refunded."),
    "refund_in_progress": _("A refund or exchange of this ticket is already in progress."),
    "refund_not_allowed": _("This ticket can no longer be refunded under the event's rules."),
    "channel_not_refundable": _("Tickets bought through this channel cannot be refunded here."),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """The refund rule in force for a session (the policy's tiers, or a free window)."""

    tiers: tuple[tuple[int, Decimal], ...]  # (hours_before, fee_percent), largest hours first
    minimum_fee: Decimal
    needs_approval: bool
    channel_ids: frozenset[int]  # empty: every channel
    free_until: datetime | None  # a reschedule's free-refund window
    exists: bool  # False: no policy at all

    def tier_at(self, starts_at: datetime, now: datetime) -> tuple[int, Decimal] | None:
        left = starts_at - now
        for hours, percent in self.tiers:
            if left >= timedelta(hours=hours):
                return hours, percent
        return None

    def lines(self, zone: tzinfo | None = None, currency: str = "") -> list[str]:
        """The rule as sentences for the customer, in the active language (times in `zone`,
        the venue's time zone; the minimum fee in `currency`)."""
        result = []
        if self.free_until is not None:
            until = self.free_until.astimezone(zone) if zone is not None else self.free_until
            result.append(
                gettext("The session was rescheduled: refunds are free until %(time)s.")
                % {"time": date_format(until, "DATETIME_FORMAT")}
            )
        if not self.exists or not self.tiers:
            if self.free_until is None:
                result.append(gettext("Tickets for this session cannot be refunded online."))
            return result
        for hours, percent in self.tiers:
            if hours == 0 and percent == 0:
                result.append(gettext("Until the start: free refund."))
            elif hours == 0:
                result.append(
                    gettext("Until the start: %(percent)s %% fee.") % {"percent": _percent(percent)}
                )
            elif percent == 0:
                result.append(
                    gettext("Until %(hours)s hours before the start: free refund.")
                    % {"hours": hours}
                )
            else:
                result.append(
                    gettext("Until %(hours)s hours before the start: %(percent)s %% fee.")
                    % {"hours": hours, "percent": _percent(percent)}
                )
        last = self.tiers[-1][0]
        if last == 0:
            result.append(gettext("After the start: no refunds."))
        else:
            result.append(
                gettext("Later than %(hours)s hours before the start: no refunds.")
                % {"hours": last}
            )
        if self.minimum_fee > 0 and any(percent > 0 for _hours, percent in self.tiers):
            fee = str(Money(self.minimum_fee, currency)) if currency else str(self.minimum_fee)
            result.append(gettext("Minimum fee per ticket: %(fee)s.") % {"fee": fee})
        return result


def _percent(value: Decimal) -> str:
    return format(value.normalize(), "f")


def rule_for(session: Session, *, now: datetime) -> Rule:
    """The session's own policy, else its event's; plus an open reschedule window."""
    policy = (
        RefundPolicy.objects.filter(session=session).first()
        or RefundPolicy.objects.filter(event_id=session.event_id, session__isnull=True).first()
    )
    free_until = (
        SessionReschedule.objects.filter(session=session, free_refund_until__gte=now)
        .order_by("-free_refund_until")
        .values_list("free_refund_until", flat=True)
        .first()
    )
    if policy is None:
        return Rule((), Decimal(0), False, frozenset(), free_until, exists=False)
    tiers = tuple(
        RefundTier.objects.filter(policy=policy)
        .order_by("-hours_before")
        .values_list("hours_before", "fee_percent")
    )
    return Rule(
        tiers=tiers,
        minimum_fee=Decimal(policy.minimum_fee),
        needs_approval=policy.needs_approval,
        channel_ids=frozenset(policy.channels.values_list("id", flat=True)),
        free_until=free_until,
        exists=True,
    )


@dataclass(frozen=True, slots=True)
class TicketQuote:
    ticket: Ticket
    gross: Decimal
    fee: Decimal
    refusal: str = ""  # a code of REASONS; empty: refundable

    @property
    def amount(self) -> Decimal:
        return self.gross - self.fee

    @property
    def refusal_message(self) -> str:
        return str(REASONS[self.refusal]) if self.refusal else ""


@dataclass(frozen=True, slots=True)
class Quote:
    """What refunding `items` would give back. `ok` only when every ticket may be refunded."""

    currency: str
    items: list[TicketQuote]
    rule: Rule
    fee_percent: Decimal | None
    needs_approval: bool
    rule_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(not item.refusal for item in self.items)

    @property
    def gross(self) -> Money:
        return Money(sum((i.gross for i in self.items), Decimal(0)), self.currency)

    @property
    def fee(self) -> Money:
        return Money(sum((i.fee for i in self.items), Decimal(0)), self.currency)

    @property
    def amount(self) -> Money:
        return Money(sum((i.amount for i in self.items), Decimal(0)), self.currency)

    def first_refusal(self) -> TicketQuote | None:
        return next((item for item in self.items if item.refusal), None)


def ticket_fee(gross: Decimal, percent: Decimal, minimum: Decimal, currency: str = "") -> Decimal:
    """`percent` of `gross` (to the currency's smallest unit, half up), at least `minimum` when
    a fee is charged at all (`percent` > 0: a free tier stays free), never above `gross`."""
    quantum = Decimal(1).scaleb(-CURRENCY_EXPONENT.get(currency, 2)) if currency else CENT
    fee = (gross * percent / 100).quantize(quantum, rounding=ROUND_HALF_UP)
    if percent > 0:
        fee = max(fee, minimum)
    return min(fee, gross)


def quote(
    *,
    order: Order,
    tickets: list[Ticket],
    now: datetime,
    used: set[int],
    busy: set[int],
    by_staff: bool = False,
    waive_fee: bool = False,
) -> Quote:
    """Price a refund of `tickets` of `order` at `now`. `used`: ids of tickets admitted at a
    gate; `busy`: ids already in a live refund or exchange. Staff may refund outside the time
    rule and the channel list (never a used ticket) and may waive the fee."""
    session = order.session
    rule = rule_for(session, now=now)
    # The organizer cancelled: every ticket is refundable in full, whatever the rule says.
    free = session.status == Session.Status.CANCELLED or (
        rule.free_until is not None and now <= rule.free_until
    )
    tier = None if free else rule.tier_at(session.starts_at, now)
    percent: Decimal | None
    if free or (waive_fee and by_staff):  # only staff may waive the fee
        percent = Decimal(0)
    elif tier is not None:
        percent = tier[1]
    elif by_staff:
        # Outside the time rule only staff refund, at the strictest tier's fee (none without
        # tiers) unless they waive it.
        percent = rule.tiers[-1][1] if rule.tiers else Decimal(0)
    else:
        percent = None
    channel_refused = bool(rule.channel_ids) and order.channel_id not in rule.channel_ids
    minimum = Decimal(0) if free else rule.minimum_fee
    items = []
    for ticket in tickets:
        gross = Decimal(ticket.order_line.unit_price)
        refusal = ""
        if ticket.state != Ticket.State.VALID:
            refusal = "ticket_void"
        elif ticket.pk in used:
            refusal = "ticket_used"
        elif ticket.pk in busy:
            refusal = "refund_in_progress"
        elif ticket.holder_id is not None and ticket.holder_id != order.customer_id:
            refusal = "ticket_transferred" if not by_staff else ""
        if not refusal and not by_staff and not free:
            if channel_refused:
                refusal = "channel_not_refundable"
            elif percent is None:
                refusal = "refund_not_allowed"
        fee = Decimal(0) if percent is None else ticket_fee(gross, percent, minimum, order.currency)
        items.append(TicketQuote(ticket=ticket, gross=gross, fee=fee, refusal=refusal))
    return Quote(
        currency=order.currency,
        items=items,
        rule=rule,
        fee_percent=percent,
        needs_approval=rule.needs_approval and not by_staff and not free,
        rule_lines=rule.lines(session.venue.tzinfo, order.currency),
    )
