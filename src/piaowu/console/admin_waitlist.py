"""The waitlist in the operator console: every entry of the organizer's sessions, read-only,
in queue order (session, tier, then first come first served) with each open entry's position.
Scoped to the organizers where the user may view orders (`Perm.ORDERS_VIEW`); entries change
only through `aftersales.services.waitlist` (customers join and leave, the jobs serve them).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.permissions import Perm
from piaowu.aftersales.models import WaitlistEntry, WaitlistHistory
from piaowu.aftersales.selectors.waitlist import OPEN_STATES, waitlist_with_positions
from piaowu.console.admin_orders import ReadOnlyScopedAdmin
from piaowu.console.admin_scoping import (
    OrganizerScopedInline,
    ReadOnlyInlineMixin,
    TabularInline,
)
from piaowu.core.money import Money

ENTRY_ORGANIZER = "session__event__organizer"


class WaitlistHistoryInline(ReadOnlyInlineMixin, OrganizerScopedInline, TabularInline):
    model = WaitlistHistory
    parent_organizer_path = ENTRY_ORGANIZER
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_SELL
    fields = ("at", "from_state", "to_state", "note")
    readonly_fields = fields
    ordering = ("at", "id")
    verbose_name_plural = _("history")


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(ReadOnlyScopedAdmin):
    organizer_path = ENTRY_ORGANIZER
    list_display = (
        "queue_number",
        "event_title",
        "session_time",
        "tier",
        "position",
        "customer",
        "quantity",
        "mode",
        "state",
        "amount_display",
        "deadline",
        "offer_expires_at",
    )
    list_filter = (
        "state",
        "mode",
        ("session", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("customer__email", "public_id")
    list_select_related = ("session__event", "session__venue", "tier", "customer")
    ordering = ("session__starts_at", "session_id", "tier_id", "id")
    fields = (
        "public_id",
        "session",
        "tier",
        "customer",
        "quantity",
        "mode",
        "state",
        "position",
        "amount_display",
        "deadline",
        "offer_hold",
        "offer_expires_at",
        "deposit_order",
        "order",
        "fulfilled_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (WaitlistHistoryInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return waitlist_with_positions(super().get_queryset(request))

    @admin.display(description=_("queue #"), ordering="id")
    def queue_number(self, entry: WaitlistEntry) -> int:
        return int(entry.pk)

    @admin.display(description=_("event"), ordering="session__event__title")
    def event_title(self, entry: WaitlistEntry) -> str:
        return entry.session.event.tr("title")

    @admin.display(description=_("session (venue time)"), ordering="session__starts_at")
    def session_time(self, entry: WaitlistEntry) -> str:
        start = entry.session.local_starts_at
        return f"{start:%Y-%m-%d %H:%M} {start.tzname() or ''}".strip()

    @admin.display(description=_("position"))
    def position(self, entry: WaitlistEntry) -> str:
        if entry.state not in OPEN_STATES:
            return "—"
        return str(int(getattr(entry, "ahead", 0)) + 1)

    @admin.display(description=_("amount"))
    def amount_display(self, entry: WaitlistEntry) -> str:
        return str(Money(entry.unit_price, entry.currency) * entry.quantity)
