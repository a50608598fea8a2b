"""Accounts in the operator console: users (platform operators only), organizers and
memberships. Organizer admins manage the memberships of their own organizers, through
`membership_grant` / `membership_revoke`, and can never grant anything elsewhere."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Membership, Organizer, Role, User
from piaowu.accounts.permissions import Perm, has_perm, require_perm
from piaowu.accounts.services import membership_grant, membership_revoke
from piaowu.catalog.services import organizer_create
from piaowu.console.admin_scoping import (
    ModelForm,
    OrganizerScopedAdmin,
    OrganizerScopedInline,
    ReadOnlyInlineMixin,
    TabularInline,
    apply_domain_error,
    user_of,
)
from piaowu.core.errors import DomainError


def _is_superuser(request: HttpRequest) -> bool:
    user = user_of(request)
    return bool(user and user.is_active and user.is_superuser)


# --- Users ------------------------------------------------------------------------------------


class UserCreateForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"]).strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("An account with this e-mail already exists."))
        return email


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = (
            "email",
            "password",
            "display_name",
            "first_name",
            "last_name",
            "preferred_language",
            "is_active",
            "is_staff",
            "is_superuser",
        )


class UserMembershipInline(ReadOnlyInlineMixin, TabularInline):
    model = Membership
    fields = ("organizer", "role", "is_active", "created_at")
    readonly_fields = fields
    verbose_name_plural = _("roles at organizers")


# Our roles replace Django's groups and per-model permissions.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """E-mail based users. Only platform operators (superusers) list and edit accounts."""

    form = UserEditForm
    add_form = UserCreateForm
    list_display = ("email", "display_name", "is_staff", "is_superuser", "is_active", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "display_name", "first_name", "last_name", "public_id")
    ordering = ("email",)
    readonly_fields = ("public_id", "last_login", "date_joined")
    inlines = (UserMembershipInline,)
    fieldsets = (
        (None, {"fields": ("email", "public_id", "password")}),
        (
            _("Personal info"),
            {"fields": ("display_name", "first_name", "last_name", "preferred_language")},
        ),
        (_("Access"), {"fields": ("is_active", "is_staff", "is_superuser")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    filter_horizontal = ()

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[Any]]:
        return [] if obj is None else [UserMembershipInline]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)


# --- Organizers -------------------------------------------------------------------------------


class OrganizerAddForm(ModelForm):
    """A new organizer comes with its built-in sales channels (`organizer_create`)."""

    class Meta:
        model = Organizer
        fields = ("slug", "name", "name_en", "contact_email", "contact_phone")

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]  # model validation: slug format and uniqueness
        if self.errors:
            return
        data = self.cleaned_data
        try:
            organizer = organizer_create(
                slug=data["slug"], name=data["name"], name_en=data.get("name_en") or ""
            )
        except DomainError as exc:
            apply_domain_error(self, exc)
            return
        contact = {k: data.get(k) or "" for k in ("contact_email", "contact_phone")}
        if any(contact.values()):
            Organizer.objects.filter(pk=organizer.pk).update(**contact)
            organizer.refresh_from_db()
        self.instance = organizer


class OrganizerMembershipInline(
    ReadOnlyInlineMixin,
    OrganizerScopedInline,
    TabularInline,
):
    model = Membership
    fields = ("user", "role", "is_active", "created_at")
    readonly_fields = fields
    parent_organizer_path = ""
    view_perm = Perm.MEMBERS_MANAGE
    manage_perm = Perm.MEMBERS_MANAGE
    verbose_name_plural = _("members")


@admin.register(Organizer)
class OrganizerAdmin(OrganizerScopedAdmin):
    """Platform operators manage every organizer; organizer admins see and edit their own."""

    organizer_path = ""
    view_perm = Perm.MEMBERS_MANAGE
    manage_perm = Perm.MEMBERS_MANAGE
    list_display = ("name", "name_en", "slug", "contact_email", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "name_en", "slug")
    readonly_fields = ("public_id",)
    inlines = (OrganizerMembershipInline,)
    fields = (
        "slug",
        "public_id",
        "name",
        "name_en",
        "contact_email",
        "contact_phone",
        "is_active",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None and not _is_superuser(request):
            return ("slug", "public_id", "is_active")
        return ("public_id",) if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("slug", "name", "name_en", "contact_email", "contact_phone")
        return super().get_fields(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[Any]]:
        return [] if obj is None else [OrganizerMembershipInline]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = OrganizerAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        # On add, `organizer_create` already saved it (with its sales channels).

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)


# --- Memberships ------------------------------------------------------------------------------


class MembershipAddForm(ModelForm):
    """Grant a role to an existing account, at one of the organizers the actor manages."""

    actor: Any = None
    email = forms.EmailField(label=_("E-mail of an existing account"))

    class Meta:
        model = Membership
        fields = ("organizer", "role")

    def _post_clean(self) -> None:
        if self.errors:
            return
        data = self.cleaned_data
        user = User.objects.filter(email__iexact=str(data["email"]).strip()).first()
        if user is None:
            self.add_error("email", gettext("No account has this e-mail address."))
            return
        organizer: Organizer = data["organizer"]
        if not has_perm(self.actor, organizer, Perm.MEMBERS_MANAGE):
            self.add_error("organizer", gettext("You cannot grant roles at this organizer."))
            return
        try:
            self.instance = membership_grant(user=user, organizer=organizer, role=data["role"])
        except DomainError as exc:
            apply_domain_error(self, exc)


@admin.register(Membership)
class MembershipAdmin(OrganizerScopedAdmin):
    """Roles of people at organizers. Rows are granted and revoked, never edited or deleted."""

    organizer_path = "organizer"
    view_perm = Perm.MEMBERS_MANAGE
    manage_perm = Perm.MEMBERS_MANAGE
    list_display = ("user", "organizer", "role", "is_active", "created_at", "updated_at")
    list_filter = ("role", "is_active", ("organizer", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__email", "user__display_name")
    list_select_related = ("user", "organizer")
    actions = ("revoke",)
    fields = ("user", "organizer", "role", "is_active", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("email", "organizer", "role") if obj is None else self.fields

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = type(
                "MembershipAddForm", (MembershipAddForm,), {"actor": user_of(request)}
            )
        return super().get_form(request, obj, change=change, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("role", Role.SELLER)
        return initial

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Added through `membership_grant` in the form; existing rows are not edited here.
        return None

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self.allowed_anywhere(request, Perm.MEMBERS_MANAGE)

    @admin.action(description=_("Revoke the selected roles"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        actor = user_of(request)
        memberships = list(queryset.select_related("user", "organizer"))
        with transaction.atomic():
            for membership in memberships:
                require_perm(actor, membership.organizer, Perm.MEMBERS_MANAGE)
                membership_revoke(
                    user=membership.user, organizer=membership.organizer, role=membership.role
                )
        self.message_user(
            request,
            ngettext("%(n)d role revoked.", "%(n)d roles revoked.", len(memberships))
            % {"n": len(memberships)},
            messages.SUCCESS,
        )
