"""The catalog in the operator console: organizer-scoped admins and the operators' tools.

Writes go through `catalog.services` where a service exists (event and session creation, seat
maps, batch import, recurrence, copy); plain field edits are saved by the admin and recorded in
the catalog change log (`change_record`) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Organizer
from piaowu.accounts.permissions import Perm, organizer_ids_with, require_perm
from piaowu.catalog import batch as catalog_batch
from piaowu.catalog import services
from piaowu.catalog.models import (
    CatalogChange,
    Category,
    Event,
    EventKind,
    FilmDetails,
    Hall,
    PriceTier,
    SalesChannel,
    ScenicDetails,
    SeatMap,
    Session,
    SportDetails,
    TripDetails,
    Venue,
)
from piaowu.catalog.selectors import seat_map_layout
from piaowu.console.admin_cancellations import session_tools
from piaowu.console.admin_forms import (
    BatchImportForm,
    ExportForm,
    RecurrenceForm,
    SeatMapGenerateForm,
    SeatMapImportForm,
    SessionCopyForm,
)
from piaowu.console.admin_scoping import (
    ORGANIZER_PATHS,
    ModelAdmin,
    ModelForm,
    OrganizerScopedAdmin,
    OrganizerScopedInline,
    ReadOnlyInlineMixin,
    StackedInline,
    TabularInline,
    apply_domain_error,
    changed_values,
    organizer_id_of,
    scope_queryset,
    user_of,
)
from piaowu.console.seatmap_svg import render_seat_map_svg
from piaowu.core.errors import DomainError

CHANGE_LIST_TEMPLATE = "console/admin/change_list.html"
CHANGE_FORM_TEMPLATE = "console/admin/change_form.html"
TOOL_TEMPLATE = "console/admin/tool.html"


def _problems_of(exc: DomainError) -> list[dict[str, Any]]:
    """A service's refusal as a list of readable problems (every one, not only the first)."""
    problems = exc.details.get("problems")
    if isinstance(problems, list) and problems:
        return [p if isinstance(p, dict) else {"message": str(p)} for p in problems]
    fields = exc.details.get("fields")
    if isinstance(fields, dict) and fields:
        return [{"problem": name, "message": str(message)} for name, message in fields.items()]
    return [{"problem": exc.code, "message": str(exc.message)}]


REPORT_SECTIONS = {"events": _("Events"), "sessions": _("Sessions")}
OUTCOME_LABELS = {
    "created": _("Created"),
    "updated": _("Updated"),
    "unchanged": _("Unchanged"),
}


def _report_context(report: dict[str, Any]) -> dict[str, Any]:
    """A batch report (`BatchReport.as_dict()`) as sections with counts and item rows."""
    sections = []
    for key, label in REPORT_SECTIONS.items():
        part = report.get(key)
        if not isinstance(part, dict):
            continue
        counts = [
            {"outcome": outcome, "label": outcome_label, "n": part.get(outcome, 0)}
            for outcome, outcome_label in OUTCOME_LABELS.items()
        ]
        items = [
            {
                "line": item.get("line"),
                "ref": item.get("ref"),
                "outcome": item.get("outcome"),
                "outcome_label": OUTCOME_LABELS.get(item.get("outcome", ""), item.get("outcome")),
                "changes": ", ".join(str(c) for c in item.get("changes") or []),
            }
            for item in part.get("items", [])
            if isinstance(item, dict)
        ]
        sections.append({"key": key, "label": label, "counts": counts, "items": items})
    return {"dry_run": bool(report.get("dry_run")), "sections": sections}


# --- Shared base ------------------------------------------------------------------------------


