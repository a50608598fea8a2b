"""Reads of orders: a buyer's own, a guest's by code + phone, and staff search by organizer."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.accounts.permissions import Perm, organizer_ids_with
from piaowu.core.errors import NotFound
from piaowu.orders.models import Order
from piaowu.orders.services import normalize_phone


def _not_found() -> NotFound:
    return NotFound("order", _("No such order."))


def _orders() -> QuerySet[Order]:
    return Order.objects.select_related(
        "session__event", "session__venue", "channel"
    ).prefetch_related("lines__tier", "lines__seat__section", "payments")


def order_get_for_customer(*, public_id: str, customer: User) -> Order:
    """The customer's own order; someone else's is `order_not_found`, like an unknown id."""
    if not customer.is_authenticated:
        raise _not_found()
    order = _orders().filter(public_id=public_id, customer=customer).first()
    if order is None:
        raise _not_found()
    return order


def order_get_for_buyer(
    *,
    public_id: str,
    customer: User | None,
    holder_key: str,
    granted: Iterable[str] = (),
    details: bool = True,
) -> Order:
    """An order its buyer may see: their own account's, one bought with their (anonymous)
    holder key, or one in `granted` (ids a guest already looked up by code + phone in this
    browser). Anything else is `order_not_found`, like an unknown id. `details=False` reads
    only the order, its hold and session (to act on it, not to show it): one query."""
    orders = _orders() if details else Order.objects.select_related("session__event", "channel")
    order = orders.select_related("hold").filter(public_id=public_id).first()
    if order is None:
        raise _not_found()
    mine = (
        (customer is not None and customer.is_authenticated and order.customer_id == customer.pk)
        or (bool(holder_key) and order.hold.holder_key == holder_key)
        or public_id in set(granted)
    )
    if not mine:
        raise _not_found()
    return order


def order_lookup(*, code: str, phone: str) -> Order:
    """A guest's order by its code and the phone given at checkout. A wrong phone is the same
    `order_not_found` as an unknown code, so the lookup cannot tell which part was wrong."""
    code = code.strip().upper()
    wanted = normalize_phone(phone)
    order = _orders().filter(code=code).first() if code else None
    stored = normalize_phone(order.contact_phone) if order is not None else ""
    # Compare even when nothing was found, so both failures cost the same.
    same = hmac.compare_digest(stored.encode(), wanted.encode())
    if order is None or not wanted or not same:
        raise _not_found()
    return order


def orders_for_customer(customer: User) -> QuerySet[Order]:
    """The customer's orders, newest first."""
    return _orders().filter(customer=customer).order_by("-created_at", "-id")


def orders_search_for_staff(*, user: User, q: str = "") -> QuerySet[Order]:
    """Orders of the organizers where `user` may view orders, optionally matching `q` (order
    code, contact phone or e-mail), newest first."""
    allowed = organizer_ids_with(user, Perm.ORDERS_VIEW)
    orders = _orders().order_by("-created_at", "-id")
    if allowed is not None:
        orders = orders.filter(session__event__organizer_id__in=allowed)
    q = q.strip()
    if q:
        digits = normalize_phone(q)
        match = Q(code=q.upper()) | Q(contact_email__iexact=q)
        if len(digits.lstrip("+")) >= 4:
            match |= Q(contact_phone__contains=digits.lstrip("+"))
        orders = orders.filter(match)
    return orders
