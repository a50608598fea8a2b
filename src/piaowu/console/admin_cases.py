"""Customer-service cases and the FAQ in the operator console.

Cases are scoped to the organizers where the user handles cases (`Perm.SERVICE_CASES`: roles
service and admin); a case without organizer is seen by platform operators (superusers) only.
Rows are never edited as forms: the tools on a case ("Reply", "Internal note", "Assign",
"Close", "Reopen"), the list's "Enter a case" tool and the actions call
`aftersales.services.cases`, which check the permission again, write the history and notify the
customer. The list shows each case's next due time and SLA state (overdue, due soon, …), most
urgent first.

The FAQ is edited by platform operators only.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Organizer, User
from piaowu.accounts.permissions import Perm
from piaowu.aftersales.models import Case, CaseHistory, CaseMessage, FaqEntry
from piaowu.aftersales.selectors.cases import (
    SLA_CLOSED,
    SLA_DUE_SOON,
    SLA_ON_TIME,
    SLA_OVERDUE,
    SLA_WAITING,
    case_assignee_choices,
    case_sla,
    case_zone,
    due_at_expression,
    sla_filter,
    with_due_at,
)
from piaowu.aftersales.services.cases import (
    MAX_MESSAGE_LENGTH,
    MAX_SUBJECT_LENGTH,
    case_assign,
    case_close,
    case_open_by_staff,
    case_reopen,
    case_reply,
)
from piaowu.console.admin_scoping import (
    ModelAdmin,
    OrganizerScopedAdmin,
    OrganizerScopedInline,
    ReadOnlyAdminMixin,
    ReadOnlyInlineMixin,
    TabularInline,
    user_of,
)
from piaowu.core.errors import DomainError
from piaowu.orders.models import Order
from piaowu.orders.selectors import orders_search_for_staff

CHANGE_LIST_TEMPLATE = "console/admin/change_list.html"
CHANGE_FORM_TEMPLATE = "console/admin/change_form.html"
TOOL_TEMPLATE = "console/admin/tool.html"

SLA_LABELS = {
    SLA_OVERDUE: _("Overdue"),
    SLA_DUE_SOON: _("Due soon"),
    SLA_ON_TIME: _("On time"),
    SLA_WAITING: _("Waiting for the customer"),
    SLA_CLOSED: _("Closed"),
}
SLA_COLOURS = {SLA_OVERDUE: "#b91c1c", SLA_DUE_SOON: "#b45309"}


# --- Forms of the tools ------------------------------------------------------------------------


class ReplyForm(forms.Form):
    message = forms.CharField(
        label=_("Message"),
        max_length=MAX_MESSAGE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
    )


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        label=_("Assignee"),
        queryset=User.objects.none(),
        required=False,
        empty_label=_("(nobody)"),
        help_text=_("Customer service and admins of the case's organizer."),
    )

    def __init__(self, *args: Any, choices: QuerySet[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = choices


class NoteForm(forms.Form):
    note = forms.CharField(label=_("Note for the history"), max_length=200, required=False)


class CaseEntryForm(forms.Form):
    """Staff entry on a customer's behalf; the service decides what is allowed."""

    organizer = forms.ModelChoiceField(
        label=_("Organizer"),
        queryset=Organizer.objects.none(),
        required=False,
        help_text=_("Needed when the case is not about an order."),
    )
    order_code = forms.CharField(label=_("Order code"), max_length=16, required=False)
    contact = forms.CharField(
        label=_("Customer's phone or e-mail"),
        max_length=254,
        required=False,
        help_text=_("Where we answer; the order's contact when empty."),
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=Case.Kind.choices)
    subject = forms.CharField(label=_("Subject"), max_length=MAX_SUBJECT_LENGTH)
    message = forms.CharField(
        label=_("What the customer asked"),
        max_length=MAX_MESSAGE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
    )

    def __init__(self, *args: Any, organizers: QuerySet[Organizer], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["organizer"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = organizers


def _apply(form: forms.Form, exc: DomainError) -> None:
    field = exc.details.get("field")
    names = {"order": "order_code"}
    target = names.get(str(field), field)
    known = isinstance(target, str) and target in form.fields
    form.add_error(target if known else None, str(exc.message))


# --- Filters -----------------------------------------------------------------------------------


class SlaListFilter(admin.SimpleListFilter):
    title = _("SLA")
    parameter_name = "sla"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(SLA_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return sla_filter(queryset, value) if value else queryset


class AssigneeListFilter(admin.SimpleListFilter):
    title = _("assignee")
    parameter_name = "assigned"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("me", _("Mine")), ("nobody", _("Nobody"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "me":
            return queryset.filter(assignee=user_of(request))
        if self.value() == "nobody":
            return queryset.filter(assignee__isnull=True)
        return queryset


# --- Inlines -----------------------------------------------------------------------------------


class _CaseInline(ReadOnlyInlineMixin, OrganizerScopedInline, TabularInline):
    parent_organizer_path = "organizer"
    view_perm = Perm.SERVICE_CASES
    manage_perm = Perm.SERVICE_CASES


class CaseMessageInline(_CaseInline):
    model = CaseMessage
    fields = ("at", "author", "from_staff", "internal", "body")
    readonly_fields = fields
    verbose_name = _("message")
    verbose_name_plural = _("conversation (internal notes are never shown to the customer)")
    ordering = ("at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("author")


class CaseHistoryInline(_CaseInline):
    model = CaseHistory
    fields = ("at", "action", "actor", "note")
    readonly_fields = fields
    verbose_name = _("history entry")
    verbose_name_plural = _("history")
    ordering = ("at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("actor")


# --- Cases -------------------------------------------------------------------------------------


def _local(case: Case, moment: datetime | None) -> str:
    """A time of the case in its zone (the order's venue's, else the site's)."""
    if moment is None:
        return "—"
    local = moment.astimezone(zoneinfo.ZoneInfo(case_zone(case)))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


@admin.register(Case)
class CaseAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    view_perm = Perm.SERVICE_CASES
    manage_perm = Perm.SERVICE_CASES
    organizer_path = "organizer"
    change_list_template = CHANGE_LIST_TEMPLATE
    change_form_template = CHANGE_FORM_TEMPLATE
    list_display = (
        "number",
        "subject",
        "kind",
        "state",
        "sla_state",
        "due_display",
        "assignee",
        "organizer",
        "order",
        "created_at",
    )
    list_filter = ("state", "kind", SlaListFilter, AssigneeListFilter, "channel")
    search_fields = ("number", "subject", "contact", "order__code", "customer__email")
    search_help_text = _("Case number, subject, contact, order code or customer e-mail.")
    list_select_related = ("organizer", "order__session__venue", "assignee")
    fields = (
        "number",
        "public_id",
        "state",
        "sla_state",
        "kind",
        "channel",
        "subject",
        "organizer",
        "order_link",
        "customer",
        "contact",
        "assignee",
        "first_response_due_display",
        "first_responded_at",
        "resolution_due_display",
        "closed_at",
        "rating",
        "rating_comment",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (CaseMessageInline, CaseHistoryInline)
    actions = ("assign_to_me", "close_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return with_due_at(
            super()
            .get_queryset(request)
            .select_related("organizer", "order__session__venue", "customer", "assignee")
        )

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        # Most urgent first. An expression: the base queryset is ordered before it is annotated.
        return [due_at_expression().asc(), "id"]

    # Columns

    @admin.display(description=_("SLA"))
    def sla_state(self, case: Case) -> str:
        state = case_sla(case).state
        label = SLA_LABELS[state]
        colour = SLA_COLOURS.get(state)
        if colour:
            return format_html('<strong style="color:{}">{}</strong>', colour, label)
        return str(label)

    @admin.display(description=_("next due"), ordering="due_at")
    def due_display(self, case: Case) -> str:
        if case.state == Case.State.CLOSED:
            return "—"
        due = case.first_response_due if case.first_responded_at is None else case.resolution_due
        return _local(case, due)

    @admin.display(description=_("first answer due"))
    def first_response_due_display(self, case: Case) -> str:
        return _local(case, case.first_response_due)

    @admin.display(description=_("resolution due"))
    def resolution_due_display(self, case: Case) -> str:
        return _local(case, case.resolution_due)

    @admin.display(description=_("order"))
    def order_link(self, case: Case) -> str:
        if case.order is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse(f"{self.admin_site.name}:orders_order_change", args=[case.order.pk]),
            case.order.code,
        )

    # Tools

    def _tool_url(self, name: str, *args: Any) -> str:
        return reverse(f"{self.admin_site.name}:aftersales_case_{name}", args=args)

    def _tool_path(self, route: str, view: Any, name: str) -> URLPattern:
        return path(route, self.admin_site.admin_view(view), name=f"aftersales_case_{name}")

    def get_urls(self) -> list[URLPattern]:
        return [
            self._tool_path("enter/", self.enter_view, "enter"),
            self._tool_path("<path:object_id>/reply/", self.reply_view, "reply"),
            self._tool_path("<path:object_id>/note/", self.note_view, "note"),
            self._tool_path("<path:object_id>/assign/", self.assign_view, "assign"),
            self._tool_path("<path:object_id>/close/", self.close_view, "close"),
            self._tool_path("<path:object_id>/reopen/", self.reopen_view, "reopen"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        tools = [(gettext("Enter a case for a customer"), self._tool_url("enter"))]
        extra_context = {**(extra_context or {}), "console_tools": tools}
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        case = self.get_object(request, object_id)
        if case.state == Case.State.CLOSED:
            tools = [(gettext("Reopen"), self._tool_url("reopen", case.pk))]
        else:
            tools = [
                (gettext("Reply"), self._tool_url("reply", case.pk)),
                (gettext("Internal note"), self._tool_url("note", case.pk)),
                (gettext("Assign"), self._tool_url("assign", case.pk)),
                (gettext("Close"), self._tool_url("close", case.pk)),
            ]
        extra_context = {**(extra_context or {}), "console_tools": tools}
        return super().change_view(request, object_id, form_url, extra_context)

    def _render(
        self,
        request: HttpRequest,
        *,
        title: str,
        form: forms.Form,
        case: Case | None = None,
        intro: str = "",
        submit_label: str = "",
        status: int = 200,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "original": case,
            "form": form,
            "problems": [],
            "report": None,
            "intro": intro,
            "submit_label": submit_label or gettext("Submit"),
            "has_file_field": False,
            "has_view_permission": True,
        }
        return TemplateResponse(request, TOOL_TEMPLATE, context, status=status)

    def _done(self, request: HttpRequest, case: Case, message: str) -> HttpResponse:
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:aftersales_case_change", args=[case.pk])
        )

    def _last_customer_words(self, case: Case) -> str:
        last = case.messages.filter(from_staff=False).order_by("-at", "-id").first()
        if last is None:
            return ""
        return gettext("The customer wrote: “%(text)s”") % {"text": last.body[:500]}

    def _message_view(
        self, request: HttpRequest, object_id: str, *, internal: bool
    ) -> HttpResponse:
        case = self.get_object(request, object_id)
        if internal:
            title = gettext("Internal note on case %(number)s") % {"number": case.number}
            intro = gettext("Only staff see internal notes; the customer is not told.")
        else:
            title = gettext("Reply to case %(number)s") % {"number": case.number}
            intro = (
                gettext("The customer sees this reply and is told by e-mail or SMS.")
                + " "
                + self._last_customer_words(case)
            )
        form = ReplyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                case_reply(
                    case=case,
                    actor=user_of(request),
                    body=form.cleaned_data["message"],
                    internal=internal,
                )
            except DomainError as exc:
                _apply(form, exc)
            else:
                done = gettext("Note saved.") if internal else gettext("Reply sent.")
                return self._done(request, case, done)
        status = 400 if form.errors else 200
        return self._render(request, title=title, form=form, case=case, intro=intro, status=status)

    def reply_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._message_view(request, object_id, internal=False)

    def note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._message_view(request, object_id, internal=True)

    def assign_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        case = self.get_object(request, object_id)
        form = AssignForm(
            request.POST or None,
            initial={"assignee": case.assignee_id},
            choices=case_assignee_choices(case),
        )
        if request.method == "POST" and form.is_valid():
            try:
                case_assign(
                    case=case, assignee=form.cleaned_data["assignee"], actor=user_of(request)
                )
            except DomainError as exc:
                _apply(form, exc)
            else:
                return self._done(request, case, gettext("Assignment saved."))
        title = gettext("Assign case %(number)s") % {"number": case.number}
        return self._render(
            request, title=title, form=form, case=case, status=400 if form.errors else 200
        )

    def close_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        case = self.get_object(request, object_id)
        form = NoteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                case_close(case=case, actor=user_of(request), note=form.cleaned_data["note"])
            except DomainError as exc:
                _apply(form, exc)
            else:
                return self._done(
                    request, case, gettext("Case closed; the customer was asked to rate it.")
                )
        title = gettext("Close case %(number)s") % {"number": case.number}
        intro = gettext("The customer is told and asked to rate our service.")
        return self._render(
            request,
            title=title,
            form=form,
            case=case,
            intro=intro,
            submit_label=gettext("Close"),
            status=400 if form.errors else 200,
        )

    def reopen_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        case = self.get_object(request, object_id)
        form = NoteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                case_reopen(case=case, actor=user_of(request), note=form.cleaned_data["note"])
            except DomainError as exc:
                _apply(form, exc)
            else:
                return self._done(request, case, gettext("Case reopened."))
        title = gettext("Reopen case %(number)s") % {"number": case.number}
        return self._render(
            request,
            title=title,
            form=form,
            case=case,
            submit_label=gettext("Reopen"),
            status=400 if form.errors else 200,
        )

    def enter_view(self, request: HttpRequest) -> HttpResponse:
        user = user_of(request)
        if user is None or not self.allowed_anywhere(request, Perm.SERVICE_CASES):
            raise DjangoPermissionDenied
        form = CaseEntryForm(
            request.POST or None, organizers=self.organizers_for(request, Perm.SERVICE_CASES)
        )
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            order: Order | None = None
            code = data["order_code"].strip().upper()
            if code:
                order = orders_search_for_staff(user=user, q=code).filter(code=code).first()
                if order is None:
                    form.add_error("order_code", gettext("No such order."))
            if not form.errors:
                try:
                    case = case_open_by_staff(
                        actor=user,
                        kind=data["kind"],
                        subject=data["subject"],
                        message=data["message"],
                        order=order,
                        organizer=data["organizer"],
                        contact=data["contact"],
                    )
                except DomainError as exc:
                    _apply(form, exc)
                else:
                    return self._done(
                        request, case, gettext("Case %(number)s entered.") % {"number": case.number}
                    )
        return self._render(
            request,
            title=gettext("Enter a case for a customer"),
            form=form,
            intro=gettext(
                "For a call or a visit: the case is answered like one the customer opened."
            ),
            status=400 if form.errors else 200,
        )

    # Actions

    def has_handle_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, Perm.SERVICE_CASES)

    @admin.action(description=_("Assign selected cases to me"), permissions=("handle",))
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        count = self._each(
            request, queryset, lambda case, user: case_assign(case=case, assignee=user, actor=user)
        )
        self.message_user(
            request,
            ngettext("%(n)d case assigned to you.", "%(n)d cases assigned to you.", count)
            % {"n": count},
            messages.SUCCESS if count else messages.INFO,
        )

    @admin.action(description=_("Close selected cases"), permissions=("handle",))
    def close_selected(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        count = self._each(request, queryset, lambda case, user: case_close(case=case, actor=user))
        self.message_user(
            request,
            ngettext("%(n)d case closed.", "%(n)d cases closed.", count) % {"n": count},
            messages.SUCCESS if count else messages.INFO,
        )

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Case],
        work: Callable[[Case, User | None], object],
    ) -> int:
        """Run `work` on each case (the service checks the permission); report refusals."""
        user = user_of(request)
        count = 0
        for case in queryset:
            try:
                work(case, user)
            except DomainError as exc:
                self.message_user(request, f"{case.number}: {exc.message}", messages.ERROR)
            else:
                count += 1
        return count


# --- FAQ ---------------------------------------------------------------------------------------


@admin.register(FaqEntry)
class FaqEntryAdmin(ModelAdmin):
    """Platform operators edit the public FAQ; nobody else sees it here."""

    list_display = ("question", "question_en", "position", "published", "updated_at")
    list_editable = ("position", "published")
    list_filter = ("published",)
    search_fields = ("question", "question_en", "answer", "answer_en")
    ordering = ("position", "id")
    fields = ("question", "answer", "question_en", "answer_en", "position", "published")

    def _operator(self, request: HttpRequest) -> bool:
        user = user_of(request)
        return user is not None and user.is_active and user.is_superuser

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._operator(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._operator(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._operator(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._operator(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._operator(request)
