"""A visitor browses the site in a real browser: home → search by pinyin → event → session."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from piaowu.accounts.models import Organizer
from piaowu.catalog.services import TierSpec
from tests.conftest import CHROMIUM
from tests.factories import make_event, make_hall, make_session, make_venue

RESULTS = Path(__file__).resolve().parents[2] / "test-results"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def allow_sync_playwright() -> Iterator[None]:
    """Playwright's sync API runs an event loop in this thread; Django's ORM would refuse."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.mark.browser
@pytest.mark.slow
def test_visitor_finds_a_concert_by_pinyin_and_sees_its_sessions(
    transactional_db: None, live_server: Any, organizer: Organizer, allow_sync_playwright: None
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # given a published concert with two sessions on different days
    venue = make_venue(organizer, name="星光体育馆", city="北京")
    hall = make_hall(venue)
    concert = make_event(organizer, title="刘德华 2026 巡回演唱会", performers="刘德华")
    tiers = [TierSpec(code="std", name="看台", price=Decimal("380"), color="#2563eb")]
    first, _second = (
        make_session(concert, venue=venue, hall=hall, starts_in=dt.timedelta(days=d), tiers=tiers)
        for d in (3, 4)
    )
    make_event(organizer, title="流浪地球", kind="film")  # not a match, no sessions

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            viewport={"width": 375, "height": 800}, locale="zh-CN", is_mobile=True, has_touch=True
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            # when the visitor searches from the home page by pinyin
            page.goto(live_server.url + "/")
            expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
            page.get_by_role("searchbox").fill("liudehua")
            page.get_by_role("searchbox").press("Enter")

            # then the concert is in the results
            page.wait_for_url(re.compile(r"/search/\?q=liudehua"))
            result = page.locator("a.row-card", has_text="刘德华 2026 巡回演唱会")
            expect(result).to_have_count(1)
            expect(page.locator("a.row-card")).to_have_count(1)

            # and its page shows the title and the sessions grouped under their dates
            result.click()
            page.wait_for_url(re.compile(f"/events/{concert.public_id}/"))
            expect(page.locator("h1")).to_have_text("刘德华 2026 巡回演唱会")
            local = first.local_starts_at
            first_day = page.locator("section.day").first
            expect(first_day.locator("h3")).to_contain_text(f"{local.month}月{local.day}日")
            expect(first_day.locator("time")).to_have_text(f"{local:%H:%M}")
            expect(page.locator("section.day")).to_have_count(2)

            # and the session page draws the seat map from its data
            first_day.locator("a.session-item").click()
            page.wait_for_url(re.compile(f"/sessions/{first.public_id}/"))
            expect(page.locator(".seatmap")).to_have_attribute("data-ready", "true")
            expect(page.locator(".tier-list")).to_contain_text("¥380")
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_browse_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
