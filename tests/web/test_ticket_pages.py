"""The e-ticket page, its calendar / PDF downloads and the redemption page, through the Django
test client. Orders are bought and paid through the real services for the holder key the
browser's Django session carries, so each `Client` is one browser."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import Audience, CapacityMode, Event, Session
from piaowu.catalog.services import TierSpec
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout
from piaowu.orders.states import OrderState
from piaowu.tickets.models import RedemptionCode, Ticket
from piaowu.tickets.selectors import ticket_qr_text, ticket_rotation_secret
from piaowu.tickets.services import redemption_batch_create, ticket_void
from piaowu.web.templatetags.web_tags import qr_svg
from tests.factories import make_event, make_session, make_venue
from tests.inventory.conftest import make_block_hall
from tests.orders.conftest import PHONE, web_channel
from tests.tickets.conftest import (
    Clock,
    MakePaidOrder,
    clock,
    ga_session,
    paid_order,
    reserved_session,
)

__all__ = ["clock", "ga_session", "paid_order", "reserved_session"]

pytestmark = pytest.mark.django_db


def browser() -> Client:
    return Client(headers={"accept-language": "en"})


def holder(client: Client) -> str:
    """The browser's anonymous holder key (what the holds API stores in its session)."""
    store = client.session
    key = store.get("piaowu_holder") or f"anon:test-{id(client)}"
    store["piaowu_holder"] = key
    store.save()
    return str(key)


def tickets_url(order: Order) -> str:
    return reverse("web:order_tickets", kwargs={"public_id": order.public_id})


def text(response: Any) -> str:
    return str(response.content.decode())


def cards(html: str) -> list[str]:
    """The HTML of each ticket card, in page order."""
    return re.findall(r'<section class="ticket-card.*?</section>', html, flags=re.S)


@pytest.fixture
def bought(paid_order: MakePaidOrder) -> tuple[Client, Order]:
    """A guest's browser holding a paid order for seats M-1-5 and M-1-6."""
    client = browser()
    return client, paid_order(holder_key=holder(client))


def rotating_session(organizer: Organizer) -> Session:
    hall = make_block_hall(organizer, rows=2, seats_per_row=6)
    event = make_event(organizer, title="旋转码演出")
    return make_session(event, venue=hall.venue, hall=hall, rotating_qr=True)


# --- The e-ticket page -------------------------------------------------------------------------


def test_the_tickets_page_shows_each_ticket_with_its_qr_serial_seat_and_the_session(
    bought: tuple[Client, Order],
) -> None:
    client, order = bought
    response = client.get(tickets_url(order))
    html = text(response)
    tickets = list(order.tickets.order_by("id"))
    session = order.session
    start = session.local_starts_at

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert len(cards(html)) == 2
    for ticket, card in zip(tickets, cards(html), strict=True):
        assert f'data-part="serial">{ticket.serial}<' in card
        assert str(qr_svg(ticket_qr_text(ticket))) in card  # the signed code, drawn on the server
        assert "data-secret" not in card
        # each card names its own ticket's seat (the order of the seats in a hold is not fixed)
        assert ticket.seat is not None
        assert f"池座 · Row 1 · Seat {ticket.seat.number_label}<" in card
    assert {t.seat.code for t in tickets if t.seat} == {"M-1-5", "M-1-6"}
    assert session.event.title in html
    assert session.venue.name in html
    assert session.venue.address in html
    assert f"{start:%H:%M}" in html
    assert "turn up your screen brightness" in html
    assert "uri.amap.com" in html  # directions
    assert reverse("web:order_tickets_ics", kwargs={"public_id": order.public_id}) in html
    assert reverse("web:order_tickets_pdf", kwargs={"public_id": order.public_id}) in html
    assert "web/ticket.js" not in html  # static codes need no script


def test_general_admission_tickets_say_so_and_show_the_tier_with_its_audience(
    organizer: Organizer, ga_session: Callable[..., Session], paid_order: MakePaidOrder
) -> None:
    session = ga_session(
        tiers=[TierSpec(code="kid", name="儿童票", price=Decimal("80"), audience=Audience.CHILD)]
    )
    client = browser()
    order = paid_order(session=session, ga=2, holder_key=holder(client))
    html = text(client.get(tickets_url(order)))
    assert len(cards(html)) == 2
    for card in cards(html):
        assert 'data-part="seat">General admission<' in card
        assert 'data-part="tier">儿童票 (Child)<' in card


