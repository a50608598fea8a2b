"""Cancelling and rescheduling sessions in the operator console (AFT-4).

* On a session's page (`SessionAdmin.object_tools` → `session_tools`): "Cancel session" and
  "Reschedule", or "Cancellation progress" once it is cancelled.
* **Cancel session** shows what cancelling would do (orders, tickets and money to refund,
  unpaid orders to cancel) and asks for a reason and a confirmation; it calls
  `session_cancel` and opens the progress page.
* **Progress** (the cancellation's page in this admin) reloads itself while refunds run:
  counts read from the rows, refunds by state, refunds the provider gave up on, orders still to
  refund, and a "Resume now" button that runs the next refunds at once.
* **Reschedule** takes the new start and end in the venue's time zone and the free-refund days,
  and calls `session_reschedule`.

The lists and the progress page need `orders.view` at the session's organizer (they show order
codes and money), every write `catalog.manage`; another organizer's session or cancellation is
"not found". Cancellations and reschedules are never
added, edited or deleted here: the services write them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from piaowu.accounts.permissions import Perm
from piaowu.aftersales.models import SessionCancellation, SessionReschedule
from piaowu.aftersales.selectors.cancellations import (
    cancellation_for_session,
    cancellation_preview,
    cancellation_progress,
)
from piaowu.aftersales.services.cancellations import (
    DEFAULT_FREE_REFUND_DAYS,
    MAX_FREE_REFUND_DAYS,
    MAX_REASON_LENGTH,
    session_cancel,
    session_cancellation_run,
    session_reschedule,
)
from piaowu.catalog.models import Session
from piaowu.console.admin_scoping import (
    OrganizerScopedAdmin,
    ReadOnlyAdminMixin,
    scope_queryset,
    user_of,
)
from piaowu.core.errors import DomainError

SESSION_ORGANIZER = "session__event__organizer"
#: Orders one "Resume now" click refunds at most (the job does the rest).
RESUME_LIMIT = 200
#: Seconds between reloads of the progress page while refunds run.
RELOAD_SECONDS = 5
TOOL_TEMPLATE = "console/aftersales/session_tool.html"
PROGRESS_TEMPLATE = "console/aftersales/cancellation_progress.html"


def _local(moment: dt.datetime | None, session: Session) -> str:
    if moment is None:
        return ""
    local = timezone.localtime(moment, session.venue.tzinfo)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


def session_tools(obj: Session) -> list[tuple[str, str]]:
    """The links on a session's console page (its admin checks `catalog.manage` first)."""
    if obj.status == Session.Status.CANCELLED:
        cancellation = cancellation_for_session(obj)
        if cancellation is None:
            return []
        return [
            (
                gettext("Cancellation progress"),
                reverse("admin:aftersales_sessioncancellation_change", args=[cancellation.pk]),
            )
        ]
    return [
        (
            gettext("Reschedule"),
            reverse("admin:aftersales_sessionreschedule_new", args=[obj.pk]),
        ),
        (
            gettext("Cancel session"),
            reverse("admin:aftersales_sessioncancellation_new", args=[obj.pk]),
        ),
    ]


# --- Forms ---------------------------------------------------------------------------------------


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Every ticket holder is told this."),
    )
    confirm = forms.BooleanField(
        label=_("Yes, cancel this session and refund every order in full"),
        help_text=_("Sales stop at once. This cannot be undone."),
    )