class CatalogAdmin(OrganizerScopedAdmin):
    """An organizer-scoped admin whose every write lands in the catalog change log."""

    change_list_template = CHANGE_LIST_TEMPLATE
    change_form_template = CHANGE_FORM_TEMPLATE
    save_as = False
    object_type: ClassVar[str] = ""

    def _organizer(self, obj: models.Model) -> Organizer:
        # Rows of this admin follow `organizer_path`; inline rows the path of their own model.
        path = self.organizer_path if isinstance(obj, self.model) else ORGANIZER_PATHS[type(obj)]
        organizer_id = organizer_id_of(obj, path)
        if organizer_id is None:
            raise ValueError(f"{obj!r} has no organizer")
        return Organizer.objects.get(pk=organizer_id)

    def _record(
        self,
        request: HttpRequest,
        obj: models.Model,
        verb: str,
        changes: dict[str, Any] | None = None,
    ) -> None:
        own = isinstance(obj, self.model) and self.object_type
        services.change_record(
            organizer=self._organizer(obj),
            actor=user_of(request),
            action=f"{own or type(obj).__name__.lower()}.{verb}",
            obj=obj,
            summary=str(obj),
            changes=changes,
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            self._record(request, obj, "updated" if change else "created", changed_values(form))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            self._record(request, obj, "deleted")
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        with transaction.atomic():
            # Record deletions first, while the rows still have their keys.
            for inline_form in formset.deleted_forms:
                if inline_form.instance.pk is not None:
                    self._record(request, inline_form.instance, "deleted")
            super().save_formset(request, form, formset, change)
            for obj in formset.new_objects:
                self._record(request, obj, "created")
            for obj, changed in formset.changed_objects:
                self._record(request, obj, "updated", {"fields": list(changed)})

    # Admin tools: links above the change list / change form, and their pages.

    def changelist_tools(self, request: HttpRequest) -> list[tuple[str, str]]:
        return []

    def object_tools(self, request: HttpRequest, obj: Any) -> list[tuple[str, str]]:
        return []

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "console_tools": self.changelist_tools(request)}
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "console_tools": self.object_tools(request, obj)}
        return super().change_view(request, object_id, form_url, extra_context)

    def tool_url(self, name: str, *args: Any) -> str:
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}", args=args
        )

    def tool_path(self, route: str, view: Callable[..., HttpResponse], name: str) -> URLPattern:
        opts = self.model._meta
        return path(
            route,
            self.admin_site.admin_view(view),
            name=f"{opts.app_label}_{opts.model_name}_{name}",
        )

    def render_tool(
        self,
        request: HttpRequest,
        *,
        title: str,
        form: forms.Form | None = None,
        obj: Any = None,
        problems: list[dict[str, Any]] | None = None,
        report: dict[str, Any] | None = None,
        intro: str = "",
        submit_label: str = "",
        status: int = 200,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "original": obj,
            "form": form,
            "problems": problems or [],
            "report": _report_context(report) if report is not None else None,
            "intro": intro,
            "submit_label": submit_label or gettext("Submit"),
            "has_file_field": form is not None and form.is_multipart(),
            "has_view_permission": True,
        }
        return TemplateResponse(request, TOOL_TEMPLATE, context, status=status)

    def require_manage(self, request: HttpRequest, obj: Any) -> None:
        from django.core.exceptions import PermissionDenied as DjangoPermissionDenied

        if not self.has_change_permission(request, obj):
            raise DjangoPermissionDenied


# --- Organizers' channels ---------------------------------------------------------------------


