"""The sandbox gateway's books in the operator console: read-only, platform operators
(superusers) only. Deliveries have a "redeliver now" action for stuck notifications."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from piaowu.console.admin_scoping import ModelAdmin, TabularInline, user_of
from piaowu.payments.models import SandboxDelivery, SandboxRefund, SandboxTransaction
from piaowu.payments.services import sandbox_deliveries_redeliver


class OperatorReadOnlyAdmin(ModelAdmin):
    """Visible to active superusers only; nobody adds, edits or deletes through the console."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        user = user_of(request)
        return bool(user and user.is_active and user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SandboxDeliveryInline(TabularInline):
    model = SandboxDelivery
    fields = ("event", "attempt", "last_status", "next_attempt_at", "delivered_at", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SandboxTransaction)
class SandboxTransactionAdmin(OperatorReadOnlyAdmin):
    list_display = (
        "reference",
        "public_id",
        "amount",
        "currency",
        "status",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "currency")
    search_fields = ("reference", "public_id", "subject")
    ordering = ("-created_at",)
    readonly_fields = (
        "public_id",
        "reference",
        "amount",
        "currency",
        "subject",
        "status",
        "notify_url",
        "return_url",
        "expires_at",
        "paid_at",
        "closed_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields
    inlines = (SandboxDeliveryInline,)


@admin.register(SandboxDelivery)
class SandboxDeliveryAdmin(OperatorReadOnlyAdmin):
    list_display = (
        "transaction",
        "event",
        "attempt",
        "last_status",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    )
    list_filter = ("event", ("delivered_at", admin.EmptyFieldListFilter))
    search_fields = ("transaction__reference", "transaction__public_id")
    list_select_related = ("transaction",)
    ordering = ("-created_at",)
    readonly_fields = (
        "transaction",
        "event",
        "attempt",
        "last_status",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    )
    fields = readonly_fields
    actions = ("redeliver_now",)

    @admin.action(description=_("Redeliver now"))
    def redeliver_now(self, request: HttpRequest, queryset: QuerySet[SandboxDelivery]) -> None:
        if not self.has_module_permission(request):
            return
        count = sandbox_deliveries_redeliver(
            delivery_ids=list(queryset.values_list("pk", flat=True))
        )
        skipped = queryset.count() - count
        self.message_user(
            request,
            ngettext(
                "%(count)d notification will be sent again shortly.",
                "%(count)d notifications will be sent again shortly.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                gettext("Already delivered notifications were left alone."),
                messages.WARNING,
            )


@admin.register(SandboxRefund)
class SandboxRefundAdmin(OperatorReadOnlyAdmin):
    list_display = ("refund_reference", "transaction", "amount", "created_at")
    search_fields = ("refund_reference", "transaction__reference")
    list_select_related = ("transaction",)
    ordering = ("-created_at",)
    readonly_fields = ("transaction", "refund_reference", "amount", "created_at")
    fields = readonly_fields