class RescheduleForm(forms.Form):
    start_date = forms.DateField(
        label=_("New date"), widget=forms.DateInput(attrs={"type": "date"})
    )
    start_time = forms.TimeField(
        label=_("New start time"),
        help_text=_("Local time at the venue."),
        widget=forms.TimeInput(attrs={"type": "time"}),
    )
    end_date = forms.DateField(label=_("End date"), widget=forms.DateInput(attrs={"type": "date"}))
    end_time = forms.TimeField(
        label=_("End time"),
        help_text=_("Local time at the venue."),
        widget=forms.TimeInput(attrs={"type": "time"}),
    )
    free_refund_days = forms.IntegerField(
        label=_("Free refunds for (days)"),
        min_value=0,
        max_value=MAX_FREE_REFUND_DAYS,
        initial=DEFAULT_FREE_REFUND_DAYS,
        help_text=_("Holders may refund without a fee for this long (never past the new start)."),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Every ticket holder is told this."),
    )

    def times(self, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
        data = self.cleaned_data
        return (
            dt.datetime.combine(data["start_date"], data["start_time"], tzinfo=tz),
            dt.datetime.combine(data["end_date"], data["end_time"], tzinfo=tz),
        )


def _apply(form: forms.Form, exc: DomainError) -> None:
    """Show a service's refusal on the form: on its field when it names one."""
    field = exc.details.get("field")
    targets = {"starts_at": "start_date", "ends_at": "end_date"}
    name = targets.get(str(field), str(field)) if field else None
    form.add_error(name if name in form.fields else None, str(exc.message))


# --- Admins --------------------------------------------------------------------------------------


class _AftersalesAdmin(ReadOnlyAdminMixin, OrganizerScopedAdmin):
    # The lists show order codes and money: staff who may view orders see them.
    organizer_path = SESSION_ORGANIZER
    view_perm = Perm.ORDERS_VIEW
    manage_perm = Perm.CATALOG_MANAGE

    def may_manage(self, request: HttpRequest, session: Session) -> bool:
        return self.allowed_at(request, session.event.organizer_id, Perm.CATALOG_MANAGE)

    def session_for_tool(self, request: HttpRequest, session_id: str) -> Session:
        """The session, if the user may see it (else 404) and manage it (else 403)."""
        sessions = scope_queryset(
            Session.objects.select_related("event__organizer", "venue"),
            "event__organizer",
            self.organizer_ids(request, Perm.CATALOG_VIEW),
        )
        session = sessions.filter(pk=session_id).first() if session_id.isdigit() else None
        if session is None:
            raise Http404
        if not self.may_manage(request, session):
            raise PermissionDenied
        return session

    def tool_context(self, request: HttpRequest, session: Session, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "session": session,
            "session_url": reverse("admin:catalog_session_change", args=[session.pk]),
            "starts": _local(session.starts_at, session),
            "ends": _local(session.ends_at, session),
            **extra,
        }


@admin.register(SessionCancellation)
class SessionCancellationAdmin(_AftersalesAdmin):
    list_display = (
        "session",
        "state",
        "orders_done",
        "orders_total",
        "requested_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("state",)
    list_select_related = ("session__event", "session__venue", "requested_by")
    search_fields = ("public_id", "reason", "session__event__title", "session__public_id")
    ordering = ("-created_at", "-id")
    fields = (
        "session",
        "state",
        "reason",
        "requested_by",
        "orders_done",
        "orders_total",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("session__event__organizer", "session__venue", "requested_by")
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "new/<str:session_id>/",
                view(self.cancel_view),
                name="aftersales_sessioncancellation_new",
            ),
            path(
                "<path:object_id>/resume/",
                view(require_POST(self.resume_view)),
                name="aftersales_sessioncancellation_resume",
            ),
            *super().get_urls(),
        ]

    def cancel_view(self, request: HttpRequest, session_id: str) -> HttpResponse:
        session = self.session_for_tool(request, session_id)
        existing = cancellation_for_session(session)
        if existing is not None:
            return HttpResponseRedirect(
                reverse("admin:aftersales_sessioncancellation_change", args=[existing.pk])
            )
        form = CancelForm(request.POST or None)
        status = 200
        if request.method == "POST":
            if form.is_valid():
                try:
                    cancellation = session_cancel(
                        session=session, actor=user_of(request), reason=form.cleaned_data["reason"]
                    )
                except DomainError as exc:
                    _apply(form, exc)
                else:
                    self.message_user(
                        request,
                        gettext("The session is cancelled; its orders are being refunded."),
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(
                        reverse(
                            "admin:aftersales_sessioncancellation_change", args=[cancellation.pk]
                        )
                    )
            status = 400
        context = self.tool_context(
            request,
            session,
            title=gettext("Cancel %(session)s") % {"session": session},
            form=form,
            preview=cancellation_preview(session),
            submit_label=gettext("Cancel the session"),
            danger=True,
        )
        return TemplateResponse(request, TOOL_TEMPLATE, context, status=status)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The progress page: counted from the rows at each (automatic) reload."""
        cancellation = self.get_object(request, object_id)
        if not self.has_view_permission(request, cancellation):
            raise PermissionDenied
        session = cancellation.session
        progress = cancellation_progress(cancellation)
        context = self.tool_context(
            request,
            session,
            title=gettext("Cancellation of %(session)s") % {"session": session},
            original=cancellation,
            progress=progress,
            requested_at=_local(cancellation.created_at, session),
            finished_at=_local(cancellation.finished_at, session),
            reload_seconds=RELOAD_SECONDS if progress.running else 0,
            may_resume=self.may_manage(request, session),
            resume_url=reverse(
                "admin:aftersales_sessioncancellation_resume", args=[cancellation.pk]
            ),
            refunds_url=reverse("admin:aftersales_refund_changelist")
            if self._has_refund_admin()
            else "",
        )
        return TemplateResponse(request, PROGRESS_TEMPLATE, context)

    def _has_refund_admin(self) -> bool:
        try:
            reverse("admin:aftersales_refund_changelist")
        except NoReverseMatch:
            return False
        return True

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        cancellation = self.get_object(request, object_id)
        if not self.may_manage(request, cancellation.session):
            raise PermissionDenied
        result = session_cancellation_run(cancellation=cancellation, limit=RESUME_LIMIT)
        self.message_user(
            request,
            gettext("%(refunded)s orders refunded now; %(failed)s refused (see the log).")
            % {"refunded": result.refunded, "failed": result.failed},
            messages.WARNING if result.failed else messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse("admin:aftersales_sessioncancellation_change", args=[cancellation.pk])
        )


@admin.register(SessionReschedule)
class SessionRescheduleAdmin(_AftersalesAdmin):
    list_display = (
        "session",
        "old_start",
        "new_start",
        "free_until",
        "requested_by",
        "created_at",
    )
    list_select_related = ("session__event", "session__venue", "requested_by")
    search_fields = ("reason", "session__event__title", "session__public_id")
    ordering = ("-created_at", "-id")
    fields = (
        "session",
        "old_start",
        "old_end",
        "new_start",
        "new_end",
        "free_until",
        "reason",
        "requested_by",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description=_("old start (venue time)"), ordering="old_starts_at")
    def old_start(self, obj: SessionReschedule) -> str:
        return _local(obj.old_starts_at, obj.session)

    @admin.display(description=_("old end (venue time)"))
    def old_end(self, obj: SessionReschedule) -> str:
        return _local(obj.old_ends_at, obj.session)

    @admin.display(description=_("new start (venue time)"), ordering="new_starts_at")
    def new_start(self, obj: SessionReschedule) -> str:
        return _local(obj.new_starts_at, obj.session)

    @admin.display(description=_("new end (venue time)"))
    def new_end(self, obj: SessionReschedule) -> str:
        return _local(obj.new_ends_at, obj.session)

    @admin.display(description=_("free refunds until"), ordering="free_refund_until")
    def free_until(self, obj: SessionReschedule) -> str:
        return _local(obj.free_refund_until, obj.session)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "new/<str:session_id>/",
                self.admin_site.admin_view(self.reschedule_view),
                name="aftersales_sessionreschedule_new",
            ),
            *super().get_urls(),
        ]

    def reschedule_view(self, request: HttpRequest, session_id: str) -> HttpResponse:
        session = self.session_for_tool(request, session_id)
        tz = session.venue.tzinfo
        start = timezone.localtime(session.starts_at, tz)
        end = timezone.localtime(session.ends_at, tz)
        form = RescheduleForm(
            request.POST or None,
            initial={
                "start_date": start.date(),
                "start_time": start.time().replace(second=0, microsecond=0),
                "end_date": end.date(),
                "end_time": end.time().replace(second=0, microsecond=0),
                "free_refund_days": DEFAULT_FREE_REFUND_DAYS,
            },
        )
        status = 200
        if request.method == "POST":
            if form.is_valid():
                starts_at, ends_at = form.times(tz)
                try:
                    session_reschedule(
                        session=session,
                        new_starts_at=starts_at,
                        new_ends_at=ends_at,
                        actor=user_of(request),
                        reason=form.cleaned_data["reason"],
                        free_refund_days=form.cleaned_data["free_refund_days"],
                    )
                except DomainError as exc:
                    _apply(form, exc)
                else:
                    self.message_user(
                        request,
                        gettext("The session is rescheduled; its ticket holders are being told."),
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(
                        reverse("admin:catalog_session_change", args=[session.pk])
                    )
            status = 400
        context = self.tool_context(
            request,
            session,
            title=gettext("Reschedule %(session)s") % {"session": session},
            form=form,
            timezone_name=session.venue.timezone,
            submit_label=gettext("Reschedule"),
            danger=False,
        )
        return TemplateResponse(request, TOOL_TEMPLATE, context, status=status)
