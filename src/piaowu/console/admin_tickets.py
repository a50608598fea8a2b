"""Tickets in the operator console: signing keys, tickets, redemption batches and the desk that
redeems a code. Everything is scoped by organizer (`console.admin_scoping`); every write goes
through `tickets.services`.

* **Signing keys** (`Perm.CATALOG_MANAGE`): read-only, the private key is never shown. Actions
  "Rotate key" (a new active key; tickets issued so far keep verifying) and "Revoke key and
  reissue its tickets" (after a confirmation page: codes signed by the key read as forged; every
  valid ticket gets a new QR under the active key, so paper printed before stops working).
* **Tickets** (view `Perm.ORDERS_VIEW`): read-only, search by serial (typed in any form) or
  order code, history and prints inline. Action "Reissue (revokes the old QR)" for
  `Perm.ORDERS_SELL`.
* **Redemption batches** (view `Perm.ORDERS_VIEW`; create, list and download codes
  `Perm.CATALOG_MANAGE`: the codes are worth tickets). The desk page "Redeem a code" is for
  `Perm.ORDERS_SELL`.
"""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.permissions import Perm
from piaowu.catalog.models import Event, SalesChannel, Session
from piaowu.catalog.selectors import sales_channel_for
from piaowu.console.admin_scoping import (
    OrganizerScopedAdmin,
    OrganizerScopedInline,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    TabularInline,
    apply_domain_error,
    scope_queryset,
    user_of,
)
from piaowu.core.errors import DomainError
from piaowu.tickets import codec
from piaowu.tickets.models import (
    PrintLog,
    RedemptionBatch,
    RedemptionCode,
    SigningKey,
    Ticket,
    TicketHistory,
)
from piaowu.tickets.selectors import redemption_codes, seat_label
from piaowu.tickets.services import (
    redemption_batch_create,
    redemption_redeem,
    signing_key_revoke,
    signing_key_rotate,
    ticket_reissue,
    tickets_reissue_for_key,
)

CHANGE_LIST_TEMPLATE = "console/admin/change_list.html"
CHANGE_FORM_TEMPLATE = "console/admin/change_form.html"
TOOL_TEMPLATE = "console/admin/tool.html"


def _tool(
    admin_: OrganizerScopedAdmin,
    request: HttpRequest,
    *,
    title: str,
    form: forms.Form | None,
    intro: str = "",
    submit_label: str = "",
    status: int = 200,
) -> TemplateResponse:
    context = {
        **admin_.admin_site.each_context(request),
        "title": title,
        "opts": admin_.model._meta,
        "original": None,
        "form": form,
        "problems": [],
        "report": None,
        "intro": intro,
        "submit_label": submit_label or gettext("Submit"),
        "has_file_field": False,
        "has_view_permission": True,
    }
    return TemplateResponse(request, TOOL_TEMPLATE, context, status=status)


# --- Signing keys ------------------------------------------------------------------------------


