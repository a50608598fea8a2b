"""The exchange pages: "Change session" on a paid order's page → choose → confirm with the
amounts → the new order (paid at once, or to pay); refusals in the customer's words; someone
else's order is 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import User
from piaowu.aftersales.models import Exchange
from piaowu.orders.models import Order
from piaowu.orders.states import OrderState
from tests.aftersales.exchanges.conftest import (
    AddSession,
    Bought,
    Clock,
    MakeBought,
    hours_before,
    sold_seats,
    valid_tickets,
)

pytestmark = pytest.mark.django_db


def browser(user: User | None = None) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    if user is not None:
        client.force_login(user)
    return client


def page_url(order: Order) -> str:
    return reverse("web:exchange", kwargs={"public_id": order.public_id})


def confirm_url(order: Order) -> str:
    return reverse("web:exchange_confirm", kwargs={"public_id": order.public_id})


def target(session: Any) -> str:
    return f"{session.public_id}:std"


def test_the_order_page_offers_to_change_the_session(old: Bought, buyer: User) -> None:
    page = browser(buyer).get(reverse("web:order", kwargs={"public_id": old.order.public_id}))

    assert page.status_code == 200
    assert page_url(old.order) in page.content.decode()
    assert "Change session" in page.content.decode()


def test_the_exchange_page_lists_the_sessions_with_what_each_costs(
    old: Bought, buyer: User, add_session: AddSession
) -> None:
    cheaper = add_session(old.session.event, price="100")
    dearer = add_session(old.session.event, price="300")

    page = browser(buyer).get(page_url(old.order))

    html = page.content.decode()
    assert page.status_code == 200
    assert f'value="{target(cheaper)}"' in html and f'value="{target(dearer)}"' in html
    assert "You get ¥124 back" in html
    assert "You pay ¥600, then get ¥324 back" in html
    assert "The exchange fee is 10 % of the price of the tickets you give up: ¥36." in html
    for ticket in old.tickets:
        assert f'value="{ticket.public_id}" checked' in html


def test_a_downgrade_is_confirmed_with_its_amounts_and_done_at_once(
    old: Bought, buyer: User, add_session: AddSession
) -> None:
    cheaper = add_session(old.session.event, price="100")
    client = browser(buyer)
    choice = {"tickets": [t.public_id for t in old.tickets], "target": target(cheaper)}

    confirm = client.get(confirm_url(old.order), choice)

    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert 'data-part="old-value">¥360' in html
    assert 'data-part="new-value">¥200' in html
    assert 'data-part="fee">¥36' in html
    assert 'data-part="refund">¥124' in html
    assert "Confirm the exchange" in html

    done = client.post(confirm_url(old.order), choice, follow=True)

    exchange = Exchange.objects.get()
    assert exchange.state == Exchange.State.COMPLETED
    assert done.redirect_chain[-1][0] == reverse(
        "web:order",
        kwargs={"public_id": exchange.to_order.public_id},  # type: ignore[union-attr]
    )
    assert "Exchanged. Here are your new tickets" in done.content.decode()
    assert valid_tickets(old.order) == []


def test_an_upgrade_is_confirmed_then_the_new_order_is_paid(
    old: Bought, buyer: User, add_session: AddSession
) -> None:
    dearer = add_session(old.session.event, price="300")
    client = browser(buyer)
    choice = {"tickets": [t.public_id for t in old.tickets], "target": target(dearer)}

    html = client.get(confirm_url(old.order), choice).content.decode()

    assert 'data-part="pay-now">¥600' in html
    assert 'data-part="refund">¥324' in html
    assert 'data-part="net">¥276' in html
    assert "Exchange and pay" in html

    done = client.post(confirm_url(old.order), choice, follow=True)

    exchange = Exchange.objects.get()
    assert exchange.state == Exchange.State.AWAITING_PAYMENT
    assert Order.objects.get(pk=exchange.to_order_id).state == OrderState.AWAITING_PAYMENT
    content = done.content.decode()
    assert "Pay the new order to complete the exchange." in content
    assert "Pay now" in content
    assert len(valid_tickets(old.order)) == 2


def test_one_ticket_of_two_can_be_chosen(old: Bought, buyer: User, add_session: AddSession) -> None:
    cheaper = add_session(old.session.event, price="100")
    client = browser(buyer)
    choice = {"tickets": [old.tickets[0].public_id], "target": target(cheaper)}

    client.post(confirm_url(old.order), choice)

    assert [t.pk for t in valid_tickets(old.order)] == [old.tickets[1].pk]
    assert sold_seats(old.session) == ["M-1-6"]


def test_a_full_session_is_refused_on_the_confirm_page_and_nothing_changes(
    old: Bought,
    buyer: User,
    add_session: AddSession,
    bought: MakeBought,
    make_user: Callable[..., User],
) -> None:
    small = add_session(old.session.event, rows=1, seats_per_row=2)
    client = browser(buyer)
    choice = {"tickets": [t.public_id for t in old.tickets], "target": target(small)}
    assert client.get(confirm_url(old.order), choice).status_code == 200
    bought(session=small, seats=["M-1-1", "M-1-2"], customer=make_user())  # sold meanwhile

    response = client.post(confirm_url(old.order), choice)

    assert response.status_code == 400
    assert "Not enough tickets are left for the session you chose." in response.content.decode()
    assert not Exchange.objects.exists()
    assert sold_seats(old.session) == ["M-1-5", "M-1-6"]


def test_past_the_cut_off_the_page_says_why_and_offers_no_button(
    old: Bought, buyer: User, add_session: AddSession, clock: Clock
) -> None:
    cheaper = add_session(old.session.event, price="100")
    hours_before(clock, old.session, 1)
    client = browser(buyer)

    page = client.get(page_url(old.order)).content.decode()
    response = client.post(
        confirm_url(old.order),
        {"tickets": [t.public_id for t in old.tickets], "target": target(cheaper)},
    )

    assert "It is too late to exchange tickets for this session." in page
    assert "Continue" not in page
    assert response.status_code == 400
    assert "Confirm the exchange</button>" not in response.content.decode()
    assert not Exchange.objects.exists()


def test_an_unknown_choice_sends_the_buyer_back_to_choose(old: Bought, buyer: User) -> None:
    response = browser(buyer).get(confirm_url(old.order), {"target": "nope:std"})

    assert response.status_code == 302
    assert response["Location"] == page_url(old.order)


def test_someone_elses_order_is_not_found(
    old: Bought, add_session: AddSession, make_user: Callable[..., User]
) -> None:
    cheaper = add_session(old.session.event, price="100")
    stranger = browser(make_user())
    choice = {"tickets": [t.public_id for t in old.tickets], "target": target(cheaper)}

    assert stranger.get(page_url(old.order)).status_code == 404
    assert stranger.get(confirm_url(old.order), choice).status_code == 404
    assert stranger.post(confirm_url(old.order), choice).status_code == 404
    assert browser().get(page_url(old.order)).status_code == 404
    assert not Exchange.objects.exists()
