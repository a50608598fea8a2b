"""Organizer scoping for the operator console (Django admin).

Our roles replace Django's per-model permissions: every admin here answers "may this user see /
change this row?" with `piaowu.accounts.permissions` at the organizer the row belongs to.
Querysets are narrowed to the user's organizers, so another organizer's row is a 404 by URL,
and foreign-key choices offer only rows of organizers where the user may write.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from piaowu.accounts.models import Membership, Organizer, User
from piaowu.accounts.permissions import Perm, organizer_ids_with
from piaowu.catalog.models import (
    CatalogChange,
    Event,
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
from piaowu.core.errors import DomainError

_T = TypeVar("_T", bound=models.Model)

# Django's admin and form classes are generic only in the type stubs, not at run time.
if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
    InlineModelAdmin = admin.options.InlineModelAdmin[Any, Any]
    TabularInline = admin.TabularInline[Any, Any]
    StackedInline = admin.StackedInline[Any, Any]
    ModelForm = forms.ModelForm[Any]
else:
    ModelAdmin = admin.ModelAdmin
    InlineModelAdmin = admin.options.InlineModelAdmin
    TabularInline = admin.TabularInline
    StackedInline = admin.StackedInline
    ModelForm = forms.ModelForm

# The lookup path from each scoped model to its organizer ("" for the organizer itself).
ORGANIZER_PATHS: dict[type[models.Model], str] = {
    Organizer: "",
    Membership: "organizer",
    SalesChannel: "organizer",
    Venue: "organizer",
    Hall: "venue__organizer",
    SeatMap: "hall__venue__organizer",
    Event: "organizer",
    FilmDetails: "event__organizer",
    SportDetails: "event__organizer",
    ScenicDetails: "event__organizer",
    TripDetails: "event__organizer",
    Session: "event__organizer",
    PriceTier: "session__event__organizer",
    CatalogChange: "organizer",
}


def user_of(request: HttpRequest) -> User | None:
    """The signed-in `User` of `request`, or None for anonymous visitors."""
    user = request.user
    return user if isinstance(user, User) and user.is_authenticated else None


def organizer_id_of(obj: models.Model, path: str | None = None) -> int | None:
    """The id of the organizer `obj` belongs to, following `path` (default: ORGANIZER_PATHS)."""
    if path is None:
        path = ORGANIZER_PATHS[type(obj)]
    if not path:
        return int(obj.pk) if obj.pk is not None else None
    *hops, last = path.split("__")
    current: Any = obj
    for hop in hops:
        current = getattr(current, hop, None)
        if current is None:
            return None
    value = getattr(current, f"{last}_id", None)
    return int(value) if value is not None else None


def scope_queryset(
    queryset: QuerySet[_T], path: str, organizer_ids: set[int] | None
) -> QuerySet[_T]:
    """`queryset` narrowed to rows whose organizer (at `path`) is in `organizer_ids`."""
    if organizer_ids is None:  # superuser: every organizer
        return queryset
    lookup = f"{path}__in" if path else "pk__in"
    return queryset.filter(**{lookup: organizer_ids})


def apply_domain_error(form: forms.BaseForm, exc: DomainError) -> None:
    """Show a service's refusal on `form`: field problems on their fields, the rest on top."""
    fields = exc.details.get("fields")
    if isinstance(fields, dict) and fields:
        for name, message in fields.items():
            target = name if name in form.fields else None
            text = str(message) if target else f"{name}: {message}"
            form.add_error(target, text)
    else:
        form.add_error(None, str(exc.message))


