"""Checkout, payment, cancellation and expiry of orders — the only writer of `orders.models`.

Every state change goes through `orders.states.transition` (conditional update + history row).
An order in `awaiting_payment` keeps its seats through its hold, which checkout makes last until
the payment deadline; paying converts the hold in the same transaction as the order's
`awaiting_payment → paid`, and cancelling / expiring releases it in the same transaction as the
order's change. No service holds a row lock while waiting for anything outside the database.

Error codes: `hold_not_yours`, `hold_expired`, `hold_converted`, `hold_empty`,
`channel_mismatch`, `channel_inactive`, `contact_required`, `mixed_currency`,
`illegal_transition`, `order_state_changed` (409), `order_not_payable` (409, details `state`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.catalog.models import SalesChannel, Session
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.inventory.checkout import hold_extend_until
from piaowu.inventory.holders import user_holder_key
from piaowu.inventory.models import Hold, HoldItem
from piaowu.inventory.services import (
    hold_best_available,
    hold_convert,
    hold_create_empty,
    hold_release,
    hold_seats,
    holds_adopt,
)
from piaowu.orders.models import Order, OrderHistory, OrderLine
from piaowu.orders.states import PAID_STATES, OrderState, transition

logger = logging.getLogger(__name__)

DEFAULT_PAYMENT_DEADLINE_SECONDS = 15 * 60
EXPIRE_BATCH = 500
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 \-]{4,30}$")


# Apps outside orders that must act in the same transaction that makes an order paid (tickets
# issues the order's tickets) register here from their AppConfig.ready(): orders cannot import
# them. A hook that raises rolls the payment back with it.
_paid_hooks: list[Callable[[Order], object]] = []


def on_order_paid(hook: Callable[[Order], object]) -> None:
    if hook not in _paid_hooks:
        _paid_hooks.append(hook)


def _order_paid(order: Order) -> None:
    for hook in _paid_hooks:
        hook(order)


def payment_window() -> timedelta:
    return timedelta(
        seconds=int(
            getattr(settings, "PIAOWU_PAYMENT_DEADLINE_SECONDS", DEFAULT_PAYMENT_DEADLINE_SECONDS)
        )
    )


def normalize_phone(phone: str) -> str:
    """Digits (and a leading +) only, so "138 0013-8000" and "13800138000" match."""
    phone = phone.strip()
    digits = re.sub(r"\D", "", phone)
    return f"+{digits}" if phone.startswith("+") else digits


def order_not_payable(order: Order) -> DomainError:
    """`order_not_payable` (409): the order was cancelled, expired or is past its deadline."""
    error = DomainError(
        "order_not_payable",
        _("This order can no longer be paid."),
        {"state": order.state, "order": order.public_id},
    )
    error.status = 409
    return error


def _hold_not_yours() -> DomainError:
    error = DomainError("hold_not_yours", _("This reservation belongs to someone else."))
    error.status = 403
    return error


# --- Checkout ------------------------------------------------------------------------------------


def _check_sale(
    session: Session, channel: SalesChannel, customer: User | None, phone: str, email: str
) -> None:
    """What every order needs whatever it is bought from: a channel of the session's organizer
    that is open, and a way to reach the buyer (an account, or a phone number for a guest)."""
    if channel.organizer_id != session.event.organizer_id:
        raise DomainError("channel_mismatch", _("This sales channel does not sell this session."))
    if not channel.is_active:
        raise DomainError("channel_inactive", _("This sales channel is closed."))
    if phone and not _PHONE_RE.match(phone):
        raise DomainError("invalid_phone", _("Enter a valid phone number."), {"field": "phone"})
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise DomainError(
                "invalid_email", _("Enter a valid e-mail address."), {"field": "email"}
            ) from None
    if customer is None and not phone:
        raise DomainError(
            "contact_required",
            _("Enter a phone number so you can find your order again."),
            {"field": "phone"},
        )


def _session_cancelled(session_id: int) -> bool:
    """Read from the database, not the (possibly cached) session object: once an organizer
    cancels, no process may take another order or payment for it."""
    return Session.objects.filter(pk=session_id, status=Session.Status.CANCELLED).exists()


def _check_checkout(
    hold: Hold, channel: SalesChannel, customer: User | None, phone: str, email: str
) -> None:
    _check_sale(hold.session, channel, customer, phone, email)
    if _session_cancelled(hold.session_id):
        raise DomainError(
            "sales_closed",
            _("Tickets for this session are not on sale."),
            {"sales_state": "cancelled"},
        )
    if hold.status == Hold.Status.CONVERTED:
        raise DomainError("hold_converted", _("These tickets were already bought."))
    if hold.status != Hold.Status.ACTIVE or hold.expires_at < clock.now():
        raise DomainError(
            "hold_expired",
            _("Your reservation has expired; please choose again."),
            {"hold": hold.public_id},
        )


def order_checkout(
    *,
    hold: Hold,
    channel: SalesChannel,
    holder_key: str,
    customer: User | None = None,
    contact_phone: str = "",
    contact_email: str = "",
    now: datetime | None = None,
    price_override: Decimal | None = None,
) -> Order:
    """Turn a hold into an order awaiting payment, priced from the hold's items, and make the
    hold last until the payment deadline. Checking out the same hold again returns the existing
    order (also when two requests race). `price_override` prices every unit at that amount
    instead of its tier's price (a redemption code checks out at 0, which pays the order at
    once). Errors: `hold_not_yours`, `hold_expired` (expired or released), `hold_converted`,
    `hold_empty`, `channel_mismatch`, `channel_inactive`, `invalid_phone`, `invalid_email`,
    `contact_required`, `mixed_currency`."""
    # Fresh status and expiry; items (and the session) the caller loaded stay in memory.
    hold.refresh_from_db(fields=["holder_key", "status", "expires_at", "extended"])
    if hold.holder_key != holder_key:
        raise _hold_not_yours()
    existing = Order.objects.filter(hold=hold).first()
    if existing is not None:
        return existing
    contact_phone = contact_phone.strip()
    contact_email = contact_email.strip()
    _check_checkout(hold, channel, customer, contact_phone, contact_email)
    now = now or clock.now()
    deadline = now + payment_window()
    try:
        with transaction.atomic():
            hold_extend_until(hold=hold, until=deadline)
            return _order_create(
                hold=hold,
                channel=channel,
                customer=customer,
                contact_phone=contact_phone,
                contact_email=contact_email,
                deadline=deadline,
                now=now,
                price_override=price_override,
            )
    except IntegrityError:
        # A concurrent checkout of the same hold committed first: that order is the answer.
        existing = Order.objects.filter(hold=hold).first()
        if existing is None:
            raise
        return existing


def _items_of(hold: Hold) -> list[HoldItem]:
    """The hold's items with tier and seat: the ones the hold service just made or the display
    read prefetched, else read now."""
    cached = getattr(hold, "_prefetched_objects_cache", {}).get("items")
    if cached is not None:
        return sorted(cached, key=lambda item: item.pk)
    return list(hold.items.select_related("tier", "seat").order_by("id"))


def _remember(order: Order, name: str, objects: list[Any]) -> None:
    """Let `order.<name>.all()` answer `objects` without a query (as a prefetch would)."""
    queryset = getattr(order, name).all()
    queryset._result_cache = list(objects)
    queryset._prefetch_done = True
    order.__dict__.setdefault("_prefetched_objects_cache", {})[name] = queryset


def order_has_details(order: Order) -> bool:
    """True if `order`'s lines and payments are in memory (just created), so it can be shown
    without reading it again."""
    cached = getattr(order, "_prefetched_objects_cache", {})
    return "lines" in cached and "payments" in cached


def _order_create(
    *,
    hold: Hold,
    channel: SalesChannel,
    customer: User | None,
    contact_phone: str,
    contact_email: str,
    deadline: datetime,
    now: datetime,
    price_override: Decimal | None = None,
) -> Order:
    """The order, its lines priced from the hold's items (or all at `price_override`) and its
    first history row."""
    items = _items_of(hold)
    if not items:
        raise DomainError("hold_empty", _("This reservation holds no tickets."))
    currencies = {item.tier.currency for item in items}
    if len(currencies) != 1:
        raise DomainError(
            "mixed_currency", _("Tickets in different currencies cannot be bought together.")
        )
    currency = currencies.pop()

    def unit_price(item: HoldItem) -> Decimal:
        return Decimal(item.tier.price) if price_override is None else price_override

    total = sum((unit_price(item) * item.quantity for item in items), Decimal(0))
    order = Order.objects.create(
        session=hold.session,
        channel=channel,
        customer=customer,
        contact_phone=normalize_phone(contact_phone) if contact_phone else "",
        contact_email=contact_email,
        hold=hold,
        state=OrderState.AWAITING_PAYMENT,
        total_amount=total,
        currency=currency,
        payment_deadline=deadline,
    )
    lines = OrderLine.objects.bulk_create(
        [
            OrderLine(
                order=order,
                tier=item.tier,
                seat=item.seat,
                quantity=item.quantity,
                unit_price=unit_price(item),
                currency=item.tier.currency,
            )
            for item in items
        ]
    )
    # The answer is rendered from these objects: nothing needs reading back.
    _remember(order, "lines", lines)
    _remember(order, "payments", [])
    OrderHistory.objects.create(
        order=order,
        from_state="",
        to_state=OrderState.AWAITING_PAYMENT,
        actor=customer,
        reason="checkout",
        at=now,
    )
    if total == 0:
        # Free tickets (invitations, 0-price tiers): nothing to pay, so no provider is involved;
        # the order is paid and its seats sold in the same transaction.
        transition(order, OrderState.PAID, actor=customer, reason="free", fields={"paid_at": now})
        hold_convert(hold=hold)
        _order_paid(order)
    return order


def order_purchase(
    *,
    session: Session,
    channel: SalesChannel,
    holder_key: str,
    customer: User | None = None,
    seat_codes: list[str] | None = None,
    tier_code: str | None = None,
    quantity: int | None = None,
    contact_phone: str = "",
    contact_email: str = "",
    fresh_holder: bool = False,
) -> Order:
    """Hold and check out in one transaction, for API clients that buy in one request: the named
    `seat_codes`, or `quantity` best-available seats / admissions (of `tier_code`, required for
    general admission). Either the order awaiting payment exists afterwards or nothing was held.
    `fresh_holder`: the anonymous holder key was made for this request (see the hold services).
    The order comes back with its lines and (no) payments in memory (`order_has_details`).
    Errors: those of the hold services and of `order_checkout`."""
    contact_phone = contact_phone.strip()
    contact_email = contact_email.strip()
    _check_sale(session, channel, customer, contact_phone, contact_email)
    window = payment_window()
    with transaction.atomic():
        # The hold is made to last the payment window from the start, so it needs no extension:
        # its expiry is the order's deadline.
        if seat_codes is not None:
            hold = hold_seats(
                session=session,
                seat_codes=seat_codes,
                holder_key=holder_key,
                customer=customer,
                ttl=window,
                fresh_holder=fresh_holder,
            )
        else:
            hold = hold_best_available(
                session=session,
                quantity=quantity or 0,
                tier_code=tier_code,
                holder_key=holder_key,
                customer=customer,
                ttl=window,
                fresh_holder=fresh_holder,
            )
        return _order_create(
            hold=hold,
            channel=channel,
            customer=customer,
            contact_phone=contact_phone,
            contact_email=contact_email,
            deadline=hold.expires_at,
            now=clock.now(),
        )


# --- Cancel, expire, pay -------------------------------------------------------------------------


def order_cancel(*, order: Order, actor: User | None = None, reason: str = "") -> Order:
    """awaiting_payment → cancelled; the seats go back at once. Cancelling a cancelled order
    returns it unchanged. Errors: `illegal_transition`, `order_state_changed`."""
    order.refresh_from_db()
    if order.state == OrderState.CANCELLED:
        return order  # cancelling twice (a double click, a retry) is harmless
    with transaction.atomic():
        transition(order, OrderState.CANCELLED, actor=actor, reason=reason or "cancelled")
        hold_release(hold=order.hold)
    return order


def _expire_one(order: Order, now: datetime) -> bool:
    """Expire one overdue order; False when someone else changed it first."""
    try:
        with transaction.atomic():
            transition(order, OrderState.EXPIRED, reason="payment deadline passed", now=now)
            hold_release(hold=order.hold)
    except DomainError as exc:
        if exc.code in {"order_state_changed", "illegal_transition"}:
            return False
        raise
    return True


def order_expire_overdue(*, now: datetime | None = None) -> int:
    """Expire every order still awaiting payment after its deadline and give its seats back.
    Safe to run concurrently (each order changes in its own short transaction, guarded by its
    state). Returns how many orders this call expired."""
    now = now or clock.now()
    overdue = list(
        Order.objects.filter(state=OrderState.AWAITING_PAYMENT, payment_deadline__lt=now)
        .select_related("hold__session")
        .order_by("payment_deadline", "id")[:EXPIRE_BATCH]
    )
    return sum(1 for order in overdue if _expire_one(order, now))


def order_expire_if_overdue(*, order: Order, now: datetime | None = None) -> bool:
    """Expire this order now if it is still awaiting payment past its deadline (a late payment
    just found it so; the sweep would do it on its next turn). True if this call expired it."""
    now = now or clock.now()
    order.refresh_from_db()
    if order.state != OrderState.AWAITING_PAYMENT or order.payment_deadline >= now:
        return False
    return _expire_one(order, now)


def buyer_adopt(*, holder_key: str, customer: User) -> int:
    """Signing in keeps what the browser did anonymously: its orders become the account's and
    its active holds move to the account's holder key. Returns how many holds moved."""
    if not holder_key.startswith("anon:"):
        return 0
    with transaction.atomic():
        Order.objects.filter(hold__holder_key=holder_key, customer__isnull=True).update(
            customer=customer
        )
        return holds_adopt(
            holder_key=holder_key, new_holder_key=user_holder_key(customer.pk), customer=customer
        )


