from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from piaowu.accounts.models import Organizer
from tests.api.conftest import Catalog, ga_session
from tests.factories import make_event

pytestmark = pytest.mark.django_db


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def get(client: Client, url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def test_the_list_shows_visible_events_with_their_next_session_and_lowest_price(
    client: Client, catalog: Catalog
) -> None:
    body = get(client, "/api/v1/events")

    assert body["count"] == 3
    assert body["page"] == 1 and body["page_size"] == 20 and body["next_page"] is None
    item = next(i for i in body["items"] if i["id"] == catalog.concert.public_id)
    assert item["kind"] == "performance"
    assert item["title_zh"] == "刘德华 2026 巡回演唱会"
    assert item["title_en"] == "Andy Lau 2026 Tour"
    assert item["performers"] == ["刘德华"]
    assert item["category"] == {"slug": "concert", "name": "演唱会"}
    assert item["min_price"] == {"amount": "180.00", "currency": "CNY"}
    assert item["next_starts_at"].endswith("Z")
    assert item["popularity"] == 50
    assert item["poster_url"] is None and item["poster_color"].startswith("#")
    tokyo = next(i for i in body["items"] if i["id"] == catalog.tokyo_show.public_id)
    assert tokyo["min_price"] == {"amount": "880", "currency": "JPY"}


def test_titles_follow_accept_language(client: Client, catalog: Catalog) -> None:
    english = client.get("/api/v1/events", HTTP_ACCEPT_LANGUAGE="en").json()
    chinese = client.get("/api/v1/events", HTTP_ACCEPT_LANGUAGE="zh-hans").json()

    def title(body: dict[str, Any]) -> str:
        return str(next(i["title"] for i in body["items"] if i["id"] == catalog.concert.public_id))

    assert title(english) == "Andy Lau 2026 Tour"
    assert title(chinese) == "刘德华 2026 巡回演唱会"


def test_drafts_and_events_with_only_past_sessions_are_not_listed(
    client: Client, catalog: Catalog
) -> None:
    found = ids(get(client, "/api/v1/events", q="刘德华"))

    assert found == [catalog.concert.public_id]
    assert catalog.draft.public_id not in ids(get(client, "/api/v1/events"))
    assert catalog.past.public_id not in ids(get(client, "/api/v1/events"))


@pytest.mark.parametrize("query", ["刘德华", "刘德华演唱会", "liudehua", "liu dehua", "ldh", "LDH"])
def test_search_finds_chinese_words_pinyin_and_initials(
    client: Client, catalog: Catalog, query: str
) -> None:
    assert ids(get(client, "/api/v1/events", q=query)) == [catalog.concert.public_id]


def test_a_query_that_matches_nothing_gives_an_empty_page(client: Client, catalog: Catalog) -> None:
    body = get(client, "/api/v1/events", q="不存在的演出")
    assert body["items"] == [] and body["count"] == 0 and body["next_page"] is None


@pytest.mark.parametrize("city", ["北京", "Beijing", "beijing"])
def test_city_filter_accepts_chinese_and_english_names(
    client: Client, catalog: Catalog, city: str
) -> None:
    assert ids(get(client, "/api/v1/events", city=city)) == [catalog.concert.public_id]


def test_kind_and_category_filters(client: Client, catalog: Catalog) -> None:
    assert ids(get(client, "/api/v1/events", kind="film")) == [catalog.film.public_id]
    assert set(ids(get(client, "/api/v1/events", category="concert"))) == {
        catalog.concert.public_id,
        catalog.tokyo_show.public_id,
    }
    assert ids(get(client, "/api/v1/events", category="no-such-category")) == []


def test_date_range_keeps_events_with_a_session_inside_it(client: Client, catalog: Catalog) -> None:
    today = timezone.localdate()
    body = get(
        client,
        "/api/v1/events",
        date_from=(today + dt.timedelta(days=6)).isoformat(),
        date_to=(today + dt.timedelta(days=14)).isoformat(),
    )
    assert ids(body) == [catalog.film.public_id]


def test_price_range_keeps_events_with_a_tier_inside_it(client: Client, catalog: Catalog) -> None:
    assert ids(get(client, "/api/v1/events", price_min="100", price_max="200")) == [
        catalog.concert.public_id
    ]
    assert ids(get(client, "/api/v1/events", price_max="59.99")) == []


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("hot", ["film", "concert", "tokyo_show"]),
        ("soon", ["concert", "film", "tokyo_show"]),
        ("price_asc", ["film", "concert", "tokyo_show"]),
        ("price_desc", ["tokyo_show", "concert", "film"]),
    ],
)
def test_sort_orders(client: Client, catalog: Catalog, sort: str, expected: list[str]) -> None:
    wanted = [getattr(catalog, name).public_id for name in expected]
    assert ids(get(client, "/api/v1/events", sort=sort)) == wanted