class _Scoping:
    """What admins and inlines share: the permission names and organizer lookups."""

    view_perm: Perm = Perm.CATALOG_VIEW
    manage_perm: Perm = Perm.CATALOG_MANAGE

    def organizer_ids(self, request: HttpRequest, perm: Perm) -> set[int] | None:
        return organizer_ids_with(user_of(request), perm)

    def allowed_at(self, request: HttpRequest, organizer_id: int | None, perm: Perm) -> bool:
        ids = self.organizer_ids(request, perm)
        if ids is None:
            return user_of(request) is not None
        return organizer_id is not None and organizer_id in ids

    def allowed_anywhere(self, request: HttpRequest, perm: Perm) -> bool:
        ids = self.organizer_ids(request, perm)
        return ids is None or bool(ids)

    def scoped_choices(
        self, request: HttpRequest, model: type[models.Model], perm: Perm
    ) -> QuerySet[Any] | None:
        """Rows of `model` from organizers where the user holds `perm` (None: not scoped)."""
        path = ORGANIZER_PATHS.get(model)
        if path is None:
            return None
        return scope_queryset(model._default_manager.all(), path, self.organizer_ids(request, perm))


class OrganizerScopedAdmin(_Scoping, ModelAdmin):
    """Base of every catalog admin: rows, permissions and choices follow the user's roles.

    Set `organizer_path` to the lookup from the model to its organizer, e.g. "event__organizer".
    Viewing needs `view_perm` at the row's organizer, writing needs `manage_perm` there; adding
    needs `manage_perm` somewhere. Django's own per-model permissions are not consulted.
    """

    organizer_path: str = "organizer"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return scope_queryset(
            super().get_queryset(request),
            self.organizer_path,
            self.organizer_ids(request, self.view_perm),
        )

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        # Another organizer's row is "not found", never a redirect that hints it exists.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404
        return obj

    def object_organizer_id(self, obj: Any) -> int | None:
        return organizer_id_of(obj, self.organizer_path)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, self.view_perm)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.allowed_anywhere(request, self.view_perm)
        return self.allowed_at(request, self.object_organizer_id(obj), self.view_perm)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, self.manage_perm)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.allowed_anywhere(request, self.manage_perm)
        return self.allowed_at(request, self.object_organizer_id(obj), self.manage_perm)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField | None:
        if "queryset" not in kwargs:
            choices = self.scoped_choices(request, db_field.related_model, self.manage_perm)  # type: ignore[arg-type]
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        if self.organizer_path == "organizer" and "organizer" not in initial:
            ids = self.organizer_ids(request, self.manage_perm)
            if ids is not None and len(ids) == 1:
                initial["organizer"] = str(next(iter(ids)))
        return initial

    def organizers_for(self, request: HttpRequest, perm: Perm) -> QuerySet[Organizer]:
        return scope_queryset(
            Organizer.objects.filter(is_active=True), "", self.organizer_ids(request, perm)
        )


class OrganizerScopedInline(_Scoping, InlineModelAdmin):
    """Inline rows follow the parent: editable where the user manages the parent's organizer."""

    parent_organizer_path: str = "organizer"

    def _parent_allowed(self, request: HttpRequest, obj: models.Model | None, perm: Perm) -> bool:
        if obj is None:
            return self.allowed_anywhere(request, perm)
        return self.allowed_at(request, organizer_id_of(obj, self.parent_organizer_path), perm)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._parent_allowed(request, obj, self.view_perm)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._parent_allowed(request, obj, self.manage_perm)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._parent_allowed(request, obj, self.manage_perm)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._parent_allowed(request, obj, self.manage_perm)

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField | None:
        if "queryset" not in kwargs:
            choices = self.scoped_choices(request, db_field.related_model, self.manage_perm)  # type: ignore[arg-type]
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ReadOnlyAdminMixin:
    """A list and detail view of rows only services write (orders, tickets, scans, keys):
    nothing is added, changed or deleted here. Put it before the admin base class."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInlineMixin(ReadOnlyAdminMixin):
    """An inline that lists rows and links to them; rows are added and edited elsewhere."""

    extra = 0
    can_delete = False


def changed_values(
    form: forms.ModelForm[Any], names: Iterable[str] | None = None
) -> dict[str, str]:
    """The new values of a form's changed fields, as text for the change log."""
    result: dict[str, str] = {}
    for name in names if names is not None else form.changed_data:
        value = form.cleaned_data.get(name)
        result[name] = "" if value is None else str(value)
    return result