def order_mark_paid(*, order: Order, paid_at: datetime | None = None) -> Order:
    """awaiting_payment → paid and the hold's seats sold, in one transaction. Paying an order
    that is already paid (or later) returns it unchanged. Errors: `order_not_payable` (409,
    details `state`: the order was cancelled or expired — or its hold ran out, which expires
    it now — so the caller refunds the payment)."""
    order.refresh_from_db()
    if order.state in PAID_STATES:
        return order
    if order.state != OrderState.AWAITING_PAYMENT or _session_cancelled(order.session_id):
        # A payment for a cancelled session is refunded by the caller, like a late one.
        raise order_not_payable(order)
    now = clock.now()
    try:
        with transaction.atomic():
            transition(order, OrderState.PAID, reason="payment", fields={"paid_at": paid_at or now})
            hold_convert(hold=order.hold)
            _order_paid(order)
    except DomainError as exc:
        order.refresh_from_db()
        if exc.code == "order_state_changed":
            if order.state in PAID_STATES:
                return order
            raise order_not_payable(order) from exc
        if exc.code == "hold_expired":
            # The seats are gone (the hold ran out or was released): the order cannot be paid.
            _expire_one(order, now)
            order.refresh_from_db()
            if order.state in PAID_STATES:
                return order
            raise order_not_payable(order) from exc
        raise
    return order