class RevokeConfirmForm(forms.Form):
    """The confirmation step of "Revoke key and reissue its tickets" (posted back to the change
    list with the action and the selected keys)."""

    action = forms.CharField(widget=forms.HiddenInput, label="")
    _selected_action = forms.MultipleChoiceField(widget=forms.MultipleHiddenInput, label="")
    confirm = forms.BooleanField(
        required=True,
        label=_("I understand"),
        help_text=_(
            "Codes signed by these keys stop working at once. Every valid ticket they signed "
            "gets a new QR code: e-tickets update themselves, but paper tickets printed before "
            "must be printed again."
        ),
    )

    def __init__(self, *args: Any, key_ids: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["_selected_action"].choices = [(k, k) for k in key_ids]  # type: ignore[attr-defined]


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    view_perm = Perm.CATALOG_MANAGE
    manage_perm = Perm.CATALOG_MANAGE
    organizer_path = "organizer"
    list_display = ("kid", "organizer", "status", "valid_tickets", "created_at", "revoked_at")
    list_filter = ("status",)
    search_fields = ("kid",)
    ordering = ("organizer", "-created_at")
    fields = (
        "kid",
        "organizer",
        "status",
        "public_key_hex",
        "valid_tickets",
        "created_at",
        "retired_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("rotate_keys", "revoke_keys")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("organizer")
            .defer("private_key")
            .annotate(_valid=Count("tickets", filter=Q(tickets__state=Ticket.State.VALID)))
        )

    @admin.display(description=_("public key"))
    def public_key_hex(self, key: SigningKey) -> str:
        return bytes(key.public_key).hex()

    @admin.display(description=_("valid tickets"))
    def valid_tickets(self, key: SigningKey) -> int:
        return int(getattr(key, "_valid", 0))

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, Perm.CATALOG_MANAGE)

    has_revoke_permission = has_rotate_permission

    def _allowed(self, request: HttpRequest, key: SigningKey) -> bool:
        return self.allowed_at(request, key.organizer_id, Perm.CATALOG_MANAGE)

    @admin.action(
        description=_("Rotate key (new tickets get a new key; old ones keep working)"),
        permissions=("rotate",),
    )
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[SigningKey]) -> None:
        organizers = {
            key.organizer_id: key.organizer for key in queryset if self._allowed(request, key)
        }
        for organizer in organizers.values():
            key = signing_key_rotate(organizer=organizer)
            self.message_user(
                request,
                gettext("%(organizer)s signs new tickets with key %(kid)s now.")
                % {"organizer": organizer, "kid": key.kid},
                messages.SUCCESS,
            )

    @admin.action(
        description=_("Revoke key and reissue its tickets (old QR codes stop working)"),
        permissions=("revoke",),
    )
    def revoke_keys(
        self, request: HttpRequest, queryset: QuerySet[SigningKey]
    ) -> TemplateResponse | None:
        keys = [key for key in queryset if self._allowed(request, key)]
        ids = [str(key.pk) for key in keys]
        if "confirm" not in request.POST:
            form = RevokeConfirmForm(
                initial={"action": "revoke_keys", "_selected_action": ids}, key_ids=ids
            )
            return _tool(
                self,
                request,
                title=gettext("Revoke keys %(kids)s") % {"kids": ", ".join(k.kid for k in keys)},
                form=form,
                intro=gettext(
                    "Revoke a key when its private part may have leaked. Valid tickets signed "
                    "by it now: %(n)d."
                )
                % {"n": Ticket.objects.filter(signing_key__in=keys, state="valid").count()},
                submit_label=gettext("Revoke and reissue"),
            )
        actor = user_of(request)
        for key in keys:
            try:
                signing_key_revoke(key=key)
            except DomainError as exc:
                if exc.code != "key_already_revoked":
                    raise
            count = tickets_reissue_for_key(key=key, actor=actor)
            self.message_user(
                request,
                ngettext(
                    "Key %(kid)s revoked; %(count)d ticket got a new QR code.",
                    "Key %(kid)s revoked; %(count)d tickets got a new QR code.",
                    count,
                )
                % {"kid": key.kid, "count": count},
                messages.SUCCESS,
            )
        return None


# --- Tickets -----------------------------------------------------------------------------------


class _TicketInline(ReadOnlyInlineMixin, OrganizerScopedInline, TabularInline):
    parent_organizer_path = "organizer"
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_SELL


class TicketHistoryInline(_TicketInline):
    model = TicketHistory
    fields = ("at", "action", "secret_version", "actor", "reason")
    readonly_fields = fields
    ordering = ("at", "id")
    verbose_name_plural = _("history")


class PrintLogInline(_TicketInline):
    model = PrintLog
    fields = ("at", "layout", "secret_version", "reprint", "device", "actor")
    readonly_fields = fields
    verbose_name_plural = _("prints")


