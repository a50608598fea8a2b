"""The operators' tools in the console: seat-map preview, import and generator, batch import
and export, event/session creation through the services, copy and recurrence."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import User
from piaowu.catalog.batch import catalog_export
from piaowu.catalog.models import CatalogChange, Event, SeatMap, Session
from piaowu.catalog.seatmaps import RectBlock
from piaowu.catalog.selectors import seat_map_layout
from piaowu.catalog.services import seat_map_generate
from piaowu.console.seatmap_svg import DETAIL_LIMIT, render_seat_map_svg
from tests.admin.conftest import Catalog

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")  # the site defaults to Chinese
    client.force_login(user)
    return client


# --- Seat maps ----------------------------------------------------------------------------------


def test_seat_map_preview_draws_one_element_per_seat(admin_a: User, cat_a: Catalog) -> None:
    seat_map = cat_a.hall.current_seat_map()
    assert seat_map is not None and seat_map.seat_count == 6
    response = _client(admin_a).get(reverse("admin:catalog_seatmap_change", args=[seat_map.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="seatmap-preview"') == 1
    assert len(re.findall(r'<rect class="seat ', html)) == 6
    assert "<title>M-1-1</title>" in html  # small maps name every seat
    assert "seatmap-legend" in html


def test_seat_map_preview_shows_types_blocked_seats_pairs_and_sections(
    admin_a: User, cat_a: Catalog
) -> None:
    block = RectBlock(
        section="VIP",
        name="贵宾区",
        rows=3,
        seats_per_row=4,
        vip_rows=(1,),
        couple_rows=(2,),
        blocked_seats=((3, 4),),
    )
    seat_map = seat_map_generate(hall=cat_a.hall, blocks=[block], stage="舞台")
    html = str(render_seat_map_svg(seat_map_layout(seat_map)))
    assert len(re.findall(r'<rect class="seat ', html)) == 12
    assert len(re.findall(r'class="seat t-vip"', html)) == 4
    assert len(re.findall(r'class="pair"', html)) == 2  # two couple pairs in row 2
    assert len(re.findall(r'class="seat t-standard blocked"', html)) == 1
    assert "贵宾区" in html and "舞台" in html


def test_big_seat_maps_are_drawn_without_per_seat_text() -> None:
    rows = [
        {"r": str(r), "s": [[str(n), n * 12, r * 15] for n in range(1, 101)]} for r in range(60)
    ]
    layout = {
        "seat_types": ["standard", "vip", "couple", "accessible", "obstructed"],
        "stage": "",
        "sections": [{"code": "A", "name": "A", "rows": rows}],
    }
    html = str(render_seat_map_svg(layout))
    assert DETAIL_LIMIT < 60 * 100
    assert len(re.findall(r'<rect class="seat ', html)) == 6000
    assert "<title>" not in html


BAD_SEAT_MAP_CSV = """section,row,number,x,y,type
A,1,1,0,0,standard
A,1,1,20,0,standard
A,1,2,0,0,standard
A,1,3,40,0,golden
"""


def test_seat_map_import_with_a_bad_file_lists_every_problem_and_saves_nothing(
    admin_a: User, cat_a: Catalog
) -> None:
    versions_before = SeatMap.objects.filter(hall=cat_a.hall).count()
    url = reverse("admin:catalog_hall_import_seat_map", args=[cat_a.hall.pk])
    upload = SimpleUploadedFile("hall.csv", BAD_SEAT_MAP_CSV.encode(), content_type="text/csv")
    response = _client(admin_a).post(url, {"file": upload, "fmt": ""})
    html = response.content.decode()
    assert response.status_code == 400
    problems = response.context["problems"]
    codes = {p["problem"] for p in problems}
    assert {"duplicate_label", "overlapping_seats", "unknown_seat_type"} <= codes
    assert html.count('class="problem"') == len(problems) >= 3
    assert "A-1-3" in html  # the offending seats are named
    assert SeatMap.objects.filter(hall=cat_a.hall).count() == versions_before


def test_seat_map_import_of_a_good_file_makes_the_next_version(
    admin_a: User, cat_a: Catalog
) -> None:
    good = "section,row,number,x,y,type\nA,1,1,0,0,standard\nA,1,2,12,0,vip\n"
    url = reverse("admin:catalog_hall_import_seat_map", args=[cat_a.hall.pk])
    upload = SimpleUploadedFile("hall.csv", good.encode(), content_type="text/csv")
    response = _client(admin_a).post(url, {"file": upload, "fmt": ""})
    latest = cat_a.hall.current_seat_map()
    assert response.status_code == 302
    assert latest is not None and latest.version == 2 and latest.seat_count == 2
    assert response["Location"] == reverse("admin:catalog_seatmap_change", args=[latest.pk])
    cat_a.session.refresh_from_db()
    assert cat_a.session.seat_map is not None and cat_a.session.seat_map.version == 1


def test_seat_map_import_refuses_an_unknown_file_type(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_hall_import_seat_map", args=[cat_a.hall.pk])
    upload = SimpleUploadedFile("hall.txt", b"hello", content_type="text/plain")
    response = _client(admin_a).post(url, {"file": upload, "fmt": ""})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert SeatMap.objects.filter(hall=cat_a.hall).count() == 1


def test_generate_rectangular_seat_map_from_the_admin(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_hall_generate_seat_map", args=[cat_a.hall.pk])
    response = _client(admin_a).post(
        url,
        {
            "name": "新布局",
            "stage": "银幕",
            "sections": "L 左区\nR 右区",
            "rows": "4",
            "seats_per_row": "6",
            "aisles_after": "3",
            "vip_rows": "2",
            "couple_rows": "4",
        },
    )
    latest = cat_a.hall.current_seat_map()
    assert response.status_code == 302
    assert latest is not None and latest.version == 2 and latest.seat_count == 48
    assert latest.sections.count() == 2
    assert CatalogChange.objects.filter(
        action="piaowu.catalog.seat_map.created", object_ref=str(latest.pk)
    ).exists()


def test_generate_form_refuses_bad_row_lists(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_hall_generate_seat_map", args=[cat_a.hall.pk])
    response = _client(admin_a).post(
        url, {"sections": "A 池座", "rows": "4", "seats_per_row": "6", "vip_rows": "two"}
    )
    assert response.status_code == 200
    assert "vip_rows" in response.context["form"].errors
    assert SeatMap.objects.filter(hall=cat_a.hall).count() == 1


# --- Batch import and export ---------------------------------------------------------------------


def _renamed_export(cat: Catalog) -> bytes:
    """The organizer's export with the event and session codes changed: an import of it would
    create a new event and session."""
    text = catalog_export(organizer=cat.organizer, fmt="csv").decode("utf-8-sig")
    text = text.replace(cat.event.code, "new-event").replace(cat.session.code, "new-session")
    return text.encode("utf-8")


def test_batch_import_dry_run_shows_the_report_and_writes_nothing(
    admin_a: User, cat_a: Catalog
) -> None:
    events, sessions = Event.objects.count(), Session.objects.count()
    changes = CatalogChange.objects.count()
    upload = SimpleUploadedFile("catalog.csv", _renamed_export(cat_a), content_type="text/csv")
    response = _client(admin_a).post(
        reverse("admin:catalog_event_import"),
        {"organizer": cat_a.organizer.pk, "file": upload, "fmt": "", "dry_run": "on"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    report = response.context["report"]
    assert report["dry_run"] is True
    by_key = {s["key"]: s for s in report["sections"]}
    assert {c["outcome"]: c["n"] for c in by_key["events"]["counts"]}["created"] == 1
    assert {c["outcome"]: c["n"] for c in by_key["sessions"]["counts"]}["created"] == 1
    assert "new-event" in html and "Dry run" in html
    assert (Event.objects.count(), Session.objects.count()) == (events, sessions)
    assert CatalogChange.objects.count() == changes


def test_batch_import_for_real_creates_the_rows(admin_a: User, cat_a: Catalog) -> None:
    upload = SimpleUploadedFile("catalog.csv", _renamed_export(cat_a), content_type="text/csv")
    response = _client(admin_a).post(
        reverse("admin:catalog_event_import"),
        {"organizer": cat_a.organizer.pk, "file": upload, "fmt": ""},
    )
    assert response.status_code == 200
    assert response.context["report"]["dry_run"] is False
    assert Event.objects.filter(organizer=cat_a.organizer, code="new-event").exists()


def test_batch_import_with_problems_lists_them_and_writes_nothing(
    admin_a: User, cat_a: Catalog
) -> None:
    bad = b"event_code,kind,title\nx1,opera,\n"
    events = Event.objects.count()
    upload = SimpleUploadedFile("catalog.csv", bad, content_type="text/csv")
    response = _client(admin_a).post(
        reverse("admin:catalog_event_import"),
        {"organizer": cat_a.organizer.pk, "file": upload, "fmt": ""},
    )
    assert response.status_code == 400
    assert len(response.context["problems"]) >= 2  # unknown kind and missing title
    assert Event.objects.count() == events


def test_batch_import_refuses_another_organizer(
    admin_a: User, cat_a: Catalog, cat_b: Catalog
) -> None:
    upload = SimpleUploadedFile("catalog.csv", _renamed_export(cat_a), content_type="text/csv")
    response = _client(admin_a).post(
        reverse("admin:catalog_event_import"),
        {"organizer": cat_b.organizer.pk, "file": upload, "fmt": ""},
    )
    assert response.status_code == 200
    assert "organizer" in response.context["form"].errors
    assert not Event.objects.filter(code="new-event").exists()


def test_export_downloads_the_organizers_catalog(admin_a: User, cat_a: Catalog) -> None:
    response = _client(admin_a).post(
        reverse("admin:catalog_event_export"), {"organizer": cat_a.organizer.pk, "fmt": "csv"}
    )
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    assert cat_a.event.code in response.content.decode("utf-8-sig")


# --- Events and sessions through the services --------------------------------------------------


def test_event_added_in_the_admin_goes_through_event_create(admin_a: User, cat_a: Catalog) -> None:
    response = _client(admin_a).post(
        reverse("admin:catalog_event_add"),
        {
            "organizer": cat_a.organizer.pk,
            "kind": "trip",
            "title": "上海—舟山 高速客轮",
            "status": "published",
            "poster_color": "#c2410c",
            "popularity": "3",
            "trip_mode": "ferry",
            "trip_origin": "上海",
            "trip_destination": "舟山",
        },
    )
    event = Event.objects.get(title="上海—舟山 高速客轮")
    assert response.status_code == 302
    assert event.trip.destination == "舟山"
    assert event.search_text  # maintained by the service
    change = CatalogChange.objects.get(
        action="piaowu.catalog.event.created", object_ref=event.public_id
    )
    assert change.actor == admin_a


def test_event_add_shows_the_services_refusal(admin_a: User, cat_a: Catalog) -> None:
    response = _client(admin_a).post(
        reverse("admin:catalog_event_add"),
        {
            "organizer": cat_a.organizer.pk,
            "kind": "trip",
            "title": "No route",
            "code": cat_a.event.code,  # already used
            "status": "draft",
            "poster_color": "#c2410c",
            "popularity": "0",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "code" in errors
    assert "__all__" in errors  # "details: A trip needs an origin and a destination."
    assert not Event.objects.filter(title="No route").exists()


def test_event_edit_records_a_catalog_change(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_event_change", args=[cat_a.event.pk])
    client = _client(admin_a)
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "poster"}
    data.update(title="改名后的音乐会", category="")
    data.update(
        {
            "sessions-TOTAL_FORMS": "1",
            "sessions-INITIAL_FORMS": "1",
            "sessions-MIN_NUM_FORMS": "0",
            "sessions-MAX_NUM_FORMS": "1000",
            "sessions-0-id": cat_a.session.pk,
            "sessions-0-event": cat_a.event.pk,
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    cat_a.event.refresh_from_db()
    assert cat_a.event.title == "改名后的音乐会"
    change = CatalogChange.objects.get(action="piaowu.catalog.event.updated")
    assert change.changes == {"title": "改名后的音乐会"}
    assert change.actor == admin_a


def test_session_added_in_the_admin_goes_through_session_create(
    admin_a: User, cat_a: Catalog
) -> None:
    response = _client(admin_a).post(
        reverse("admin:catalog_session_add"),
        {
            "event": cat_a.event.pk,
            "venue": cat_a.venue.pk,
            "hall": cat_a.hall.pk,
            "capacity_mode": "reserved",
            "start_date": "2030-05-01",
            "start_time": "19:30",
            "tier_template": cat_a.session.pk,
        },
    )
    assert response.status_code == 302
    session = Session.objects.get(event=cat_a.event, code="20300501-1930")
    assert session.local_starts_at.hour == 19  # wall-clock time at the venue
    assert session.seat_map == cat_a.hall.current_seat_map()
    assert [t.price for t in session.price_tiers.all()] == [Decimal("180.00")]
    assert CatalogChange.objects.filter(
        action="piaowu.catalog.session.created", object_ref=session.public_id
    ).exists()


def test_session_add_without_tiers_is_refused(admin_a: User, cat_a: Catalog) -> None:
    response = _client(admin_a).post(
        reverse("admin:catalog_session_add"),
        {
            "event": cat_a.event.pk,
            "venue": cat_a.venue.pk,
            "capacity_mode": "general",
            "start_date": "2030-05-01",
            "start_time": "19:30",
        },
    )
    assert response.status_code == 200
    assert "tier_template" in response.context["adminform"].form.errors
    assert Session.objects.filter(event=cat_a.event).count() == 1


def test_copy_session_tool(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_session_copy", args=[cat_a.session.pk])
    response = _client(admin_a).post(url, {"date": "2030-06-01", "time": "14:00"})
    assert response.status_code == 302
    copy = Session.objects.exclude(pk=cat_a.session.pk).get(event=cat_a.event)
    assert f"{copy.local_starts_at:%Y-%m-%d %H:%M}" == "2030-06-01 14:00"
    assert copy.seat_map == cat_a.session.seat_map


def test_recurrence_tool_creates_sessions_with_copied_tiers(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_event_recurring", args=[cat_a.event.pk])
    response = _client(admin_a).post(
        url,
        {
            "venue": cat_a.venue.pk,
            "hall": cat_a.hall.pk,
            "first_date": "2030-03-04",  # a Monday
            "last_date": "2030-03-10",
            "times": "14:00, 19:30",
            "weekdays": ["5", "6"],
            "tier_template": cat_a.session.pk,
            "capacity_mode": "reserved",
            "sales_close_minutes_before": "0",
        },
    )
    assert response.status_code == 302
    created = Session.objects.filter(event=cat_a.event).exclude(pk=cat_a.session.pk)
    assert sorted(f"{s.local_starts_at:%a %H:%M}" for s in created) == [
        "Sat 14:00",
        "Sat 19:30",
        "Sun 14:00",
        "Sun 19:30",
    ]
    assert all(s.price_tiers.count() == 1 for s in created)


def test_recurrence_tool_refuses_bad_times(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_event_recurring", args=[cat_a.event.pk])
    response = _client(admin_a).post(
        url,
        {
            "venue": cat_a.venue.pk,
            "first_date": "2030-03-10",
            "last_date": "2030-03-04",
            "times": "25:99",
            "tier_template": cat_a.session.pk,
            "capacity_mode": "reserved",
            "sales_close_minutes_before": "0",
        },
    )
    assert response.status_code == 200
    assert {"times", "last_date"} <= set(response.context["form"].errors)
    assert Session.objects.filter(event=cat_a.event).count() == 1


def test_hall_added_inline_on_a_venue_is_recorded(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_venue_change", args=[cat_a.venue.pk])
    client = _client(admin_a)
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data["services"] = ["wifi"]
    data.update(
        {
            "halls-TOTAL_FORMS": "2",
            "halls-INITIAL_FORMS": "1",
            "halls-MIN_NUM_FORMS": "0",
            "halls-MAX_NUM_FORMS": "1000",
            "halls-0-id": cat_a.hall.pk,
            "halls-0-venue": cat_a.venue.pk,
            "halls-0-name": cat_a.hall.name,
            "halls-0-sort_order": "0",
            "halls-1-venue": cat_a.venue.pk,
            "halls-1-name": "2号厅",
            "halls-1-sort_order": "1",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    cat_a.venue.refresh_from_db()
    assert cat_a.venue.services == ["wifi"]
    assert cat_a.venue.halls.filter(name="2号厅").exists()
    actions = set(CatalogChange.objects.filter(actor=admin_a).values_list("action", flat=True))
    assert actions == {"piaowu.catalog.venue.updated", "piaowu.catalog.hall.created"}


def test_venue_form_refuses_an_unknown_service(admin_a: User, cat_a: Catalog) -> None:
    url = reverse("admin:catalog_venue_change", args=[cat_a.venue.pk])
    client = _client(admin_a)
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update({"services": ["teleporter"], "halls-TOTAL_FORMS": "0", "halls-INITIAL_FORMS": "0"})
    response = client.post(url, data)
    assert response.status_code == 200
    assert "services" in response.context["adminform"].form.errors
