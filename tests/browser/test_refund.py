"""A customer with a paid order of two seats refunds one in a real browser: the order page's
Refund button, choosing the ticket with its amount, confirming, the refund's progress — and
the seat turns free on the live seat map another visitor has open, without a reload."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import Refund
from piaowu.catalog.models import Session
from piaowu.catalog.services import TierSpec
from piaowu.inventory.models import SeatState
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout
from piaowu.tickets.models import Ticket
from tests.aftersales.refunds.conftest import pay, refund_rule
from tests.browser.test_browse import RESULTS, allow_sync_playwright
from tests.browser.test_select_seats import PHONE, launch_chromium
from tests.factories import make_event, make_hall, make_session, make_venue
from tests.orders.conftest import web_channel

__all__ = ["allow_sync_playwright"]  # the fixture, imported for this module's tests


def theatre_session(organizer: Organizer) -> Session:
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


def paid_order(session: Session, organizer: Organizer, buyer: User) -> Order:
    hold = hold_seats(session=session, seat_codes=["M-1-4", "M-1-5"], holder_key="buyer")
    order = order_checkout(
        hold=hold,
        channel=web_channel(organizer),
        holder_key="buyer",
        customer=buyer,
        contact_phone="13800138000",
        contact_email=buyer.email,
    )
    pay(order)
    return order


@pytest.mark.browser
@pytest.mark.slow
def test_customer_refunds_one_of_two_seats_and_it_turns_free_on_the_live_map(
    transactional_db: None,
    live_server: Any,
    organizer: Organizer,
    make_user: Any,
    allow_sync_playwright: None,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # given a customer's paid order of two seats, and a free-refund rule (3 days before)
    session = theatre_session(organizer)
    refund_rule(session.event)
    buyer = make_user(email="buyer@example.com")
    order = paid_order(session, organizer, buyer)
    signed_in = Client()
    signed_in.force_login(buyer)
    cookie = signed_in.cookies[settings.SESSION_COOKIE_NAME].value

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        customer_context = browser.new_context(**PHONE)
        customer_context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
        )
        customer = customer_context.new_page()
        watcher = browser.new_context(**PHONE).new_page()
        page = watcher
        for p in (customer, watcher):
            p.set_default_timeout(20_000)
        try:
            # and another visitor watching the live seat map: both seats sold
            watcher.goto(f"{live_server.url}/sessions/{session.public_id}/")
            expect(watcher.locator(".seatmap")).to_have_attribute("data-ready", "true")
            for code in ("M-1-4", "M-1-5"):
                watcher.wait_for_function(
                    "(code) => window.piaowuSeatmap.state(code) === 'sold'", arg=code
                )

            # when the customer opens the order and taps "Refund tickets"
            page = customer
            customer.goto(f"{live_server.url}/orders/{order.public_id}/")
            customer.locator("[data-part=refund-button]").click()
            # they see the rule and, per ticket, what comes back
            expect(customer.locator("[data-part=rule]")).to_contain_text(
                "Until 48 hours before the start: free refund."
            )
            serial = Ticket.objects.get(order=order, seat__code="M-1-5").serial
            row = customer.locator(f"[data-ticket='{serial}']")
            expect(row.locator("[data-part=amount]")).to_have_text("¥380.50")
            row.locator("input[type=checkbox]").check()
            customer.get_by_role("button", name="Review the refund").click()

            # the review shows the exact amount before confirming
            expect(customer.locator("[data-part=amount]")).to_have_text("¥380.50")
            expect(customer.locator("[data-part=fee]")).to_have_text("¥0")
            customer.locator("[data-part=confirm]").click()

            # then the refund page shows its progress, through to refunded
            expect(customer.locator("[data-part=state]")).to_have_text("Refunded")
            steps = customer.locator("[data-part=progress] li")
            expect(steps).to_have_count(4)
            expect(customer.locator("[data-step=succeeded][aria-current=step]")).to_be_visible()
            expect(customer.locator("[data-part=timeline] li")).to_have_count(4)
            expect(customer.locator("[data-part=amount]")).to_have_text("¥380.50")

            # and the watcher sees that seat turn free without reloading; the other stays sold
            page = watcher
            watcher.wait_for_function("() => window.piaowuSeatmap.state('M-1-5') === 'available'")
            assert watcher.evaluate("window.piaowuSeatmap.state('M-1-4')") == "sold"

            # and back on the order, the refund is listed and the order partially refunded
            page = customer
            customer.goto(f"{live_server.url}/orders/{order.public_id}/")
            expect(customer.locator("[data-part=refund-state]")).to_have_text("Refunded")
            expect(customer.locator("[data-part=state]").first).to_have_text("Partially refunded")
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_refund_failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    refund = Refund.objects.get(order=order)
    assert refund.state == Refund.State.SUCCEEDED and refund.amount == Decimal("380.50")
    assert SeatState.objects.get(session=session, seat__code="M-1-5").state == "available"
    assert SeatState.objects.get(session=session, seat__code="M-1-4").state == "sold"
