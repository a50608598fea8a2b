"""Organizer cancellation and rescheduling of a session (AFT-4).

**Cancel** (`session_cancel`, one transaction): the session's status goes `scheduled →
cancelled` with one conditional UPDATE (of two concurrent cancels one wins, the other gets
`session_already_cancelled`), a `SessionCancellation` row records who, why and how many orders
there are to refund, and the catalog change log gets an entry. From that commit on the hold
services refuse the session (`sales_closed`: `Session.sales_state` is `cancelled`). Right after
the commit the orders still awaiting payment are cancelled (their seats come back; a payment
arriving later is refunded by `payments` automatically) and loose holds released.

**Refund** (`session_cancellation_run`, resumable): the paid orders are refunded in batches,
each order in its own transaction — lock the order (`SELECT … FOR UPDATE SKIP LOCKED` on
PostgreSQL, so two workers never wait on nor refund the same order), re-check it still has
something to refund, `refund_request(kind=cancellation)` for its valid tickets (no fee, whatever
the rule), queue the holders' notice (topic unique per order: told once). What is left is read
from the rows every time (`selectors.cancellations.orders_to_refund`), so a run killed anywhere
resumes where it stopped and never refunds an order twice; the partial unique index on live
refund items is the backstop. The provider is called later by `refunds_process_due`.

**Reschedule** (`session_reschedule`, one transaction): the session moves (its sales close
moves with it), a `SessionReschedule` row opens a free refund window (`aftersales.policy`
honours it), the valid tickets' admission windows follow the new times, and every holder is
told.

Error codes: `reason_required`, `session_already_cancelled` (409), `session_cancelled` (409),
`session_changed` (409), `reschedule_in_past`, `reschedule_ends_before_start`,
`reschedule_unchanged`, `reschedule_before_sales_open`, `invalid_free_refund_days`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund, SessionCancellation, SessionReschedule
from piaowu.aftersales.selectors.cancellations import (
    CANCELLED_FREE_REASON,
    CANCELLED_UNPAID_REASON,
    cancellations_with_work,
    orders_refunded_ids,
    orders_to_refund,
    orders_unpaid,
)
from piaowu.aftersales.services.notices import (
    Recipients,
    notice_language,
    notice_queue,
    order_recipients,
)
from piaowu.aftersales.services.refunds import funding_payment, refund_reject, refund_request
from piaowu.catalog.models import Session
from piaowu.catalog.selectors import hot_catalog_clear
from piaowu.catalog.services import change_record
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold
from piaowu.inventory.services import hold_release, sold_return
from piaowu.orders.models import Order
from piaowu.orders.services import order_cancel
from piaowu.orders.states import OrderState, transition
from piaowu.tickets.delivery import public_url
from piaowu.tickets.models import Ticket
from piaowu.tickets.services import ticket_void, tickets_rewindow_for_session

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 50
DEFAULT_FREE_REFUND_DAYS = 7
MAX_FREE_REFUND_DAYS = 90
MAX_REASON_LENGTH = 200
#: A finished cancellation is still checked by the job for this long, for orders paid after
#: it finished (a hold made a moment before the cancel, paid within its payment window).
STRAGGLER_WINDOW = timedelta(days=1)
ORDER_PATH = "/orders/{public_id}/"
UNSAFE_PAUSE_SECONDS = 0.05


def _error(
    code: str, message: Any, details: dict[str, Any] | None = None, status: int = 400
) -> DomainError:
    error = DomainError(code, message, details)
    error.status = status
    return error


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise _error("reason_required", _("Say why (customers are told)."), {"field": "reason"})
    return reason[:MAX_REASON_LENGTH]


def _local(moment: datetime, session: Session) -> str:
    local = timezone.localtime(moment, session.venue.tzinfo)
    return f"{local:%Y-%m-%d %H:%M} ({session.venue.timezone})"


def _order_url(order: Order) -> str:
    return public_url() + ORDER_PATH.format(public_id=order.public_id)


def _holders(order: Order) -> list[Recipients]:
    """The order's contacts, plus whoever holds one of its valid tickets by a transfer."""
    recipients = [order_recipients(order)]
    seen = {recipients[0].email}
    for email, language in (
        Ticket.objects.filter(order=order, state=Ticket.State.VALID, holder__isnull=False)
        .exclude(holder__email="")
        .values_list("holder__email", "holder__preferred_language")
        .distinct()
    ):
        if email not in seen:
            seen.add(email)
            recipients.append(Recipients(email=email, language=language or ""))
    return recipients


