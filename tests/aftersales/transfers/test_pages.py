"""The transfer pages through the Django test client: the "Transfer" button on the e-ticket
card, the form and its pending state with cancel, the receiver's link (sign in, then accept),
the e-ticket page that shows a transferred ticket's QR to its holder only, "My tickets", and
the buyer's PDF that leaves a transferred ticket out."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import User
from piaowu.aftersales.models import Notice, Transfer
from piaowu.aftersales.services.transfers import ACCEPT_PATH, transfer_accept, transfer_offer
from piaowu.catalog.models import Session
from piaowu.tickets.selectors import ticket_qr_text, ticket_rotation_secret
from tests.aftersales.transfers.conftest import RECEIVER_EMAIL, Bought, MakeBought
from tests.factories import make_event, make_session
from tests.inventory.conftest import make_block_hall

pytestmark = pytest.mark.django_db


def browser(user: User | None = None) -> Client:
    client = Client(headers={"accept-language": "en"})
    if user is not None:
        client.force_login(user)
    return client


def text(response: Any) -> str:
    return str(response.content.decode())


def cards(html: str) -> list[str]:
    return re.findall(r'<section class="ticket-card.*?</section>', html, flags=re.S)


def tickets_url(bought: Bought) -> str:
    return reverse("web:order_tickets", kwargs={"public_id": bought.order.public_id})


def transfer_url(bought: Bought, index: int = 0) -> str:
    return reverse("web:ticket_transfer", kwargs={"public_id": bought.tickets[index].public_id})


def ticket_url(bought: Bought, index: int = 0) -> str:
    return reverse("web:ticket", kwargs={"public_id": bought.tickets[index].public_id})


def accept_url(transfer: Transfer) -> str:
    return reverse("web:transfer_accept", kwargs={"code": transfer.code})


def offered(bought: Bought, index: int = 0) -> Transfer:
    return transfer_offer(
        ticket=bought.tickets[index],
        sender=bought.buyer,
        receiver_contact=RECEIVER_EMAIL,
        receiver_name="王小明",
    )


# --- The button and the form -------------------------------------------------------------------


def test_the_ticket_card_offers_a_transfer_where_the_session_allows_it(
    make_bought: MakeBought,
) -> None:
    allowed = make_bought()
    closed = make_bought(allowed=False)

    html = text(browser(allowed.buyer).get(tickets_url(allowed)))
    assert [transfer_url(allowed, i) in card for i, card in enumerate(cards(html))] == [True, True]
    assert "Transfer to someone" in html

    other = text(browser(closed.buyer).get(tickets_url(closed)))
    assert 'data-part="transfer"' not in other


def test_the_form_sends_the_ticket_and_shows_the_pending_state(bought: Bought) -> None:
    client = browser(bought.buyer)
    form = client.get(transfer_url(bought))
    assert form.status_code == 200
    assert 'name="receiver_contact"' in text(form)

    response = client.post(
        transfer_url(bought),
        {"receiver_name": "王小明", "receiver_contact": RECEIVER_EMAIL},
        follow=True,
    )

    transfer = Transfer.objects.get()
    assert transfer.state == "pending" and transfer.receiver_contact == RECEIVER_EMAIL
    html = text(response)
    assert response.redirect_chain[-1][0] == transfer_url(bought)
    assert 'data-part="pending"' in html
    assert reverse("web:transfer_cancel", kwargs={"public_id": transfer.public_id}) in html
    assert "We sent the ticket to 王小明" in html
    assert Notice.objects.filter(recipient=RECEIVER_EMAIL, kind="email").count() == 1
    # The card now says the transfer is pending.
    assert "Transfer pending" in cards(text(client.get(tickets_url(bought))))[0]


@pytest.mark.parametrize(
    ("contact", "message"),
    [
        ("nope", "mobile phone number or e-mail address"),
        ("SELF", "cannot transfer a ticket to yourself"),
    ],
)
def test_a_refused_offer_shows_the_reason_on_its_field(
    bought: Bought, contact: str, message: str
) -> None:
    value = bought.buyer.email if contact == "SELF" else contact
    response = browser(bought.buyer).post(
        transfer_url(bought), {"receiver_name": "王小明", "receiver_contact": value}
    )
    assert response.status_code == 400
    assert message in text(response)
    assert 'id="id_receiver_contact_error"' in text(response)
    assert not Transfer.objects.exists()


def test_the_transfer_page_needs_sign_in_and_the_ticket(
    bought: Bought, make_user: Callable[..., User]
) -> None:
    anonymous = browser().get(transfer_url(bought))
    assert anonymous.status_code == 302 and reverse("web:login") in anonymous["Location"]
    assert browser(make_user()).get(transfer_url(bought)).status_code == 404


def test_cancelling_from_the_page(bought: Bought, make_user: Callable[..., User]) -> None:
    transfer = offered(bought)
    url = reverse("web:transfer_cancel", kwargs={"public_id": transfer.public_id})

    assert browser(make_user()).post(url).status_code == 404
    response = browser(bought.buyer).post(url, follow=True)

    transfer.refresh_from_db()
    assert transfer.state == "cancelled"
    assert "Transfer cancelled" in text(response)
    assert 'name="receiver_contact"' in text(response)  # the form again


# --- The receiver's link -----------------------------------------------------------------------


def test_the_link_the_receiver_gets_is_the_accept_page(bought: Bought) -> None:
    transfer = offered(bought)
    assert accept_url(transfer) == ACCEPT_PATH.format(code=transfer.code)


def test_the_accept_page_asks_a_visitor_to_sign_in(bought: Bought) -> None:
    transfer = offered(bought)
    client = browser()

    page = client.get(accept_url(transfer))
    html = text(page)
    assert page.status_code == 200
    assert str(bought.buyer) in html and "Row 1 · Seat 5" in html
    assert f"{reverse('web:login')}?next={accept_url(transfer)}" in html
    assert 'data-part="accept"' not in html
    # Posting without an account goes to the login page and accepts nothing.
    posted = client.post(accept_url(transfer))
    assert posted.status_code == 302 and posted["Location"].startswith(reverse("web:login"))
    transfer.refresh_from_db()
    assert transfer.state == "pending"


def test_a_signed_in_receiver_accepts_and_sees_the_qr(bought: Bought, receiver: User) -> None:
    transfer = offered(bought)
    client = browser(receiver)
    assert 'data-part="accept"' in text(client.get(accept_url(transfer)))

    response = client.post(accept_url(transfer), follow=True)

    assert response.redirect_chain[-1][0] == ticket_url(bought)
    html = text(response)
    ticket = bought.fresh()
    assert ticket.holder == receiver
    (card,) = cards(html)
    assert "<svg" in card and "王小明" in card
    assert "no-store" in response["Cache-Control"]
    assert ticket_qr_text(ticket)  # the page drew this ticket's current code
    assert 'data-part="transferred"' not in card


def test_the_buyer_no_longer_sees_the_code_of_a_ticket_given_away(
    bought: Bought, receiver: User
) -> None:
    transfer_accept(code=offered(bought).code, receiver=receiver)
    client = browser(bought.buyer)

    first, second = cards(text(client.get(tickets_url(bought))))
    single = cards(text(client.get(ticket_url(bought))))[0]

    for html in (first, single):
        assert "<svg" not in html
        assert 'data-part="transferred"' in html and "王小明" in html
        assert 'data-part="transfer"' not in html
    assert "<svg" in second


def test_a_rotating_tickets_secret_goes_to_its_holder_only(
    make_bought: MakeBought, receiver: User, organizer: Any
) -> None:
    hall = make_block_hall(organizer, rows=2, seats_per_row=8)
    session: Session = make_session(
        make_event(organizer, title="旋转码演出"), venue=hall.venue, hall=hall, rotating_qr=True
    )
    bought = make_bought(session=session)
    transfer_accept(code=offered(bought).code, receiver=receiver)
    secret = base64.b64encode(ticket_rotation_secret(bought.fresh())).decode("ascii")

    buyer_pages = [
        text(browser(bought.buyer).get(tickets_url(bought))),
        text(browser(bought.buyer).get(ticket_url(bought))),
    ]
    holder_page = text(browser(receiver).get(ticket_url(bought)))

    assert all(secret not in page for page in buyer_pages)
    assert f'data-secret="{secret}"' in holder_page


def test_accept_page_refusals_are_shown(
    bought: Bought, receiver: User, make_user: Callable[..., User]
) -> None:
    transfer = offered(bought)
    assert browser(bought.buyer).post(accept_url(transfer)).status_code == 400  # to self
    transfer_accept(code=transfer.code, receiver=receiver)

    late = browser(make_user()).post(accept_url(transfer))
    assert late.status_code == 409
    assert "already used" in text(late)
    again = text(browser(receiver).get(accept_url(transfer)))
    assert "You accepted this ticket" in again and ticket_url(bought) in again

    unknown = browser(receiver).get(reverse("web:transfer_accept", kwargs={"code": "NOPE"}))
    assert unknown.status_code == 404
    assert "not valid" in text(unknown)


# --- My tickets and downloads ------------------------------------------------------------------


def test_my_tickets_shows_received_tickets_and_drops_given_away_ones(
    bought: Bought, receiver: User
) -> None:
    transfer_accept(code=offered(bought).code, receiver=receiver)

    mine = text(browser(receiver).get(reverse("web:my_tickets")))
    theirs = text(browser(bought.buyer).get(reverse("web:my_tickets")))

    assert ticket_url(bought, 0) in mine and ticket_url(bought, 1) not in mine
    assert "transferred to you" in mine
    assert ticket_url(bought, 1) in theirs and ticket_url(bought, 0) not in theirs
    assert 'data-part="sent"' in theirs and "王小明" in theirs
    assert reverse("web:my_tickets") in text(browser(receiver).get(reverse("web:orders")))


def test_the_ticket_page_is_not_for_strangers(
    bought: Bought, make_user: Callable[..., User]
) -> None:
    assert browser(make_user()).get(ticket_url(bought)).status_code == 404
    assert browser().get(ticket_url(bought)).status_code == 404


def test_the_buyers_pdf_leaves_out_a_ticket_given_away(bought: Bought, receiver: User) -> None:
    client = browser(bought.buyer)
    pdf_url = reverse("web:order_tickets_pdf", kwargs={"public_id": bought.order.public_id})
    before = client.get(pdf_url).content
    transfer_accept(code=offered(bought).code, receiver=receiver)
    after = client.get(pdf_url).content

    pages = re.compile(rb"/Type\s*/Page\b")
    assert len(pages.findall(before)) == 2
    assert len(pages.findall(after)) == 1
    assert bought.tickets[0].serial.encode() not in after
