"""Console print pages: who may see them, the 80 mm and A4 layouts, reprints, the print log."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer, Role, User
from piaowu.orders.models import Order
from piaowu.tickets.models import PrintLog, Ticket
from piaowu.tickets.selectors import ticket_qr_text
from piaowu.tickets.services import ticket_void
from tests.factories import make_event, make_session, make_venue
from tests.tickets.conftest import MakePaidOrder, ga_session, paid_order, reserved_session

__all__ = ["ga_session", "paid_order", "reserved_session"]

MakeStaff = Callable[..., User]


def signed_in(user: User) -> Client:
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(user)
    return client


@pytest.fixture
def order(paid_order: MakePaidOrder) -> Order:
    return paid_order()


@pytest.fixture
def seller(organizer: Organizer, make_staff: MakeStaff) -> Client:
    return signed_in(make_staff(organizer, role=Role.SELLER))


def order_url(order: Order) -> str:
    return f"/console/print/orders/{order.public_id}/"


def print_url(ticket: Ticket) -> str:
    return f"/console/print/tickets/{ticket.public_id}/prints/"


def print_key(page: str, ticket: Ticket) -> str:
    """The one-time key of the ticket's print form on the order page."""
    row = page[page.index(f'data-serial="{ticket.serial}"') :]
    found = re.search(r'name="print_key" value="([^"]+)"', row)
    assert found is not None
    return found.group(1)


def post_print(client: Client, ticket: Ticket, layout: str, key: str = "", **extra: Any) -> Any:
    data = {"layout": layout, "device": "Box 1", **extra}
    if key:
        data["print_key"] = key
    return client.post(print_url(ticket), data)


def tickets_of(order: Order) -> list[Ticket]:
    return list(Ticket.objects.filter(order=order).order_by("id"))


def test_the_order_page_lists_the_tickets_with_print_buttons(seller: Client, order: Order) -> None:
    response = seller.get(order_url(order))

    assert response.status_code == 200
    page = response.content.decode()
    for ticket in tickets_of(order):
        assert ticket.serial in page
        assert print_url(ticket) in page
    assert 'value="thermal80"' in page and 'value="a4"' in page
    assert order.session.event.title in page
    assert "Nothing printed yet." in page


def test_printing_renders_the_80mm_layout_and_logs_the_print(seller: Client, order: Order) -> None:
    ticket = tickets_of(order)[0]

    response = post_print(seller, ticket, "thermal80")

    assert response.status_code == 200
    page = response.content.decode()
    assert "@page { size: 80mm auto; margin: 0 }" in page
    assert "window.print()" in page
    assert "<svg" in page and ticket.serial in page
    assert order.session.event.title in page and order.code in page
    assert f"{order.session.local_starts_at:%Y-%m-%d %H:%M}" in page
    assert ticket_qr_text(ticket) not in page  # drawn as modules, never written out
    assert "REPRINT" not in page
    log = PrintLog.objects.get(ticket=ticket)
    assert (log.layout, log.device, log.reprint) == ("thermal80", "Box 1", False)


def test_a_reprint_is_marked_with_its_version_and_shows_a_new_code(
    seller: Client, order: Order
) -> None:
    ticket = tickets_of(order)[0]
    first = post_print(seller, ticket, "a4").content.decode()

    second = post_print(seller, ticket, "a4").content.decode()

    assert "@page { size: A4" in second
    assert "REPRINT · version 2" in second
    ticket.refresh_from_db()
    assert ticket.secret_version == 2
    svg = re.compile(r"<svg.*?</svg>", re.S)
    assert svg.search(first).group(0) != svg.search(second).group(0)  # type: ignore[union-attr]
    log_page = seller.get(order_url(order)).content.decode()
    assert log_page.count('class="print-log-row"') == 2
    assert "Reprint" in log_page
    assert "Printing again voids the earlier paper." in log_page


def test_submitting_the_same_print_form_again_does_not_reprint(
    seller: Client, order: Order
) -> None:
    ticket = tickets_of(order)[0]
    key = print_key(seller.get(order_url(order)).content.decode(), ticket)

    first = post_print(seller, ticket, "thermal80", key)
    again = post_print(seller, ticket, "thermal80", key)

    assert first.status_code == again.status_code == 200
    assert PrintLog.objects.filter(ticket=ticket).count() == 1
    assert "REPRINT" not in again.content.decode()


def test_a_void_ticket_is_not_printed(seller: Client, order: Order) -> None:
    ticket = tickets_of(order)[0]
    ticket_void(ticket=ticket, actor=None, reason="refund")

    response = post_print(seller, ticket, "thermal80")

    assert response.status_code == 409
    assert "cannot be printed" in response.content.decode()
    assert not PrintLog.objects.exists()
    assert "Void" in seller.get(order_url(order)).content.decode()


def test_a_bad_layout_is_refused(seller: Client, order: Order) -> None:
    response = post_print(seller, tickets_of(order)[0], "receipt")
    assert response.status_code == 400
    assert not PrintLog.objects.exists()


def test_a_rotating_code_ticket_prints_the_serial_and_no_code(
    organizer: Organizer, paid_order: MakePaidOrder, seller: Client
) -> None:
    venue = make_venue(organizer, name="草地 rot")
    event = make_event(organizer, title="音乐节 rot")
    session = make_session(
        event, venue=venue, capacity_mode="general", capacity=5, rotating_qr=True
    )
    ticket = tickets_of(paid_order(session=session, ga=1))[0]

    page = post_print(seller, ticket, "thermal80").content.decode()

    assert "Show the live code on your phone" in page
    assert "<svg" not in page and ticket.serial in page


def test_finding_an_order_by_code(seller: Client, order: Order) -> None:
    found = seller.get("/console/print/", {"code": order.code.lower()})
    assert found.status_code == 302 and found["Location"] == order_url(order)

    missing = seller.get("/console/print/", {"code": "NOSUCH"})
    assert missing.status_code == 404
    assert "No such order." in missing.content.decode()
    assert seller.get("/console/print/").status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(order: Order) -> None:
    ticket = tickets_of(order)[0]
    for response in (
        Client().get(order_url(order)),
        Client().post(print_url(ticket), {"layout": "a4", "device": "x"}),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    assert not PrintLog.objects.exists()


def test_checkers_customers_and_other_organizers_cannot_print(
    order: Order,
    organizer: Organizer,
    other_organizer: Organizer,
    make_staff: MakeStaff,
    make_user: Callable[..., User],
) -> None:
    ticket = tickets_of(order)[0]
    for user, status in (
        (make_staff(organizer, role=Role.CHECKER), 403),  # may not sell anywhere
        (make_user(), 403),
        (make_staff(other_organizer, role=Role.ADMIN), 404),  # not their order
    ):
        client = signed_in(user)
        assert client.get(order_url(order)).status_code == status
        assert post_print(client, ticket, "a4").status_code == status
        assert client.get("/console/print/", {"code": order.code}).status_code in (403, 404)
    assert not PrintLog.objects.exists()


def test_printing_needs_a_post(seller: Client, order: Order) -> None:
    assert seller.get(print_url(tickets_of(order)[0])).status_code == 405
