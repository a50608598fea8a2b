"""Orders: what a buyer checked out from a hold, its lines and its state history.

An order's state changes only through `orders.states.transition` (see there); services in
`orders.services` are the only writers.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from piaowu.catalog.models import PriceTier, SalesChannel, Seat, Session
from piaowu.core.ids import new_code
from piaowu.core.models import PublicIdModel
from piaowu.core.money import Money, default_currency
from piaowu.inventory.models import Hold
from piaowu.orders.states import OrderState

STATE_VALUES = [value for value, _label in OrderState.choices]


def new_order_code() -> str:
    return new_code(10)


class Order(PublicIdModel):
    State = OrderState

    code = models.CharField(
        _("order code"), max_length=16, unique=True, default=new_order_code, editable=False
    )
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="orders")
    channel = models.ForeignKey(SalesChannel, on_delete=models.PROTECT, related_name="orders")
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="orders",
    )
    contact_phone = models.CharField(_("contact phone"), max_length=32, blank=True)
    contact_email = models.EmailField(_("contact email"), blank=True)
    hold = models.OneToOneField(Hold, on_delete=models.PROTECT, related_name="order")
    state = models.CharField(
        _("state"), max_length=20, choices=OrderState.choices, default=OrderState.AWAITING_PAYMENT
    )
    total_amount = models.DecimalField(_("total"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3, default=default_currency)
    payment_deadline = models.DateTimeField(_("pay by"))
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=STATE_VALUES), name="order_state_valid"),
            models.CheckConstraint(
                condition=Q(total_amount__gte=0), name="order_total_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "payment_deadline"], name="order_state_deadline_idx"),
            models.Index(fields=["customer", "created_at"], name="order_customer_idx"),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def total(self) -> Money:
        return Money(Decimal(self.total_amount), self.currency)


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    tier = models.ForeignKey(PriceTier, on_delete=models.PROTECT, related_name="+")
    seat = models.ForeignKey(
        Seat, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(_("unit price"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="orderline_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="orderline_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.seat or self.tier} × {self.quantity}"

    @property
    def amount(self) -> Money:
        return Money(Decimal(self.unit_price), self.currency) * self.quantity


class OrderHistory(models.Model):
    """One state change of an order (append-only; the first row records the creation, with an
    empty `from_state`)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="history")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()

    class Meta:
        verbose_name = _("order history entry")
        verbose_name_plural = _("order history")
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(to_state__in=STATE_VALUES), name="orderhistory_to_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_state or '∅'} → {self.to_state}"