def test_pages_link_to_the_next_one_and_a_page_past_the_end_is_empty(
    client: Client, catalog: Catalog
) -> None:
    first = get(client, "/api/v1/events", page_size=2)
    second = get(client, "/api/v1/events", page_size=2, page=2)
    beyond = get(client, "/api/v1/events", page_size=2, page=9)

    assert first["count"] == 3 and first["next_page"] == 2 and len(first["items"]) == 2
    assert first["count_exact"] is True
    assert second["count"] == 3 and second["next_page"] is None and len(second["items"]) == 1
    assert set(ids(first)) | set(ids(second)) == {
        catalog.concert.public_id,
        catalog.film.public_id,
        catalog.tokyo_show.public_id,
    }
    assert beyond["items"] == [] and beyond["count"] == 3 and beyond["next_page"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page_size": "101"}, "page_size"), ({"page": "0"}, "page"), ({"page": "two"}, "page")],
)
def test_bad_paging_is_a_400_naming_the_field(
    client: Client, catalog: Catalog, params: dict[str, str], field: str
) -> None:
    response = client.get("/api/v1/events", params)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["message"]
    assert list(body["details"]["fields"]) == [field]


def test_bad_filters_are_a_400_naming_every_bad_field(client: Client, catalog: Catalog) -> None:
    response = client.get(
        "/api/v1/events",
        {"date_from": "31/12/2026", "price_max": "cheap", "kind": "opera", "sort": "random"},
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_filter"
    assert set(body["details"]["fields"]) == {"date_from", "price_max", "kind", "sort"}


def test_inverted_ranges_are_refused(client: Client, catalog: Catalog) -> None:
    response = client.get(
        "/api/v1/events",
        {"date_from": "2026-12-31", "date_to": "2026-12-01", "price_min": "9", "price_max": "1"},
    )

    assert response.status_code == 400
    assert set(response.json()["details"]["fields"]) == {"date_to", "price_max"}


def test_the_list_runs_a_fixed_number_of_queries(
    client: Client, organizer: Organizer, catalog: Catalog, django_assert_max_num_queries: Any
) -> None:
    # given more events than a page holds, each with a category, performers and sessions
    for n in range(6):
        event = make_event(organizer, title=f"演出 {n}", performers="甲, 乙", category=None)
        ga_session(event, catalog.beijing, days=5 + n, price="90")
        ga_session(event, catalog.shanghai, days=6 + n, price="95")
    # when a page is listed (rows + count), then the query count does not grow with the rows
    with django_assert_max_num_queries(2):
        body = get(client, "/api/v1/events", page_size=5)
    assert len(body["items"]) == 5 and body["count"] == 9


def test_event_detail_has_kind_specific_details(client: Client, catalog: Catalog) -> None:
    body = get(client, f"/api/v1/events/{catalog.film.public_id}")

    assert body["id"] == catalog.film.public_id
    assert body["kind"] == "film"
    assert body["film"]["director"] == "郭帆"
    assert body["film"]["formats"] == ["2D", "IMAX"]
    assert body["sport"] is None and body["trip"] is None and body["scenic"] is None
    assert body["organizer"]["slug"] == "acme"


def test_trip_and_sport_details_are_given(client: Client, organizer: Organizer) -> None:
    trip = make_event(
        organizer,
        title="上海 → 东京 航班",
        kind="trip",
        details={"origin": "上海", "destination": "东京", "carrier": "东方航空", "mode": "flight"},
    )
    sport = make_event(
        organizer,
        title="北京国安 vs 上海申花",
        kind="sport",
        details={"league": "中超", "home_team": "北京国安", "away_team": "上海申花"},
        tags="足球, 中超",
    )

    trip_body = get(client, f"/api/v1/events/{trip.public_id}")
    sport_body = get(client, f"/api/v1/events/{sport.public_id}")

    assert trip_body["trip"]["origin"] == "上海" and trip_body["trip"]["carrier"] == "东方航空"
    assert sport_body["sport"] == {
        "league": "中超",
        "home_team": "北京国安",
        "away_team": "上海申花",
    }
    assert sport_body["tags"] == ["足球", "中超"]


def test_unknown_and_draft_events_are_404_with_the_error_shape(
    client: Client, catalog: Catalog
) -> None:
    for event_id in ("01NOSUCHEVENT0000000000000", catalog.draft.public_id):
        response = client.get(f"/api/v1/events/{event_id}")
        assert response.status_code == 404
        body = response.json()
        assert set(body) == {"code", "message", "details"}
        assert body["code"] == "event_not_found"
        assert body["details"] == {"id": event_id}


def test_event_sessions_lists_only_upcoming_ones_in_venue_time(
    client: Client, catalog: Catalog
) -> None:
    ga_session(catalog.concert, catalog.tokyo, days=30, price="900", currency="JPY")
    body = get(client, f"/api/v1/events/{catalog.concert.public_id}/sessions")
    past = get(client, f"/api/v1/events/{catalog.past.public_id}/sessions")

    assert body["count"] == 2
    assert [s["venue"]["timezone"] for s in body["items"]] == ["Asia/Shanghai", "Asia/Tokyo"]
    assert body["items"][0]["local_starts_at"].endswith("+08:00")
    assert past["items"] == [] and past["count"] == 0


def test_counts_stop_at_the_cap_but_next_page_still_shows_more(
    client: Client, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from piaowu.api import pagination

    monkeypatch.setattr(pagination, "COUNT_CAP", 2)
    monkeypatch.setattr(pagination.paginate, "__kwdefaults__", {"count_cap": 2})

    body = get(client, "/api/v1/events", page_size=1)

    assert body["count"] == 2 and body["count_exact"] is False
    assert body["next_page"] == 2


@pytest.mark.parametrize(
    ("title", "query"),
    [("话剧《雷雨》", "雷雨"), ("长城音乐节", "长城"), ("双重庆典之夜", "重庆"), ("猫", "猫")],
)
def test_short_chinese_terms_still_match_anywhere_in_the_text(
    client: Client, organizer: Organizer, catalog: Catalog, title: str, query: str
) -> None:
    # The selector adds a pinyin condition for 1-2 character terms (index use on PostgreSQL);
    # it must never drop a match, including characters with several readings (重, 长).
    event = make_event(organizer, title=title)
    ga_session(event, catalog.beijing, days=8, price="50")

    assert event.public_id in ids(get(client, "/api/v1/events", q=query))


def test_pinyin_hint_covers_every_reading_of_each_character() -> None:
    from piaowu.catalog.selectors import _pinyin_hint

    hint = _pinyin_hint("重庆")
    assert hint is not None
    forms = {value for _, value in hint.children}  # type: ignore[misc]
    assert {"chongqing", "zhongqing"} <= forms
    assert _pinyin_hint("演唱会") is None  # three characters: the trigram index already works
    assert _pinyin_hint("ab") is None