@admin.register(Ticket)
class TicketAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_SELL
    organizer_path = "organizer"
    list_display = (
        "serial",
        "event_title",
        "session_time",
        "seat_display",
        "tier",
        "state",
        "secret_version",
        "order_link",
    )
    list_filter = ("state", "rotating")
    search_fields = ("serial",)
    search_help_text = _("Serial (any case, dashes optional) or order code.")
    list_select_related = ("session__event", "session__venue", "tier", "seat", "order")
    ordering = ("-issued_at", "-id")
    fields = (
        "serial",
        "public_id",
        "state",
        "void_reason",
        "order_link",
        "session",
        "seat_display",
        "tier",
        "secret_version",
        "rotating",
        "signing_key",
        "valid_from",
        "valid_until",
        "attendee_name",
        "attendee_id_masked",
        "issued_at",
    )
    readonly_fields = fields
    inlines = (TicketHistoryInline, PrintLogInline)
    actions = ("reissue",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        serial = codec.normalize_serial(term)
        match = Q(order__code=term.upper())
        if serial is not None:
            match |= Q(serial=serial)
        return queryset.filter(match), False

    @admin.display(description=_("event"), ordering="session__event__title")
    def event_title(self, ticket: Ticket) -> str:
        return ticket.session.event.tr("title")

    @admin.display(description=_("session (venue time)"), ordering="session__starts_at")
    def session_time(self, ticket: Ticket) -> str:
        start = ticket.session.local_starts_at
        return f"{start:%Y-%m-%d %H:%M} {start.tzname() or ''}".strip()

    @admin.display(description=_("seat"))
    def seat_display(self, ticket: Ticket) -> str:
        return seat_label(ticket) or gettext("General admission")

    @admin.display(description=_("order"), ordering="order__code")
    def order_link(self, ticket: Ticket) -> str:
        url = reverse(f"{self.admin_site.name}:orders_order_change", args=[ticket.order_id])
        return format_html('<a href="{}">{}</a>', url, ticket.order.code)

    def has_reissue_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, Perm.ORDERS_SELL)

    @admin.action(description=_("Reissue (revokes the old QR)"), permissions=("reissue",))
    def reissue(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        actor = user_of(request)
        done = 0
        for ticket in queryset:
            if not self.allowed_at(request, ticket.organizer_id, Perm.ORDERS_SELL):
                self.message_user(
                    request,
                    gettext("%(serial)s: you may not reissue this ticket.")
                    % {"serial": ticket.serial},
                    messages.WARNING,
                )
                continue
            try:
                ticket_reissue(ticket=ticket, actor=actor, reason="reissued in the console")
            except DomainError as exc:
                self.message_user(request, f"{ticket.serial}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(
                request,
                ngettext(
                    "%(count)d ticket reissued; its old QR code no longer admits.",
                    "%(count)d tickets reissued; their old QR codes no longer admit.",
                    done,
                )
                % {"count": done},
                messages.SUCCESS,
            )


# --- Redemption batches ------------------------------------------------------------------------


class BatchCreateForm(forms.Form):
    event = forms.ModelChoiceField(queryset=Event.objects.none(), label=_("Event"))
    tier_code = forms.SlugField(
        label=_("Ticket type code"),
        max_length=40,
        help_text=_("Each code is worth one ticket of this type, in any session that sells it."),
    )
    name = forms.CharField(
        label=_("Name"), max_length=120, help_text=_("e.g. the company the codes were sold to.")
    )
    size = forms.IntegerField(label=_("Number of codes"), min_value=1, max_value=10_000)
    valid_until = forms.DateTimeField(
        label=_("Redeem by"), help_text=_("Date and time, e.g. 2026-12-31 23:59.")
    )


class RedeemDeskForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=40)
    session = forms.ModelChoiceField(queryset=Session.objects.none(), label=_("Session"))
    contact_phone = forms.CharField(label=_("Phone"), max_length=32)
    seat = forms.CharField(
        label=_("Seat code"),
        max_length=40,
        required=False,
        help_text=_("Optional; empty: the best available seat of the code's ticket type."),
    )


