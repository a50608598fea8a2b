"""`{% order_refunds order %}` on the order page: its refunds and the "Refund tickets" button
when some ticket may be refunded now (`aftersales.selectors.refunds`)."""

from __future__ import annotations

from typing import Any

from django import template

from piaowu.aftersales.selectors.refunds import order_refund_options, refunds_for_order
from piaowu.orders.models import Order
from piaowu.orders.states import PAID_STATES

register = template.Library()


@register.inclusion_tag("web/_refund_panel.html")
def order_refunds(order: Order) -> dict[str, Any]:
    options = order_refund_options(order)
    refunds = refunds_for_order(order) if order.state in PAID_STATES else []
    return {
        "order": order,
        "show": options.paid or bool(refunds),
        "refunds": refunds,
        "can_refund": options.can_refund,
    }
