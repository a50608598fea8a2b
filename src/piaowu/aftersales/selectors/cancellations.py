"""Reads about session cancellations and reschedules (AFT-4): which orders a cancellation still
has to refund, its progress, what cancelling would refund (shown before staff confirm), and the
notice a customer sees on the session and order pages.

Progress is counted from the rows themselves, never from a counter a crash could leave behind:

* **to refund**: orders of the session in a refundable state (paid, fulfilled, partially
  refunded) that still have a valid ticket not used at a gate;
* **refunded**: orders of the session with a `cancellation` refund, plus free orders whose
  tickets the cancellation voided (their history says `CANCELLED_FREE_REASON`);
* **unpaid**: orders of the session still awaiting payment (the run cancels them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils.translation import gettext

from piaowu.aftersales.models import Refund, SessionCancellation, SessionReschedule
from piaowu.aftersales.services.refunds import REFUNDABLE_ORDER_STATES
from piaowu.catalog.models import Session
from piaowu.core import clock
from piaowu.core.errors import NotFound
from piaowu.core.money import Money
from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.states import OrderState
from piaowu.tickets.models import Ticket

#: The order-history reason of a free order (nothing paid, nothing to refund) whose tickets a
#: cancellation voided.
CANCELLED_FREE_REASON = "session cancelled (free order)"
#: The order-history reason of an unpaid order the cancellation cancelled.
CANCELLED_UNPAID_REASON = "session cancelled"
#: How many failed refunds and stuck orders the progress lists (counts are always complete).
LISTED = 50


def refundable_tickets(session: Session) -> QuerySet[Ticket]:
    """Valid tickets of `session` that a cancellation refunds: not used at a gate."""
    return Ticket.objects.filter(
        session=session, state=Ticket.State.VALID, admission__isnull=True
    ).filter(order__state__in=REFUNDABLE_ORDER_STATES)


def orders_to_refund(session: Session) -> QuerySet[Order]:
    """Orders of `session` that still have something for a cancellation to refund, oldest
    first."""
    tickets = Ticket.objects.filter(
        order=OuterRef("pk"), state=Ticket.State.VALID, admission__isnull=True
    )
    return (
        Order.objects.filter(session=session, state__in=REFUNDABLE_ORDER_STATES)
        .filter(Exists(tickets))
        .order_by("id")
    )


def orders_unpaid(session: Session) -> QuerySet[Order]:
    """Orders of `session` still awaiting payment (a cancellation cancels them)."""
    return Order.objects.filter(session=session, state=OrderState.AWAITING_PAYMENT).order_by("id")


def orders_refunded_ids(session: Session) -> set[int]:
    """Ids of the orders of `session` the cancellation has refunded (or, free, voided)."""
    refunded = set(
        Refund.objects.filter(order__session=session, kind=Refund.Kind.CANCELLATION)
        .exclude(state=Refund.State.REJECTED)
        .values_list("order_id", flat=True)
    )
    voided = set(
        OrderHistory.objects.filter(
            order__session=session, reason=CANCELLED_FREE_REASON
        ).values_list("order_id", flat=True)
    )
    return refunded | voided


def _amounts(rows: list[tuple[str, Decimal | None]]) -> list[Money]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for currency, amount in rows:
        totals[currency] += Decimal(amount or 0)
    return [Money(amount, currency).quantized() for currency, amount in sorted(totals.items())]


@dataclass(frozen=True, slots=True)
class CancellationPreview:
    """What cancelling the session now would do."""

    orders: int  # paid orders to refund
    tickets: int  # their valid tickets
    amounts: list[Money]  # the money to give back, per currency (face value, no fee)
    unpaid_orders: int  # orders awaiting payment, to cancel
    used_tickets: int  # tickets already admitted at a gate: not refunded


def cancellation_preview(session: Session) -> CancellationPreview:
    tickets = refundable_tickets(session)
    rows = list(
        tickets.values("order__currency")
        .annotate(amount=Sum("order_line__unit_price"))
        .values_list("order__currency", "amount")
    )
    return CancellationPreview(
        orders=orders_to_refund(session).count(),
        tickets=tickets.count(),
        amounts=_amounts(rows),
        unpaid_orders=orders_unpaid(session).count(),
        used_tickets=Ticket.objects.filter(
            session=session, state=Ticket.State.VALID, admission__isnull=False
        ).count(),
    )


@dataclass(frozen=True, slots=True)
class RefundCount:
    state: str
    label: str
    count: int
    amounts: list[Money]


@dataclass(frozen=True, slots=True)
class CancellationProgress:
    cancellation: SessionCancellation
    done: int  # orders refunded (or voided when free)
    remaining: int  # orders still to refund
    unpaid: int  # orders still awaiting payment
    refunds: list[RefundCount]  # the cancellation's refunds by state
    failed: list[Refund] = field(default_factory=list)  # the provider gave up (first LISTED)
    stuck: list[Order] = field(default_factory=list)  # still to refund (first LISTED)

    @property
    def total(self) -> int:
        return self.done + self.remaining

    @property
    def running(self) -> bool:
        return self.cancellation.state == SessionCancellation.State.RUNNING

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else int(self.done * 100 / self.total)

    @property
    def failed_count(self) -> int:
        return next((r.count for r in self.refunds if r.state == Refund.State.FAILED), 0)

    @property
    def money_pending(self) -> int:
        """Refunds approved but not yet confirmed by the provider."""
        waiting = {Refund.State.APPROVED, Refund.State.PROCESSING, Refund.State.REQUESTED}
        return sum(r.count for r in self.refunds if r.state in waiting)


def cancellation_progress(cancellation: SessionCancellation) -> CancellationProgress:
    """Where the cancellation stands, counted from the orders and refunds."""
    session = cancellation.session
    refunds = Refund.objects.filter(order__session=session, kind=Refund.Kind.CANCELLATION)
    by_state: dict[str, list[tuple[str, Decimal | None]]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for state, currency, n, amount in (
        refunds.values("state", "currency")
        .annotate(n=Count("id"), amount=Sum("amount"))
        .values_list("state", "currency", "n", "amount")
    ):
        counts[state] += n
        by_state[state].append((currency, amount))
    labels = dict(Refund.State.choices)
    return CancellationProgress(
        cancellation=cancellation,
        done=len(orders_refunded_ids(session)),
        remaining=orders_to_refund(session).count(),
        unpaid=orders_unpaid(session).count(),
        refunds=[
            RefundCount(state, str(labels[state]), counts[state], _amounts(by_state[state]))
            for state in Refund.State.values
            if counts.get(state)
        ],
        failed=list(
            refunds.filter(state=Refund.State.FAILED)
            .select_related("order")
            .order_by("id")[:LISTED]
        ),
        stuck=list(orders_to_refund(session)[:LISTED]),
    )


def cancellation_for_session(session: Session) -> SessionCancellation | None:
    return SessionCancellation.objects.filter(session=session).first()


def cancellations_with_work(*, finished_since: datetime) -> QuerySet[SessionCancellation]:
    """Cancellations the job should run: every running one, and those finished since
    `finished_since` whose session has an order left to refund or cancel (a payment that
    arrived after the run finished, from a hold made just before the cancellation)."""
    refundable = Ticket.objects.filter(
        order__session=OuterRef("session"),
        order__state__in=REFUNDABLE_ORDER_STATES,
        state=Ticket.State.VALID,
        admission__isnull=True,
    )
    unpaid = Order.objects.filter(session=OuterRef("session"), state=OrderState.AWAITING_PAYMENT)
    recent_with_work = Q(state=SessionCancellation.State.DONE, finished_at__gte=finished_since) & (
        Q(Exists(refundable)) | Q(Exists(unpaid))
    )
    return (
        SessionCancellation.objects.filter(
            Q(state=SessionCancellation.State.RUNNING) | recent_with_work
        )
        .select_related("session__event__organizer", "session__venue", "requested_by")
        .order_by("id")
    )


# --- What customers see --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionNotice:
    """The line on the session and order pages after a cancellation or a reschedule."""

    cancelled: bool
    refund_state: str = ""  # for an order: "refunding", "refunded" or "" (nothing paid)
    reschedule: SessionReschedule | None = None
    free_refund_open: bool = False


def session_notice(session: Session, order: Order | None = None) -> SessionNotice | None:
    """What to tell a visitor (or the buyer of `order`) about the session's cancellation or
    latest reschedule; None when neither happened."""
    if session.status == Session.Status.CANCELLED:
        refund_state = ""
        if order is not None:
            refunds = Refund.objects.filter(order=order, kind=Refund.Kind.CANCELLATION).exclude(
                state=Refund.State.REJECTED
            )
            if refunds.exclude(state=Refund.State.SUCCEEDED).exists():
                refund_state = "refunding"
            elif refunds.exists() or order.state == OrderState.REFUNDED:
                refund_state = "refunded"
            elif order.state in REFUNDABLE_ORDER_STATES:
                refund_state = "refunding"  # the run has not reached this order yet
        return SessionNotice(cancelled=True, refund_state=refund_state)
    reschedule = SessionReschedule.objects.filter(session=session).order_by("-id").first()
    if reschedule is None:
        return None
    return SessionNotice(
        cancelled=False,
        reschedule=reschedule,
        free_refund_open=reschedule.free_refund_until > clock.now(),
    )


# --- Staff ---------------------------------------------------------------------------------


def session_for_staff(public_id: str) -> Session:
    """A session by its id, whatever its event's state (the caller checks the permission).
    Errors: `session_not_found` (404)."""
    session = (
        Session.objects.select_related("event__organizer", "venue")
        .filter(public_id=public_id)
        .first()
    )
    if session is None:
        raise NotFound("session", gettext("No such session."), {"id": public_id})
    return session
