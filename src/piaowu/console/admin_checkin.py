"""Check-in in the operator console: gates, scanners, the scan log and admissions, scoped to
the organizers of the venues.

Gates and devices are managed where the user holds `catalog.manage` and seen where they hold
`gate.scan`. Writes go through `checkin.services`: a gate through `gate_create` /
`gate_update`; a device through `device_register`, whose token is shown once in the page's
message (only its hash is stored — a lost token means registering a new device), and the
"Switch off selected devices" action (`device_deactivate`). Scans and admissions are
read-only: they change only by scanning.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import User
from piaowu.accounts.permissions import Perm, organizer_ids_with
from piaowu.checkin import services
from piaowu.checkin.models import Admission, Device, Gate, Scan
from piaowu.console.admin_scoping import (
    ModelForm,
    OrganizerScopedAdmin,
    ReadOnlyAdminMixin,
    apply_domain_error,
    scope_queryset,
    user_of,
)
from piaowu.core.errors import DomainError

VENUE_ORGANIZER = "venue__organizer"


class _CheckinAdmin(OrganizerScopedAdmin):
    view_perm = Perm.GATE_SCAN
    manage_perm = Perm.CATALOG_MANAGE
    organizer_path = VENUE_ORGANIZER

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # scans point at gates and devices: switch them off instead


class GateForm(ModelForm):
    class Meta:
        model = Gate
        fields = ("venue", "name", "entrances", "is_active")

    def _post_clean(self) -> None:
        if self.errors:
            return
        data = self.cleaned_data
        try:
            if self.instance.pk is None:
                gate = services.gate_create(
                    venue=data["venue"], name=data["name"], entrances=data.get("entrances") or ""
                )
                if not data.get("is_active", True):
                    gate = services.gate_update(gate=gate, active=False)
                self.instance = gate
            else:
                self.instance = services.gate_update(
                    gate=self.instance,
                    name=data["name"],
                    entrances=data.get("entrances") or "",
                    active=bool(data.get("is_active")),
                )
        except DomainError as exc:
            apply_domain_error(self, exc)


@admin.register(Gate)
class GateAdmin(_CheckinAdmin):
    form = GateForm
    list_display = ("name", "venue", "entrances", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "venue__name")
    list_select_related = ("venue",)
    ordering = ("venue__name", "name")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("venue",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass  # the form's clean already wrote through the services


class DeviceAddForm(ModelForm):
    actor: User | None = None

    class Meta:
        model = Device
        fields = ("venue", "name")

    def _post_clean(self) -> None:
        if self.errors:
            return
        try:
            device, token = services.device_register(
                venue=self.cleaned_data["venue"], name=self.cleaned_data["name"], actor=self.actor
            )
        except DomainError as exc:
            apply_domain_error(self, exc)
            return
        self.instance = device
        self.token = token


@admin.register(Device)
class DeviceAdmin(_CheckinAdmin):
    list_display = ("name", "venue", "is_active", "browser_user", "last_seen_at", "last_pack_at")
    list_filter = ("is_active",)
    search_fields = ("name", "venue__name")
    list_select_related = ("venue", "browser_user")
    ordering = ("venue__name", "name")
    actions = ("deactivate",)
    fields = (
        "venue",
        "name",
        "is_active",
        "browser_user",
        "created_by",
        "created_at",
        "last_seen_at",
        "last_pack_at",
    )
    readonly_fields = fields

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("venue", "name") if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = type("DeviceAddForm", (DeviceAddForm,), {"actor": user_of(request)})
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nothing to edit on a device; the action switches it off (needs the manage right).
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        token = getattr(form, "token", None)
        if token:
            self.message_user(
                request,
                gettext("Device token (shown only now — enter it in the scanner): %(token)s")
                % {"token": token},
                messages.WARNING,
            )

    def has_deactivate_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, Perm.CATALOG_MANAGE)

    @admin.action(description=_("Switch off selected devices"), permissions=("deactivate",))
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        done = 0
        for device in queryset:
            if self.allowed_at(request, self.object_organizer_id(device), Perm.CATALOG_MANAGE):
                services.device_deactivate(device=device, actor=user_of(request))
                done += 1
        self.message_user(
            request,
            ngettext("%(n)d device switched off.", "%(n)d devices switched off.", done)
            % {"n": done},
            messages.SUCCESS,
        )


class _ReadOnly(ReadOnlyAdminMixin, _CheckinAdmin):
    """Scans and admissions are append-only records of what gates did."""


class GateFilter(admin.SimpleListFilter):
    """Gates of the user's organizers only (Django's related filter would list every gate)."""

    title = _("gate")
    parameter_name = "gate"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        gates = scope_queryset(
            Gate.objects.select_related("venue").order_by("venue__name", "name"),
            VENUE_ORGANIZER,
            organizer_ids_with(user_of(request), Perm.GATE_SCAN),
        )
        return [(gate.public_id, str(gate)) for gate in gates]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(gate__public_id=value) if value else queryset


@admin.register(Scan)
class ScanAdmin(_ReadOnly):
    organizer_path = "gate__venue__organizer"
    list_display = (
        "scanned_at",
        "outcome",
        "accepted",
        "conflict",
        "direction",
        "source",
        "gate",
        "device",
        "ticket",
    )
    list_filter = ("outcome", "conflict", "accepted", "source", "direction", GateFilter)
    search_fields = ("nonce", "ticket__serial")
    list_select_related = ("gate__venue", "device", "ticket")
    ordering = ("-scanned_at", "-id")
    fields = (
        "scanned_at",
        "recorded_at",
        "outcome",
        "accepted",
        "conflict",
        "device_accepted",
        "direction",
        "source",
        "session",
        "gate",
        "device",
        "operator",
        "ticket",
        "nonce",
        "raw",
    )
    readonly_fields = fields


@admin.register(Admission)
class AdmissionAdmin(_ReadOnly):
    organizer_path = "session__event__organizer"
    list_display = ("ticket", "session", "first_at", "first_gate", "inside", "entries", "last_at")
    list_filter = ("inside",)
    search_fields = ("ticket__serial",)
    list_select_related = ("ticket", "session__event", "session__venue", "first_gate")
    ordering = ("-first_at", "-id")
    fields = (
        "ticket",
        "session",
        "first_at",
        "first_gate",
        "first_device",
        "inside",
        "entries",
        "last_at",
    )
    readonly_fields = fields


__all__ = ["AdmissionAdmin", "DeviceAdmin", "GateAdmin", "ScanAdmin"]
