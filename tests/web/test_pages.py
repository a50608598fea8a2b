"""The customer pages render what the catalog holds, in the visitor's language and zones."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, Event
from piaowu.catalog.services import TierSpec, event_create, session_create
from tests.factories import make_event, make_session, make_venue
from tests.web.conftest import Catalog

pytestmark = pytest.mark.django_db


@pytest.fixture
def en() -> Client:
    return Client(headers={"accept-language": "en"})


@pytest.fixture
def zh() -> Client:
    return Client(headers={"accept-language": "zh-CN"})


def text(response: object) -> str:
    return response.content.decode()  # type: ignore[attr-defined]


# --- Home ------------------------------------------------------------------------------------


def test_home_lists_hot_and_upcoming_events_with_prices(en: Client, catalog: Catalog) -> None:
    response = en.get(reverse("web:home"))
    assert response.status_code == 200
    body = text(response)
    assert "Andy Lau 2026 Tour" in body
    assert "The Wandering Earth" in body
    assert "From ¥380" in body  # cheapest tier of the concert
    assert f'href="/events/{catalog.concert.public_id}/"' in body
    assert "Concerts" in body  # category chip


def test_home_filters_by_city_and_remembers_it(en: Client, catalog: Catalog) -> None:
    response = en.get(reverse("web:home"), {"city": "上海"})
    assert "The Wandering Earth" in text(response)
    assert "Andy Lau 2026 Tour" not in text(response)
    # The next visit without ?city= keeps the choice…
    again = en.get(reverse("web:home"))
    assert "Andy Lau 2026 Tour" not in text(again)
    assert '<option value="上海" selected>' in text(again)
    # …until the visitor picks "all cities".
    cleared = en.get(reverse("web:home"), {"city": ""})
    assert "Andy Lau 2026 Tour" in text(cleared)


def test_home_kind_tab_shows_only_that_kind(en: Client, catalog: Catalog) -> None:
    body = text(en.get(reverse("web:home"), {"kind": "film"}))
    assert "The Wandering Earth" in body
    assert "Andy Lau 2026 Tour" not in body
    assert 'href="/?kind=film" aria-current="page"' in body


def test_home_ignores_an_unknown_kind_instead_of_failing(en: Client, catalog: Catalog) -> None:
    response = en.get(reverse("web:home"), {"kind": "<script>"})
    assert response.status_code == 200
    assert "Andy Lau 2026 Tour" in text(response)


def test_home_with_nothing_on_sale_says_so(en: Client, db: None) -> None:
    response = en.get(reverse("web:home"), {"city": "拉萨"})
    assert response.status_code == 200
    assert "Nothing on sale in 拉萨 yet." in text(response)


# --- Search ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["刘德华", "liudehua", "ldh", "LDH", "刘德华演唱会"])
def test_search_finds_by_chinese_pinyin_and_initials(
    en: Client, catalog: Catalog, query: str
) -> None:
    response = en.get(reverse("web:search"), {"q": query})
    assert response.status_code == 200
    body = text(response)
    assert "Andy Lau 2026 Tour" in body
    assert "The Wandering Earth" not in body
    assert "1 event" in body


def test_search_filters_by_price_and_sorts(en: Client, catalog: Catalog) -> None:
    body = text(en.get(reverse("web:search"), {"price_max": "50", "sort": "price_asc"}))
    assert "The Wandering Earth" in body
    assert "Andy Lau 2026 Tour" not in body
    both = text(en.get(reverse("web:search"), {"sort": "price_desc"}))
    assert both.index("Andy Lau 2026 Tour") < both.index("The Wandering Earth")


@pytest.mark.parametrize(
    ("params", "field_message"),
    [
        ({"date_from": "31/12/2026"}, "Use a date like 2026-12-31."),
        ({"price_min": "cheap"}, "Enter a number."),
        ({"sort": "random"}, "Unknown sort"),
        ({"kind": "opera"}, "Unknown kind"),
        ({"price_min": "100", "price_max": "10"}, "The maximum price is below the minimum price."),
    ],
)
def test_bad_filters_answer_400_with_the_field_message(
    en: Client, catalog: Catalog, params: dict[str, str], field_message: str
) -> None:
    response = en.get(reverse("web:search"), params)
    assert response.status_code == 400
    body = text(response)
    assert field_message in body
    assert 'aria-invalid="true"' in body
    assert "Some filters are not valid." in body


def test_bad_filter_messages_are_in_the_visitors_language(zh: Client, catalog: Catalog) -> None:
    response = zh.get(reverse("web:search"), {"price_min": "cheap"})
    assert response.status_code == 400
    assert "请输入数字。" in text(response)


def test_search_without_results_gives_tips(en: Client, catalog: Catalog) -> None:
    response = en.get(reverse("web:search"), {"q": "周杰伦"})
    assert response.status_code == 200
    body = text(response)
    assert "Nothing found for “周杰伦”." in body
    assert "try pinyin" in body


def test_search_paginates_twenty_per_page(en: Client, organizer: Organizer) -> None:
    venue = make_venue(organizer)
    for n in range(23):
        event = make_event(organizer, title=f"话剧 第{n}场", code=f"play-{n}", popularity=n)
        make_session(
            event, venue=venue, capacity_mode=CapacityMode.GENERAL, capacity=100, code=f"s{n}"
        )
    first = en.get(reverse("web:search"), {"q": "话剧"})
    assert text(first).count('class="row-card"') == 20
    assert "Page 1 of 2" in text(first)
    second = en.get(reverse("web:search"), {"q": "话剧", "page": "2"})
    assert text(second).count('class="row-card"') == 3
    # a page number past the end shows the last page rather than failing
    assert en.get(reverse("web:search"), {"q": "话剧", "page": "99"}).status_code == 200


# --- Event, session, venue -------------------------------------------------------------------


def test_event_page_shows_sessions_grouped_by_date_and_venue(en: Client, catalog: Catalog) -> None:
    response = en.get(reverse("web:event", args=[catalog.concert.public_id]))
    assert response.status_code == 200
    body = text(response)
    assert '<h1 id="event-title">Andy Lau 2026 Tour</h1>' in body
    for session in catalog.concert_sessions:
        local = session.local_starts_at
        heading = local.strftime("%a, %b ") + str(local.day)
        assert f'<h3 class="day-head">{heading}</h3>' in body
        assert reverse("web:session", args=[session.public_id]) in body
    assert body.count("Starlight Arena") >= 2  # under each day
    assert "From ¥380" in body
    assert "On sale" in body
    assert "经典金曲。" in body


def test_event_page_shows_film_facts(en: Client, catalog: Catalog) -> None:
    body = text(en.get(reverse("web:event", args=[catalog.film.public_id])))
    assert "Director" in body and "郭帆" in body
    assert "125 min" in body
    assert "IMAX" in body


def test_event_page_shows_trip_route(en: Client, organizer: Organizer) -> None:
    trip = event_create(
        organizer=organizer,
        kind="trip",
        title="上海—普陀山 快艇",
        details={"mode": "ferry", "origin": "上海", "destination": "普陀山", "route_code": "HX1"},
    )
    body = text(en.get(reverse("web:event", args=[trip.public_id])))
    assert "上海 → 普陀山" in body
    assert "HX1" in body
    assert "Ferry" in body


def test_sales_state_not_yet_open_shows_the_opening_time(en: Client, organizer: Organizer) -> None:
    venue = make_venue(organizer)
    event = make_event(organizer)
    opens = timezone.now() + dt.timedelta(days=1)
    session = make_session(
        event,
        venue=venue,
        capacity_mode=CapacityMode.GENERAL,
        capacity=10,
        sales_open_at=opens,
    )
    local = opens.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai"))
    expected = f"Sales open {local:%b} {local.day}, {local:%H:%M}"
    assert expected in text(en.get(reverse("web:event", args=[event.public_id])))
    assert "Online sales open" in text(en.get(reverse("web:session", args=[session.public_id])))


def test_times_are_shown_in_the_venues_zone(en: Client, organizer: Organizer) -> None:
    tokyo = make_venue(organizer, name="东京巨蛋", city="东京", timezone_name="Asia/Tokyo")
    event = make_event(organizer, title="东京公演")
    day = (timezone.now() + dt.timedelta(days=10)).date()
    session = session_create(
        event=event,
        venue=tokyo,
        starts_at=dt.datetime.combine(day, dt.time(10, 30), tzinfo=dt.UTC),
        capacity_mode=CapacityMode.GENERAL,
        capacity=100,
        tiers=[TierSpec(code="s", name="S席", price=Decimal("12000"), currency="JPY")],
    )
    event_body = text(en.get(reverse("web:event", args=[event.public_id])))
    assert ">19:30</time>" in event_body
    assert ">10:30</time>" not in event_body and ">18:30</time>" not in event_body
    assert 'title="Asia/Tokyo">JST</abbr>' in event_body
    assert "¥12,000" in event_body
    session_body = text(en.get(reverse("web:session", args=[session.public_id])))
    assert "19:30</time>" in session_body
    venue_body = text(en.get(reverse("web:venue", args=[tokyo.public_id])))
    assert "19:30</time>" in venue_body


def test_session_page_shows_tiers_and_seat_map_viewer(en: Client, catalog: Catalog) -> None:
    session = catalog.concert_sessions[0]
    response = en.get(reverse("web:session", args=[session.public_id]))
    assert response.status_code == 200
    body = text(response)
    assert "Stand" in body and "¥380" in body and "¥1,680" in body
    assert "--swatch: #dc2626" in body
    assert f'data-seatmap-url="/api/v1/sessions/{session.public_id}/seatmap"' in body
    assert 'data-tier="vip" data-price-label="¥1,680"' in body
    assert "Seat map with 16 seats" in body
    assert "online sales close" in body


def test_general_admission_session_has_no_seat_map(en: Client, organizer: Organizer) -> None:
    venue = make_venue(organizer)
    session = make_session(
        make_event(organizer), venue=venue, capacity_mode=CapacityMode.GENERAL, capacity=10
    )
    body = text(en.get(reverse("web:session", args=[session.public_id])))
    assert "General admission" in body
    assert "data-seatmap-url" not in body


def test_venue_page_shows_address_services_halls_and_sessions(en: Client, catalog: Catalog) -> None:
    response = en.get(reverse("web:venue", args=[catalog.venue.public_id]))
    assert response.status_code == 200
    body = text(response)
    assert "Starlight Arena" in body
    assert "朝阳区建国路 88 号" in body
    assert "Parking" in body and "Near metro" in body
    assert "Main arena" in body
    assert "地铁 1 号线国贸站" in body
    assert "https://uri.amap.com/search?keyword=" in body
    assert body.count("Andy Lau 2026 Tour") >= 2


@pytest.mark.parametrize("name", ["web:event", "web:session", "web:venue"])
def test_unknown_ids_show_the_translated_404_page(en: Client, zh: Client, name: str) -> None:
    url = reverse(name, args=["01NOSUCHTHING0000000000000"])
    english = en.get(url)
    assert english.status_code == 404
    assert "Page not found" in text(english)
    chinese = zh.get(url)
    assert chinese.status_code == 404
    assert "页面不存在" in text(chinese)
    assert '<html lang="zh-hans">' in text(chinese)


def test_draft_events_are_not_shown(en: Client, organizer: Organizer) -> None:
    draft = make_event(organizer, status=Event.Status.DRAFT)
    assert en.get(reverse("web:event", args=[draft.public_id])).status_code == 404


def test_unknown_urls_use_the_site_404_page(en: Client, db: None) -> None:
    response = en.get("/no/such/page/")
    assert response.status_code == 404
    assert "Back to the home page" in text(response)


def test_500_page_renders_without_a_request() -> None:
    from django.template.loader import render_to_string

    html = render_to_string("500.html")
    assert "Something went wrong" in html
    assert "/static/web/site.css" in html


# --- Languages -------------------------------------------------------------------------------


def test_default_language_is_chinese(catalog: Catalog) -> None:
    body = text(Client().get(reverse("web:event", args=[catalog.concert.public_id])))
    assert '<html lang="zh-hans">' in body
    assert "场次" in body
    assert "刘德华 2026 巡回演唱会" in body


def test_accept_language_picks_english_or_chinese(en: Client, zh: Client, catalog: Catalog) -> None:
    url = reverse("web:event", args=[catalog.concert.public_id])
    english = text(Client(headers={"accept-language": "en-US,en;q=0.9"}).get(url))
    assert '<html lang="en">' in english
    assert ">Sessions</h2>" in english
    chinese = text(zh.get(url))
    assert ">场次</h2>" in chinese
    assert ">Sessions</h2>" not in chinese


def test_language_switch_sets_the_language_for_later_pages(catalog: Catalog) -> None:
    client = Client(headers={"accept-language": "zh-CN"}, enforce_csrf_checks=True)
    home = client.get(reverse("web:home"))
    assert 'action="/i18n/setlang/"' in text(home)
    token = home.cookies["csrftoken"].value
    response = client.post(
        reverse("set_language"),
        {"language": "en", "next": reverse("web:home"), "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("web:home")
    after = text(client.get(reverse("web:event", args=[catalog.concert.public_id])))
    assert ">Sessions</h2>" in after
    assert "Andy Lau 2026 Tour" in after


@pytest.mark.parametrize(
    "url",
    [
        reverse("web:home"),
        reverse("web:search"),
        reverse("web:login"),
        reverse("web:signup"),
        "/no/such/page/",
    ],
)
def test_every_page_has_the_language_switch(en: Client, db: None, url: str) -> None:
    body = text(en.get(url))
    assert 'action="/i18n/setlang/"' in body
    assert 'name="language" value="zh-hans"' in body


# --- Query counts ----------------------------------------------------------------------------


def _more_events(organizer: Organizer, venue_city: str, n: int) -> None:
    venue = make_venue(organizer, name=f"剧场{venue_city}", city=venue_city)
    for i in range(n):
        event = make_event(organizer, title=f"演出{i}", code=f"more-{venue_city}-{i}")
        make_session(event, venue=venue, capacity_mode=CapacityMode.GENERAL, capacity=5)


def test_home_query_count_does_not_grow_with_events(
    en: Client, catalog: Catalog, django_assert_max_num_queries: object
) -> None:
    _more_events(catalog.concert.organizer, "广州", 10)
    with django_assert_max_num_queries(8):  # type: ignore[operator]
        assert en.get(reverse("web:home")).status_code == 200


def test_search_query_count_does_not_grow_with_results(
    en: Client, catalog: Catalog, django_assert_max_num_queries: object
) -> None:
    _more_events(catalog.concert.organizer, "广州", 10)
    with django_assert_max_num_queries(7):  # type: ignore[operator]
        response = en.get(reverse("web:search"), {"q": "yanchu"})
    assert text(response).count('class="row-card"') == 10


def test_event_page_query_count_does_not_grow_with_sessions(
    en: Client, catalog: Catalog, django_assert_max_num_queries: object
) -> None:
    for days in range(5, 12):
        make_session(
            catalog.concert, venue=catalog.venue, hall=catalog.hall, starts_in=dt.timedelta(days)
        )
    with django_assert_max_num_queries(6):  # type: ignore[operator]
        assert en.get(reverse("web:event", args=[catalog.concert.public_id])).status_code == 200
