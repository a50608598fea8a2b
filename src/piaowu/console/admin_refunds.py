"""Refund rules and refunds in the operator console.

* **Refund rules** (`RefundPolicy` with its `RefundTier` rows): per event, or per session to
  override the event's; scoped like the catalog (`Perm.CATALOG_VIEW` to see, `CATALOG_MANAGE`
  to write) and logged in the catalog change log.
* **Refunds**: read-only rows (money and states change only through
  `aftersales.services.refunds`), scoped to organizers where the user may view orders. Actions
  for staff who may refund (`Perm.ORDERS_REFUND`): approve, reject with a reason, retry a
  failed refund. "Refund on the customer's behalf" is a tool page for one order (linked from
  the refund list and from an action on the order list), with a reason (audited) and the
  choice to waive the fee.
* **Customer notices** (the after-sales outbox): read-only, for platform operators, with an
  action to send failed ones again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Organizer
from piaowu.accounts.permissions import Perm
from piaowu.aftersales.models import (
    Notice,
    Refund,
    RefundHistory,
    RefundItem,
    RefundPolicy,
    RefundTier,
)
from piaowu.aftersales.selectors.refunds import order_tickets
from piaowu.aftersales.services.notices import notices_retry
from piaowu.aftersales.services.refunds import (
    refund_approve,
    refund_quote,
    refund_reject,
    refund_request,
    refund_retry,
)
from piaowu.catalog.models import Event, SalesChannel, Session
from piaowu.console.admin_catalog import CatalogAdmin
from piaowu.console.admin_scoping import (
    ModelAdmin,
    ModelForm,
    OrganizerScopedInline,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    TabularInline,
    organizer_id_of,
    scope_queryset,
    user_of,
)
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.orders.models import Order
from piaowu.tickets.models import Ticket

ORDER_ORGANIZER = "order__session__event__organizer"

# --- Refund rules ------------------------------------------------------------------------------


class RefundTierInline(OrganizerScopedInline, TabularInline):
    model = RefundTier
    parent_organizer_path = "event__organizer"
    fields = ("hours_before", "fee_percent")
    extra = 1
    verbose_name_plural = _("tiers: the fee while at least this many hours are left")


class RefundPolicyForm(ModelForm):
    class Meta:
        model = RefundPolicy
        fields = (
            "event",
            "session",
            "minimum_fee",
            "needs_approval",
            "channels",
            "exchanges_allowed",
            "exchange_fee_percent",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        event: Event | None = data.get("event")
        session: Session | None = data.get("session")
        if event is not None and session is not None and session.event_id != event.pk:
            self.add_error("session", gettext("This session is not of the chosen event."))
        channels = data.get("channels")
        if event is not None and channels is not None:
            foreign = [c for c in channels if c.organizer_id != event.organizer_id]
            if foreign:
                self.add_error("channels", gettext("Choose channels of the event's own organizer."))
        return data


@admin.register(RefundPolicy)
class RefundPolicyAdmin(CatalogAdmin):
    """One rule per event (session empty) and at most one per session, overriding it."""

    object_type = "refund_rule"
    # Sellers and service staff read the rule they refund under; gate staff have no use for it.
    view_perm = Perm.ORDERS_VIEW
    form = RefundPolicyForm
    organizer_path = "event__organizer"
    list_display = ("event", "session_label", "tiers_label", "minimum_fee", "needs_approval")
    list_filter = ("needs_approval", ("event__organizer", admin.RelatedOnlyFieldListFilter))
    search_fields = ("event__title", "event__title_en")
    list_select_related = ("event", "session")
    autocomplete_fields = ()
    filter_horizontal = ("channels",)
    inlines = (RefundTierInline,)
    ordering = ("event", "session__starts_at")

    def _organizer(self, obj: Any) -> Organizer:
        if isinstance(obj, RefundTier):
            obj = obj.policy
        return Organizer.objects.get(pk=obj.event.organizer_id)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("tiers")

    def formfield_for_manytomany(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelMultipleChoiceField | None:
        if db_field.name == "channels":
            kwargs["queryset"] = scope_queryset(
                SalesChannel.objects.all(),
                "organizer",
                self.organizer_ids(request, self.manage_perm),
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description=_("session"))
    def session_label(self, policy: RefundPolicy) -> str:
        if policy.session is None:
            return gettext("every session")
        start = policy.session.local_starts_at
        return f"{start:%Y-%m-%d %H:%M}"

    @admin.display(description=_("tiers"))
    def tiers_label(self, policy: RefundPolicy) -> str:
        tiers = sorted(policy.tiers.all(), key=lambda tier: -tier.hours_before)
        return " · ".join(str(tier) for tier in tiers) or gettext("no refunds")


# --- Refunds -----------------------------------------------------------------------------------


class _RefundInline(ReadOnlyInlineMixin, OrganizerScopedInline, TabularInline):
    parent_organizer_path = ORDER_ORGANIZER
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_REFUND


class RefundItemInline(_RefundInline):
    model = RefundItem
    fields = ("ticket", "gross_amount", "fee_amount", "live")
    readonly_fields = fields
    verbose_name_plural = _("tickets")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("ticket")


class RefundHistoryInline(_RefundInline):
    model = RefundHistory
    fields = ("at", "from_state", "to_state", "actor", "note")
    readonly_fields = fields
    ordering = ("at", "id")
    verbose_name_plural = _("history")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("actor")


class RejectForm(forms.Form):
    """The second step of "Reject selected refunds" (posted back to the change list with the
    action and the selected refunds)."""

    action = forms.CharField(widget=forms.HiddenInput, label="")
    _selected_action = forms.MultipleChoiceField(widget=forms.MultipleHiddenInput, label="")
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        help_text=_("The customer sees it in the refund's history and the notice."),
    )

    def __init__(self, *args: Any, refund_ids: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["_selected_action"].choices = [(i, i) for i in refund_ids]  # type: ignore[attr-defined]


class OnBehalfForm(forms.Form):
    tickets = forms.MultipleChoiceField(
        label=_("Tickets"), widget=forms.CheckboxSelectMultiple, required=True
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        help_text=_("Why you refund on the customer's behalf; recorded with the refund."),
    )
    waive_fee = forms.BooleanField(
        label=_("Waive the fee"), required=False, help_text=_("Give back the full price.")
    )

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tickets"].choices = choices  # type: ignore[attr-defined]


class OrderCodeForm(forms.Form):
    code = forms.CharField(label=_("Order code"), max_length=16)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, CatalogAdmin):
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.ORDERS_REFUND
    organizer_path = ORDER_ORGANIZER
    list_display = (
        "number",
        "order_link",
        "kind",
        "state",
        "gross_display",
        "fee_display",
        "amount_display",
        "attempts",
        "created_at",
    )
    list_filter = ("state", "kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("number", "order__code")
    list_select_related = ("order",)
    ordering = ("-created_at", "-id")
    fields = (
        "number",
        "public_id",
        "order_link",
        "payment",
        "kind",
        "state",
        "gross_display",
        "fee_display",
        "amount_display",
        "reason",
        "requested_by",
        "attempts",
        "next_attempt_at",
        "last_error",
        "provider_refund_id",
        "succeeded_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (RefundItemInline, RefundHistoryInline)
    actions = ("approve_selected", "reject_selected", "retry_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("order", "payment", "requested_by")

    @admin.display(description=_("order"), ordering="order__code")
    def order_link(self, refund: Refund) -> str:
        url = reverse(f"{self.admin_site.name}:orders_order_change", args=[refund.order_id])
        return format_html('<a href="{}">{}</a>', url, refund.order.code)

    @admin.display(description=_("ticket value"), ordering="gross_amount")
    def gross_display(self, refund: Refund) -> str:
        return str(Money(refund.gross_amount, refund.currency))

    @admin.display(description=_("fee"), ordering="fee_amount")
    def fee_display(self, refund: Refund) -> str:
        return str(Money(refund.fee_amount, refund.currency))

    @admin.display(description=_("refund amount"), ordering="amount")
    def amount_display(self, refund: Refund) -> str:
        return str(Money(refund.amount, refund.currency))

    # --- Tools: refund an order on the customer's behalf ---------------------------------------

    def changelist_tools(self, request: HttpRequest) -> list[tuple[str, str]]:
        if not self.allowed_anywhere(request, Perm.ORDERS_REFUND):
            return []
        return [(gettext("Refund an order on the customer's behalf"), self.tool_url("find"))]

    def object_tools(self, request: HttpRequest, obj: Any) -> list[tuple[str, str]]:
        return []

    def get_urls(self) -> list[URLPattern]:
        return [
            self.tool_path("on-behalf/", self.find_view, "find"),
            self.tool_path("on-behalf/<str:order_id>/", self.on_behalf_view, "on_behalf"),
            *super().get_urls(),
        ]

    def _staff_order(self, request: HttpRequest, **lookup: Any) -> Order:
        """An order at an organizer where the user may view orders (else 404), where they may
        refund (else 403)."""
        orders = scope_queryset(
            Order.objects.select_related("session__event", "session__venue", "channel"),
            "session__event__organizer",
            self.organizer_ids(request, Perm.ORDERS_VIEW),
        )
        order = orders.filter(**lookup).first()
        if order is None:
            raise Http404
        if not self.allowed_at(request, order.session.event.organizer_id, Perm.ORDERS_REFUND):
            raise DjangoPermissionDenied
        return order

    def find_view(self, request: HttpRequest) -> HttpResponse:
        if not self.allowed_anywhere(request, Perm.ORDERS_REFUND):
            raise DjangoPermissionDenied
        form = OrderCodeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            code = form.cleaned_data["code"].strip().upper()
            try:
                order = self._staff_order(request, code=code)
            except Http404:
                form.add_error("code", gettext("No order with this code at your organizers."))
            else:
                return HttpResponseRedirect(self.tool_url("on_behalf", order.public_id))
        return self.render_tool(
            request,
            title=gettext("Refund an order on the customer's behalf"),
            form=form,
            submit_label=gettext("Find the order"),
        )

    def on_behalf_view(self, request: HttpRequest, order_id: str) -> HttpResponse:
        order = self._staff_order(request, public_id=order_id)
        valid = [t for t in order_tickets(order) if t.state == Ticket.State.VALID]
        quote = refund_quote(order=order, tickets=valid, by_staff=True) if valid else None
        choices = [
            (
                item.ticket.public_id,
                _ticket_choice(item.ticket, item.gross, item.fee, order.currency),
            )
            for item in (quote.items if quote is not None else [])
            if not item.refusal
        ]
        form = OnBehalfForm(request.POST or None, choices=choices)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            chosen = set(data["tickets"])
            tickets = (
                [i.ticket for i in quote.items if i.ticket.public_id in chosen] if quote else []
            )
            try:
                refund = refund_request(
                    order=order,
                    tickets=tickets,
                    actor=user_of(request),
                    kind=Refund.Kind.STAFF,
                    reason=data["reason"].strip(),
                    waive_fee=data["waive_fee"],
                )
            except DomainError as exc:
                form.add_error(None, str(exc.message))
            else:
                self.message_user(
                    request,
                    gettext("Refund %(number)s: %(amount)s, %(state)s.")
                    % {
                        "number": refund.number,
                        "amount": Money(refund.amount, refund.currency),
                        "state": refund.get_state_display(),
                    },
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse(f"{self.admin_site.name}:aftersales_refund_change", args=[refund.pk])
                )
        intro = " ".join(
            [
                gettext("Order %(code)s (%(state)s).")
                % {"code": order.code, "state": order.get_state_display()},
                *(quote.rule_lines if quote is not None else []),
                gettext(
                    "On the customer's behalf you are not bound by the time limit or the "
                    "channels; the fee shown is the rule's fee now (the strictest tier after "
                    "the cut-off) unless you waive it. Used tickets cannot be refunded."
                ),
            ]
        )
        if not choices:
            intro += " " + gettext("No ticket of this order can be refunded.")
        return self.render_tool(
            request,
            title=gettext("Refund order %(code)s on the customer's behalf") % {"code": order.code},
            form=form if choices else None,
            intro=intro,
            submit_label=gettext("Refund"),
        )

    # --- Actions ---------------------------------------------------------------------------

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, Perm.ORDERS_REFUND)

    def _allowed(self, request: HttpRequest, refund: Refund) -> bool:
        return self.allowed_at(
            request, organizer_id_of(refund, ORDER_ORGANIZER), Perm.ORDERS_REFUND
        )

    def _act(
        self,
        request: HttpRequest,
        queryset: QuerySet[Refund],
        state: str,
        act: Any,
        done_message: Any,
    ) -> None:
        done = skipped = 0
        for refund in queryset.select_related("order__session__event"):
            if refund.state != state or not self._allowed(request, refund):
                skipped += 1
                continue
            try:
                act(refund)
            except DomainError as exc:
                self.message_user(request, f"{refund.number}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, done_message(done), messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d refund was left alone: it is not in that state or you may not "
                    "refund there.",
                    "%(count)d refunds were left alone: they are not in that state or you may "
                    "not refund there.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )

    @admin.action(description=_("Approve selected requested refunds"), permissions=("refund",))
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        actor = user_of(request)
        assert actor is not None
        self._act(
            request,
            queryset,
            Refund.State.REQUESTED,
            lambda refund: refund_approve(refund=refund, actor=actor),
            lambda n: (
                ngettext("%(count)d refund approved.", "%(count)d refunds approved.", n)
                % {"count": n}
            ),
        )

    @admin.action(
        description=_("Reject selected requested refunds (with a reason)"),
        permissions=("refund",),
    )
    def reject_selected(
        self, request: HttpRequest, queryset: QuerySet[Refund]
    ) -> TemplateResponse | None:
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        form = RejectForm(
            request.POST if "reason" in request.POST else None,
            initial={"action": "reject_selected", "_selected_action": ids},
            refund_ids=ids,
        )
        if not form.is_bound or not form.is_valid():
            return self.render_tool(
                request,
                title=gettext("Reject refunds %(numbers)s")
                % {"numbers": ", ".join(queryset.values_list("number", flat=True))},
                form=form,
                intro=gettext("The tickets stay valid; the customer may ask again."),
                submit_label=gettext("Reject"),
            )
        actor = user_of(request)
        assert actor is not None
        reason = form.cleaned_data["reason"].strip()
        self._act(
            request,
            queryset,
            Refund.State.REQUESTED,
            lambda refund: refund_reject(refund=refund, actor=actor, reason=reason),
            lambda n: (
                ngettext("%(count)d refund rejected.", "%(count)d refunds rejected.", n)
                % {"count": n}
            ),
        )
        return None

    @admin.action(description=_("Retry selected failed refunds"), permissions=("refund",))
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        actor = user_of(request)
        assert actor is not None
        self._act(
            request,
            queryset,
            Refund.State.FAILED,
            lambda refund: refund_retry(refund=refund, actor=actor),
            lambda n: (
                ngettext(
                    "%(count)d refund sent to the provider again.",
                    "%(count)d refunds sent to the provider again.",
                    n,
                )
                % {"count": n}
            ),
        )


def _ticket_choice(ticket: Ticket, gross: Any, fee: Any, currency: str) -> str:
    place = ticket.seat.code if ticket.seat is not None else ticket.tier.tr("name")
    return gettext("%(place)s · %(serial)s · %(price)s (fee %(fee)s)") % {
        "place": place,
        "serial": ticket.serial,
        "price": Money(gross, currency),
        "fee": Money(fee, currency),
    }


@admin.action(description=_("Refund on the customer's behalf (one order)"))
def refund_on_behalf(
    modeladmin: ModelAdmin, request: HttpRequest, queryset: QuerySet[Order]
) -> HttpResponse | None:
    """An action of the order list: opens the refund tool for the one selected order."""
    orders = list(queryset[:2])
    if len(orders) != 1:
        modeladmin.message_user(
            request, gettext("Select exactly one order to refund."), messages.WARNING
        )
        return None
    url = reverse(
        f"{modeladmin.admin_site.name}:aftersales_refund_on_behalf", args=[orders[0].public_id]
    )
    return HttpResponseRedirect(url)


# --- Customer notices ----------------------------------------------------------------------------


@admin.register(Notice)
class NoticeAdmin(ModelAdmin):
    """The after-sales outbox, for platform operators: what was sent to whom, what failed."""

    list_display = (
        "topic",
        "kind",
        "recipient",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
    )
    list_filter = ("status", "kind")
    search_fields = ("topic", "recipient")
    ordering = ("-created_at", "-id")
    readonly_fields = (
        "topic",
        "kind",
        "recipient",
        "subject",
        "body",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "sent_at",
        "created_at",
    )
    fields = readonly_fields
    actions = ("send_again",)

    def _operator(self, request: HttpRequest) -> bool:
        user = user_of(request)
        return user is not None and user.is_superuser

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._operator(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._operator(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return self._operator(request)

    @admin.action(description=_("Send selected notices again"), permissions=("resend",))
    def send_again(self, request: HttpRequest, queryset: QuerySet[Notice]) -> None:
        count = notices_retry(notice_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            ngettext(
                "%(count)d notice will be sent again.",
                "%(count)d notices will be sent again.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