@admin.register(SalesChannel)
class SalesChannelAdmin(CatalogAdmin):
    object_type = "channel"
    list_display = ("name", "kind", "code", "organizer", "is_active")
    list_filter = ("kind", "is_active", ("organizer", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "code")
    ordering = ("organizer", "kind", "code")


@admin.register(Category)
class CategoryAdmin(ModelAdmin):
    """Categories are shared by every organizer: staff see them, platform operators edit."""

    list_display = ("slug", "name", "name_en", "sort_order")
    search_fields = ("slug", "name", "name_en")

    def has_module_permission(self, request: HttpRequest) -> bool:
        ids = organizer_ids_with(user_of(request), Perm.CATALOG_VIEW)
        return ids is None or bool(ids)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        user = user_of(request)
        return bool(user and user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_add_permission(request)


# --- Venues, halls, seat maps -----------------------------------------------------------------


class VenueForm(ModelForm):
    services = forms.MultipleChoiceField(
        label=_("services"),
        choices=Venue.Service.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Venue
        fields = (
            "organizer",
            "name",
            "name_en",
            "is_active",
            "city",
            "city_en",
            "district",
            "address",
            "address_en",
            "timezone",
            "latitude",
            "longitude",
            "phone",
            "transport_info",
            "transport_info_en",
            "services",
            "description",
        )


class HallInline(OrganizerScopedInline, TabularInline):
    model = Hall
    fields = ("name", "name_en", "sort_order")
    extra = 0
    show_change_link = True
    parent_organizer_path = "organizer"


@admin.register(Venue)
class VenueAdmin(CatalogAdmin):
    form = VenueForm
    object_type = "venue"
    organizer_path = "organizer"
    list_display = ("name", "city", "district", "organizer", "hall_count", "is_active")
    list_filter = ("city", "is_active", ("organizer", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "name_en", "city", "address")
    inlines = (HallInline,)
    fieldsets = (
        (None, {"fields": ("organizer", "name", "name_en", "is_active")}),
        (
            _("Where"),
            {
                "fields": (
                    ("city", "city_en"),
                    "district",
                    "address",
                    "address_en",
                    "timezone",
                    ("latitude", "longitude"),
                )
            },
        ),
        (
            _("For visitors"),
            {"fields": ("phone", "transport_info", "transport_info_en", "services", "description")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Venue]:
        return super().get_queryset(request).annotate(_hall_count=Count("halls"))

    @admin.display(description=_("halls"), ordering="_hall_count")
    def hall_count(self, obj: Venue) -> int:
        return int(getattr(obj, "_hall_count", 0))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("organizer",) if obj is not None else ()


class SeatMapVersionInline(ReadOnlyInlineMixin, OrganizerScopedInline, TabularInline):
    model = SeatMap
    fields = ("version", "name", "source", "seat_count", "created_at", "created_by")
    readonly_fields = fields
    show_change_link = True
    parent_organizer_path = "venue__organizer"
    verbose_name_plural = _("seat-map versions")


@admin.register(Hall)
class HallAdmin(CatalogAdmin):
    object_type = "hall"
    organizer_path = "venue__organizer"
    list_display = ("name", "venue", "current_version", "current_seats", "sort_order")
    list_filter = (("venue", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name", "name_en", "venue__name")
    autocomplete_fields = ("venue",)
    inlines = (SeatMapVersionInline,)
    list_select_related = ("venue",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Hall]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _version=Max("seat_maps__version"),
                _seats=Subquery(
                    SeatMap.objects.filter(hall=OuterRef("pk"))
                    .order_by("-version")
                    .values("seat_count")[:1]
                ),
            )
        )

    @admin.display(description=_("seat-map version"), ordering="_version")
    def current_version(self, obj: Hall) -> str:
        version = getattr(obj, "_version", None)
        return f"v{version}" if version else "—"

    @admin.display(description=_("seats"))
    def current_seats(self, obj: Hall) -> int | str:
        seats = getattr(obj, "_seats", None)
        return seats if seats is not None else "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("venue",) if obj is not None else ()

    def object_tools(self, request: HttpRequest, obj: Any) -> list[tuple[str, str]]:
        if obj is None or not self.has_change_permission(request, obj):
            return []
        return [
            (gettext("Import seat map"), self.tool_url("import_seat_map", obj.pk)),
            (gettext("Generate rectangular seat map"), self.tool_url("generate_seat_map", obj.pk)),
        ]

    def get_urls(self) -> list[URLPattern]:
        return [
            self.tool_path(
                "<path:object_id>/import-seat-map/", self.import_view, "import_seat_map"
            ),
            self.tool_path(
                "<path:object_id>/generate-seat-map/", self.generate_view, "generate_seat_map"
            ),
            *super().get_urls(),
        ]

    def _hall_for_tool(self, request: HttpRequest, object_id: str) -> Hall:
        hall = self.get_object(request, object_id)
        self.require_manage(request, hall)
        assert hall is not None
        return hall

    def _seat_map_done(self, request: HttpRequest, seat_map: SeatMap) -> HttpResponse:
        self.message_user(
            request,
            gettext("Seat map version %(v)d saved with %(n)d seats.")
            % {"v": seat_map.version, "n": seat_map.seat_count},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:catalog_seatmap_change", args=[seat_map.pk])
        )

    def import_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        hall = self._hall_for_tool(request, object_id)
        title = gettext("Import seat map for %(hall)s") % {"hall": hall}
        intro = gettext(
            "Upload a JSON or CSV seat map. It becomes the hall's next version; sessions that "
            "already sell keep the version they were created with."
        )
        form = SeatMapImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                seat_map = services.seat_map_import(
                    hall=hall,
                    content=form.cleaned_data["content"],
                    fmt=form.cleaned_data["fmt"],
                    actor=user_of(request),
                )
            except DomainError as exc:
                return self.render_tool(
                    request,
                    title=title,
                    form=form,
                    obj=hall,
                    intro=intro,
                    problems=_problems_of(exc),
                    status=400,
                )
            return self._seat_map_done(request, seat_map)
        return self.render_tool(
            request, title=title, form=form, obj=hall, intro=intro, submit_label=gettext("Import")
        )

    def generate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        hall = self._hall_for_tool(request, object_id)
        title = gettext("Generate a rectangular seat map for %(hall)s") % {"hall": hall}
        form = SeatMapGenerateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                seat_map = services.seat_map_generate(
                    hall=hall,
                    blocks=form.blocks(),
                    name=form.cleaned_data["name"],
                    stage=form.cleaned_data["stage"],
                    actor=user_of(request),
                )
            except DomainError as exc:
                return self.render_tool(
                    request,
                    title=title,
                    form=form,
                    obj=hall,
                    problems=_problems_of(exc),
                    status=400,
                )
            return self._seat_map_done(request, seat_map)
        return self.render_tool(
            request, title=title, form=form, obj=hall, submit_label=gettext("Generate")
        )


@admin.register(SeatMap)
class SeatMapAdmin(CatalogAdmin):
    """Seat-map versions are immutable: this admin only lists and previews them."""

    organizer_path = "hall__venue__organizer"
    list_display = ("hall", "version", "name", "source", "seat_count", "created_at", "created_by")
    list_filter = ("source", ("hall__venue", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "hall__name", "hall__venue__name")
    list_select_related = ("hall__venue", "created_by")
    fields = (
        "hall",
        "version",
        "name",
        "source",
        "seat_count",
        "stage_label",
        "created_by",
        "created_at",
        "used_by_sessions",
        "preview",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("sessions using this version"))
    def used_by_sessions(self, obj: SeatMap) -> int:
        return obj.sessions.count()

    @admin.display(description=_("preview"))
    def preview(self, obj: SeatMap) -> SafeString:
        return render_seat_map_svg(seat_map_layout(obj))


# --- Events -----------------------------------------------------------------------------------


class EventAddForm(ModelForm):
    """Creating an event runs `event_create`, so the admin validates exactly like the API."""

    actor: Any = None
    code = forms.SlugField(
        label=_("code"),
        max_length=60,
        required=False,
        help_text=_("Your own reference, unique per organizer. Left empty, one is made up."),
    )
    trip_mode = forms.ChoiceField(
        label=_("mode"), choices=[("", "—"), *TripDetails.Mode.choices], required=False
    )
    trip_origin = forms.CharField(label=_("origin"), max_length=60, required=False)
    trip_destination = forms.CharField(label=_("destination"), max_length=60, required=False)

    class Meta:
        model = Event
        fields = (
            "organizer",
            "kind",
            "code",
            "title",
            "title_en",
            "category",
            "status",
            "subtitle",
            "description",
            "description_en",
            "performers",
            "tags",
            "duration_minutes",
            "age_advice",
            "poster_color",
            "popularity",
        )

    def _post_clean(self) -> None:
        # The service is the validator and the writer; the admin view's transaction wraps it.
        if self.errors:
            return
        data = dict(self.cleaned_data)
        details: dict[str, Any] = {}
        if data["kind"] == EventKind.TRIP:
            details = {
                "mode": data.pop("trip_mode", ""),
                "origin": data.pop("trip_origin", ""),
                "destination": data.pop("trip_destination", ""),
            }
            details = {k: v for k, v in details.items() if v}
        for name in ("trip_mode", "trip_origin", "trip_destination"):
            data.pop(name, None)
        organizer = data.pop("organizer")
        kind = data.pop("kind")
        title = data.pop("title")
        try:
            self.instance = services.event_create(
                organizer=organizer,
                kind=kind,
                title=title,
                code=data.pop("code") or "",
                category=data.pop("category"),
                status=data.pop("status"),
                details=details,
                actor=self.actor,
                **{k: v for k, v in data.items() if v not in (None, "")},
            )
        except DomainError as exc:
            apply_domain_error(self, exc)


class _DetailInline(OrganizerScopedInline, StackedInline):
    parent_organizer_path = "organizer"
    max_num = 1
    min_num = 0
    can_delete = False


class FilmDetailsInline(_DetailInline):
    model = FilmDetails


class SportDetailsInline(_DetailInline):
    model = SportDetails


class ScenicDetailsInline(_DetailInline):
    model = ScenicDetails


class TripDetailsInline(_DetailInline):
    model = TripDetails


DETAIL_INLINES: dict[str, type[_DetailInline]] = {
    EventKind.FILM: FilmDetailsInline,
    EventKind.SPORT: SportDetailsInline,
    EventKind.SCENIC: ScenicDetailsInline,
    EventKind.TRIP: TripDetailsInline,
}


class SessionInline(ReadOnlyInlineMixin, OrganizerScopedInline, TabularInline):
    """The event's sessions, compact; each links to its own page."""

    model = Session
    fields = ("local_start", "venue", "hall", "capacity_mode", "status", "sales")
    readonly_fields = fields
    show_change_link = True
    parent_organizer_path = "organizer"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return super().get_queryset(request).select_related("venue", "hall", "event")

    @admin.display(description=_("starts (venue time)"))
    def local_start(self, obj: Session) -> str:
        return f"{obj.local_starts_at:%Y-%m-%d %H:%M}"

    @admin.display(description=_("sales"))
    def sales(self, obj: Session) -> str:
        return str(SALES_STATE_LABELS.get(obj.sales_state(), obj.sales_state()))


SALES_STATE_LABELS = {
    "not_open": _("Not open yet"),
    "on_sale": _("On sale"),
    "closed": _("Closed"),
    "cancelled": _("Cancelled"),
}


@admin.register(Event)
class EventAdmin(CatalogAdmin):
    object_type = "event"
    organizer_path = "organizer"
    list_display = (
        "title",
        "kind",
        "status",
        "organizer",
        "category",
        "session_count",
        "last_start",
        "popularity",
    )
    list_filter = (
        "kind",
        "status",
        ("organizer", admin.RelatedOnlyFieldListFilter),
        ("category", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("title", "title_en", "code", "performers", "tags")
    ordering = ("-popularity", "title")  # annotated (GROUP BY) querysets drop Meta.ordering
    list_select_related = ("organizer", "category")
    readonly_fields = ("public_id",)
    fieldsets = (
        (None, {"fields": ("organizer", "kind", "code", "public_id", "status", "category")}),
        (
            _("Texts"),
            {
                "fields": (
                    "title",
                    "title_en",
                    "subtitle",
                    "description",
                    "description_en",
                    "performers",
                    "tags",
                )
            },
        ),
        (
            _("Display"),
            {"fields": ("duration_minutes", "age_advice", "poster", "poster_color", "popularity")},
        ),
    )
    add_fieldsets = (
        (None, {"fields": ("organizer", "kind", "code", "status", "category")}),
        (
            _("Texts"),
            {
                "fields": (
                    "title",
                    "title_en",
                    "subtitle",
                    "description",
                    "description_en",
                    "performers",
                    "tags",
                )
            },
        ),
        (
            _("Display"),
            {"fields": ("duration_minutes", "age_advice", "poster_color", "popularity")},
        ),
        (
            _("Trip (for trips only)"),
            {"fields": ("trip_mode", "trip_origin", "trip_destination")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _session_count=Count("sessions"),
                _last_start=Max("sessions__starts_at"),
            )
        )

    @admin.display(description=_("sessions"), ordering="_session_count")
    def session_count(self, obj: Event) -> int:
        return int(getattr(obj, "_session_count", 0))

    @admin.display(description=_("last session"), ordering="_last_start")
    def last_start(self, obj: Event) -> str:
        value = getattr(obj, "_last_start", None)
        return f"{timezone.localtime(value):%Y-%m-%d %H:%M}" if value else "—"

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("organizer", "kind", "public_id") if obj is not None else ()

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = type("EventAddForm", (EventAddForm,), {"actor": user_of(request)})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[Any]]:
        if obj is None:
            return []
        detail = DETAIL_INLINES.get(obj.kind)
        return [detail, SessionInline] if detail else [SessionInline]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        # On add, the form's `_post_clean` already created the event through `event_create`.

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)
            services.event_refresh_search_text(form.instance)

    def changelist_tools(self, request: HttpRequest) -> list[tuple[str, str]]:
        if not self.has_add_permission(request):
            return []
        return [
            (gettext("Import events and sessions (CSV/XLSX)"), self.tool_url("import")),
            (gettext("Export"), self.tool_url("export")),
        ]

    def object_tools(self, request: HttpRequest, obj: Any) -> list[tuple[str, str]]:
        if obj is None or not self.has_change_permission(request, obj):
            return []
        return [
            (
                gettext("Create sessions from a recurrence rule"),
                self.tool_url("recurring", obj.pk),
            ),
            (
                gettext("Sessions"),
                reverse(f"{self.admin_site.name}:catalog_session_changelist")
                + f"?event__id__exact={obj.pk}",
            ),
        ]

    def get_urls(self) -> list[URLPattern]:
        return [
            self.tool_path("import/", self.import_view, "import"),
            self.tool_path("export/", self.export_view, "export"),
            self.tool_path(
                "<path:object_id>/recurring-sessions/", self.recurring_view, "recurring"
            ),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            from django.core.exceptions import PermissionDenied as DjangoPermissionDenied

            raise DjangoPermissionDenied
        organizers = self.organizers_for(request, Perm.CATALOG_MANAGE)
        title = gettext("Import events and sessions")
        form = BatchImportForm(request.POST or None, request.FILES or None, organizers=organizers)
        intro = gettext(
            "Upload a CSV or XLSX file with one row per session (the event's columns repeat). "
            "Rows are matched by event and session code: new ones are created, changed ones "
            "updated. Tick 'Dry run' to see the report without writing anything."
        )
        if request.method == "POST" and form.is_valid():
            organizer = form.cleaned_data["organizer"]
            require_perm(user_of(request), organizer, Perm.CATALOG_MANAGE)
            dry_run = bool(form.cleaned_data["dry_run"])
            try:
                report = services.catalog_batch_import(
                    organizer=organizer,
                    content=form.cleaned_data["content"],
                    fmt=form.cleaned_data["fmt"],
                    actor=user_of(request),
                    dry_run=dry_run,
                )
            except DomainError as exc:
                return self.render_tool(
                    request,
                    title=title,
                    form=form,
                    intro=intro,
                    problems=_problems_of(exc),
                    status=400,
                )
            report_data = {**report.as_dict(), "dry_run": dry_run}
            if not dry_run:
                self.message_user(request, gettext("The file was imported."), messages.SUCCESS)
            return self.render_tool(
                request,
                title=title,
                form=form,
                intro=intro,
                report=report_data,
                submit_label=gettext("Import"),
            )
        return self.render_tool(
            request, title=title, form=form, intro=intro, submit_label=gettext("Import")
        )

    def export_view(self, request: HttpRequest) -> HttpResponse:
        organizers = self.organizers_for(request, Perm.CATALOG_VIEW)
        if not organizers.exists():
            from django.core.exceptions import PermissionDenied as DjangoPermissionDenied

            raise DjangoPermissionDenied
        form = ExportForm(request.POST or None, organizers=organizers)
        if request.method == "POST" and form.is_valid():
            organizer: Organizer = form.cleaned_data["organizer"]
            require_perm(user_of(request), organizer, Perm.CATALOG_VIEW)
            fmt = form.cleaned_data["fmt"]
            content = catalog_batch.catalog_export(organizer=organizer, fmt=fmt)
            content_type = (
                "text/csv; charset=utf-8"
                if fmt == "csv"
                else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            )
            response = HttpResponse(content, content_type=content_type)
            stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
            response["Content-Disposition"] = (
                f'attachment; filename="catalog-{organizer.slug}-{stamp}.{fmt}"'
            )
            return response
        return self.render_tool(
            request,
            title=gettext("Export events and sessions"),
            form=form,
            submit_label=gettext("Export"),
        )

    def recurring_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        event = self.get_object(request, object_id)
        self.require_manage(request, event)
        assert event is not None
        return recurring_sessions_tool(self, request, event)


def recurring_sessions_tool(
    model_admin: CatalogAdmin, request: HttpRequest, event: Event, template: Session | None = None
) -> HttpResponse:
    """The "create sessions from a recurrence rule" page for `event` (shared by both admins)."""
    organizer_id = event.organizer_id
    venues = Venue.objects.filter(organizer_id=organizer_id, is_active=True)
    halls = Hall.objects.filter(venue__organizer_id=organizer_id).select_related("venue")
    sessions = (
        Session.objects.filter(event__organizer_id=organizer_id)
        .select_related("event", "venue")
        .order_by("-starts_at")
    )
    initial: dict[str, Any] = {}
    template_id = request.GET.get("template")
    if template is None and template_id and template_id.isdigit():
        template = sessions.filter(pk=int(template_id)).first()
    if template is not None:
        initial = {
            "tier_template": template.pk,
            "venue": template.venue_id,
            "hall": template.hall_id,
            "capacity_mode": template.capacity_mode,
            "capacity": template.capacity,
        }
    form = RecurrenceForm(
        request.POST or None, initial=initial, venues=venues, halls=halls, sessions=sessions
    )
    title = gettext("Create sessions of %(event)s from a recurrence rule") % {"event": event}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = services.sessions_create_recurring(
                event=event,
                venue=data["venue"],
                hall=data["hall"],
                first_date=data["first_date"],
                last_date=data["last_date"],
                times=data["times"],
                weekdays=set(data["weekdays"]) or None,
                tiers=services.tier_specs_of(data["tier_template"]),
                capacity_mode=data["capacity_mode"],
                capacity=data["capacity"],
                sales_open_days_before=data["sales_open_days_before"],
                sales_close_minutes_before=data["sales_close_minutes_before"] or 0,
                actor=user_of(request),
            )
        except DomainError as exc:
            return model_admin.render_tool(
                request, title=title, form=form, obj=event, problems=_problems_of(exc), status=400
            )
        model_admin.message_user(
            request,
            gettext("%(n)d sessions created.") % {"n": len(created)},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse(f"{model_admin.admin_site.name}:catalog_session_changelist")
            + f"?event__id__exact={event.pk}"
        )
    return model_admin.render_tool(
        request, title=title, form=form, obj=event, submit_label=gettext("Create sessions")
    )


# --- Sessions ---------------------------------------------------------------------------------


class SessionAddForm(ModelForm):
    """Creating a session runs `session_create`, so the admin validates exactly like the API."""

    actor: Any = None
    template_sessions: Any = None
    code = forms.SlugField(
        label=_("code"),
        max_length=60,
        required=False,
        help_text=_("Unique within the event. Left empty, the start date and time are used."),
    )
    start_date = forms.DateField(label=_("date"), widget=forms.DateInput(attrs={"type": "date"}))
    start_time = forms.TimeField(
        label=_("start time"),
        help_text=_("Local time at the venue."),
        widget=forms.TimeInput(attrs={"type": "time"}),
    )
    tier_template = forms.ModelChoiceField(
        label=_("Copy price tiers from"),
        queryset=Session.objects.none(),
        required=False,
        help_text=_("Or give one price tier below; more can be added after saving."),
    )
    tier_name = forms.CharField(label=_("price tier name"), max_length=60, required=False)
    tier_price = forms.DecimalField(
        label=_("price"), max_digits=12, decimal_places=2, min_value=Decimal(0), required=False
    )

    class Meta:
        model = Session
        fields = ("event", "venue", "hall", "capacity_mode", "capacity", "code", "language_note")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["tier_template"]
        if self.template_sessions is not None and isinstance(field, forms.ModelChoiceField):
            field.queryset = self.template_sessions

    def _post_clean(self) -> None:
        if self.errors:
            return
        data = self.cleaned_data
        template: Session | None = data.get("tier_template")
        if template is not None:
            tiers = services.tier_specs_of(template)
        elif data.get("tier_name") and data.get("tier_price") is not None:
            tiers = [
                services.TierSpec(code="std", name=data["tier_name"], price=data["tier_price"])
            ]
        else:
            self.add_error(
                "tier_template",
                gettext(
                    "Choose a session to copy price tiers from, or give a tier name and price."
                ),
            )
            return
        starts_at = dt.datetime.combine(data["start_date"], data["start_time"])
        try:
            self.instance = services.session_create(
                event=data["event"],
                venue=data["venue"],
                hall=data.get("hall"),
                starts_at=starts_at,
                tiers=tiers,
                capacity_mode=data["capacity_mode"],
                capacity=data.get("capacity"),
                code=data.get("code") or "",
                language_note=data.get("language_note") or "",
                actor=self.actor,
            )
        except DomainError as exc:
            apply_domain_error(self, exc)


class PriceTierInline(OrganizerScopedInline, TabularInline):
    model = PriceTier
    parent_organizer_path = "event__organizer"
    extra = 0
    fields = (
        "code",
        "name",
        "name_en",
        "audience",
        "price",
        "currency",
        "seat_type",
        "section_codes",
        "capacity",
        "min_per_order",
        "max_per_order",
        "color",
        "sort_order",
        "is_active",
    )


class SalesStateFilter(admin.SimpleListFilter):
    title = _("sales")
    parameter_name = "sales"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(SALES_STATE_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        cancelled = Q(status=Session.Status.CANCELLED) | Q(event__status=Event.Status.CANCELLED)
        value = self.value()
        if value == "cancelled":
            return queryset.filter(cancelled)
        if value == "not_open":
            return queryset.exclude(cancelled).filter(sales_open_at__gt=now)
        if value == "on_sale":
            return queryset.exclude(cancelled).filter(
                sales_open_at__lte=now, sales_close_at__gt=now
            )
        if value == "closed":
            return queryset.exclude(cancelled).filter(sales_close_at__lte=now)
        return queryset


@admin.register(Session)
class SessionAdmin(CatalogAdmin):
    object_type = "session"
    organizer_path = "event__organizer"
    list_display = (
        "event",
        "local_start",
        "venue",
        "hall",
        "capacity_mode",
        "capacity",
        "status",
        "sales",
        "seat_map_version",
    )
    list_filter = (
        SalesStateFilter,
        "status",
        "capacity_mode",
        ("venue", admin.RelatedOnlyFieldListFilter),
        ("event__organizer", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("event__title", "event__title_en", "code", "public_id", "venue__name")
    date_hierarchy = "starts_at"
    list_select_related = ("event", "venue", "hall", "seat_map")
    autocomplete_fields = ("event", "venue", "hall")
    inlines = (PriceTierInline,)
    fieldsets = (
        (None, {"fields": ("event", "public_id", "code", "status")}),
        (_("Where"), {"fields": ("venue", "hall", "seat_map", "capacity_mode", "capacity")}),
        (
            _("When (venue time)"),
            {"fields": ("starts_at", "ends_at", "sales_open_at", "sales_close_at")},
        ),
        (None, {"fields": ("language_note",)}),
        (_("Admission"), {"fields": ("rotating_qr", "reentry_allowed")}),
        (
            _("After-sales"),
            {"fields": ("transfers_allowed", "transfer_cutoff_hours", "waitlist_mode")},
        ),
    )
    add_fieldsets = (
        (None, {"fields": ("event", "code", "language_note")}),
        (_("Where"), {"fields": ("venue", "hall", "capacity_mode", "capacity")}),
        (_("When"), {"fields": ("start_date", "start_time")}),
        (_("Price tiers"), {"fields": ("tier_template", "tier_name", "tier_price")}),
    )

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if lookup == "event__id__exact":
            return True
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description=_("starts (venue time)"), ordering="starts_at")
    def local_start(self, obj: Session) -> str:
        return f"{obj.local_starts_at:%Y-%m-%d %H:%M}"

    @admin.display(description=_("sales"))
    def sales(self, obj: Session) -> str:
        return str(SALES_STATE_LABELS.get(obj.sales_state(), obj.sales_state()))

    @admin.display(description=_("seat map"))
    def seat_map_version(self, obj: Session) -> str:
        return f"v{obj.seat_map.version}" if obj.seat_map else "—"

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # Where a session sells and on which seat-map version are fixed once it exists; it is
        # cancelled only by "Cancel session" (which refunds its orders).
        return ("event", "public_id", "venue", "hall", "seat_map", "capacity_mode", "status")

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            templates = scope_queryset(
                Session.objects.select_related("event", "venue").order_by("-starts_at"),
                "event__organizer",
                self.organizer_ids(request, Perm.CATALOG_MANAGE),
            )
            kwargs["form"] = type(
                "SessionAddForm",
                (SessionAddForm,),
                {"actor": user_of(request), "template_sessions": templates},
            )
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[Any]]:
        return [] if obj is None else [PriceTierInline]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if object_id is None:
            return super().changeform_view(request, object_id, form_url, extra_context)
        session = self.get_object(request, object_id)
        assert session is not None
        # Show and read the session's times in its venue's zone, not the server's.
        with timezone.override(session.venue.tzinfo):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
        return response

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)

    def object_tools(self, request: HttpRequest, obj: Any) -> list[tuple[str, str]]:
        if obj is None or not self.has_change_permission(request, obj):
            return []
        return [
            (gettext("Copy session"), self.tool_url("copy", obj.pk)),
            (
                gettext("Create sessions from a recurrence rule"),
                self.tool_url("recurring", obj.pk),
            ),
            *session_tools(obj),  # cancel / reschedule (admin_cancellations)
        ]

    def get_urls(self) -> list[URLPattern]:
        return [
            self.tool_path("<path:object_id>/copy/", self.copy_view, "copy"),
            self.tool_path(
                "<path:object_id>/recurring-sessions/", self.recurring_view, "recurring"
            ),
            *super().get_urls(),
        ]

    def copy_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        session = self.get_object(request, object_id)
        self.require_manage(request, session)
        assert session is not None
        title = gettext("Copy %(session)s") % {"session": session}
        intro = gettext(
            "The copy keeps the venue, hall, seat-map version, capacity and price tiers; "
            "the sales window moves with the start."
        )
        form = SessionCopyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                copy = services.session_copy(
                    session=session,
                    starts_at=form.starts_at(session.venue.tzinfo),
                    actor=user_of(request),
                )
            except DomainError as exc:
                return self.render_tool(
                    request,
                    title=title,
                    form=form,
                    obj=session,
                    intro=intro,
                    problems=_problems_of(exc),
                    status=400,
                )
            self.message_user(request, gettext("Session copied."), messages.SUCCESS)
            return HttpResponseRedirect(self.tool_url("change", copy.pk))
        return self.render_tool(
            request, title=title, form=form, obj=session, intro=intro, submit_label=gettext("Copy")
        )

    def recurring_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        session = self.get_object(request, object_id)
        self.require_manage(request, session)
        assert session is not None
        return recurring_sessions_tool(self, request, session.event, template=session)


# --- Change log -------------------------------------------------------------------------------


@admin.register(CatalogChange)
class CatalogChangeAdmin(OrganizerScopedAdmin):
    """The change log is append-only: nobody adds, edits or deletes rows here."""

    organizer_path = "organizer"
    list_display = ("at", "action", "object_type", "object_ref", "summary", "actor", "organizer")
    list_filter = (
        "action",
        "object_type",
        ("organizer", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("object_ref", "summary", "actor__email", "action")
    date_hierarchy = "at"
    list_select_related = ("actor", "organizer")
    fields = (
        "at",
        "organizer",
        "actor",
        "action",
        "object_type",
        "object_ref",
        "summary",
        "pretty_changes",
    )
    readonly_fields = fields

    @admin.display(description=_("changes"))
    def pretty_changes(self, obj: CatalogChange) -> SafeString:
        import json

        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>",
            json.dumps(obj.changes, ensure_ascii=False, indent=2, sort_keys=True),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