# --- Cancel ------------------------------------------------------------------------------------


def session_cancel(*, session: Session, actor: User | None, reason: str) -> SessionCancellation:
    """Cancel `session`: sales stop at once, then `session_cancellation_run` refunds every
    paid order (the `aftersales.cancellations_run_due` job runs it; staff may run it now).

    Errors: `reason_required`, `session_already_cancelled` (409)."""
    reason = _clean_reason(reason)
    now = clock.now()
    with transaction.atomic():
        changed = Session.objects.filter(pk=session.pk, status=Session.Status.SCHEDULED).update(
            status=Session.Status.CANCELLED, updated_at=now
        )
        if not changed:
            raise _error(
                "session_already_cancelled",
                _("This session is already cancelled."),
                {"session": session.public_id},
                status=409,
            )
        session.status = Session.Status.CANCELLED
        cancellation = SessionCancellation.objects.create(
            session=session,
            reason=reason,
            requested_by=actor,
            orders_total=orders_to_refund(session).count(),
        )
        change_record(
            organizer=session.event.organizer,
            actor=actor,
            action="session.cancelled",
            obj=session,
            summary=f"{session} — {reason}",
            changes={"status": Session.Status.CANCELLED, "reason": reason},
        )
        # The hold services read sessions through a per-process cache; this process forgets
        # them at once (others within `PIAOWU_HOT_CATALOG_SECONDS`).
        transaction.on_commit(hot_catalog_clear)
    try:
        _cancel_unpaid(cancellation)
    except Exception:
        # The session is cancelled all the same; the run cancels what is left.
        logger.exception("cancellation %s: unpaid orders not cancelled yet", cancellation.public_id)
    return cancellation


def _cancel_unpaid(cancellation: SessionCancellation, limit: int | None = None) -> int:
    """Cancel the session's orders awaiting payment (telling their buyers) and release its
    loose holds, each in its own short transaction. Returns how many orders were cancelled;
    one that got paid meanwhile is refunded by the run instead."""
    session = cancellation.session
    cancelled = 0
    unpaid = orders_unpaid(session).select_related("customer", "session__event", "session__venue")
    for order in list(unpaid[:limit]):
        try:
            with transaction.atomic():
                order_cancel(
                    order=order, actor=cancellation.requested_by, reason=CANCELLED_UNPAID_REASON
                )
                _notify_cancelled(order, cancellation, outcome="unpaid")
        except DomainError as exc:
            if exc.code not in {"order_state_changed", "illegal_transition"}:
                raise
            continue  # paid meanwhile: the refund phase takes it
        cancelled += 1
    loose = Hold.objects.filter(session=session, status=Hold.Status.ACTIVE, order__isnull=True)
    for hold in list(loose.order_by("id")[:limit]):
        try:
            hold_release(hold=hold)
        except DomainError as exc:
            if exc.code != "hold_converted":
                raise
    return cancelled


@dataclass(frozen=True, slots=True)
class RunResult:
    refunded: int  # orders refunded (or voided, when free) by this call
    unpaid_cancelled: int  # orders awaiting payment cancelled by this call
    failed: int  # orders a refund was refused for (they stay to refund; see the log)
    skipped: int  # orders another worker had locked, or nothing left to refund
    finished: bool  # the cancellation is done