def test_the_seat_card_shows_the_section_entrance(
    bought: tuple[Client, Order],
) -> None:
    client, order = bought
    section = order.tickets.first().seat.section  # type: ignore[union-attr]
    section.entrance = "东 3 口"
    section.save(update_fields=["entrance"])
    html = text(client.get(tickets_url(order)))
    assert html.count('data-part="entrance">东 3 口<') == 2


def test_the_order_page_links_to_the_tickets_once_paid(bought: tuple[Client, Order]) -> None:
    client, order = bought
    html = text(client.get(reverse("web:order", kwargs={"public_id": order.public_id})))
    assert f'href="{tickets_url(order)}"' in html
    assert "Show my tickets" in html


def test_another_browser_gets_404_for_the_page_and_the_files(
    bought: tuple[Client, Order], paid_order: MakePaidOrder
) -> None:
    _client, order = bought
    stranger = browser()
    paid_order(holder_key=holder(stranger))  # the stranger has orders of their own
    kwargs = {"public_id": order.public_id}
    for name in ("web:order_tickets", "web:order_tickets_ics", "web:order_tickets_pdf"):
        assert stranger.get(reverse(name, kwargs=kwargs)).status_code == 404
        assert browser().get(reverse(name, kwargs=kwargs)).status_code == 404
    unknown = reverse("web:order_tickets", kwargs={"public_id": "01NOSUCHORDER"})
    assert browser().get(unknown).status_code == 404


def test_a_signed_in_buyer_sees_the_tickets_of_an_order_of_their_account(
    paid_order: MakePaidOrder, make_user: Callable[..., User]
) -> None:
    user = make_user()
    order = paid_order(holder_key=f"user:{user.pk}", customer=user)
    client = browser()
    client.force_login(user)
    assert client.get(tickets_url(order)).status_code == 200
    someone = browser()
    someone.force_login(make_user())
    assert someone.get(tickets_url(order)).status_code == 404


def test_an_unpaid_order_sends_the_buyer_to_the_order_page(
    organizer: Organizer, reserved_session: Callable[..., Session]
) -> None:
    client = browser()
    key = holder(client)
    hold = hold_seats(session=reserved_session(), seat_codes=["M-1-1"], holder_key=key)
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key=key, contact_phone=PHONE
    )
    assert order.state == OrderState.AWAITING_PAYMENT
    order_page = reverse("web:order", kwargs={"public_id": order.public_id})
    for name in ("web:order_tickets", "web:order_tickets_ics", "web:order_tickets_pdf"):
        response = client.get(reverse(name, kwargs={"public_id": order.public_id}))
        assert response.status_code == 302
        assert response["Location"] == order_page
    assert "Show my tickets" not in text(client.get(order_page))


def test_a_void_ticket_is_shown_greyed_without_a_code(bought: tuple[Client, Order]) -> None:
    client, order = bought
    void, valid = list(order.tickets.order_by("id"))
    ticket_void(ticket=void, actor=None, reason="refunded")
    void.refresh_from_db()

    html = text(client.get(tickets_url(order)))
    void_card, valid_card = cards(html)
    assert "ticket-void" in void_card
    assert "this ticket no longer admits" in void_card
    assert "<svg" not in void_card
    assert ticket_qr_text(void) not in html
    assert void.serial in void_card  # still listed, for the record
    assert "ticket-void" not in valid_card
    assert str(qr_svg(ticket_qr_text(valid))) in valid_card


def test_the_calendar_file_downloads(bought: tuple[Client, Order]) -> None:
    client, order = bought
    response = client.get(reverse("web:order_tickets_ics", kwargs={"public_id": order.public_id}))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="piaowu-{order.code}.ics"'
    body = response.content.decode()
    assert body.startswith("BEGIN:VCALENDAR")
    assert "BEGIN:VEVENT" in body


def test_the_pdf_downloads(bought: tuple[Client, Order]) -> None:
    client, order = bought
    response = client.get(reverse("web:order_tickets_pdf", kwargs={"public_id": order.public_id}))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert (
        response["Content-Disposition"] == f'attachment; filename="piaowu-tickets-{order.code}.pdf"'
    )
    assert "no-store" in response["Cache-Control"]
    assert response.content.startswith(b"%PDF-")


def test_with_every_ticket_void_the_downloads_go_back_to_the_page_with_the_reason(
    bought: tuple[Client, Order],
) -> None:
    client, order = bought
    for ticket in order.tickets.all():
        ticket_void(ticket=ticket, actor=None, reason="refunded")
    page = text(client.get(tickets_url(order)))
    assert "Download PDF" not in page
    assert "Add to calendar" not in page
    response = client.get(
        reverse("web:order_tickets_pdf", kwargs={"public_id": order.public_id}), follow=True
    )
    assert response.redirect_chain == [(tickets_url(order), 302)]
    assert "This order has no valid tickets" in text(response)


