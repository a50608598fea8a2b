"""The customer's refund pages: the order page's refund panel, choosing tickets with the rule
and the amount per ticket, reviewing the exact amount, confirming, following the progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import User
from piaowu.aftersales.models import Refund
from tests.aftersales.refunds.conftest import Bought, Clock, MakeBought, hours_before, refund_rule
from tests.orders.conftest import PHONE

pytestmark = pytest.mark.django_db


def browser(user: User | None = None) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    if user is not None:
        client.force_login(user)
    return client


def html(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return str(response.content.decode())


def choose_url(purchase: Bought) -> str:
    return f"/orders/{purchase.order.public_id}/refund/"


def review(client: Client, purchase: Bought, tickets: list[str], **extra: str) -> Any:
    return client.post(choose_url(purchase), {"step": "review", "tickets": tickets, **extra})


def test_the_order_page_offers_a_refund_when_the_rule_allows_it(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)

    page = html(browser(buyer).get(f"/orders/{purchase.order.public_id}/"))

    assert 'data-part="refund-button"' in page and choose_url(purchase) in page


def test_the_order_page_says_when_nothing_can_be_refunded(bought: MakeBought, buyer: User) -> None:
    purchase = bought()  # no rule

    page = html(browser(buyer).get(f"/orders/{purchase.order.public_id}/"))

    assert 'data-part="refund-button"' not in page
    assert "These tickets cannot be refunded online now." in page


def test_the_choose_page_shows_the_rule_and_each_tickets_amount_and_fee(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 30)

    page = html(browser(buyer).get(choose_url(purchase)))

    assert "Until 24 hours before the start: 10 % fee." in page
    assert "Minimum fee per ticket: ¥2.00." in page
    assert page.count('data-part="amount">¥162</strong>') == 2
    assert "¥180 − fee ¥18" in page
    assert page.count('name="tickets"') == 2 and " disabled>" not in page


def test_tickets_that_cannot_be_refunded_are_shown_with_the_reason(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 1)

    page = html(browser(buyer).get(choose_url(purchase)))

    assert page.count(" disabled>") == 2
    assert "This ticket can no longer be refunded under the event&#x27;s rules." in page
    assert "Review the refund" not in page


def test_review_then_confirm_refunds_the_chosen_ticket_and_shows_its_progress(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 30)
    client = browser(buyer)
    ticket = purchase.ticket("M-1-5")

    # review: the exact amount before confirming, nothing written yet
    page = html(review(client, purchase, [ticket.public_id]))
    assert 'data-part="gross">¥180<' in page
    assert 'data-part="fee">¥18<' in page
    assert 'data-part="amount">¥162<' in page
    assert 'name="expected" value="162.00"' in page
    assert not Refund.objects.exists()

    # confirm
    response = client.post(
        choose_url(purchase),
        {"step": "confirm", "tickets": [ticket.public_id], "expected": "162.00", "reason": "出差"},
    )

    refund = Refund.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/refunds/{refund.public_id}/"
    assert refund.amount == 162 and refund.reason == "出差"
    assert [i.ticket_id for i in refund.items.all()] == [ticket.pk]
    progress = html(client.get(response["Location"]))
    assert 'data-state="succeeded"' in progress
    assert 'data-step="succeeded"' in progress and 'aria-current="step"' in progress
    assert "The money is on its way back to how you paid" in progress
    assert "<q>出差</q>" in progress
    assert 'http-equiv="refresh"' not in progress  # settled: no more refreshing
    # the order page lists it
    order_page = html(client.get(f"/orders/{purchase.order.public_id}/"))
    assert f"/refunds/{refund.public_id}/" in order_page and "Partially refunded" in order_page


def test_a_refund_waiting_for_approval_keeps_its_page_refreshing(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    client = browser(buyer)
    ids = [t.public_id for t in purchase.tickets]

    assert "Staff review refund requests" in html(review(client, purchase, ids))
    response = client.post(
        choose_url(purchase), {"step": "confirm", "tickets": ids, "expected": "360.00"}
    )

    page = html(client.get(response["Location"]))
    assert 'data-state="requested"' in page and 'http-equiv="refresh"' in page
    assert "Waiting for staff to approve your request." in page


def test_a_changed_amount_is_shown_again_instead_of_refunded(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)

    page = html(
        browser(buyer).post(
            choose_url(purchase),
            {"step": "confirm", "tickets": [purchase.tickets[0].public_id], "expected": "162.00"},
        )
    )

    assert 'data-part="changed"' in page and 'name="expected" value="180.00"' in page
    assert not Refund.objects.exists()


@pytest.mark.parametrize("tickets", [[], ["nope"], ["same", "same"]])
def test_choosing_no_or_unknown_tickets_sends_back_with_a_message(
    bought: MakeBought, buyer: User, tickets: list[str]
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    client = browser(buyer)

    response = review(client, purchase, tickets)

    assert response.status_code == 302 and response["Location"] == choose_url(purchase)
    assert "Choose the tickets to refund." in html(client.get(choose_url(purchase)))


def test_a_refused_refund_sends_back_with_the_reason(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 1)
    client = browser(buyer)

    response = client.post(
        choose_url(purchase),
        {"step": "confirm", "tickets": [purchase.tickets[0].public_id], "expected": "144.00"},
    )

    assert response.status_code == 302
    assert "can no longer be refunded" in html(client.get(choose_url(purchase)))
    assert not Refund.objects.exists()


def test_someone_else_gets_not_found(
    bought: MakeBought, buyer: User, make_user: Callable[..., User]
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    client = browser(buyer)
    response = client.post(
        choose_url(purchase),
        {"step": "confirm", "tickets": [purchase.tickets[0].public_id], "expected": "180.00"},
    )
    refund_page = response["Location"]
    stranger = browser(make_user())

    assert stranger.get(choose_url(purchase)).status_code == 404
    assert review(stranger, purchase, [purchase.tickets[1].public_id]).status_code == 404
    assert stranger.get(refund_page).status_code == 404
    assert browser().get(refund_page).status_code == 404
    assert Refund.objects.count() == 1


def test_a_guest_with_an_account_order_is_asked_to_sign_in(bought: MakeBought) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    guest = browser()
    guest.post("/orders/lookup/", {"code": purchase.order.code, "phone": PHONE})

    page = html(guest.get(choose_url(purchase)))
    response = review(guest, purchase, [purchase.tickets[0].public_id])

    assert "Sign in with it to ask for a refund." in page
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not Refund.objects.exists()


def test_a_guest_refunds_a_guest_order_after_looking_it_up(bought: MakeBought) -> None:
    purchase = bought(customer=None)
    refund_rule(purchase.session.event)
    guest = browser()
    assert guest.get(choose_url(purchase)).status_code == 404
    guest.post("/orders/lookup/", {"code": purchase.order.code, "phone": PHONE})

    response = guest.post(
        choose_url(purchase),
        {"step": "confirm", "tickets": [purchase.tickets[0].public_id], "expected": "180.00"},
    )

    assert response.status_code == 302
    assert 'data-state="succeeded"' in html(guest.get(response["Location"]))


def test_a_fully_refunded_order_still_lists_its_refunds(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    client = browser(buyer)
    ids = [t.public_id for t in purchase.tickets]
    client.post(choose_url(purchase), {"step": "confirm", "tickets": ids, "expected": "360.00"})
    refund = Refund.objects.get()

    page = html(client.get(f"/orders/{purchase.order.public_id}/"))

    assert "Refunded" in page and f"/refunds/{refund.public_id}/" in page
    assert 'data-part="refund-button"' not in page
