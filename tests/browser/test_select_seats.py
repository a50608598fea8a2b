"""A buyer taps two seats on the live seat map, holds them, and another buyer sees them taken."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, Session
from piaowu.catalog.services import TierSpec
from piaowu.inventory.models import Hold, SeatState
from tests.browser.test_browse import CHROMIUM_ARGS, RESULTS, allow_sync_playwright
from tests.conftest import CHROMIUM
from tests.factories import make_event, make_hall, make_session, make_venue

__all__ = ["allow_sync_playwright"]  # the fixture, imported for this module's tests


#: A phone-sized page with touch, in English.
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "locale": "en-US",
    "is_mobile": True,
    "has_touch": True,
}


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def theatre_session(organizer: Organizer) -> Session:
    """A reserved-seating session (4 rows × 8 seats) on sale at ¥380.50 a seat."""
    venue = make_venue(organizer, name="星光剧场", city="北京")
    hall = make_hall(venue, rows=4, seats=8)
    show = make_event(organizer, title="话剧 茶馆")
    return make_session(
        show,
        venue=venue,
        hall=hall,
        starts_in=dt.timedelta(days=3),
        tiers=[TierSpec(code="std", name="池座", price=Decimal("380.50"), color="#2563eb")],
    )


def tap_seat(page: Any, code: str) -> None:
    """Scroll the map to the top of the viewport and tap the seat at its computed centre."""
    page.evaluate("document.querySelector('.seatmap-canvas').scrollIntoView({block: 'start'})")
    centre = page.evaluate("(code) => window.piaowuSeatmap.seatCenter(code)", code)
    assert centre is not None, code
    page.touchscreen.tap(centre["x"], centre["y"])


@pytest.mark.browser
@pytest.mark.slow
def test_buyer_holds_two_tapped_seats_and_others_see_them_taken(
    transactional_db: None, live_server: Any, organizer: Organizer, allow_sync_playwright: None
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # given a reserved-seating session on sale at ¥380.50 a seat
    session = theatre_session(organizer)
    url = f"{live_server.url}/sessions/{session.public_id}/"

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        buyer = browser.new_context(**PHONE).new_page()
        other = browser.new_context(**PHONE).new_page()
        page = buyer
        for p in (buyer, other):
            p.set_default_timeout(15_000)
        try:
            # when the buyer taps the first two seats of the front row
            buyer.goto(url)
            expect(buyer.locator(".seatmap")).to_have_attribute("data-ready", "true")
            tap_seat(buyer, "M-1-1")
            tap_seat(buyer, "M-1-2")

            # then the sheet lists both with the total
            panel = buyer.locator("#hold-panel")
            expect(panel.locator("[data-part=items] li")).to_have_count(2)
            expect(panel.locator("[data-part=total]")).to_have_text("¥761")
            assert buyer.evaluate("window.piaowuSeatmap.selection()") == ["M-1-1", "M-1-2"]

            # and holding them shows the hold with its total, time and a Release button
            panel.get_by_role("button", name="Hold these seats").click()
            result = panel.locator("[data-part=result]")
            expect(result).to_be_visible()
            expect(result.locator("[data-part=held-total]")).to_have_text("¥761")
            expect(result.locator("[data-part=until]")).to_contain_text("Held until")
            expect(result.locator("[data-part=countdown]")).to_contain_text(":")
            expect(result.get_by_role("button", name="Release")).to_be_visible()
            hold = Hold.objects.get(session=session)
            assert sorted(
                SeatState.objects.filter(hold=hold, state="held").values_list(
                    "seat__code", flat=True
                )
            ) == ["M-1-1", "M-1-2"]

            # and a second buyer sees both seats taken (WSGI: the stream reloads every 3 s)
            page = other
            other.goto(url)
            for code in ("M-1-1", "M-1-2"):
                other.wait_for_function(
                    "(code) => window.piaowuSeatmap.state(code) === 'held'", arg=code
                )
            # tapping a taken seat does not select it
            tap_seat(other, "M-1-1")
            assert other.evaluate("window.piaowuSeatmap.selection()") == []

            # and when the first buyer releases, the seats are free again
            page = buyer
            result.get_by_role("button", name="Release").click()
            expect(panel.locator("[data-part=choose]")).to_be_visible()
            assert not SeatState.objects.filter(session=session, state="held").exists()
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_select_seats_failure.png"), full_page=True)
            raise
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.slow
def test_general_admission_buyer_holds_a_quantity_and_sees_sold_out_message(
    transactional_db: None, live_server: Any, organizer: Organizer, allow_sync_playwright: None
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # given a general-admission session with three places left
    venue = make_venue(organizer, name="草地音乐节", city="北京")
    festival = make_event(organizer, title="草莓音乐节")
    session = make_session(
        festival,
        venue=venue,
        capacity_mode=CapacityMode.GENERAL,
        capacity=3,
        tiers=[TierSpec(code="ga", name="通票", name_en="Day pass", price=Decimal("280"))],
    )
    url = f"{live_server.url}/sessions/{session.public_id}/"

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(**PHONE).new_page()
        page.set_default_timeout(15_000)
        try:
            # when the buyer picks 2 day passes and holds them
            page.goto(url)
            panel = page.locator("#hold-panel")
            panel.get_by_label("Number of Day pass tickets").select_option("2")
            panel.get_by_role("button", name="Hold").click()

            # then the hold shows 2 × the pass and the total
            result = panel.locator("[data-part=result]")
            expect(result).to_be_visible()
            expect(result.locator("[data-part=held-items]")).to_contain_text("Day pass × 2")
            expect(result.locator("[data-part=held-total]")).to_have_text("¥560")

            # and after releasing, asking for more than is left names what is left
            result.get_by_role("button", name="Release").click()
            expect(panel.locator("[data-part=choose]")).to_be_visible()
            hold_quantity_for_someone_else(session, 2)
            panel.get_by_label("Number of Day pass tickets").select_option("2")
            panel.get_by_role("button", name="Hold").click()
            expect(panel.locator("[data-part=message]")).to_have_text("Only 1 tickets left.")
            expect(result).to_be_hidden()
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_select_ga_failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def hold_quantity_for_someone_else(session: Session, quantity: int) -> None:
    from piaowu.inventory.services import hold_quantity

    hold_quantity(session=session, tier_code="ga", quantity=quantity, holder_key="someone-else")
