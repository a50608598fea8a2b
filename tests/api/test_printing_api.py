"""API: the buyer's tickets PDF and calendar file; staff prints with reprints and
Idempotency-Key."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from django.test import Client
from icalendar import Calendar
from pypdf import PdfReader

from piaowu.accounts.models import Organizer, Role, User
from piaowu.catalog.models import Session
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout
from piaowu.tickets.models import PrintLog, Ticket
from piaowu.tickets.selectors import ticket_qr_text
from piaowu.tickets.services import ticket_void
from tests.factories import make_event, make_session, make_venue
from tests.orders.conftest import PHONE, web_channel
from tests.tickets.conftest import MakePaidOrder, ga_session, paid_order, reserved_session

__all__ = ["ga_session", "paid_order", "reserved_session"]

MakeStaff = Callable[..., User]


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["code"] == code


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def buyer(make_user: Callable[..., User]) -> User:
    return make_user(email="buyer@example.com")


@pytest.fixture
def bought(paid_order: MakePaidOrder, buyer: User) -> Order:
    return paid_order(holder_key=f"user:{buyer.pk}", customer=buyer)


# --- Buyer files ------------------------------------------------------------------------------


def test_the_buyer_downloads_the_tickets_pdf(bought: Order, buyer: User) -> None:
    response = signed_in(buyer).get(f"/api/v1/orders/{bought.public_id}/tickets.pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="tickets-{bought.code}.pdf"'
    assert "no-store" in response["Cache-Control"]
    pages = PdfReader(BytesIO(response.content)).pages
    serials = list(Ticket.objects.filter(order=bought).values_list("serial", flat=True))
    assert len(pages) == len(serials) == 2
    text = " ".join(page.extract_text() for page in pages)
    assert all(serial in text for serial in serials)


def test_the_buyer_downloads_the_calendar_entry(bought: Order, buyer: User) -> None:
    response = signed_in(buyer).get(f"/api/v1/orders/{bought.public_id}/tickets.ics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    event = next(iter(Calendar.from_ical(response.content).walk("VEVENT")))
    assert event.decoded("dtstart") == bought.session.starts_at.replace(microsecond=0)


def test_a_guest_gets_the_files_after_looking_the_order_up(paid_order: MakePaidOrder) -> None:
    order = paid_order()
    guest = Client()
    assert_error(guest.get(f"/api/v1/orders/{order.public_id}/tickets.pdf"), 404, "order_not_found")

    found = guest.post(
        "/api/v1/orders/lookup",
        {"code": order.code, "phone": PHONE},
        content_type="application/json",
    )
    assert found.status_code == 200, found.content

    assert guest.get(f"/api/v1/orders/{order.public_id}/tickets.pdf").status_code == 200
    assert guest.get(f"/api/v1/orders/{order.public_id}/tickets.ics").status_code == 200


@pytest.mark.parametrize("suffix", ["pdf", "ics"])
def test_someone_elses_or_an_unknown_order_is_404(
    bought: Order, make_user: Callable[..., User], suffix: str
) -> None:
    stranger = signed_in(make_user())
    assert_error(
        stranger.get(f"/api/v1/orders/{bought.public_id}/tickets.{suffix}"),
        404,
        "order_not_found",
    )
    assert_error(
        Client().get(f"/api/v1/orders/{bought.public_id}/tickets.{suffix}"),
        404,
        "order_not_found",
    )
    assert_error(
        stranger.get(f"/api/v1/orders/01NOSUCHORDER/tickets.{suffix}"), 404, "order_not_found"
    )


@pytest.mark.parametrize("suffix", ["pdf", "ics"])
def test_an_unpaid_order_is_409(
    organizer: Organizer,
    reserved_session: Callable[..., Session],
    buyer: User,
    suffix: str,
) -> None:
    session = reserved_session()
    key = f"user:{buyer.pk}"
    hold = hold_seats(session=session, seat_codes=["M-1-1"], holder_key=key)
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key=key, customer=buyer
    )

    response = signed_in(buyer).get(f"/api/v1/orders/{order.public_id}/tickets.{suffix}")

    assert_error(response, 409, "order_not_paid")
    assert response.json()["details"] == {"state": "awaiting_payment"}


def test_an_order_whose_tickets_were_all_voided_has_no_pdf(bought: Order, buyer: User) -> None:
    for ticket in Ticket.objects.filter(order=bought):
        ticket_void(ticket=ticket, actor=None, reason="refund")
    assert_error(
        signed_in(buyer).get(f"/api/v1/orders/{bought.public_id}/tickets.pdf"),
        409,
        "no_valid_tickets",
    )


# --- Staff prints -----------------------------------------------------------------------------


def print_ticket(client: Client, ticket: Ticket, body: Any, **headers: str) -> Any:
    return client.post(
        f"/api/v1/tickets/{ticket.public_id}/prints",
        body,
        content_type="application/json",
        headers=headers,
    )


@pytest.fixture
def ticket(paid_order: MakePaidOrder) -> Ticket:
    found = Ticket.objects.filter(order=paid_order()).order_by("id").first()
    assert found is not None
    return found


@pytest.fixture
def seller(organizer: Organizer, make_staff: MakeStaff) -> Client:
    return signed_in(make_staff(organizer, role=Role.SELLER))


def test_a_print_answers_the_code_and_a_reprint_a_new_one(seller: Client, ticket: Ticket) -> None:
    first = print_ticket(seller, ticket, {"layout": "thermal80", "device": "Box 1"})

    assert first.status_code == 201, first.content
    body = first.json()
    assert body["ticket"] == ticket.public_id and body["serial"] == ticket.serial
    assert (body["reprint"], body["secret_version"], body["layout"], body["device"]) == (
        False,
        1,
        "thermal80",
        "Box 1",
    )
    assert body["qr_text"] == ticket_qr_text(ticket)
    assert body["superseded"] is False and body["rotating"] is False
    assert body["printed_at"].endswith("Z")
    assert PrintLog.objects.get(pk=body["id"]).ticket_id == ticket.pk

    second = print_ticket(seller, ticket, {"layout": "a4", "device": "Box 1"})

    assert second.status_code == 201, second.content
    again = second.json()
    assert again["reprint"] is True and again["secret_version"] == 2
    assert again["qr_text"] != body["qr_text"]
    ticket.refresh_from_db()
    assert again["qr_text"] == ticket_qr_text(ticket)


def test_a_retried_print_with_the_same_key_is_not_a_reprint(seller: Client, ticket: Ticket) -> None:
    body = {"layout": "thermal80", "device": "Box 1"}
    first = print_ticket(seller, ticket, body, **{"Idempotency-Key": "k-1"})
    retry = print_ticket(seller, ticket, body, **{"Idempotency-Key": "k-1"})

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert PrintLog.objects.filter(ticket=ticket).count() == 1

    reused = print_ticket(
        seller, ticket, {"layout": "a4", "device": "Box 1"}, **{"Idempotency-Key": "k-1"}
    )
    assert_error(reused, 422, "idempotency_key_reused")

    # After a real reprint, replaying the first print no longer hands out its (void) code.
    print_ticket(seller, ticket, body, **{"Idempotency-Key": "k-2"})
    replay = print_ticket(seller, ticket, body, **{"Idempotency-Key": "k-1"})
    assert replay.json()["superseded"] is True and replay.json()["qr_text"] is None
    assert PrintLog.objects.filter(ticket=ticket).count() == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"layout": "receipt", "device": "Box 1"}, "invalid_input"),
        ({"layout": "a4"}, "invalid_input"),
        ({"layout": "a4", "device": ""}, "invalid_input"),
        ({"layout": "a4", "device": "x" * 81}, "invalid_input"),
        ({"layout": "a4", "device": "   "}, "invalid_device"),
        ({"layout": "a4", "device": "Box\t1"}, "invalid_device"),
    ],
)
def test_bad_print_bodies_are_400_and_print_nothing(
    seller: Client, ticket: Ticket, body: dict[str, Any], code: str
) -> None:
    assert_error(print_ticket(seller, ticket, body), 400, code)
    assert not PrintLog.objects.exists()


def test_printing_a_void_ticket_is_409(seller: Client, ticket: Ticket) -> None:
    ticket_void(ticket=ticket, actor=None, reason="refund")
    assert_error(
        print_ticket(seller, ticket, {"layout": "a4", "device": "Box 1"}), 409, "ticket_void"
    )


def test_only_sellers_of_the_organizer_may_print(
    ticket: Ticket,
    organizer: Organizer,
    other_organizer: Organizer,
    make_staff: MakeStaff,
    make_user: Callable[..., User],
) -> None:
    body = {"layout": "a4", "device": "Box 1"}
    assert_error(print_ticket(Client(), ticket, body), 401, "unauthorized")
    for user in (
        make_staff(organizer, role=Role.CHECKER),
        make_staff(other_organizer, role=Role.ADMIN),
        make_user(),
    ):
        assert_error(print_ticket(signed_in(user), ticket, body), 404, "ticket_not_found")
    assert not PrintLog.objects.exists()
    response = print_ticket(signed_in(make_staff(organizer, role=Role.SELLER)), ticket, {**body})
    assert response.status_code == 201
    assert_error(
        Client().post(
            "/api/v1/tickets/01NOSUCHTICKET/prints", body, content_type="application/json"
        ),
        401,
        "unauthorized",
    )


def test_a_browser_print_needs_the_csrf_token(
    ticket: Ticket, organizer: Organizer, make_staff: MakeStaff
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_staff(organizer, role=Role.SELLER))
    assert_error(
        print_ticket(client, ticket, {"layout": "a4", "device": "Box 1"}), 403, "forbidden"
    )


def test_a_rotating_code_ticket_is_printed_without_a_code(
    organizer: Organizer, paid_order: MakePaidOrder, seller: Client
) -> None:
    venue = make_venue(organizer, name="草地 rot")
    event = make_event(organizer, title="音乐节 rot")
    session = make_session(
        event, venue=venue, capacity_mode="general", capacity=5, rotating_qr=True
    )
    rotating = Ticket.objects.get(order=paid_order(session=session, ga=1))

    body = print_ticket(seller, rotating, {"layout": "thermal80", "device": "Box 1"}).json()

    assert body["rotating"] is True and body["qr_text"] is None


def test_the_endpoints_are_documented_with_their_errors(client: Client) -> None:
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    pdf = paths["/api/v1/orders/{order_id}/tickets.pdf"]["get"]
    assert "order_not_paid" in pdf["description"]
    assert "application/pdf" in pdf["responses"]["200"]["content"]
    prints = paths["/api/v1/tickets/{ticket_id}/prints"]["post"]
    assert "ticket_void" in prints["description"]
    assert any(p["name"] == "Idempotency-Key" for p in prints["parameters"])