def session_cancellation_run(
    *,
    cancellation: SessionCancellation,
    batch: int = DEFAULT_BATCH,
    limit: int | None = None,
) -> RunResult:
    """Refund the cancelled session's paid orders, `batch` at a time, at most `limit` orders
    in this call (None: all). Safe to run again at any time and in several workers at once.
    Marks the cancellation done when no order is left to refund or cancel.

    A `DomainError` refusing one order's refund (a ticket in an exchange, a payment that cannot
    refund) is logged and the order stays to refund: the next run tries it again. Any other
    exception stops the run; nothing of the order it was refunding is written, and the next run
    resumes with it."""
    given = cancellation
    cancellation = SessionCancellation.objects.select_related(
        "session__event__organizer", "session__venue", "requested_by"
    ).get(pk=cancellation.pk)
    unpaid_cancelled = _cancel_unpaid(cancellation, limit)
    refunded = failed = skipped = 0
    after = 0
    attempted = 0
    while limit is None or attempted < limit:
        size = batch if limit is None else min(batch, limit - attempted)
        ids = list(
            orders_to_refund(cancellation.session)
            .filter(pk__gt=after)
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            break
        for order_id in ids:
            after = order_id
            attempted += 1
            try:
                outcome = _refund_one(cancellation, order_id)
            except DomainError as exc:
                failed += 1
                logger.warning(
                    "cancellation %s: order %s not refunded (%s: %s); will retry",
                    cancellation.public_id,
                    order_id,
                    exc.code,
                    exc.details,
                )
                continue
            if outcome:
                refunded += 1
            else:
                skipped += 1
        _count(cancellation)
    finished = _finish_if_done(cancellation)
    for name in ("state", "finished_at", "orders_done", "orders_total"):
        setattr(given, name, getattr(cancellation, name))
    return RunResult(refunded, unpaid_cancelled, failed, skipped, finished)


def _unsafe() -> bool:
    """`PIAOWU_CANCELLATIONS_UNSAFE_RUN` (tests only): no order lock and no re-check, plus a
    pause, so the race test's control run shows two workers really colliding on one order."""
    return bool(getattr(settings, "PIAOWU_CANCELLATIONS_UNSAFE_RUN", False))


def _refund_one(cancellation: SessionCancellation, order_id: int) -> bool:
    """Refund one order in its own transaction. False when another worker has it or nothing
    is left to refund."""
    with transaction.atomic():
        if _unsafe():
            time.sleep(UNSAFE_PAUSE_SECONDS)
        else:
            locked = Order.objects.select_for_update(skip_locked=True).filter(pk=order_id)
            if not list(locked.values_list("pk", flat=True)):
                return False  # another worker is refunding it right now
            if not orders_to_refund(cancellation.session).filter(pk=order_id).exists():
                return False  # refunded meanwhile
        order = Order.objects.select_related("session__event", "session__venue", "customer").get(
            pk=order_id
        )
        tickets = list(
            Ticket.objects.filter(order=order, state=Ticket.State.VALID, admission__isnull=True)
            .select_related("order_line")
            .order_by("id")
        )
        actor = cancellation.requested_by
        _reject_waiting_refunds(order, actor)
        if order.total_amount == 0 and funding_payment(order) is None:
            _void_free_order(order, tickets, actor)
            outcome = "free"
        else:
            outcome = "refunded"
            refund_request(
                order=order,
                tickets=tickets,
                actor=actor,
                kind=Refund.Kind.CANCELLATION,
                reason=cancellation.reason,
                process=False,
            )
        _notify_cancelled(order, cancellation, outcome=outcome)
    return True


def _reject_waiting_refunds(order: Order, actor: User | None) -> None:
    """A customer's refund request still waiting for staff holds tickets the cancellation
    refunds in full: it is superseded (rejected with a note), so nobody pays its fee."""
    if actor is None:
        return  # refund_reject needs a person; the request keeps the tickets (run retries)
    waiting = Refund.objects.filter(order=order, state=Refund.State.REQUESTED).order_by("id")
    for refund in waiting:
        refund_reject(
            refund=refund,
            actor=actor,
            reason=gettext(
                "The session was cancelled: all your tickets are refunded in full instead."
            ),
        )


def _void_free_order(order: Order, tickets: list[Ticket], actor: User | None) -> None:
    """A free order (invitations, redemption codes) has no money to give back: its tickets are
    voided, its admissions returned and the order marked refunded."""
    for ticket in tickets:
        ticket_void(ticket=ticket, actor=actor, reason="session cancelled")
    seat_ids = [t.seat_id for t in tickets if t.seat_id is not None]
    quantities: dict[int, int] = {}
    for ticket in tickets:
        if ticket.seat_id is None:
            quantities[ticket.tier_id] = quantities.get(ticket.tier_id, 0) + 1
    sold_return(hold=order.hold, seat_ids=seat_ids, tier_quantities=quantities)
    left = Ticket.objects.filter(order=order, state=Ticket.State.VALID).exists()
    target = OrderState.PARTIALLY_REFUNDED if left else OrderState.REFUNDED
    transition(order, target, actor=actor, reason=CANCELLED_FREE_REASON)


def _count(cancellation: SessionCancellation) -> None:
    """Write the progress read from the rows onto the cancellation (for lists and the admin)."""
    done = len(orders_refunded_ids(cancellation.session))
    remaining = orders_to_refund(cancellation.session).count()
    SessionCancellation.objects.filter(pk=cancellation.pk).update(
        orders_done=done, orders_total=done + remaining, updated_at=clock.now()
    )
    cancellation.orders_done = done
    cancellation.orders_total = done + remaining


def _finish_if_done(cancellation: SessionCancellation) -> bool:
    session = cancellation.session
    if orders_to_refund(session).exists() or orders_unpaid(session).exists():
        if cancellation.state == SessionCancellation.State.DONE:
            # A late payment (see STRAGGLER_WINDOW) after the run had finished: run again.
            SessionCancellation.objects.filter(
                pk=cancellation.pk, state=SessionCancellation.State.DONE
            ).update(state=SessionCancellation.State.RUNNING, finished_at=None)
            cancellation.state = SessionCancellation.State.RUNNING
        return False
    _count(cancellation)
    now = clock.now()
    SessionCancellation.objects.filter(
        pk=cancellation.pk, state=SessionCancellation.State.RUNNING
    ).update(state=SessionCancellation.State.DONE, finished_at=now, updated_at=now)
    cancellation.refresh_from_db(fields=["state", "finished_at"])
    return True


def cancellations_run_due(*, limit: int = 500, now: datetime | None = None) -> int:
    """The job: run every running cancellation (and recently finished ones that got a late
    payment), at most `limit` orders each per call. Returns how many orders were refunded."""
    now = now or clock.now()
    refunded = 0
    for cancellation in cancellations_with_work(finished_since=now - STRAGGLER_WINDOW):
        try:
            result = session_cancellation_run(cancellation=cancellation, limit=limit)
        except Exception:
            logger.exception("cancellation %s: run stopped", cancellation.public_id)
            continue
        refunded += result.refunded
    return refunded


def _notify_cancelled(order: Order, cancellation: SessionCancellation, *, outcome: str) -> None:
    """Tell the order's holders, once per order: `outcome` "refunded", "free" (tickets
    voided, nothing was paid) or "unpaid" (the order was cancelled)."""
    session = order.session
    for recipients in _holders(order):
        with notice_language(recipients):
            facts = {
                "event": session.event.tr("title"),
                "time": _local(session.starts_at, session),
                "venue": session.venue.tr("name"),
                "code": order.code,
                "reason": cancellation.reason,
                "url": _order_url(order),
            }
            subject = gettext("Cancelled: %(event)s, %(time)s") % facts
            if outcome == "refunded":
                body = gettext(
                    "We are sorry: %(event)s on %(time)s at %(venue)s has been cancelled "
                    "(%(reason)s).\n\nOrder %(code)s is refunded in full, without any fee; the "
                    "money goes back the way you paid. You do not need to do anything.\n"
                    "Follow the refund at %(url)s"
                )
                sms = gettext(
                    "[Piaowu] %(event)s on %(time)s is cancelled. Order %(code)s is refunded "
                    "in full: %(url)s"
                )
            elif outcome == "free":
                body = gettext(
                    "We are sorry: %(event)s on %(time)s at %(venue)s has been cancelled "
                    "(%(reason)s).\n\nThe tickets of order %(code)s are cancelled."
                )
                sms = gettext(
                    "[Piaowu] %(event)s on %(time)s is cancelled. The tickets of order "
                    "%(code)s are cancelled."
                )
            else:
                body = gettext(
                    "We are sorry: %(event)s on %(time)s at %(venue)s has been cancelled "
                    "(%(reason)s).\n\nYour unpaid order %(code)s is cancelled; nothing was "
                    "charged."
                )
                sms = gettext(
                    "[Piaowu] %(event)s on %(time)s is cancelled. Your unpaid order %(code)s "
                    "is cancelled."
                )
            notice_queue(
                topic=f"session-cancelled:{order.public_id}",
                recipients=recipients,
                subject=subject,
                body=body % facts,
                sms=sms % facts,
            )


# --- Reschedule --------------------------------------------------------------------------------


def _aware(value: datetime, session: Session) -> datetime:
    """A naive time is wall-clock time at the venue."""
    if timezone.is_naive(value):
        return timezone.make_aware(value, session.venue.tzinfo)
    return value


def session_reschedule(
    *,
    session: Session,
    new_starts_at: datetime,
    new_ends_at: datetime,
    actor: User | None,
    reason: str,
    free_refund_days: int = DEFAULT_FREE_REFUND_DAYS,
) -> SessionReschedule:
    """Move `session` to `new_starts_at`–`new_ends_at` (naive: venue wall-clock time). Its
    sales close moves by as much as its start. Until `free_refund_days` from now (not past the
    new start) holders may refund without a fee. Valid tickets admit in the new window; every
    holder is told.

    Errors: `reason_required`, `session_cancelled` (409), `reschedule_in_past`,
    `reschedule_ends_before_start`, `reschedule_unchanged`, `reschedule_before_sales_open`,
    `invalid_free_refund_days`, `session_changed` (409: cancelled or moved meanwhile)."""
    reason = _clean_reason(reason)
    session = Session.objects.select_related("event__organizer", "venue").get(pk=session.pk)
    new_starts_at = _aware(new_starts_at, session)
    new_ends_at = _aware(new_ends_at, session)
    now = clock.now()
    if session.status == Session.Status.CANCELLED:
        raise _error(
            "session_cancelled",
            _("A cancelled session cannot be rescheduled."),
            {"session": session.public_id},
            status=409,
        )
    if not isinstance(free_refund_days, int) or not 0 <= free_refund_days <= MAX_FREE_REFUND_DAYS:
        raise _error(
            "invalid_free_refund_days",
            _("Free refunds last between 0 and %(max)s days.") % {"max": MAX_FREE_REFUND_DAYS},
            {"field": "free_refund_days", "max": MAX_FREE_REFUND_DAYS},
        )
    if new_starts_at <= now:
        raise _error(
            "reschedule_in_past",
            _("The new start must be in the future."),
            {"field": "starts_at"},
        )
    if new_ends_at <= new_starts_at:
        raise _error(
            "reschedule_ends_before_start",
            _("The session must end after it starts."),
            {"field": "ends_at"},
        )
    if new_starts_at == session.starts_at and new_ends_at == session.ends_at:
        raise _error("reschedule_unchanged", _("The session already takes place then."))
    shift = new_starts_at - session.starts_at
    sales_close_at = session.sales_close_at + shift
    if sales_close_at <= session.sales_open_at:
        raise _error(
            "reschedule_before_sales_open",
            _("The new time is before sales open; change the sales window first."),
            {"field": "starts_at", "sales_open_at": session.sales_open_at.isoformat()},
        )
    free_refund_until = min(now + timedelta(days=free_refund_days), new_starts_at)
    old_starts_at, old_ends_at = session.starts_at, session.ends_at
    with transaction.atomic():
        moved = Session.objects.filter(
            pk=session.pk,
            status=Session.Status.SCHEDULED,
            starts_at=old_starts_at,
            ends_at=old_ends_at,
        ).update(
            starts_at=new_starts_at,
            ends_at=new_ends_at,
            sales_close_at=sales_close_at,
            updated_at=now,
        )
        if not moved:
            raise _error(
                "session_changed",
                _("This session was just changed by someone else; please reload it."),
                {"session": session.public_id},
                status=409,
            )
        session.starts_at, session.ends_at = new_starts_at, new_ends_at
        session.sales_close_at = sales_close_at
        reschedule = SessionReschedule.objects.create(
            session=session,
            old_starts_at=old_starts_at,
            old_ends_at=old_ends_at,
            new_starts_at=new_starts_at,
            new_ends_at=new_ends_at,
            free_refund_until=free_refund_until,
            reason=reason,
            requested_by=actor,
        )
        change_record(
            organizer=session.event.organizer,
            actor=actor,
            action="session.rescheduled",
            obj=session,
            summary=f"{session} — {reason}",
            changes={
                "starts_at": new_starts_at.isoformat(),
                "ends_at": new_ends_at.isoformat(),
                "old_starts_at": old_starts_at.isoformat(),
                "free_refund_until": free_refund_until.isoformat(),
            },
        )
        tickets_rewindow_for_session(session=session, actor=actor, reason=f"rescheduled: {reason}")
        _notify_rescheduled(reschedule, free=free_refund_until > now)
        transaction.on_commit(hot_catalog_clear)
    # A ticket issued by a payment that read the old times just before the move and committed
    # just after it: give it the new window too (the function only touches stale tickets).
    tickets_rewindow_for_session(session=session, actor=actor, reason=f"rescheduled: {reason}")
    return reschedule


def _notify_rescheduled(reschedule: SessionReschedule, *, free: bool) -> None:
    session = reschedule.session
    orders = (
        Order.objects.filter(
            session=session,
            state__in=[OrderState.PAID, OrderState.FULFILLED, OrderState.PARTIALLY_REFUNDED],
        )
        .filter(Q(tickets__state=Ticket.State.VALID))
        .distinct()
        .select_related("customer")
        .order_by("id")
    )
    for order in orders.iterator(chunk_size=500):
        for recipients in _holders(order):
            with notice_language(recipients):
                facts = {
                    "event": session.event.tr("title"),
                    "old": _local(reschedule.old_starts_at, session),
                    "new": _local(reschedule.new_starts_at, session),
                    "venue": session.venue.tr("name"),
                    "until": _local(reschedule.free_refund_until, session),
                    "code": order.code,
                    "reason": reschedule.reason,
                    "url": _order_url(order),
                }
                subject = gettext("New time: %(event)s is now on %(new)s") % facts
                body = (
                    gettext(
                        "%(event)s at %(venue)s has moved from %(old)s to %(new)s (%(reason)s).\n\n"
                        "Your tickets of order %(code)s stay valid for the new time; open %(url)s "
                        "to show their updated codes."
                    )
                    % facts
                )
                if free:
                    body += "\n" + (
                        gettext(
                            "If the new time does not suit you, you can refund them without any "
                            "fee until %(until)s."
                        )
                        % facts
                    )
                sms = gettext("[Piaowu] %(event)s has moved to %(new)s. Order %(code)s: %(url)s")
                notice_queue(
                    topic=f"session-rescheduled:{reschedule.pk}:{order.public_id}",
                    recipients=recipients,
                    subject=subject,
                    body=body,
                    sms=sms % facts,
                )
