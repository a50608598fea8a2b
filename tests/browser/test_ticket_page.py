"""The e-ticket page in a real browser: the self-written QR encoder (qr.js) draws exactly the
symbols segno draws, and a rotating ticket shows a code that changes every step and equals
`codec.rotating_code` computed on the server."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import segno
import segno.encoder
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from pytest_django.fixtures import Settings

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import Session
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout, order_mark_paid
from piaowu.tickets import codec
from piaowu.tickets.selectors import ticket_qr_text, ticket_rotation_secret
from tests.browser.test_browse import RESULTS, allow_sync_playwright
from tests.browser.test_select_seats import PHONE, launch_chromium
from tests.factories import make_event, make_session
from tests.inventory.conftest import make_block_hall
from tests.orders.conftest import PHONE as PHONE_NUMBER
from tests.orders.conftest import web_channel

__all__ = ["allow_sync_playwright"]  # the fixture, imported for this module's tests

ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


@pytest.fixture
def segno_pads_correctly(monkeypatch: pytest.MonkeyPatch) -> None:
    """segno 1.6.6 appends a whole zero byte when the bit stream already ends on a codeword
    boundary (ISO/IEC 18004 §7.4.10 adds padding bits only when it does not). Both symbols
    scan the same, but their modules differ, so compare against segno with the rule applied."""

    def write_padding_bits(buff: Any, version: int, length: int) -> None:
        if version not in (segno.consts.VERSION_M1, segno.consts.VERSION_M3):
            buff.extend([0] * ((8 - length % 8) % 8))

    monkeypatch.setattr(segno.encoder, "write_padding_bits", write_padding_bits)


def segno_matrix(text: str, version: int, mask: int) -> list[str]:
    mode = "alphanumeric" if all(c in ALPHANUMERIC for c in text) else "byte"
    qr = segno.make(
        text,
        error="m",
        version=version,
        mask=mask,
        mode=mode,
        encoding="utf-8" if mode == "byte" else None,
        boost_error=False,
        micro=False,
    )
    assert (qr.version, qr.mask, qr.error) == (version, mask, "M")
    return ["".join(str(bit) for bit in row) for row in qr.matrix]


def ticket_text(rotating: bool = False) -> str:
    private, _public = codec.new_key_pair()
    claims = codec.Claims(
        kid=codec.new_kid(),
        token=codec.new_token(),
        session_id=123_456,
        seat_id=7_890,
        tier_id=42,
        valid_from=1_767_225_600,
        valid_until=1_767_240_000,
        secret_version=1,
        rotating=rotating,
    )
    text = codec.encode(claims, private)
    return text + ":ABCDEFGH" if rotating else text


ENCODE_IN_PAGE = """async ([url, cases]) => {
  const { encode } = await import(url);
  return cases.map(([text, minVersion, mask]) => {
    const qr = encode(text, { ecl: "M", minVersion, mask });
    return { version: qr.version, mask: qr.mask, mode: qr.mode,
             rows: qr.modules.map((row) => row.map((dark) => (dark ? 1 : 0)).join("")) };
  });
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_qr_js_draws_the_same_symbols_as_segno(
    transactional_db: None,
    live_server: Any,
    allow_sync_playwright: None,
    segno_pads_correctly: None,
) -> None:
    from playwright.sync_api import sync_playwright

    # given ticket texts (alphanumeric, 163 and 172 characters), Chinese in byte mode, and short
    # texts forced to every version 1–10 with every mask
    static, rotating = ticket_text(), ticket_text(rotating=True)
    assert len(static) == 163 and len(rotating) == 172
    cases: list[list[Any]] = [
        [static, 1, -1],
        [rotating, 1, -1],
        ["票务 Piaowu 电子票 · 刘德华演唱会", 1, -1],
        ["HELLO WORLD", 1, -1],
        ["x" * 200, 1, -1],  # byte mode, version 10 (16-bit count)
        ["PW1" * 50, 1, 5],
    ]
    cases += [[static, 7, mask] for mask in range(8)]
    cases += [["票务 ticket", 2, mask] for mask in range(8)]
    cases += [["PIAOWU-" + str(v), v, (v * 3) % 8] for v in range(1, 11)]
    cases += [[f"门票 {v}", v, v % 8] for v in range(1, 11)]
    url = f"{live_server.url}{django_settings.STATIC_URL}web/qr.js"

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        try:
            page.goto(f"{live_server.url}/redeem/")
            # when qr.js encodes each of them in the page
            results = page.evaluate(ENCODE_IN_PAGE, [url, cases])
        finally:
            browser.close()

    # then every symbol has the expected size, mode and exactly segno's modules
    versions = set()
    for (text, min_version, mask), result in zip(cases, results, strict=True):
        versions.add(result["version"])
        assert result["version"] >= min_version
        if mask != -1:
            assert result["mask"] == mask
        assert len(result["rows"]) == 17 + 4 * result["version"]
        expected_mode = "alphanumeric" if all(c in ALPHANUMERIC for c in text) else "byte"
        assert result["mode"] == expected_mode
        assert result["rows"] == segno_matrix(text, result["version"], result["mask"]), text
    assert versions == set(range(1, 11))
    assert results[0]["version"] == results[1]["version"] == 7  # a ticket: 45 × 45 modules
    assert results[4]["version"] == 10


def rotating_order(organizer: Organizer, holder_key: str) -> Order:
    hall = make_block_hall(organizer, rows=2, seats_per_row=6)
    event = make_event(organizer, title="旋转码演出")
    session: Session = make_session(event, venue=hall.venue, hall=hall, rotating_qr=True)
    hold = hold_seats(session=session, seat_codes=["M-1-1"], holder_key=holder_key)
    order = order_checkout(
        hold=hold,
        channel=web_channel(organizer),
        holder_key=holder_key,
        contact_phone=PHONE_NUMBER,
    )
    return order_mark_paid(order=order)


def svg_rows(svg: str, size: int, border: int) -> list[str]:
    """The dark modules of a qr.js SVG (`M x y h n v1 h -n z` runs) as rows of 0/1."""
    grid = [["0"] * size for _ in range(size)]
    for x, y, n in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", svg):
        for dx in range(int(n)):
            grid[int(y) - border][int(x) - border + dx] = "1"
    return ["".join(row) for row in grid]


@pytest.mark.browser
@pytest.mark.slow
def test_a_rotating_ticket_shows_a_code_that_changes_every_step(
    transactional_db: None,
    live_server: Any,
    organizer: Organizer,
    allow_sync_playwright: None,
    settings: Settings,
    segno_pads_correctly: None,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # given a paid order of a rotating-QR session, bought in this browser, and 2-second steps
    settings.PIAOWU_ROTATING_QR_STEP_SECONDS = 2
    store = SessionStore()
    store["piaowu_holder"] = "anon:browser-test"
    store.save()
    order = rotating_order(organizer, "anon:browser-test")
    ticket = order.tickets.get()
    secret = ticket_rotation_secret(ticket)
    static = ticket_qr_text(ticket)

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(**PHONE)
        context.add_cookies(
            [
                {
                    "name": django_settings.SESSION_COOKIE_NAME,
                    "value": str(store.session_key),
                    "url": live_server.url,
                }
            ]
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            # when the holder opens the tickets page
            page.goto(f"{live_server.url}/orders/{order.public_id}/tickets/")
            card = page.locator(".ticket-card")
            expect(card).to_have_attribute("data-code", re.compile(r"^[A-Z2-7]{8}$"))
            expect(card.locator("[data-part=qr] svg")).to_have_count(1)
            expect(card.locator("[data-part=timer]")).to_be_visible()
            expect(card.locator("[data-part=left]")).to_contain_text("New code in")
            expect(page.get_by_text("a screenshot will not work")).to_be_visible()
            first = page.evaluate("window.piaowuTickets.current()[0]")

            # then the code is the server's code for that step, and the QR carries it
            assert first["code"] == codec.rotating_code(secret, first["step"])
            assert first["text"] == f"{static}:{first['code']}"

            # and after a step the page shows the next code, again the server's
            page.wait_for_function(
                "(step) => window.piaowuTickets.current()[0].step > step", arg=first["step"]
            )
            second = page.evaluate("window.piaowuTickets.current()[0]")
            read_at = time.time()
            svg = card.locator("[data-part=qr]").inner_html()
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_ticket_page_failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    assert second["code"] == codec.rotating_code(secret, second["step"])
    assert second["code"] != first["code"]
    # and a gate checking it when it was read (with the gate's tolerance) accepts it
    assert codec.rotating_code_valid(
        secret, second["code"], now=read_at, step_seconds=2, tolerance_steps=2
    )
    # the drawn symbol is segno's symbol of the full text (same version and mask)
    size = 17 + 4 * second["version"]
    assert svg_rows(svg, size, border=2) == segno_matrix(
        f"{static}:{second['code']}", second["version"], second["mask"]
    )


@pytest.mark.browser
@pytest.mark.slow
def test_without_webcrypto_the_rotating_ticket_shows_the_serial_and_says_why(
    transactional_db: None, live_server: Any, organizer: Organizer, allow_sync_playwright: None
) -> None:
    from playwright.sync_api import expect, sync_playwright

    store = SessionStore()
    store["piaowu_holder"] = "anon:old-browser"
    store.save()
    order = rotating_order(organizer, "anon:old-browser")
    ticket = order.tickets.get()

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(**PHONE)
        context.add_cookies(
            [
                {
                    "name": django_settings.SESSION_COOKIE_NAME,
                    "value": str(store.session_key),
                    "url": live_server.url,
                }
            ]
        )
        # an old browser (or a page not served securely): no crypto.subtle
        context.add_init_script(
            "Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined });"
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            page.goto(f"{live_server.url}/orders/{order.public_id}/tickets/")
            card = page.locator(".ticket-card")
            expect(card.locator("[data-part=unsupported]")).to_be_visible()
            expect(card.locator("[data-part=qr]")).to_be_hidden()
            expect(card.locator("[data-part=qr] svg")).to_have_count(0)
            expect(card.locator("[data-part=serial]")).to_have_text(ticket.serial)
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_ticket_nocrypto_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