def test_a_rotating_ticket_page_gives_its_holder_the_secret_and_no_static_code(
    organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    client = browser()
    order = paid_order(session=rotating_session(organizer), holder_key=holder(client))
    tickets = list(order.tickets.order_by("id"))
    assert all(t.rotating for t in tickets)

    html = text(client.get(tickets_url(order)))
    assert len(cards(html)) == 2
    for ticket, card in zip(tickets, cards(html), strict=True):
        secret = base64.b64encode(ticket_rotation_secret(ticket)).decode()
        assert f'data-secret="{secret}"' in card
        assert f'data-static="{ticket_qr_text(ticket)}"' in card
        assert "<svg" not in card.split('data-part="timer"')[0]  # no QR drawn by the server
        assert ticket.serial in card
    assert str(qr_svg(ticket_qr_text(tickets[0]))) not in html
    assert 'data-step-seconds="15"' in html
    assert "a screenshot will not work" in html
    assert "web/ticket.js" in html

    # and nobody else's browser gets it
    stranger = browser()
    response = stranger.get(tickets_url(order))
    assert response.status_code == 404
    assert "data-secret" not in text(response)


def test_a_voided_rotating_ticket_carries_no_secret(
    organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    client = browser()
    order = paid_order(session=rotating_session(organizer), holder_key=holder(client))
    void = order.tickets.order_by("id").first()
    assert void is not None
    secret = base64.b64encode(ticket_rotation_secret(void)).decode()
    ticket_void(ticket=void, actor=None, reason="refunded")

    html = text(client.get(tickets_url(order)))
    assert secret not in html
    assert html.count("data-secret=") == 1


# --- Redemption ----------------------------------------------------------------------------------

REDEEM = "/redeem/"


def make_batch(session: Session, *, tier_code: str = "std", size: int = 3) -> list[str]:
    batch = redemption_batch_create(
        organizer=session.event.organizer,
        event=session.event,
        tier_code=tier_code,
        name="公司福利",
        size=size,
        valid_until=session.starts_at,
        actor=None,
    )
    return list(RedemptionCode.objects.filter(batch=batch).values_list("code", flat=True))


@pytest.fixture
def on_sale(reserved_session: Callable[..., Session]) -> Session:
    return reserved_session()


def post_redeem(client: Client, **data: str) -> Any:
    return client.post(REDEEM, data)


def test_the_redeem_page_asks_for_a_code(on_sale: Session) -> None:
    response = browser().get(REDEEM)
    assert response.status_code == 200
    assert 'name="code"' in text(response)
    assert 'name="phone"' not in text(response)


def test_a_guest_redeems_a_code_and_lands_on_the_new_tickets(on_sale: Session) -> None:
    code = make_batch(on_sale)[0]
    client = browser()

    # step 1: the code lists the sessions it is good for
    step1 = client.get(REDEEM, {"code": code.lower().replace("-", "")})
    html = text(step1)
    assert step1.status_code == 200
    assert f'value="{on_sale.public_id}"' in html
    assert on_sale.event.title in html
    assert 'name="phone"' in html

    # step 2: choose it and give a phone
    response = post_redeem(client, code=code, session=on_sale.public_id, phone=PHONE)
    row = RedemptionCode.objects.select_related("order").get(code=code)
    order = row.order
    assert order is not None
    assert response.status_code == 302
    assert response["Location"] == tickets_url(order)
    assert order.state == OrderState.PAID
    assert order.total_amount == Decimal("0.00")
    assert row.redeemed_at is not None

    # and the guest's browser may open the tickets
    ticket = Ticket.objects.get(order=order)
    page = client.get(tickets_url(order))
    assert page.status_code == 200
    assert ticket.serial in text(page)


def test_a_signed_in_customer_may_redeem_without_a_phone(
    on_sale: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    client = browser()
    client.force_login(user)
    code = make_batch(on_sale)[0]
    response = post_redeem(client, code=code, session=on_sale.public_id)
    order = Order.objects.get(redemption__code=code)
    assert response.status_code == 302
    assert order.customer == user


@pytest.mark.parametrize("typed", ["ZZZZ-ZZZZ-ZZZZ", "hello"])
def test_an_unknown_code_is_refused_at_step_one(on_sale: Session, typed: str) -> None:
    response = browser().get(REDEEM, {"code": typed})
    html = text(response)
    assert response.status_code == 400
    assert "This is not a valid redemption code." in html
    assert f'value="{typed}"' in html  # kept for correcting
    assert 'name="session"' not in html


def test_a_used_code_is_refused_at_both_steps(on_sale: Session) -> None:
    code = make_batch(on_sale)[0]
    first = post_redeem(browser(), code=code, session=on_sale.public_id, phone=PHONE)
    assert first.status_code == 302
    assert RedemptionCode.objects.get(code=code).redeemed_at is not None

    step1 = browser().get(REDEEM, {"code": code})
    step2 = post_redeem(browser(), code=code, session=on_sale.public_id, phone=PHONE)
    for response in (step1, step2):
        assert response.status_code == 400
        assert "This code has already been redeemed." in text(response)
    assert Order.objects.count() == 1


def test_an_expired_code_is_refused(on_sale: Session, clock: Clock) -> None:
    code = make_batch(on_sale)[0]
    clock.shift(on_sale.starts_at - clock() + dt.timedelta(minutes=1))
    response = post_redeem(browser(), code=code, session=on_sale.public_id, phone=PHONE)
    assert response.status_code == 400
    assert "This code expired on" in text(response)
    assert not Order.objects.exists()


def test_a_session_of_another_event_is_refused(
    on_sale: Session, reserved_session: Callable[..., Session]
) -> None:
    code = make_batch(on_sale)[0]
    other = reserved_session()  # another event, same tier code
    response = post_redeem(browser(), code=code, session=other.public_id, phone=PHONE)
    html = text(response)
    assert response.status_code == 400
    assert "This code is for another event." in html
    assert f'value="{on_sale.public_id}"' in html  # the right sessions are offered again
    assert RedemptionCode.objects.get(code=code).redeemed_at is None


def test_a_session_without_the_codes_ticket_type_is_refused(
    organizer: Organizer, on_sale: Session
) -> None:
    code = make_batch(on_sale)[0]
    event: Event = on_sale.event
    lawn = make_session(
        event,
        venue=make_venue(organizer, name="草坪"),
        capacity_mode=CapacityMode.GENERAL,
        capacity=10,
        starts_in=dt.timedelta(days=5),
        tiers=[TierSpec(code="lawn", name="草坪票", price=Decimal("99"))],
    )
    step1 = text(browser().get(REDEEM, {"code": code}))
    assert lawn.public_id not in step1  # not offered
    response = post_redeem(browser(), code=code, session=lawn.public_id, phone=PHONE)
    assert response.status_code == 400
    assert "This session has no tickets of the code&#x27;s type" in text(response)


def test_a_sold_out_session_is_refused_and_the_form_keeps_what_was_typed(
    ga_session: Callable[..., Session], paid_order: MakePaidOrder
) -> None:
    session = ga_session(capacity=1)
    code = make_batch(session, tier_code="ga")[0]
    paid_order(session=session, ga=1)  # the last admission is gone

    response = post_redeem(
        browser(), code=code, session=session.public_id, phone=PHONE, email="mei@example.com"
    )
    html = text(response)
    assert response.status_code == 400
    assert 'role="alert"' in html
    assert f'value="{PHONE}"' in html
    assert 'value="mei@example.com"' in html
    assert re.search(rf'value="{session.public_id}"[^>]*checked', html)
    assert RedemptionCode.objects.get(code=code).redeemed_at is None


def test_a_guest_must_give_a_valid_phone(on_sale: Session) -> None:
    code = make_batch(on_sale)[0]
    missing = post_redeem(browser(), code=code, session=on_sale.public_id, phone=" ")
    assert missing.status_code == 400
    assert "Enter a phone number so you can find your order again." in text(missing)
    bad = post_redeem(browser(), code=code, session=on_sale.public_id, phone="call me maybe")
    assert bad.status_code == 400
    assert "Enter a valid phone number." in text(bad)
    assert 'value="call me maybe"' in text(bad)
    assert not Order.objects.exists()


def test_no_session_chosen_or_an_unknown_one_is_asked_again(on_sale: Session) -> None:
    code = make_batch(on_sale)[0]
    none = post_redeem(browser(), code=code, phone=PHONE)
    assert none.status_code == 400
    assert "Choose a session." in text(none)
    unknown = post_redeem(browser(), code=code, session="01NOSUCHSESSION", phone=PHONE)
    assert unknown.status_code == 400
    assert "Choose one of the sessions listed." in text(unknown)
    assert not Order.objects.exists()


def test_a_code_whose_sessions_are_not_on_sale_says_so(
    reserved_session: Callable[..., Session],
) -> None:
    later = reserved_session(sales_open_in=dt.timedelta(days=1))
    code = make_batch(later)[0]
    response = browser().get(REDEEM, {"code": code})
    assert response.status_code == 400
    assert "No session can be booked with this code right now." in text(response)