@admin.register(RedemptionBatch)
class RedemptionBatchAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.CATALOG_MANAGE
    organizer_path = "organizer"
    change_list_template = CHANGE_LIST_TEMPLATE
    change_form_template = CHANGE_FORM_TEMPLATE
    list_display = ("name", "event", "tier_code", "size", "redeemed", "valid_until", "created_at")
    search_fields = ("name",)
    list_select_related = ("event", "organizer")
    ordering = ("-created_at", "-id")
    fields = (
        "name",
        "public_id",
        "organizer",
        "event",
        "tier_code",
        "size",
        "redeemed",
        "valid_until",
        "created_by",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .annotate(_redeemed=Count("codes", filter=Q(codes__redeemed_at__isnull=False)))
        )

    @admin.display(description=_("redeemed"))
    def redeemed(self, batch: RedemptionBatch) -> int:
        return int(getattr(batch, "_redeemed", 0))

    # Tools: create a batch, the codes (CSV), the desk.

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("new/", wrap(self.create_view), name=f"{name}_create"),
            path("redeem/", wrap(self.redeem_view), name=f"{name}_redeem"),
            path("<path:object_id>/codes.csv", wrap(self.codes_csv_view), name=f"{name}_csv"),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args: Any) -> str:
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}", args=args
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        tools = []
        if self.allowed_anywhere(request, Perm.CATALOG_MANAGE):
            tools.append((gettext("New batch of codes"), self._url("create")))
        if self.allowed_anywhere(request, Perm.ORDERS_SELL):
            tools.append((gettext("Redeem a code"), self._url("redeem")))
        extra_context = {**(extra_context or {}), "console_tools": tools}
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        batch = self.get_object(request, object_id)
        tools = []
        if self.allowed_at(request, batch.organizer_id, Perm.CATALOG_MANAGE):
            codes = reverse(f"{self.admin_site.name}:tickets_redemptioncode_changelist")
            tools = [
                (gettext("Codes"), f"{codes}?batch__id__exact={batch.pk}"),
                (gettext("Download codes (CSV)"), self._url("csv", batch.pk)),
            ]
        extra_context = {**(extra_context or {}), "console_tools": tools}
        return super().change_view(request, object_id, form_url, extra_context)

    def create_view(self, request: HttpRequest) -> HttpResponse:
        if not self.allowed_anywhere(request, Perm.CATALOG_MANAGE):
            raise DjangoPermissionDenied
        form = BatchCreateForm(request.POST or None)
        events = scope_queryset(
            Event.objects.exclude(status=Event.Status.CANCELLED).order_by("-created_at"),
            "organizer",
            self.organizer_ids(request, Perm.CATALOG_MANAGE),
        )
        form.fields["event"].queryset = events  # type: ignore[attr-defined]
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            event: Event = data["event"]
            try:
                batch = redemption_batch_create(
                    organizer=event.organizer,
                    event=event,
                    tier_code=data["tier_code"],
                    name=data["name"],
                    size=data["size"],
                    valid_until=data["valid_until"],
                    actor=user_of(request),
                )
            except DomainError as exc:
                apply_domain_error(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("%(count)d codes created.") % {"count": batch.size},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse(
                        f"{self.admin_site.name}:tickets_redemptionbatch_change", args=[batch.pk]
                    )
                )
        return _tool(
            self,
            request,
            title=gettext("New batch of redemption codes"),
            form=form,
            intro=gettext(
                "Each code is worth one free ticket. Hand the codes over as a CSV file; a code "
                "is redeemed on the website or at the desk."
            ),
            submit_label=gettext("Create codes"),
            status=400 if form.errors else 200,
        )

    def codes_csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        batch = self.get_object(request, object_id)
        if not self.allowed_at(request, batch.organizer_id, Perm.CATALOG_MANAGE):
            raise DjangoPermissionDenied
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="redemption-codes-{batch.public_id}.csv"'
        )
        response.write("\ufeff")  # so spreadsheet programs read the UTF-8 as UTF-8
        writer = csv.writer(response)
        writer.writerow(["code", "event", "tier", "redeem_by", "redeemed_at", "order"])
        title = batch.event.tr("title")
        redeem_by = timezone.localtime(batch.valid_until).isoformat()
        for row in redemption_codes(batch.pk):
            writer.writerow(
                [
                    row.code,
                    title,
                    batch.tier_code,
                    redeem_by,
                    row.redeemed_at.isoformat() if row.redeemed_at else "",
                    row.order.code if row.order is not None else "",
                ]
            )
        return response

    def redeem_view(self, request: HttpRequest) -> HttpResponse:
        allowed = self.organizer_ids(request, Perm.ORDERS_SELL)
        if allowed is not None and not allowed:
            raise DjangoPermissionDenied
        form = RedeemDeskForm(request.POST or None)
        now = timezone.now()
        sessions = scope_queryset(
            Session.objects.filter(
                status=Session.Status.SCHEDULED, sales_open_at__lte=now, sales_close_at__gt=now
            )
            .select_related("event", "venue")
            .order_by("starts_at"),
            "event__organizer",
            allowed,
        )
        form.fields["session"].queryset = sessions  # type: ignore[attr-defined]
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            session: Session = data["session"]
            code = data["code"]
            try:
                order = redemption_redeem(
                    code=code,
                    session=session,
                    channel=sales_channel_for(session, SalesChannel.Kind.BOX_OFFICE),
                    holder_key=f"desk:{codec.normalize_serial(code) or code}"[:64],
                    contact_phone=data["contact_phone"],
                    seat_codes=[data["seat"]] if data["seat"] else None,
                )
            except DomainError as exc:
                field = "code" if exc.code.startswith("redemption_code") else None
                form.add_error(field, str(exc.message))
            else:
                serials = ", ".join(order.tickets.values_list("serial", flat=True))
                self.message_user(
                    request,
                    gettext("Redeemed: order %(order)s, ticket %(serials)s.")
                    % {"order": order.code, "serials": serials},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse(f"{self.admin_site.name}:orders_order_change", args=[order.pk])
                )
        return _tool(
            self,
            request,
            title=gettext("Redeem a code"),
            form=form,
            intro=gettext(
                "The customer gets one free ticket of the code's type for the session; the "
                "ticket is sent to the phone number."
            ),
            submit_label=gettext("Redeem"),
            status=400 if form.errors else 200,
        )


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    """The codes of the batches an organizer's managers may see (they are worth tickets)."""

    view_perm = Perm.CATALOG_MANAGE
    manage_perm = Perm.CATALOG_MANAGE
    organizer_path = "batch__organizer"
    list_display = ("code", "batch", "redeemed_at", "order")
    list_filter = (
        ("redeemed_at", admin.EmptyFieldListFilter),
        ("batch", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("code",)
    list_select_related = ("batch", "order")
    ordering = ("batch", "code")
    fields = ("code", "batch", "redeemed_at", "order")
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(code=codec.normalize_serial(term) or term.upper()), False
