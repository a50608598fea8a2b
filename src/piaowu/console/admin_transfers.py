"""Ticket transfers in the operator console: a read-only list for customer service (who gave
which ticket to whom, and what became of it), scoped to the staff member's organizers
(`console.admin_scoping`; view needs `Perm.ORDERS_VIEW`). Transfers change only through
`aftersales.services.transfers`, by their customers; the code the receiver got is never shown.
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
from piaowu.aftersales.models import Transfer
from piaowu.aftersales.selectors.transfers import transfer_state
from piaowu.console.admin_scoping import OrganizerScopedAdmin, ReadOnlyAdminMixin


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_SELL
    organizer_path = "ticket__organizer"
    list_display = (
        "created_at",
        "ticket_link",
        "event_title",
        "sender",
        "receiver_name",
        "receiver_contact",
        "state_now",
        "expires_at",
        "accepted_at",
    )
    list_filter = ("state",)
    search_fields = ("ticket__serial", "receiver_contact", "receiver_name", "sender__email")
    list_select_related = ("ticket__session__event", "sender", "receiver")
    ordering = ("-created_at", "-id")
    fields = (
        "public_id",
        "ticket_link",
        "event_title",
        "sender",
        "receiver_name",
        "receiver_contact",
        "receiver",
        "state_now",
        "expires_at",
        "accepted_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related(*self.list_select_related)

    @admin.display(description=_("ticket"), ordering="ticket__serial")
    def ticket_link(self, transfer: Transfer) -> str:
        url = reverse(f"{self.admin_site.name}:tickets_ticket_change", args=[transfer.ticket_id])
        return format_html('<a href="{}">{}</a>', url, transfer.ticket.serial)

    @admin.display(description=_("event"), ordering="ticket__session__event__title")
    def event_title(self, transfer: Transfer) -> str:
        return transfer.ticket.session.event.tr("title")

    @admin.display(description=_("state"), ordering="state")
    def state_now(self, transfer: Transfer) -> str:
        # A pending transfer past its expiry is expired already, before the job marks it.
        return str(Transfer.State(transfer_state(transfer)).label)
