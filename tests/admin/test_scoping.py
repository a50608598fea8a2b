"""Who sees and changes what in the operator console (SEC-2): scoped by role and organizer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import User
from piaowu.catalog.models import CatalogChange, Event, Session
from tests.admin.conftest import Catalog

pytestmark = pytest.mark.django_db

SCOPED_CHANGELISTS = ("event", "session", "venue", "hall", "seatmap", "saleschannel")


def _client(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")  # the site defaults to Chinese
    client.force_login(user)
    return client


def _change_url(model: str, pk: int) -> str:
    return reverse(f"admin:catalog_{model}_change", args=[pk])


def test_superuser_sees_every_organizers_events_sessions_and_venues(
    superuser: User, cat_a: Catalog, cat_b: Catalog
) -> None:
    client = _client(superuser)
    events = client.get(reverse("admin:catalog_event_changelist"))
    sessions = client.get(reverse("admin:catalog_session_changelist"))
    venues = client.get(reverse("admin:catalog_venue_changelist"))
    assert events.status_code == sessions.status_code == venues.status_code == 200
    assert set(events.context["cl"].result_list) == {cat_a.event, cat_b.event}
    assert set(sessions.context["cl"].result_list) == {cat_a.session, cat_b.session}
    assert set(venues.context["cl"].result_list) == {cat_a.venue, cat_b.venue}


@pytest.mark.parametrize("model", SCOPED_CHANGELISTS)
def test_organizer_admin_lists_only_own_organizers_rows(
    admin_a: User, cat_a: Catalog, cat_b: Catalog, model: str
) -> None:
    response = _client(admin_a).get(reverse(f"admin:catalog_{model}_changelist"))
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert rows, f"admin of A sees no {model}"
    owners = {
        "event": lambda r: r.organizer_id,
        "session": lambda r: r.event.organizer_id,
        "venue": lambda r: r.organizer_id,
        "hall": lambda r: r.venue.organizer_id,
        "seatmap": lambda r: r.hall.venue.organizer_id,
        "saleschannel": lambda r: r.organizer_id,
    }[model]
    assert {owners(r) for r in rows} == {cat_a.organizer.pk}
    assert cat_b.event.title not in response.content.decode()


@pytest.mark.parametrize(
    ("model", "attr"),
    [("event", "event"), ("session", "session"), ("venue", "venue"), ("hall", "hall")],
)
def test_organizer_admin_gets_404_for_other_organizers_change_pages(
    admin_a: User, cat_a: Catalog, cat_b: Catalog, model: str, attr: str
) -> None:
    client = _client(admin_a)
    own = client.get(_change_url(model, getattr(cat_a, attr).pk))
    other = client.get(_change_url(model, getattr(cat_b, attr).pk))
    other_delete = client.post(
        reverse(f"admin:catalog_{model}_delete", args=[getattr(cat_b, attr).pk]), {"post": "yes"}
    )
    assert own.status_code == 200
    assert other.status_code == 404
    assert other_delete.status_code == 404
    assert type(getattr(cat_b, attr)).objects.filter(pk=getattr(cat_b, attr).pk).exists()


def test_organizer_admin_cannot_reach_other_organizers_seat_map_tools(
    admin_a: User, cat_b: Catalog
) -> None:
    client = _client(admin_a)
    for name in ("import_seat_map", "generate_seat_map"):
        url = reverse(f"admin:catalog_hall_{name}", args=[cat_b.hall.pk])
        assert client.get(url).status_code == 404
    recurring = reverse("admin:catalog_event_recurring", args=[cat_b.event.pk])
    copy = reverse("admin:catalog_session_copy", args=[cat_b.session.pk])
    assert client.get(recurring).status_code == 404
    assert client.post(copy, {"date": "2030-01-01", "time": "19:30"}).status_code == 404
    assert Session.objects.filter(event=cat_b.event).count() == 1


def test_session_add_offers_only_own_events_and_refuses_another_organizers_event(
    admin_a: User, cat_a: Catalog, cat_b: Catalog
) -> None:
    client = _client(admin_a)
    add_url = reverse("admin:catalog_session_add")
    page = client.get(add_url)
    event_field = page.context["adminform"].form.fields["event"]
    assert set(event_field.queryset) == {cat_a.event}
    assert set(page.context["adminform"].form.fields["venue"].queryset) == {cat_a.venue}

    response = client.post(
        add_url,
        {
            "event": cat_b.event.pk,
            "venue": cat_b.venue.pk,
            "hall": cat_b.hall.pk,
            "capacity_mode": "reserved",
            "start_date": "2030-05-01",
            "start_time": "19:30",
            "tier_name": "Standard",
            "tier_price": "100",
        },
    )
    assert response.status_code == 200  # the form again, with errors
    errors = response.context["adminform"].form.errors
    assert {"event", "venue", "hall"} <= set(errors)
    assert Session.objects.filter(event=cat_b.event).count() == 1


def test_event_add_refuses_another_organizer(admin_a: User, cat_b: Catalog) -> None:
    response = _client(admin_a).post(
        reverse("admin:catalog_event_add"),
        {
            "organizer": cat_b.organizer.pk,
            "kind": "performance",
            "title": "Sneaky",
            "status": "draft",
            "poster_color": "#c2410c",
            "popularity": "0",
        },
    )
    assert response.status_code == 200
    assert "organizer" in response.context["adminform"].form.errors
    assert not Event.objects.filter(title="Sneaky").exists()


def test_seller_sees_catalog_read_only(seller_a: User, cat_a: Catalog) -> None:
    client = _client(seller_a)
    listing = client.get(reverse("admin:catalog_event_changelist"))
    change_page = client.get(_change_url("event", cat_a.event.pk))
    assert listing.status_code == 200
    assert listing.context["has_add_permission"] is False
    assert change_page.status_code == 200
    assert change_page.context["has_change_permission"] is False
    assert change_page.context["has_delete_permission"] is False
    assert client.get(reverse("admin:catalog_event_add")).status_code == 403
    edit = client.post(
        _change_url("event", cat_a.event.pk), {"title": "Renamed", "status": "draft"}
    )
    delete = client.post(
        reverse("admin:catalog_event_delete", args=[cat_a.event.pk]), {"post": "yes"}
    )
    assert edit.status_code == 403
    assert delete.status_code == 403
    cat_a.event.refresh_from_db()
    assert cat_a.event.title != "Renamed"
    hall_tool = reverse("admin:catalog_hall_generate_seat_map", args=[cat_a.hall.pk])
    assert client.get(hall_tool).status_code == 403


def test_checker_cannot_reach_membership_organizer_or_user_pages(
    checker_a: User, cat_a: Catalog
) -> None:
    client = _client(checker_a)
    for name in (
        "admin:accounts_membership_changelist",
        "admin:accounts_membership_add",
        "admin:accounts_user_changelist",
    ):
        assert client.get(reverse(name)).status_code == 403, name
    organizer_page = client.get(
        reverse("admin:accounts_organizer_change", args=[cat_a.organizer.pk])
    )
    assert organizer_page.status_code in (403, 404)
    index = client.get(reverse("admin:index"))
    app_labels = {app["app_label"] for app in index.context["app_list"]}
    assert app_labels == {"catalog", "checkin"}


def test_customer_is_sent_to_the_admin_login(customer: User) -> None:
    response = _client(customer).get(reverse("admin:catalog_event_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_flag_without_membership_sees_nothing(
    make_user: Callable[..., User], cat_a: Catalog
) -> None:
    user = make_user(email="lonely@example.com", is_staff=True)
    client = _client(user)
    assert client.get(reverse("admin:catalog_event_changelist")).status_code == 403
    assert client.get(_change_url("event", cat_a.event.pk)).status_code == 404
    assert client.get(reverse("admin:index")).context["app_list"] == []


def test_catalog_change_admin_refuses_add_change_and_delete_even_for_superusers(
    superuser: User, cat_a: Catalog
) -> None:
    client = _client(superuser)
    change = CatalogChange.objects.filter(organizer=cat_a.organizer).first()
    assert change is not None
    before = CatalogChange.objects.count()
    assert client.get(reverse("admin:catalog_catalogchange_changelist")).status_code == 200
    assert client.get(reverse("admin:catalog_catalogchange_add")).status_code == 403
    view = client.get(reverse("admin:catalog_catalogchange_change", args=[change.pk]))
    assert view.status_code == 200
    assert view.context["has_change_permission"] is False
    edit = client.post(
        reverse("admin:catalog_catalogchange_change", args=[change.pk]), {"summary": "rewritten"}
    )
    delete = client.post(
        reverse("admin:catalog_catalogchange_delete", args=[change.pk]), {"post": "yes"}
    )
    assert edit.status_code == 403
    assert delete.status_code == 403
    change.refresh_from_db()
    assert change.summary != "rewritten"
    assert CatalogChange.objects.count() == before


def test_seat_map_versions_cannot_be_changed_or_deleted(admin_a: User, cat_a: Catalog) -> None:
    client = _client(admin_a)
    seat_map = cat_a.session.seat_map
    assert seat_map is not None
    url = reverse("admin:catalog_seatmap_change", args=[seat_map.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"name": "x"}).status_code == 403
    delete = reverse("admin:catalog_seatmap_delete", args=[seat_map.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:catalog_seatmap_add")).status_code == 403


def test_autocomplete_offers_only_own_organizers_rows(
    admin_a: User, cat_a: Catalog, cat_b: Catalog
) -> None:
    response = _client(admin_a).get(
        reverse("admin:autocomplete"),
        {"app_label": "catalog", "model_name": "session", "field_name": "event", "term": ""},
    )
    assert response.status_code == 200
    ids = {int(r["id"]) for r in response.json()["results"]}
    assert ids == {cat_a.event.pk}


def test_session_times_are_shown_in_the_venues_time_zone(admin_a: User, cat_a: Catalog) -> None:
    from zoneinfo import ZoneInfo

    from tests.factories import make_session, make_venue

    tokyo = make_venue(cat_a.organizer, name="Tokyo Dome", city="东京", timezone_name="Asia/Tokyo")
    session = make_session(cat_a.event, venue=tokyo, capacity_mode="general", capacity=100)
    local = session.starts_at.astimezone(ZoneInfo("Asia/Tokyo"))
    response = _client(admin_a).get(_change_url("session", session.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'name="starts_at_1" value="{local:%H:%M:%S}"' in html
