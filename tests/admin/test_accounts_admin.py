"""Accounts in the console: organizer admins manage their own organizer's memberships only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Membership, Organizer, Role, User
from piaowu.catalog.models import SalesChannel

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")  # the site defaults to Chinese
    client.force_login(user)
    return client


def test_organizer_admin_grants_a_role_at_own_organizer(
    admin_a: User, organizer: Organizer, make_user: Callable[..., User]
) -> None:
    person = make_user(email="new.seller@example.com")
    response = _client(admin_a).post(
        reverse("admin:accounts_membership_add"),
        {"email": "New.Seller@example.com", "organizer": organizer.pk, "role": Role.SELLER},
    )
    assert response.status_code == 302
    assert Membership.objects.filter(user=person, organizer=organizer, role=Role.SELLER).exists()
    person.refresh_from_db()
    assert person.is_staff and not person.is_superuser


def test_membership_cannot_be_granted_at_another_organizer(
    admin_a: User, other_organizer: Organizer, make_user: Callable[..., User]
) -> None:
    person = make_user(email="mole@example.com")
    client = _client(admin_a)
    form = client.get(reverse("admin:accounts_membership_add")).context["adminform"].form
    assert other_organizer not in form.fields["organizer"].queryset
    response = client.post(
        reverse("admin:accounts_membership_add"),
        {"email": person.email, "organizer": other_organizer.pk, "role": Role.ADMIN},
    )
    assert response.status_code == 200
    assert "organizer" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=person).exists()
    person.refresh_from_db()
    assert not person.is_staff


def test_membership_grant_needs_an_existing_account(admin_a: User, organizer: Organizer) -> None:
    response = _client(admin_a).post(
        reverse("admin:accounts_membership_add"),
        {"email": "nobody@example.com", "organizer": organizer.pk, "role": Role.SELLER},
    )
    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    assert not User.objects.filter(email="nobody@example.com").exists()


def test_membership_list_shows_only_own_organizer(
    admin_a: User,
    organizer: Organizer,
    other_organizer: Organizer,
    make_staff: Callable[..., User],
) -> None:
    rival = make_staff(other_organizer, Role.SELLER, email="rival.seller@example.com")
    rival_membership = Membership.objects.get(user=rival)
    client = _client(admin_a)
    listing = client.get(reverse("admin:accounts_membership_changelist"))
    assert {m.organizer_id for m in listing.context["cl"].result_list} == {organizer.pk}
    detail = reverse("admin:accounts_membership_change", args=[rival_membership.pk])
    assert client.get(detail).status_code == 404


def test_revoke_action_is_limited_to_own_organizer(
    admin_a: User,
    organizer: Organizer,
    other_organizer: Organizer,
    make_staff: Callable[..., User],
) -> None:
    own = make_staff(organizer, Role.SELLER, email="own.seller@example.com")
    rival = make_staff(other_organizer, Role.SELLER, email="rival.seller@example.com")
    own_membership = Membership.objects.get(user=own)
    rival_membership = Membership.objects.get(user=rival)
    response = _client(admin_a).post(
        reverse("admin:accounts_membership_changelist"),
        {
            "action": "revoke",
            ACTION_CHECKBOX_NAME: [own_membership.pk, rival_membership.pk],
        },
    )
    assert response.status_code == 302
    own_membership.refresh_from_db()
    rival_membership.refresh_from_db()
    own.refresh_from_db()
    assert not own_membership.is_active and not own.is_staff
    assert rival_membership.is_active


def test_organizer_admin_cannot_manage_users_or_make_superusers(
    admin_a: User, seller_a: User
) -> None:
    client = _client(admin_a)
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 403
    response = client.post(
        reverse("admin:accounts_user_change", args=[seller_a.pk]),
        {"email": seller_a.email, "is_superuser": "on", "is_staff": "on", "is_active": "on"},
    )
    assert response.status_code == 403
    seller_a.refresh_from_db()
    assert not seller_a.is_superuser


def test_organizer_admin_sees_and_edits_only_own_organizer(
    admin_a: User, organizer: Organizer, other_organizer: Organizer
) -> None:
    client = _client(admin_a)
    listing = client.get(reverse("admin:accounts_organizer_changelist"))
    assert list(listing.context["cl"].result_list) == [organizer]
    assert listing.context["has_add_permission"] is False
    other = reverse("admin:accounts_organizer_change", args=[other_organizer.pk])
    assert client.get(other).status_code == 404
    own = reverse("admin:accounts_organizer_change", args=[organizer.pk])
    response = client.post(
        own,
        {
            "name": organizer.name,
            "name_en": organizer.name_en,
            "contact_email": "box@acme.example",
            "contact_phone": "",
            "slug": "hijacked",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    organizer.refresh_from_db()
    assert organizer.contact_email == "box@acme.example"
    assert organizer.slug == "acme"  # read-only for organizer admins


def test_superuser_adds_an_organizer_with_its_sales_channels(superuser: User) -> None:
    response = _client(superuser).post(
        reverse("admin:accounts_organizer_add"),
        {
            "slug": "grand",
            "name": "大剧院",
            "name_en": "Grand",
            "contact_email": "",
            "contact_phone": "",
        },
    )
    assert response.status_code == 302
    organizer = Organizer.objects.get(slug="grand")
    assert SalesChannel.objects.filter(organizer=organizer).count() == 3


def test_superuser_adds_a_user_by_email_and_finds_it(superuser: User) -> None:
    client = _client(superuser)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "Fresh@Example.com",
            "usable_password": "true",
            "password1": "a long enough pass 42",
            "password2": "a long enough pass 42",
        },
    )
    assert response.status_code == 302
    assert User.objects.filter(email="fresh@example.com").exists()
    found = client.get(reverse("admin:accounts_user_changelist"), {"q": "fresh@"})
    assert [u.email for u in found.context["cl"].result_list] == ["fresh@example.com"]
