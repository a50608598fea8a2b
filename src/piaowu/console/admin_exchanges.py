"""Exchanges (改签) in the operator console: a read-only list for customer service and finance
(which tickets moved from which order to which, what it cost, the refund it made), scoped to the
staff member's organizers (`console.admin_scoping`; viewing needs `Perm.ORDERS_VIEW`).
Exchanges change only through `aftersales.services.exchanges`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.permissions import Perm
from piaowu.aftersales.models import Exchange, ExchangeItem
from piaowu.aftersales.selectors.exchanges import exchange_state
from piaowu.console.admin_scoping import (
    OrganizerScopedAdmin,
    OrganizerScopedInline,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    TabularInline,
)
from piaowu.core.money import Money
from piaowu.orders.models import Order

EXCHANGE_ORGANIZER = "from_order__session__event__organizer"


class ExchangeItemInline(ReadOnlyInlineMixin, OrganizerScopedInline, TabularInline):
    model = ExchangeItem
    parent_organizer_path = EXCHANGE_ORGANIZER
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_SELL
    fields = ("ticket", "live")
    readonly_fields = fields
    verbose_name_plural = _("tickets given up")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("ticket")


@admin.register(Exchange)
class ExchangeAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_SELL
    organizer_path = EXCHANGE_ORGANIZER
    list_display = (
        "created_at",
        "from_order_link",
        "to_order_link",
        "event_title",
        "state_now",
        "old_display",
        "new_display",
        "fee_display",
        "difference_display",
        "refund_number",
    )
    list_filter = ("state", ("created_at", admin.DateFieldListFilter))
    search_fields = ("public_id", "from_order__code", "to_order__code", "refund__number")
    list_select_related = ("from_order__session__event", "to_order", "refund", "requested_by")
    ordering = ("-created_at", "-id")
    fields = (
        "public_id",
        "state_now",
        "from_order_link",
        "to_order_link",
        "event_title",
        "old_display",
        "new_display",
        "fee_display",
        "difference_display",
        "refund_number",
        "requested_by",
        "created_at",
        "completed_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (ExchangeItemInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related(*self.list_select_related)

    def _order_link(self, order: Order | None) -> str:
        if order is None:
            return "—"
        url = reverse(f"{self.admin_site.name}:orders_order_change", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, order.code)

    @admin.display(description=_("from order"), ordering="from_order__code")
    def from_order_link(self, exchange: Exchange) -> str:
        return self._order_link(exchange.from_order)

    @admin.display(description=_("new order"), ordering="to_order__code")
    def to_order_link(self, exchange: Exchange) -> str:
        return self._order_link(exchange.to_order)

    @admin.display(description=_("event"), ordering="from_order__session__event__title")
    def event_title(self, exchange: Exchange) -> str:
        return exchange.from_order.session.event.tr("title")

    @admin.display(description=_("state"), ordering="state")
    def state_now(self, exchange: Exchange) -> str:
        # An upgrade whose new order expired is abandoned already, before the job marks it.
        return str(Exchange.State(exchange_state(exchange)).label)

    def _money(self, amount: Any, exchange: Exchange) -> str:
        return str(Money(amount, exchange.currency))

    @admin.display(description=_("old value"), ordering="old_value")
    def old_display(self, exchange: Exchange) -> str:
        return self._money(exchange.old_value, exchange)

    @admin.display(description=_("new value"), ordering="new_value")
    def new_display(self, exchange: Exchange) -> str:
        return self._money(exchange.new_value, exchange)

    @admin.display(description=_("fee"), ordering="fee_amount")
    def fee_display(self, exchange: Exchange) -> str:
        return self._money(exchange.fee_amount, exchange)

    @admin.display(description=_("to pay (+) or refund (−)"), ordering="difference")
    def difference_display(self, exchange: Exchange) -> str:
        return self._money(exchange.difference, exchange)

    @admin.display(description=_("refund"), ordering="refund__number")
    def refund_number(self, exchange: Exchange) -> str:
        refund = exchange.refund
        if refund is None:
            return "—"
        amount = Money(refund.amount, refund.currency)
        return f"{refund.number} · {amount} · {refund.get_state_display()}"
