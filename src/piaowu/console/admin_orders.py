"""Orders and payments in the operator console: read-only, scoped to the organizers where the
user may view orders (`Perm.ORDERS_VIEW`).

Nobody adds, edits or deletes an order or a payment here: money and states change only through
the services (`orders.services`, `payments.services`). The one write is the action "Cancel
selected unpaid orders", which calls `order_cancel` for each order at an organizer where the
user may sell (`Perm.ORDERS_SELL`, the box-office permission that also takes orders back before
they are paid). Search follows `orders_search_for_staff`: order code, contact phone (4+ digits)
or e-mail.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from piaowu.accounts.permissions import Perm
from piaowu.console.admin_refunds import refund_on_behalf
from piaowu.console.admin_scoping import (
    OrganizerScopedAdmin,
    OrganizerScopedInline,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    TabularInline,
    user_of,
)
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.orders.models import Order, OrderHistory, OrderLine
from piaowu.orders.selectors import orders_search_for_staff
from piaowu.orders.services import order_cancel
from piaowu.orders.states import OrderState
from piaowu.payments.models import Payment

ORDER_ORGANIZER = "session__event__organizer"


class ReadOnlyScopedAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    """Viewing needs `ORDERS_VIEW` at the row's organizer; nothing is added, changed or deleted."""

    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_SELL


class _OrderInline(ReadOnlyInlineMixin, OrganizerScopedInline, TabularInline):
    parent_organizer_path = ORDER_ORGANIZER
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_SELL


class OrderLineInline(_OrderInline):
    model = OrderLine
    fields = ("seat", "tier", "quantity", "unit_price", "currency")
    readonly_fields = fields
    verbose_name_plural = _("lines")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("seat", "tier")


class OrderHistoryInline(_OrderInline):
    model = OrderHistory
    fields = ("at", "from_state", "to_state", "actor", "reason")
    readonly_fields = fields
    ordering = ("at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("actor")


class PaymentInline(_OrderInline):
    model = Payment
    fields = (
        "provider",
        "reference",
        "status",
        "amount",
        "currency",
        "provider_transaction_id",
        "paid_at",
        "refund_reason",
        "refunded_at",
        "created_at",
    )
    readonly_fields = fields
    show_change_link = True
    ordering = ("created_at", "id")


def _session_time(order: Order) -> str:
    start = order.session.local_starts_at
    zone = start.tzname() or ""
    return f"{start:%Y-%m-%d %H:%M} {zone}".strip()


@admin.register(Order)
class OrderAdmin(ReadOnlyScopedAdmin):
    organizer_path = ORDER_ORGANIZER
    list_display = (
        "code",
        "event_title",
        "session_time",
        "state",
        "total_display",
        "channel",
        "created_at",
    )
    list_filter = ("state", "channel__kind", ("created_at", admin.DateFieldListFilter))
    # The search itself is `orders_search_for_staff` (see get_search_results); this only shows
    # the search box.
    search_fields = ("code",)
    search_help_text = _("Order code, contact phone (at least 4 digits) or e-mail.")
    list_select_related = ("session__event", "session__venue", "channel")
    ordering = ("-created_at", "-id")
    fields = (
        "code",
        "public_id",
        "state",
        "session",
        "channel",
        "customer",
        "contact_phone",
        "contact_email",
        "total_display",
        "payment_deadline",
        "paid_at",
        "hold",
        "tickets_link",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (OrderLineInline, PaymentInline, OrderHistoryInline)
    actions = ("cancel_unpaid", refund_on_behalf)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("session__event", "session__venue", "channel", "customer", "hold")
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not search_term.strip():
            return queryset, False
        user = user_of(request)
        if user is None:
            return queryset.none(), False
        matching = orders_search_for_staff(user=user, q=search_term).values("pk")
        return queryset.filter(pk__in=matching), False

    @admin.display(description=_("event"), ordering="session__event__title")
    def event_title(self, order: Order) -> str:
        return order.session.event.tr("title")

    @admin.display(description=_("session (venue time)"), ordering="session__starts_at")
    def session_time(self, order: Order) -> str:
        return _session_time(order)

    @admin.display(description=_("total"), ordering="total_amount")
    def total_display(self, order: Order) -> str:
        return str(order.total)

    @admin.display(description=_("tickets"))
    def tickets_link(self, order: Order) -> str:
        count = order.tickets.count()
        if not count:
            return "—"
        return format_html(
            '{} · <a href="{}">{}</a>',
            ngettext("%(n)d ticket", "%(n)d tickets", count) % {"n": count},
            reverse("print:order", args=[order.public_id]),
            _("print / reprint"),
        )

    # --- Cancelling unpaid orders ---------------------------------------------------------

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, Perm.ORDERS_SELL)

    @admin.action(description=_("Cancel selected unpaid orders"), permissions=("cancel",))
    def cancel_unpaid(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        actor = user_of(request)
        cancelled = skipped = 0
        problems: list[str] = []
        for order in queryset.select_related("hold"):
            if order.state != OrderState.AWAITING_PAYMENT or not self.allowed_at(
                request, self.object_organizer_id(order), Perm.ORDERS_SELL
            ):
                skipped += 1
                continue
            try:
                order_cancel(order=order, actor=actor, reason="cancelled in the console")
            except DomainError as exc:
                problems.append(f"{order.code}: {exc.message}")
            else:
                cancelled += 1
        self.message_user(
            request,
            ngettext(
                "%(count)d order cancelled; its seats are free again.",
                "%(count)d orders cancelled; their seats are free again.",
                cancelled,
            )
            % {"count": cancelled},
            messages.SUCCESS if cancelled else messages.INFO,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d order was left alone: it is not awaiting payment or you may not "
                    "cancel it.",
                    "%(count)d orders were left alone: they are not awaiting payment or you may "
                    "not cancel them.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )
        for problem in problems:
            self.message_user(request, problem, messages.ERROR)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyScopedAdmin):
    organizer_path = f"order__{ORDER_ORGANIZER}"
    list_display = (
        "reference",
        "order",
        "provider",
        "status",
        "amount_display",
        "settles_order",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "provider", "settles_order")
    search_fields = ("reference", "order__code", "provider_transaction_id")
    list_select_related = ("order",)
    ordering = ("-created_at", "-id")
    fields = (
        "order",
        "provider",
        "reference",
        "status",
        "amount_display",
        "provider_transaction_id",
        "settles_order",
        "redirect_url",
        "qr_code_payload",
        "paid_at",
        "refund_reason",
        "refunded_at",
        "last_checked_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, payment: Payment) -> str:
        return str(Money(payment.amount, payment.currency))
