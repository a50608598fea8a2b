"""A checker scans tickets at a gate in a real browser: online by typing the serial, and offline
from the session pack, synced when the network is back."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from piaowu.accounts.models import Organizer, Role, User
from piaowu.catalog.models import Session
from piaowu.checkin.models import Admission, Gate, Scan
from piaowu.checkin.services import gate_create
from piaowu.tickets import codec
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import ticket_qr_text, ticket_rotation_secret
from tests.browser.test_browse import RESULTS, allow_sync_playwright
from tests.browser.test_select_seats import PHONE, launch_chromium
from tests.factories import make_event, make_hall, make_session, make_venue
from tests.tickets.conftest import MakePaidOrder, ga_session, paid_order, reserved_session
from tests.two_factor import confirmed_totp, totp_code

__all__ = ["allow_sync_playwright", "ga_session", "paid_order", "reserved_session"]

PASSWORD = "correct horse 42"  # tests/conftest.py make_user's default


def doors_open_soon(
    organizer: Organizer, paid_order: MakePaidOrder, *, rotating: bool = False
) -> tuple[Session, Gate, list[Ticket]]:
    """A reserved session starting in half an hour (doors are open), two paid seats of row 1
    and a gate; real time throughout, as the browser checks validity with its own clock."""
    venue = make_venue(organizer, name="工人体育馆")
    hall = make_hall(venue, rows=3, seats=8)
    event = make_event(organizer, title="摇滚之夜")
    session = make_session(event, venue=venue, hall=hall, starts_in=dt.timedelta(minutes=30))
    if rotating:  # the organizer's switch in the admin (no catalog service for it yet)
        Session.objects.filter(pk=session.pk).update(rotating_qr=True)
        session.refresh_from_db()
    order = paid_order(session=session, seats=["M-1-5", "M-1-6"])
    tickets = list(
        Ticket.objects.filter(order=order).select_related("signing_key").order_by("seat__code")
    )
    gate = gate_create(venue=venue, name="Gate 3")
    return session, gate, tickets


def sign_in(page: Any, url: str, user: User) -> None:
    """Open `url`, land on the login page, sign in with the password and the authenticator's
    code (staff have a second factor) and come back."""
    device = confirmed_totp(user)
    page.goto(url)
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Code").fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()


def scan(page: Any, text: str) -> None:
    field = page.locator("#scan-input")
    field.fill(text)
    field.press("Enter")


@pytest.mark.browser
@pytest.mark.slow
def test_checker_admits_a_typed_serial_once_and_is_told_where_it_was_used(
    transactional_db: None,
    live_server: Any,
    organizer: Organizer,
    make_staff: Callable[..., User],
    paid_order: MakePaidOrder,
    allow_sync_playwright: None,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # given a paid ticket for a session whose doors are open, a gate, and a checker
    session, gate, tickets = doors_open_soon(organizer, paid_order)
    ticket = tickets[0]
    checker = make_staff(organizer, role=Role.CHECKER)

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(**PHONE).new_page()
        page.set_default_timeout(15_000)
        try:
            # when the checker signs in and picks the gate and the session
            sign_in(page, f"{live_server.url}/console/gate/", checker)
            page.wait_for_url(f"{live_server.url}/console/gate/**")
            page.locator(f'input[name="gate"][value="{gate.public_id}"]').check()
            page.locator(f'input[name="session"][value="{session.public_id}"]').check()
            page.get_by_role("button", name="Open scanner").click()
            page.wait_for_url(f"{live_server.url}/console/gate/scan/**")
            answer = page.locator("#answer")
            expect(answer).to_have_attribute("data-state", "idle")
            expect(page.locator('[data-part="counts"]')).to_have_text("Admitted 0 of 2 · inside 0")

            # and types the ticket's serial by hand (lower case, without dashes)
            scan(page, ticket.serial.replace("-", "").lower())

            # then the panel turns green with the seat
            expect(answer).to_have_attribute("data-state", "ok")
            expect(answer.locator('[data-part="headline"]')).to_have_text("OK")
            expect(answer.locator('[data-part="seat"]')).to_have_text("Row 1, seat 5")
            expect(answer.locator('[data-part="details"]')).to_contain_text(ticket.serial)
            assert Admission.objects.filter(ticket=ticket).count() == 1

            # when the same serial is typed again
            scan(page, ticket.serial)

            # then it is refused as already used, naming the gate
            expect(answer).to_have_attribute("data-state", "refused")
            expect(answer.locator('[data-part="headline"]')).to_have_text("Already used")
            expect(answer.locator('[data-part="reason"]')).to_contain_text("Gate 3")
            assert Admission.objects.filter(ticket=ticket).count() == 1
            outcomes = list(
                Scan.objects.filter(ticket=ticket).order_by("id").values_list("outcome", flat=True)
            )
            assert outcomes == ["valid", "already_used"]

            # and junk is unreadable
            scan(page, "hello")
            expect(answer.locator('[data-part="headline"]')).to_have_text("Unreadable")

            # and the live counts show the admission
            expect(page.locator('[data-part="counts"]')).to_contain_text("Admitted 1 of 2")

            # and the picker offers to resume at this gate
            page.goto(f"{live_server.url}/console/gate/")
            expect(page.locator('[data-part="resume-link"]')).to_contain_text("Gate 3")
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_gate_scan_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
            # This test's queries ran beside Playwright's loop on a connection of their own;
            # hand it back, or PostgreSQL cannot drop the test database afterwards.
            connections.close_all()


@pytest.mark.browser
@pytest.mark.slow
def test_offline_scanner_checks_codes_from_the_pack_and_syncs_when_back_online(
    transactional_db: None,
    live_server: Any,
    organizer: Organizer,
    make_staff: Callable[..., User],
    paid_order: MakePaidOrder,
    allow_sync_playwright: None,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    session, gate, tickets = doors_open_soon(organizer, paid_order)
    qr = ticket_qr_text(tickets[0])
    # a forgery: one character of the signature changed (still well-formed base32)
    position = len(qr) - 5
    forged = qr[:position] + ("A" if qr[position] != "A" else "B") + qr[position + 1 :]
    checker = make_staff(organizer, role=Role.CHECKER)
    url = f"{live_server.url}/console/gate/scan/?gate={gate.public_id}&session={session.public_id}"

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(**PHONE)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            # given the scanner has downloaded the session pack
            sign_in(page, url, checker)
            page.wait_for_url(url)
            expect(page.locator('[data-part="pack"]')).to_have_attribute("data-ready", "true")
            assert page.evaluate("window.piaowuGate.offlineVerification()") is True

            # when the network goes down and a scanner reads the first ticket's QR
            context.set_offline(True)
            expect(page.locator('[data-part="net"]')).to_have_attribute("data-net", "offline")
            scan(page, qr)

            # then the device admits it itself and queues the scan
            answer = page.locator("#answer")
            expect(answer).to_have_attribute("data-state", "ok")
            expect(answer.locator('[data-part="seat"]')).to_have_text("Row 1, seat 5")
            expect(page.locator('[data-part="net"]')).to_have_text("Offline — scans queued: 1")
            assert not Admission.objects.exists()

            # and the same QR again is already used here; a forgery is caught by WebCrypto
            scan(page, qr)
            expect(answer).to_have_attribute("data-state", "refused")
            expect(answer.locator('[data-part="headline"]')).to_have_text("Already used")
            expect(answer.locator('[data-part="reason"]')).to_contain_text("Gate 3")
            scan(page, forged)
            expect(answer.locator('[data-part="headline"]')).to_have_text("Forged")
            # a serial cannot be checked offline (the pack has no serials)
            scan(page, tickets[1].serial)
            expect(answer.locator('[data-part="headline"]')).to_have_text("Cannot check offline")
            assert page.evaluate("window.piaowuGate.queued()") == 1

            # when the network is back, the queued admission is synced
            context.set_offline(False)
            page.wait_for_function("() => window.piaowuGate.queued() === 0")
            expect(page.locator('[data-part="net"]')).to_contain_text("Offline scans synced: 1")
            admission = Admission.objects.get()
            assert admission.ticket_id == tickets[0].pk and admission.first_gate_id == gate.pk
            synced = Scan.objects.get(ticket=tickets[0])
            assert (synced.source, synced.outcome, synced.device_accepted, synced.conflict) == (
                "offline",
                "valid",
                True,
                False,
            )

            # and online again, the server answers: the ticket is already used
            scan(page, tickets[0].serial)
            expect(answer).to_have_attribute("data-state", "refused")
            expect(answer.locator('[data-part="headline"]')).to_have_text("Already used")
            assert Admission.objects.count() == 1
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_gate_offline_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
            # This test's queries ran beside Playwright's loop on a connection of their own;
            # hand it back, or PostgreSQL cannot drop the test database afterwards.
            connections.close_all()


@pytest.mark.browser
@pytest.mark.slow
def test_a_scan_whose_answer_is_lost_is_retried_with_the_same_nonce_and_admits_once(
    transactional_db: None,
    live_server: Any,
    organizer: Organizer,
    make_staff: Callable[..., User],
    paid_order: MakePaidOrder,
    allow_sync_playwright: None,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    session, gate, tickets = doors_open_soon(organizer, paid_order)
    checker = make_staff(organizer, role=Role.CHECKER)
    url = f"{live_server.url}/console/gate/scan/?gate={gate.public_id}&session={session.public_id}"
    sent: list[dict[str, Any]] = []

    def lose_first_answer(route: Any) -> None:
        sent.append(json.loads(route.request.post_data))
        if len(sent) == 1:
            route.fetch()  # the server admits the ticket …
            route.abort("connectionreset")  # … but its answer never reaches the page
        else:
            route.continue_()

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(**PHONE).new_page()
        page.set_default_timeout(15_000)
        try:
            sign_in(page, url, checker)
            page.wait_for_url(url)
            expect(page.locator('[data-part="pack"]')).to_have_attribute("data-ready", "true")
            page.route("**/api/v1/checkin/scans", lose_first_answer)

            # when the first answer is lost on the way back
            scan(page, tickets[0].serial)

            # then the page retried the same scan and shows the server's first answer
            answer = page.locator("#answer")
            expect(answer).to_have_attribute("data-state", "ok")
            expect(answer.locator('[data-part="reason"]')).to_contain_text("already recorded")
            assert len(sent) == 2 and sent[0]["nonce"] == sent[1]["nonce"]
            assert Admission.objects.filter(ticket=tickets[0]).count() == 1
            assert Scan.objects.filter(ticket=tickets[0]).count() == 1
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_gate_retry_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
            # This test's queries ran beside Playwright's loop on a connection of their own;
            # hand it back, or PostgreSQL cannot drop the test database afterwards.
            connections.close_all()


@pytest.mark.browser
@pytest.mark.slow
def test_offline_scanner_wants_the_live_code_of_a_rotating_ticket(
    transactional_db: None,
    live_server: Any,
    organizer: Organizer,
    make_staff: Callable[..., User],
    paid_order: MakePaidOrder,
    allow_sync_playwright: None,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # given a session with rotating QR codes, and the holder's page showing the live code
    session, gate, tickets = doors_open_soon(organizer, paid_order, rotating=True)
    assert tickets[0].rotating
    qr = ticket_qr_text(tickets[0])
    step = int(time.time() // settings.PIAOWU_ROTATING_QR_STEP_SECONDS)
    live = f"{qr}:{codec.rotating_code(ticket_rotation_secret(tickets[0]), step)}"
    checker = make_staff(organizer, role=Role.CHECKER)
    url = f"{live_server.url}/console/gate/scan/?gate={gate.public_id}&session={session.public_id}"

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(**PHONE)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            sign_in(page, url, checker)
            page.wait_for_url(url)
            expect(page.locator('[data-part="pack"]')).to_have_attribute("data-ready", "true")
            context.set_offline(True)
            expect(page.locator('[data-part="net"]')).to_have_attribute("data-net", "offline")
            answer = page.locator("#answer")

            # when the static QR (a screenshot) is scanned, it is refused
            scan(page, qr)
            expect(answer).to_have_attribute("data-state", "refused")
            expect(answer.locator('[data-part="headline"]')).to_have_text("Code expired")

            # and with the live code it is admitted (HMAC checked in the browser)
            scan(page, live)
            expect(answer).to_have_attribute("data-state", "ok")
            assert page.evaluate("window.piaowuGate.queued()") == 1

            # and the server agrees once synced
            context.set_offline(False)
            page.wait_for_function("() => window.piaowuGate.queued() === 0")
            assert Admission.objects.get().ticket_id == tickets[0].pk
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_gate_rotating_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
            connections.close_all()


@pytest.mark.browser
@pytest.mark.slow
def test_re_entry_session_shows_the_toggle_and_offline_re_entry_follows_online_scans(
    transactional_db: None,
    live_server: Any,
    organizer: Organizer,
    make_staff: Callable[..., User],
    paid_order: MakePaidOrder,
    allow_sync_playwright: None,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    session, gate, tickets = doors_open_soon(organizer, paid_order)
    Session.objects.filter(pk=session.pk).update(reentry_allowed=True)
    qr = ticket_qr_text(tickets[0])
    checker = make_staff(organizer, role=Role.CHECKER)
    url = f"{live_server.url}/console/gate/scan/?gate={gate.public_id}&session={session.public_id}"

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(**PHONE)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            sign_in(page, url, checker)
            page.wait_for_url(url)
            expect(page.locator('[data-part="pack"]')).to_have_attribute("data-ready", "true")
            answer = page.locator("#answer")
            headline = answer.locator('[data-part="headline"]')

            # online: in, then out with the Exit toggle (amber)
            scan(page, qr)
            expect(headline).to_have_text("OK")
            page.locator('label:has(input[value="exit"])').click()
            scan(page, qr)
            expect(answer).to_have_attribute("data-state", "exit")
            expect(headline).to_have_text("Exit recorded")

            # offline: the device knows the holder went out, so coming back is a re-entry …
            context.set_offline(True)
            page.locator('label:has(input[value="entry"])').click()
            scan(page, qr)
            expect(headline).to_have_text("OK — re-entry")
            # … and a second entry is refused
            scan(page, qr)
            expect(headline).to_have_text("Already used")

            # online again: the server records the re-entry
            context.set_offline(False)
            page.wait_for_function("() => window.piaowuGate.queued() === 0")
            admission = Admission.objects.get()
            assert (admission.inside, admission.entries) == (True, 2)
            assert list(
                Scan.objects.order_by("scanned_at", "id").values_list("outcome", "source")
            ) == [("valid", "online"), ("exit_recorded", "online"), ("reentry", "offline")]
        except Exception:
            RESULTS.mkdir(exist_ok=True)
            page.screenshot(path=str(RESULTS / "test_gate_reentry_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
            connections.close_all()
