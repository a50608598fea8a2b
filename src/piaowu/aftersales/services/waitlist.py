"""The waitlist (AFT-5): customers wait for admissions of a sold-out session's tier, first come
first served, in the session's mode.

* **Join** (`waitlist_join`): a signed-in customer, for a session whose `waitlist_mode` is not
  off, on sale, with fewer admissions of the tier left than they ask for; 1 to the limit
  (per-customer and the tier's per-order limit); one open entry per customer and session — the
  partial unique index refuses a second, also when two joins race. An entry waits until its
  deadline: `PIAOWU_WAITLIST_CLOSE_HOURS` (2) before the start, never after online sales close,
  or earlier if the customer chooses.
* **Offer mode** (`waitlist_offer_due`, a job, also callable right after admissions return):
  lapsed offers end first (`offered → expired`; an expired hold is free at once, time being
  data), then per session and tier, in queue order, each waiting entry that the free admissions
  cover gets a hold for its customer lasting `PIAOWU_WAITLIST_OFFER_MINUTES` (15) and a notice
  with a link to check out. Paying that hold's order fulfils the entry (`on_order_paid` hook).
* **Prepaid mode** (候补): joining creates a deposit order (no lines, quantity × tier price)
  that the customer pays through the normal payment flow; paid, the entry waits
  (`awaiting_payment → waiting`, hook). `waitlist_fulfil_due` (a job) then, per session and
  tier in queue order, holds admissions for each entry and in one transaction creates the
  ticket order paid by the deposit (`orders.services.order_create_paid_by_credit`: tickets are
  issued), marks the entry fulfilled and the deposit order fulfilled. Nothing is charged again.
* **Deadline** (`waitlist_expire_due`, a job): waiting entries past their deadline end —
  prepaid ones `refunded`, the deposit refunded in full (`refund_money`, kind `waitlist`),
  offer ones `expired`; prepaid entries whose deposit was not paid in time are `cancelled`.
* **Cancel** (`waitlist_cancel`): the customer, while the entry is open; a paid deposit is
  refunded in full, an offer's hold (or its unpaid order) is given back.

Fairness: strictly first come, first served per session and tier. If the head of the queue
wants more admissions than are free, nobody behind it is served — a smaller later entry never
overtakes it (as Damai does; otherwise large parties would wait for ever). Each entry is served
under a row lock on it (`SELECT … FOR UPDATE`) and moves with a conditional UPDATE on its state,
so concurrent job runs serve each entry at most once; a run skips an entry only when another
run already served (or ended) it. Admissions are taken with the inventory's own holds, so no
seat is ever sold twice. Lock order: an entry and then its orders, except where a payment or a
cancellation of an unpaid deposit starts from the order (order, then entry) — these never meet
the entry-first paths on the same entry state.

`PIAOWU_AFTERSALES_UNSAFE_WAITLIST` (tests only) drops the row lock and the state condition, so
the race test's control run (with `PIAOWU_ORDERS_UNSAFE_TRANSITIONS`, the deposit order's own
guard) shows an entry served twice.

Error codes: `waitlist_off`, `waitlist_tier_invalid`, `sales_closed`, `waitlist_closed`,
`invalid_quantity`, `waitlist_deadline_invalid`, `waitlist_not_sold_out`,
`waitlist_already_joined` (409), `waitlist_not_open` (409), `waitlist_state_changed` (409),
`deposit_amount_invalid`, and the order contact checks (`invalid_phone`, `invalid_email`,
`channel_mismatch`, `channel_inactive`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund, WaitlistEntry, WaitlistHistory
from piaowu.aftersales.selectors.waitlist import (
    offer_window,
    tier_available,
    tier_free_seat_codes,
    waitlist_latest_deadline,
    waitlist_open_entry,
    waitlist_position,
    waitlist_quantity_limit,
)
from piaowu.aftersales.services.notices import (
    Recipients,
    notice_language,
    notice_queue,
    order_recipients,
    user_recipients,
)
from piaowu.aftersales.services.refunds import refund_money, refund_process
from piaowu.catalog.models import CapacityMode, PriceTier, SalesChannel, Session, WaitlistMode
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.inventory.holders import user_holder_key
from piaowu.inventory.live import sold_out_clear, sold_out_tiers
from piaowu.inventory.models import Hold
from piaowu.inventory.services import (
    hold_best_available,
    hold_quantity,
    hold_release,
    hold_seats,
)
from piaowu.orders.models import Order
from piaowu.orders.services import (
    order_cancel,
    order_create_deposit,
    order_create_paid_by_credit,
    order_expire_if_overdue,
)
from piaowu.orders.states import PAID_STATES, OrderState, transition
from piaowu.tickets.delivery import order_tickets_url, public_url

logger = logging.getLogger(__name__)

#: Inventory refusals that mean "not enough free right now": the queue waits.
CAPACITY_CODES = frozenset(
    {"sold_out", "not_enough_seats", "seat_taken", "stranded_seat", "couple_pair_required"}
)
#: The customer's waitlist page (`web:waitlist`), and where an offer is checked out from.
WAITLIST_PATH = "/waitlist/"
OFFER_CHECKOUT_PATH = "/waitlist/{public_id}/checkout/"
#: A chosen deadline must leave at least this long to wait.
MIN_WAIT = timedelta(minutes=30)
BATCH = 500
UNSAFE_PAUSE_SECONDS = 0.2

SERVED, NO_ROOM, GONE, ENDED = "served", "no_room", "gone", "ended"


def _error(
    code: str, message: Any, details: dict[str, Any] | None = None, *, status: int = 400
) -> DomainError:
    error = DomainError(code, message, details)
    error.status = status
    return error


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _history(entry: WaitlistEntry, from_state: str, to_state: str, note: str = "") -> None:
    WaitlistHistory.objects.create(
        entry=entry, from_state=from_state, to_state=to_state, note=note[:200], at=clock.now()
    )


def _unsafe() -> bool:
    return bool(getattr(settings, "PIAOWU_AFTERSALES_UNSAFE_WAITLIST", False))


def _move(
    entry: WaitlistEntry, from_states: list[str], to: str, *, note: str = "", **fields: Any
) -> bool:
    """The entry's one conditional state change (+ history); False when it was no longer in
    `from_states` (someone else moved it first)."""
    now = clock.now()
    entries = WaitlistEntry.objects.filter(pk=entry.pk)
    if _unsafe():
        # TEST-ONLY control: read, then write without the state condition.
        seen = entries.values_list("state", flat=True).first()
        changed = entries.update(state=to, updated_at=now, **fields) if seen in from_states else 0
    else:
        changed = entries.filter(state__in=from_states).update(state=to, updated_at=now, **fields)
    if not changed:
        return False
    from_state = entry.state if entry.state in from_states else from_states[0]
    entry.state = to
    for name, value in fields.items():
        setattr(entry, name, value)
    _history(entry, from_state, to, note)
    return True


def _state_changed(entry: WaitlistEntry) -> DomainError:
    current = WaitlistEntry.objects.filter(pk=entry.pk).values_list("state", flat=True).first()
    return _error(
        "waitlist_state_changed",
        _("This waitlist entry was just changed; please reload it."),
        {"state": current},
        status=409,
    )


def _already_joined(entry: WaitlistEntry | None) -> DomainError:
    return _error(
        "waitlist_already_joined",
        _("You are already on the waitlist for this session."),
        {"entry": entry.public_id if entry is not None else ""},
        status=409,
    )


def _process_inline() -> bool:
    return bool(getattr(settings, "PIAOWU_REFUNDS_PROCESS_INLINE", True))


def _process_refunds(refunds: list[Refund]) -> None:
    """After commit: ask the provider now (else the refunds job does it)."""
    if not _process_inline():
        return
    for refund in refunds:
        try:
            refund_process(refund=refund)
        except Exception:  # the refund stays approved; the refunds job retries it
            logger.exception("waitlist refund %s could not be processed now", refund.number)


# --- Join ---------------------------------------------------------------------------------------


def waitlist_join(
    *,
    session: Session,
    tier: PriceTier,
    customer: User,
    quantity: int,
    channel: SalesChannel,
    contact_phone: str = "",
    contact_email: str = "",
    wait_until: datetime | None = None,
) -> WaitlistEntry:
    """Put `customer` on the session's waitlist for `quantity` admissions of `tier`.

    Offer mode: the entry waits at once. Prepaid mode: the entry awaits payment of its deposit
    order (`entry.deposit_order`, paid like any order through `channel`'s payment flow).
    Errors: `waitlist_tier_invalid`, `waitlist_off`, `sales_closed`, `waitlist_closed`,
    `invalid_quantity`, `waitlist_deadline_invalid`, `waitlist_already_joined` (409),
    `waitlist_not_sold_out` (details `available`), and for a deposit `invalid_phone`,
    `invalid_email`, `channel_mismatch`, `channel_inactive`, `deposit_amount_invalid`.
    """
    now = clock.now()
    if tier.session_id != session.pk or not tier.is_active:
        raise _error(
            "waitlist_tier_invalid",
            _("This ticket type is not sold for this session."),
            {"tier": tier.code},
        )
    if session.waitlist_mode not in (WaitlistMode.OFFER, WaitlistMode.PREPAID):
        raise _error("waitlist_off", _("This session has no waitlist."))
    sales_state = session.sales_state(now)
    if sales_state != "on_sale":
        raise _error(
            "sales_closed",
            _("Tickets for this session are not on sale."),
            {"sales_state": sales_state},
        )
    latest = waitlist_latest_deadline(session)
    if latest <= now + MIN_WAIT:
        raise _error(
            "waitlist_closed",
            _("The waitlist for this session has closed."),
            {"closed_at": _iso(latest)},
        )
    low, limit = max(1, tier.min_per_order), waitlist_quantity_limit(tier)
    if not low <= quantity <= limit:
        raise _error(
            "invalid_quantity",
            _("Choose between %(low)d and %(limit)d tickets.") % {"low": low, "limit": limit},
            {"minimum": low, "limit": limit, "requested": quantity},
        )
    deadline = latest
    if wait_until is not None:
        if timezone.is_naive(wait_until) or not now + MIN_WAIT <= wait_until <= latest:
            raise _error(
                "waitlist_deadline_invalid",
                _("Wait at least 30 minutes and at most until the waitlist closes."),
                {"latest": _iso(latest)},
            )
        deadline = wait_until
    existing = waitlist_open_entry(session=session, customer=customer)
    if existing is not None:
        raise _already_joined(existing)
    available = tier_available(session, tier)
    if available >= quantity:
        raise _error(
            "waitlist_not_sold_out",
            _("These tickets are still on sale; buy them directly."),
            {"available": available},
        )
    prepaid = session.waitlist_mode == WaitlistMode.PREPAID
    unit = Money(Decimal(tier.price), tier.currency)
    try:
        with transaction.atomic():
            deposit = None
            if prepaid:
                deposit = order_create_deposit(
                    session=session,
                    channel=channel,
                    customer=customer,
                    amount=unit * quantity,
                    contact_phone=contact_phone,
                    contact_email=contact_email,
                    reason="waitlist deposit",
                )
            state = WaitlistEntry.State.AWAITING_PAYMENT if prepaid else WaitlistEntry.State.WAITING
            entry = WaitlistEntry.objects.create(
                session=session,
                tier=tier,
                customer=customer,
                quantity=quantity,
                mode=session.waitlist_mode,
                state=state,
                unit_price=unit.amount,
                currency=unit.currency,
                deadline=deadline,
                deposit_order=deposit,
            )
            _history(entry, "", state, "joined")
    except IntegrityError:
        # Another join of this customer for this session committed first.
        raise _already_joined(waitlist_open_entry(session=session, customer=customer)) from None
    return entry


# --- Cancel -------------------------------------------------------------------------------------


def _cancel_unpaid(order: Order, *, actor: User | None, reason: str) -> None:
    """Cancel an order still awaiting payment; paid meanwhile → `order_state_changed`."""
    order.refresh_from_db()
    if order.state == OrderState.AWAITING_PAYMENT:
        order_cancel(order=order, actor=actor, reason=reason)
    elif order.state in PAID_STATES:
        raise _error(
            "order_state_changed",
            gettext("This order was just paid."),
            {"state": order.state},
            status=409,
        )


def _refund_deposit(entry: WaitlistEntry, *, reason: str, actor: User | None) -> Refund:
    """Inside the caller's transaction: the whole deposit back (kind `waitlist`) and the
    deposit order `refunded`."""
    assert entry.deposit_order_id is not None
    deposit = Order.objects.get(pk=entry.deposit_order_id)
    refund = refund_money(
        order=deposit,
        amount=deposit.total,
        kind=Refund.Kind.WAITLIST,
        reason=reason,
        actor=actor,
    )
    transition(deposit, OrderState.REFUNDED, actor=actor, reason=f"waitlist refund {refund.number}")
    return refund


def waitlist_cancel(
    *, entry: WaitlistEntry, actor: User | None, reason: str = "cancelled by the customer"
) -> WaitlistEntry:
    """Leave the waitlist while the entry is open: an unpaid deposit order is cancelled, a paid
    deposit refunded in full, an offer's hold (or its unpaid order) given back at once.
    Errors: `waitlist_not_open` (409, details `state`), `waitlist_state_changed` (409)."""
    entry.refresh_from_db()
    refunds: list[Refund] = []
    try:
        with transaction.atomic():
            if entry.state == WaitlistEntry.State.AWAITING_PAYMENT:
                # Order first, then the entry: the order's payment takes them in that order.
                if entry.deposit_order_id is not None:
                    deposit = Order.objects.get(pk=entry.deposit_order_id)
                    _cancel_unpaid(deposit, actor=actor, reason="waitlist cancelled")
                if not _move(
                    entry,
                    [WaitlistEntry.State.AWAITING_PAYMENT],
                    WaitlistEntry.State.CANCELLED,
                    note=reason,
                ):
                    raise _state_changed(entry)
            elif entry.state == WaitlistEntry.State.OFFERED:
                _offer_give_back(entry, actor=actor)
                if not _move(
                    entry, [WaitlistEntry.State.OFFERED], WaitlistEntry.State.CANCELLED, note=reason
                ):
                    raise _state_changed(entry)
            elif entry.state == WaitlistEntry.State.WAITING:
                locked = (
                    WaitlistEntry.objects.select_for_update()
                    .filter(pk=entry.pk, state=WaitlistEntry.State.WAITING)
                    .first()
                )
                if locked is None:
                    raise _state_changed(entry)
                _move(
                    entry, [WaitlistEntry.State.WAITING], WaitlistEntry.State.CANCELLED, note=reason
                )
                if entry.mode == WaitlistEntry.Mode.PREPAID and entry.deposit_order_id:
                    refunds.append(_refund_deposit(entry, reason=reason, actor=actor))
            else:
                raise _error(
                    "waitlist_not_open",
                    _("This waitlist entry is no longer open."),
                    {"state": entry.state},
                    status=409,
                )
    except DomainError as exc:
        if exc.code == "order_state_changed":
            raise _state_changed(entry) from exc
        raise
    _process_refunds(refunds)
    return entry


def _offer_give_back(entry: WaitlistEntry, *, actor: User | None) -> None:
    """Give an offer's admissions back: cancel its unpaid order, else release its hold."""
    if entry.offer_hold_id is None:
        return
    order = Order.objects.filter(hold_id=entry.offer_hold_id).first()
    if order is not None:
        _cancel_unpaid(order, actor=actor, reason="waitlist offer declined")
        return
    hold = Hold.objects.get(pk=entry.offer_hold_id)
    if hold.status == Hold.Status.ACTIVE:
        hold_release(hold=hold)


# --- Payment hook ------------------------------------------------------------------------------


def waitlist_on_order_paid(order: Order) -> None:
    """Registered with `orders.services.on_order_paid` (runs in the transaction that makes an
    order paid): a paid deposit puts its entry in the queue; a paid order of an offer's hold
    fulfils its entry. One indexed query for every other order."""
    entries = list(
        WaitlistEntry.objects.filter(
            Q(deposit_order_id=order.pk) | Q(offer_hold_id=order.hold_id),
            state__in=[WaitlistEntry.State.AWAITING_PAYMENT, WaitlistEntry.State.OFFERED],
        ).select_related("session__event", "session__venue", "tier", "customer")
    )
    for entry in entries:
        if entry.deposit_order_id == order.pk:
            if _move(
                entry,
                [WaitlistEntry.State.AWAITING_PAYMENT],
                WaitlistEntry.State.WAITING,
                note=f"deposit {order.code} paid",
            ):
                entry.deposit_order = order
                _notify(entry, "waiting")
        elif entry.offer_hold_id == order.hold_id:
            _move(
                entry,
                [WaitlistEntry.State.OFFERED],
                WaitlistEntry.State.FULFILLED,
                note=f"order {order.code} paid",
                order=order,
                fulfilled_at=clock.now(),
            )


# --- Serving the queue -------------------------------------------------------------------------


def _groups(
    mode: str, now: datetime, session: Session | None
) -> list[tuple[Session, PriceTier, list[WaitlistEntry]]]:
    """Waiting entries of `mode` (before their deadline) by session and tier, queue order."""
    entries = WaitlistEntry.objects.filter(
        mode=mode, state=WaitlistEntry.State.WAITING, deadline__gte=now
    )
    if session is not None:
        entries = entries.filter(session=session)
    rows = list(entries.select_related("customer").order_by("session_id", "tier_id", "id")[:BATCH])
    grouped: OrderedDict[tuple[int, int], list[WaitlistEntry]] = OrderedDict()
    for entry in rows:
        grouped.setdefault((entry.session_id, entry.tier_id), []).append(entry)
    sessions = (
        Session.objects.select_related("event", "venue", "seat_map")
        .prefetch_related("price_tiers")
        .in_bulk({key[0] for key in grouped})
    )
    tiers = PriceTier.objects.in_bulk({key[1] for key in grouped})
    return [
        (sessions[session_id], tiers[tier_id], group)
        for (session_id, tier_id), group in grouped.items()
    ]


def _serve(
    session: Session,
    tier: PriceTier,
    entries: list[WaitlistEntry],
    now: datetime,
    serve_one: Callable[[WaitlistEntry, Session, PriceTier, datetime], str],
) -> int:
    """Serve `entries` (one session and tier, queue order) strictly first come, first served:
    stop at the first entry the free admissions cannot cover."""
    available = tier_available(session, tier)
    served = 0
    for entry in entries:
        if entry.quantity > available:
            break
        outcome = serve_one(entry, session, tier, now)
        if outcome == NO_ROOM:
            break
        if outcome == SERVED:
            served += 1
            available -= entry.quantity
    return served


def _lock_waiting(entry: WaitlistEntry, now: datetime) -> WaitlistEntry | None:
    """Inside a transaction: the entry, row-locked, if it still waits before its deadline."""
    if _unsafe():
        # TEST-ONLY control: no lock, and a pause for a concurrent run to read the same.
        found = (
            WaitlistEntry.objects.select_related("customer")
            .filter(pk=entry.pk, state=WaitlistEntry.State.WAITING, deadline__gte=now)
            .first()
        )
        time.sleep(UNSAFE_PAUSE_SECONDS)
        return found
    return (
        WaitlistEntry.objects.select_for_update(of=("self",))
        .select_related("customer")
        .filter(pk=entry.pk, state=WaitlistEntry.State.WAITING, deadline__gte=now)
        .first()
    )


def _take_hold(
    entry: WaitlistEntry, session: Session, tier: PriceTier, ttl: timedelta | None
) -> Hold:
    """Hold `entry.quantity` admissions of `tier` for the entry's customer (their signed-in
    holder key, so their checkout page opens it). Reserved seats: adjacent best available if
    possible, else any free seats of the tier (same seat rules as every buyer)."""
    key = user_holder_key(entry.customer_id)
    customer = entry.customer
    if session.capacity_mode == CapacityMode.RESERVED:
        try:
            return hold_best_available(
                session=session,
                quantity=entry.quantity,
                tier_code=tier.code,
                holder_key=key,
                customer=customer,
                ttl=ttl,
            )
        except DomainError as exc:
            if exc.code != "not_enough_seats":
                raise
            codes = tier_free_seat_codes(session, tier)
            if len(codes) < entry.quantity:
                raise
        return hold_seats(
            session=session,
            seat_codes=codes[: entry.quantity],
            holder_key=key,
            customer=customer,
            ttl=ttl,
        )
    for attempt in range(2):
        try:
            return hold_quantity(
                session=session,
                tier_code=tier.code,
                quantity=entry.quantity,
                holder_key=key,
                customer=customer,
                ttl=ttl,
            )
        except DomainError as exc:
            # We only try when the counts say there is room: a sold-out marker left from
            # before the admissions came back is stale (it lasts seconds); clear it, try again.
            if (
                exc.code != "sold_out"
                or attempt
                or tier.code not in sold_out_tiers(session.public_id)
            ):
                raise
            sold_out_clear(session.public_id)
    raise AssertionError("unreachable")  # pragma: no cover


def _offer_one(entry: WaitlistEntry, session: Session, tier: PriceTier, now: datetime) -> str:
    try:
        with transaction.atomic():
            locked = _lock_waiting(entry, now)
            if locked is None:
                return GONE
            hold = _take_hold(locked, session, tier, ttl=offer_window())
            _move(
                locked,
                [WaitlistEntry.State.WAITING],
                WaitlistEntry.State.OFFERED,
                note=f"hold {hold.public_id}",
                offer_hold=hold,
                offer_expires_at=hold.expires_at,
            )
            locked.session = session
            locked.tier = tier
            _notify(locked, "offered")
    except DomainError as exc:
        if exc.code in CAPACITY_CODES:
            return NO_ROOM
        _end_waiting(entry, now, note=f"cannot be served: {exc.code}")
        return ENDED
    return SERVED


def _fulfil_one(entry: WaitlistEntry, session: Session, tier: PriceTier, now: datetime) -> str:
    refunds: list[Refund] = []
    try:
        with transaction.atomic():
            locked = _lock_waiting(entry, now)
            if locked is None:
                return GONE
            assert locked.deposit_order_id is not None  # prepaid entries wait once it is paid
            deposit = Order.objects.select_related("channel").get(pk=locked.deposit_order_id)
            price = Decimal(tier.price)
            if tier.currency != locked.currency or price > Decimal(locked.unit_price):
                raise _error("waitlist_price_changed", gettext("The price went up since joining."))
            hold = _take_hold(locked, session, tier, ttl=None)
            order = order_create_paid_by_credit(
                hold=hold,
                channel=deposit.channel,
                customer=locked.customer,
                contact_phone=deposit.contact_phone,
                contact_email=deposit.contact_email,
                reason=f"waitlist {locked.public_id}: paid by deposit {deposit.code}",
            )
            transition(
                deposit, OrderState.FULFILLED, reason=f"waitlist fulfilled by order {order.code}"
            )
            moved = _move(
                locked,
                [WaitlistEntry.State.WAITING],
                WaitlistEntry.State.FULFILLED,
                note=f"order {order.code}",
                order=order,
                fulfilled_at=clock.now(),
            )
            rest = Decimal(deposit.total_amount) - Decimal(order.total_amount)
            if rest > 0:  # the price came down since joining: the difference goes back
                refunds.append(
                    refund_money(
                        order=deposit,
                        amount=Money(rest, deposit.currency),
                        kind=Refund.Kind.WAITLIST,
                        reason="price lowered since joining",
                        actor=None,
                    )
                )
            locked.session = session
            locked.tier = tier
            locked.deposit_order = deposit
            if moved:  # always, under the row lock; only the unsafe control can miss
                _notify(locked, "fulfilled")
    except DomainError as exc:
        if exc.code in CAPACITY_CODES:
            return NO_ROOM
        logger.warning("waitlist entry %s cannot be served: %s", entry.public_id, exc.code)
        _end_waiting(entry, now, note=f"cannot be served: {exc.code}")
        return ENDED
    _process_refunds(refunds)
    return SERVED


def waitlist_offer_due(*, now: datetime | None = None, session: Session | None = None) -> int:
    """The offer-mode job (every few seconds; call it with `session` right after admissions of
    that session came back): end lapsed offers, then offer free admissions to the waiting
    entries in queue order. Returns how many offers it made."""
    now = now or clock.now()
    _offers_end(now, session)
    return sum(
        _serve(s, tier, group, now, _offer_one)
        for s, tier, group in _groups(WaitlistEntry.Mode.OFFER, now, session)
    )


def waitlist_fulfil_due(*, now: datetime | None = None, session: Session | None = None) -> int:
    """The prepaid-mode job: complete the purchase of waiting entries in queue order while
    admissions are free. Returns how many entries it fulfilled."""
    now = now or clock.now()
    return sum(
        _serve(s, tier, group, now, _fulfil_one)
        for s, tier, group in _groups(WaitlistEntry.Mode.PREPAID, now, session)
    )


def waitlist_serve_session(session: Session) -> int:
    """Admissions of `session` just came back on sale: serve its waitlist now (offer or
    fulfil, by the session's mode), before the public can take them. Sessions without a
    waitlist cost one indexed query."""
    if session.waitlist_mode == WaitlistMode.OFF:
        return 0
    if not WaitlistEntry.objects.filter(
        session=session, state__in=[WaitlistEntry.State.WAITING, WaitlistEntry.State.OFFERED]
    ).exists():
        return 0
    if session.waitlist_mode == WaitlistMode.OFFER:
        return waitlist_offer_due(session=session)
    return waitlist_fulfil_due(session=session)


# --- Ending entries ----------------------------------------------------------------------------


def _offers_end(now: datetime, session: Session | None) -> int:
    """Offers that lapsed unused (or whose hold the customer released) end as `expired`; an
    offer checked out keeps going while its order awaits payment."""
    offered = WaitlistEntry.objects.filter(state=WaitlistEntry.State.OFFERED).filter(
        Q(offer_expires_at__lt=now)
        | Q(offer_hold__status=Hold.Status.RELEASED)
        | Q(offer_hold__isnull=True)
    )
    if session is not None:
        offered = offered.filter(session=session)
    ended = 0
    for entry in offered.select_related(
        "session__event", "session__venue", "tier", "customer"
    ).order_by("id")[:BATCH]:
        order = (
            Order.objects.filter(hold_id=entry.offer_hold_id).first()
            if entry.offer_hold_id
            else None
        )
        if order is not None:
            if order.state in PAID_STATES:
                # The payment's hook does this; catch up if it ran before the entry was offered.
                _move(
                    entry,
                    [WaitlistEntry.State.OFFERED],
                    WaitlistEntry.State.FULFILLED,
                    note=f"order {order.code} paid",
                    order=order,
                    fulfilled_at=order.paid_at or now,
                )
                continue
            if order.state == OrderState.AWAITING_PAYMENT:
                continue  # the order's payment deadline decides
        elif entry.offer_hold_id is not None:
            # Read after the order: a checkout that just committed extended the hold.
            hold = Hold.objects.get(pk=entry.offer_hold_id)
            if hold.status == Hold.Status.ACTIVE and hold.expires_at >= now:
                continue
        with transaction.atomic():
            if _move(
                entry,
                [WaitlistEntry.State.OFFERED],
                WaitlistEntry.State.EXPIRED,
                note="offer not taken",
            ):
                _notify(entry, "offer_expired")
                ended += 1
    return ended


def _end_waiting(entry: WaitlistEntry, now: datetime, *, note: str) -> bool:
    """A waiting entry ends without tickets: prepaid → `refunded` (the deposit in full),
    offer → `expired`. False if it no longer waited."""
    refunds: list[Refund] = []
    with transaction.atomic():
        locked = (
            WaitlistEntry.objects.select_for_update(of=("self",))
            .select_related("session__event", "session__venue", "tier", "customer")
            .filter(pk=entry.pk, state=WaitlistEntry.State.WAITING)
            .first()
        )
        if locked is None:
            return False
        if locked.mode == WaitlistEntry.Mode.PREPAID and locked.deposit_order_id is not None:
            _move(locked, [WaitlistEntry.State.WAITING], WaitlistEntry.State.REFUNDED, note=note)
            refunds.append(_refund_deposit(locked, reason="waitlist not fulfilled", actor=None))
            _notify(locked, "refunded")
        else:
            _move(locked, [WaitlistEntry.State.WAITING], WaitlistEntry.State.EXPIRED, note=note)
            _notify(locked, "closed")
    _process_refunds(refunds)
    return True


def _end_unpaid(entry: WaitlistEntry, now: datetime) -> bool:
    """A prepaid entry whose deposit was not paid in time (or whose own deadline passed first):
    the deposit order expires / is cancelled, the entry `cancelled`. Order first, then the
    entry (as the payment does)."""
    deposit = entry.deposit_order
    try:
        with transaction.atomic():
            if deposit is not None:
                deposit.refresh_from_db()
                if deposit.state == OrderState.AWAITING_PAYMENT:
                    if deposit.payment_deadline < now:
                        order_expire_if_overdue(order=deposit, now=now)
                    else:
                        order_cancel(order=deposit, reason="waitlist closed")
                    deposit.refresh_from_db()
                if deposit.state in PAID_STATES:
                    return False  # paid meanwhile: the entry waits (and ends as refunded)
            return _move(
                entry,
                [WaitlistEntry.State.AWAITING_PAYMENT],
                WaitlistEntry.State.CANCELLED,
                note="deposit not paid",
            )
    except DomainError as exc:
        if exc.code in {"order_state_changed", "illegal_transition"}:
            return False
        raise


def waitlist_expire_due(*, now: datetime | None = None) -> int:
    """The deadline job: waiting entries past their deadline end (prepaid: refunded in full,
    once; offer: expired), prepaid entries whose deposit was not paid in time are cancelled.
    Safe to run concurrently. Returns how many entries it ended."""
    now = now or clock.now()
    ended = 0
    overdue = WaitlistEntry.objects.filter(
        state=WaitlistEntry.State.WAITING, deadline__lt=now
    ).order_by("id")[:BATCH]
    for entry in overdue:
        ended += _end_waiting(entry, now, note="deadline passed")
    unpaid = (
        WaitlistEntry.objects.filter(state=WaitlistEntry.State.AWAITING_PAYMENT)
        .filter(
            Q(deadline__lt=now)
            | Q(deposit_order__payment_deadline__lt=now)
            | Q(deposit_order__state__in=[OrderState.CANCELLED, OrderState.EXPIRED])
            | Q(deposit_order__isnull=True)
        )
        .select_related("deposit_order")
        .order_by("id")[:BATCH]
    )
    for entry in unpaid:
        ended += _end_unpaid(entry, now)
    return ended


# --- Telling the customer ----------------------------------------------------------------------


def _recipients(entry: WaitlistEntry) -> Recipients:
    if entry.deposit_order_id is not None:
        deposit = entry.deposit_order
        assert deposit is not None
        return order_recipients(deposit)
    return user_recipients(entry.customer)


def _notify(entry: WaitlistEntry, step: str) -> None:
    """Queue the notice of `step` for the entry's customer (in their language), once."""
    session = entry.session
    recipients = _recipients(entry)
    zone = session.venue.tzinfo
    with notice_language(recipients):
        values: dict[str, Any] = {
            "event": session.event.tr("title"),
            "time": f"{timezone.localtime(session.starts_at, zone):%Y-%m-%d %H:%M}",
            "tier": entry.tier.tr("name"),
            "n": entry.quantity,
        }
        link = public_url() + WAITLIST_PATH
        if step == "offered":
            assert entry.offer_expires_at is not None
            values["until"] = f"{timezone.localtime(entry.offer_expires_at, zone):%H:%M}"
            subject = gettext("Tickets for %(event)s are held for you") % values
            body = (
                gettext(
                    "%(n)d × %(tier)s for %(event)s (%(time)s) came back and are held for you "
                    "until %(until)s. Check out before then, or they pass to the next in line."
                )
                % values
            )
            link = public_url() + OFFER_CHECKOUT_PATH.format(public_id=entry.public_id)
        elif step == "waiting":
            values["position"] = waitlist_position(entry) or 1
            subject = gettext("You are on the waitlist for %(event)s") % values
            body = (
                gettext(
                    "Your deposit is paid. You are number %(position)d in line for %(n)d × "
                    "%(tier)s for %(event)s (%(time)s). If tickets come back we buy them for you "
                    "in queue order; if not, your deposit is refunded in full."
                )
                % values
            )
        elif step == "fulfilled":
            assert entry.order is not None
            values["code"] = entry.order.code
            subject = gettext("Your waitlist tickets for %(event)s are booked") % values
            body = (
                gettext(
                    "Tickets came back and we bought %(n)d × %(tier)s for %(event)s (%(time)s) "
                    "with your deposit: order %(code)s."
                )
                % values
            )
            link = order_tickets_url(entry.order)
        elif step == "refunded":
            deposit = entry.deposit_order
            assert deposit is not None
            values["amount"] = str(deposit.total)
            subject = gettext("No tickets came back for %(event)s; deposit refunded") % values
            body = (
                gettext(
                    "The waitlist for %(event)s (%(time)s) closed before tickets came back for "
                    "you. Your deposit of %(amount)s is being refunded in full."
                )
                % values
            )
        elif step == "offer_expired":
            subject = gettext("Your waitlist offer for %(event)s has expired") % values
            body = (
                gettext(
                    "The tickets held for you for %(event)s (%(time)s) were not bought in time "
                    "and passed to the next in line."
                )
                % values
            )
        else:  # "closed"
            subject = gettext("The waitlist for %(event)s has closed") % values
            body = (
                gettext(
                    "No tickets came back for you for %(event)s (%(time)s) before the waitlist "
                    "closed."
                )
                % values
            )
        body = f"{body}\n{link}"
    notice_queue(
        topic=f"waitlist:{entry.public_id}:{step}",
        recipients=recipients,
        subject=subject,
        body=body,
        sms=f"[Piaowu] {subject} {link}",
    )