# --- Paid by credit ------------------------------------------------------------------------------


def order_create_paid_by_credit(
    *,
    hold: Hold,
    channel: SalesChannel,
    customer: User | None,
    contact_phone: str,
    contact_email: str,
    reason: str,
) -> Order:
    """An order for `hold` that is paid at once by credit the caller holds for the buyer (the
    old tickets of an exchange, a prepaid waitlist deposit): lines at the tiers' prices and the
    total as at checkout, then `awaiting_payment → paid` with `reason` in the history, the hold
    converted and the order-paid hooks run (tickets are issued) — in the caller's transaction.
    No payment is made here: the caller accounts for the money, and a refund of this order goes
    back through the payment the credit came from. Errors: `hold_expired`, `hold_converted`,
    `hold_empty`, `channel_mismatch`, `channel_inactive`, `invalid_phone`, `invalid_email`,
    `contact_required`, `mixed_currency`."""
    contact_phone = contact_phone.strip()
    contact_email = contact_email.strip()
    hold.refresh_from_db(fields=["status", "expires_at"])
    _check_checkout(hold, channel, customer, contact_phone, contact_email)
    now = clock.now()
    with transaction.atomic():
        order = _order_create(
            hold=hold,
            channel=channel,
            customer=customer,
            contact_phone=contact_phone,
            contact_email=contact_email,
            deadline=now,
            now=now,
        )
        if order.state == OrderState.AWAITING_PAYMENT:  # a total of 0 was paid as free already
            transition(
                order, OrderState.PAID, actor=customer, reason=reason, fields={"paid_at": now}
            )
            hold_convert(hold=hold)
            _order_paid(order)
    return order


