"""Chinese-aware search text: words, pinyin, initials."""

import pytest

from piaowu.catalog.search import build_search_text, query_terms
from piaowu.catalog.selectors import event_search, parse_search_filters
from tests.factories import make_event, make_hall, make_session, make_venue

TOUR = build_search_text(
    ["刘德华「今天就是现在」2026 巡回演唱会 广州站", "刘德华", "奥体中心体育场"]
)


def _matches(query: str, text: str = TOUR) -> bool:
    terms = query_terms(query)
    return bool(terms) and all(term in text for term in terms)


@pytest.mark.parametrize(
    "query",
    [
        "刘德华",
        "liudehua",
        "LiuDeHua",
        "liu dehua",
        "ldh",
        "刘德华演唱会",
        "刘德华的演唱会",
        "演唱会 广州",
        "guangzhou",
        "gz",
        "2026",
        "奥体中心",
    ],
)
def test_a_tour_is_found_by_words_pinyin_and_initials(query: str) -> None:
    assert _matches(query)


@pytest.mark.parametrize("query", ["张学友", "zhangxueyou", "zxy", "上海", "ldhz"])
def test_unrelated_queries_do_not_match(query: str) -> None:
    assert not _matches(query)


def test_queries_of_only_punctuation_have_no_terms() -> None:
    assert query_terms("  ，。!! ") == ()


def test_full_width_and_case_are_folded() -> None:
    assert _matches("ＬＤＨ")


@pytest.mark.django_db
def test_event_search_uses_pinyin_against_the_database(organizer) -> None:
    venue = make_venue(organizer, name="奥体中心体育场", city="广州")
    hall = make_hall(venue)
    tour = make_event(organizer, title="刘德华 2026 巡回演唱会", code="ldh")
    other = make_event(organizer, title="张学友 60+ 巡回演唱会", code="zxy")
    for event in (tour, other):
        make_session(event, venue=venue, hall=hall)
    for query in ("ldh", "liudehua", "刘德华演唱会"):
        found = list(event_search(parse_search_filters({"q": query})))
        assert found == [tour], query
    both = list(event_search(parse_search_filters({"q": "演唱会"})))
    assert set(both) == {tour, other}
    # a venue's name becomes searchable once the event has a session there
    assert list(event_search(parse_search_filters({"q": "aotizhongxin"}))) != []