# --- Deposits: orders that sell nothing yet ------------------------------------------------------


def order_create_deposit(
    *,
    session: Session,
    channel: SalesChannel,
    customer: User,
    amount: Money,
    contact_phone: str = "",
    contact_email: str = "",
    reason: str = "deposit",
    now: datetime | None = None,
) -> Order:
    """An order awaiting payment of `amount` that has no lines and sells no admissions (a
    prepaid waitlist's deposit, `aftersales.services.waitlist`). Its hold is an empty hold of
    the customer lasting until the payment deadline, so it is paid through the normal flow:
    `order_mark_paid` converts the empty hold (nothing is sold) and the order-paid hooks run
    (no ticket is issued: there are no lines); unpaid, it expires like any order. In the
    caller's transaction. Errors: `deposit_amount_invalid`, `channel_mismatch`,
    `channel_inactive`, `invalid_phone`, `invalid_email`."""
    if amount.amount <= 0:
        raise DomainError("deposit_amount_invalid", _("A deposit must be a positive amount."))
    contact_phone = contact_phone.strip()
    contact_email = contact_email.strip()
    _check_sale(session, channel, customer, contact_phone, contact_email)
    now = now or clock.now()
    deadline = now + payment_window()
    with transaction.atomic():
        hold = hold_create_empty(
            session=session,
            holder_key=user_holder_key(customer.pk),
            customer=customer,
            expires_at=deadline,
        )
        order = Order.objects.create(
            session=session,
            channel=channel,
            customer=customer,
            contact_phone=normalize_phone(contact_phone) if contact_phone else "",
            contact_email=contact_email,
            hold=hold,
            state=OrderState.AWAITING_PAYMENT,
            total_amount=amount.quantized().amount,
            currency=amount.currency,
            payment_deadline=deadline,
        )
        _remember(order, "lines", [])
        _remember(order, "payments", [])
        OrderHistory.objects.create(
            order=order,
            from_state="",
            to_state=OrderState.AWAITING_PAYMENT,
            actor=customer,
            reason=reason[:200],
            at=now,
        )
    return order
