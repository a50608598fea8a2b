"""Checkout, order, my-orders and order-lookup pages, through the Django test client.

Holds are made through the inventory service for the holder key the browser's Django session
carries (`piaowu_holder`, what the holds API stores), so each `Client` is one browser.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import Session
from piaowu.catalog.services import TierSpec
from piaowu.inventory.models import Hold, SeatState
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import normalize_phone, order_expire_overdue
from piaowu.orders.states import OrderState
from piaowu.payments.models import Payment, SandboxTransaction
from piaowu.payments.services import payment_notification_receive, sandbox_deliver_due, sandbox_pay
from tests.orders.conftest import PHONE, Clock, clock, reserved_session
from tests.payments.keys import private_pem, public_pem
from tests.payments.test_wechat import APIV3_KEY, MCHID, PUB_KEY_ID, fake_wechat

__all__ = ["clock", "reserved_session"]

pytestmark = pytest.mark.django_db

SEATS = ["M-1-5", "M-1-6"]


def browser() -> Client:
    return Client(headers={"accept-language": "en"})


def hold_in(client: Client, session: Session, seats: list[str] = SEATS) -> Hold:
    """Hold `seats` for the browser `client`, as the holds API would for its session."""
    store = client.session
    key = store.get("piaowu_holder") or f"anon:test-{id(client)}"
    store["piaowu_holder"] = key
    store.save()
    return hold_seats(session=session, seat_codes=seats, holder_key=key)


def checkout_url(hold: Hold) -> str:
    return reverse("web:checkout", kwargs={"hold_id": hold.public_id})


def order_url(order: Order) -> str:
    return reverse("web:order", kwargs={"public_id": order.public_id})


def text(response: Any) -> str:
    return str(response.content.decode())


def post_checkout(client: Client, hold: Hold, **data: str) -> Any:
    data.setdefault("provider", "sandbox")
    return client.post(checkout_url(hold), data)


def deliver_to_site(headers: Mapping[str, str], body: bytes) -> int:
    """A sender for `sandbox_deliver_due` that hands the notification to the service the API's
    notification endpoint calls, and answers like that endpoint."""
    ack, _payment = payment_notification_receive(
        provider_name="sandbox", headers=headers, body=body
    )
    return ack.status


@pytest.fixture
def session(reserved_session: Callable[..., Session]) -> Session:
    return reserved_session()


# --- Checkout ----------------------------------------------------------------------------------


def test_checkout_page_shows_the_held_seats_prices_total_countdown_and_providers(
    session: Session,
) -> None:
    client = browser()
    hold = hold_in(client, session)
    response = client.get(checkout_url(hold))
    html = text(response)
    assert response.status_code == 200
    assert "池座 · Row 1 · Seat 5" in html
    assert "池座 · Row 1 · Seat 6" in html
    assert html.count("¥180") >= 2
    assert 'data-part="total">¥360<' in html
    assert 'role="timer"' in html
    assert "Sandbox (test payment)" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "Pay ¥360" in html


def test_guest_checkout_creates_the_order_and_sends_the_buyer_to_the_sandbox_page(
    session: Session,
) -> None:
    client = browser()
    hold = hold_in(client, session)
    response = post_checkout(client, hold, phone=PHONE, email="mei@example.com")

    order = Order.objects.get(hold=hold)
    payment = Payment.objects.get(order=order)
    txn = SandboxTransaction.objects.get(reference=payment.reference)
    assert response.status_code == 302
    assert response["Location"] == f"/payments/sandbox/{txn.public_id}/"
    assert order.state == OrderState.AWAITING_PAYMENT
    assert order.contact_phone == normalize_phone(PHONE)  # stored as digits
    assert order.contact_email == "mei@example.com"
    assert order.channel.kind == "web"
    assert order.customer is None
    assert str(order.total_amount) == "360.00"
    assert txn.notify_url == "http://testserver/api/v1/payments/sandbox/notifications"
    assert txn.return_url == f"http://testserver{order_url(order)}"
    # and the buyer's browser can open the order page
    assert client.get(order_url(order)).status_code == 200


def test_guest_without_a_phone_is_asked_for_one_and_nothing_is_written(session: Session) -> None:
    client = browser()
    hold = hold_in(client, session)
    response = post_checkout(client, hold, phone="  ")
    assert response.status_code == 400
    assert "Enter a phone number so you can find your order again." in text(response)
    assert not Order.objects.exists()
    assert not Payment.objects.exists()


def test_an_invalid_phone_is_refused_with_the_services_message(session: Session) -> None:
    client = browser()
    hold = hold_in(client, session)
    response = post_checkout(client, hold, phone="call me maybe")
    assert response.status_code == 400
    assert "Enter a valid phone number." in text(response)
    assert not Order.objects.exists()


def test_an_unknown_payment_method_is_refused_before_checking_out(session: Session) -> None:
    client = browser()
    hold = hold_in(client, session)
    response = post_checkout(client, hold, phone=PHONE, provider="bitcoin")
    assert response.status_code == 400
    assert not Order.objects.exists()


def test_an_expired_hold_shows_the_expiry_and_cannot_be_checked_out(
    session: Session, clock: Clock
) -> None:
    client = browser()
    hold = hold_in(client, session)
    clock.shift(dt.timedelta(hours=1))

    page = client.get(checkout_url(hold))
    assert page.status_code == 200
    assert "Your reservation has expired; please choose again." in text(page)
    assert 'name="phone"' not in text(page)

    response = post_checkout(client, hold, phone=PHONE)
    assert response.status_code == 400
    assert "Your reservation has expired; please choose again." in text(response)
    assert not Order.objects.exists()


def test_someone_elses_hold_is_not_found(session: Session) -> None:
    owner, stranger = browser(), browser()
    hold = hold_in(owner, session)
    hold_in(stranger, session, ["M-2-1"])  # the stranger has a holder key of their own

    assert stranger.get(checkout_url(hold)).status_code == 404
    assert post_checkout(stranger, hold, phone=PHONE).status_code == 404
    assert browser().get(checkout_url(hold)).status_code == 404  # no holder key at all
    assert not Order.objects.exists()


def test_a_signed_in_buyer_may_leave_the_phone_out_and_gets_the_email_prefilled(
    session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user(email="li@example.com")
    client = browser()
    client.force_login(user)
    hold = hold_seats(session=session, seat_codes=SEATS, holder_key=f"user:{user.pk}")

    page = client.get(checkout_url(hold))
    assert 'value="li@example.com"' in text(page)
    response = post_checkout(client, hold, email="li@example.com")
    order = Order.objects.get(hold=hold)
    assert response.status_code == 302
    assert response["Location"].startswith("/payments/sandbox/")
    assert order.customer == user
    assert order.contact_phone == ""


def test_checking_out_a_hold_again_goes_to_its_order(session: Session) -> None:
    client = browser()
    hold = hold_in(client, session)
    post_checkout(client, hold, phone=PHONE)
    order = Order.objects.get(hold=hold)

    again = client.get(checkout_url(hold))
    assert again.status_code == 302
    assert again["Location"] == order_url(order)
    assert Order.objects.count() == 1


def test_a_failed_payment_start_keeps_the_order_awaiting_payment_and_offers_pay_again(
    session: Session, settings: Settings
) -> None:
    # given Alipay is offered but not configured, so starting it fails
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox", "alipay"]
    client = browser()
    hold = hold_in(client, session)

    response = post_checkout(client, hold, phone=PHONE, provider="alipay")

    # then the order exists, awaiting payment, and its page says why and offers to pay again
    order = Order.objects.get(hold=hold)
    assert response.status_code == 302
    assert response["Location"] == order_url(order)
    assert order.state == OrderState.AWAITING_PAYMENT
    page = text(client.get(order_url(order)))
    assert "This payment method is not available." in page
    assert "Pay now" in page
    # and paying again with the sandbox goes to its page
    again = client.post(
        reverse("web:order_pay", kwargs={"public_id": order.public_id}), {"provider": "sandbox"}
    )
    txn = SandboxTransaction.objects.get()
    assert again.status_code == 302
    assert again["Location"] == f"/payments/sandbox/{txn.public_id}/"


def test_wechat_pay_shows_its_payment_code_on_the_order_page(
    session: Session, settings: Settings
) -> None:
    # given WeChat Pay (Native) is configured against a stand-in gateway
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox", "wechat"]
    settings.PIAOWU_WECHATPAY_MCHID = MCHID
    settings.PIAOWU_WECHATPAY_APPID = "wxd678efh567hg6787"
    settings.PIAOWU_WECHATPAY_PRIVATE_KEY = private_pem("wechat-merchant")
    settings.PIAOWU_WECHATPAY_CERT_SERIAL_NO = "444F4864EA9B34415"
    settings.PIAOWU_WECHATPAY_APIV3_KEY = APIV3_KEY
    settings.PIAOWU_WECHATPAY_PUBLIC_KEY = public_pem("wechat-platform")
    settings.PIAOWU_WECHATPAY_PUBLIC_KEY_ID = PUB_KEY_ID
    client = browser()
    hold = hold_in(client, session)

    with fake_wechat({"code_url": "weixin://wxpay/bizpayurl?pr=abc"}) as (url, _seen):
        settings.PIAOWU_WECHATPAY_GATEWAY = url
        assert "WeChat Pay" in text(client.get(checkout_url(hold)))
        response = post_checkout(client, hold, phone=PHONE, provider="wechat")

    # then the buyer lands on the order page, which shows the code to pay with
    order = Order.objects.get(hold=hold)
    assert response.status_code == 302
    assert response["Location"] == order_url(order)
    html = text(client.get(order_url(order)))
    assert "Scan to pay" in html
    assert "weixin://wxpay/bizpayurl?pr=abc" in html


# --- The order page ----------------------------------------------------------------------------


@pytest.fixture
def bought(session: Session) -> tuple[Client, Order]:
    """A guest's browser that checked out two seats (awaiting payment at the sandbox)."""
    client = browser()
    hold = hold_in(client, session)
    post_checkout(client, hold, phone=PHONE)
    return client, Order.objects.get(hold=hold)


def test_the_order_page_shows_code_state_event_seats_total_deadline_and_actions(
    bought: tuple[Client, Order],
) -> None:
    client, order = bought
    response = client.get(order_url(order))
    html = text(response)
    start = order.session.local_starts_at
    assert response.status_code == 200
    assert order.code in html
    assert "Awaiting payment" in html
    assert order.session.event.title in html
    assert order.session.venue.name in html
    assert f"{start:%H:%M}" in html
    assert "池座 · Row 1 · Seat 5" in html
    assert 'data-part="total">¥360<' in html
    assert 'role="timer"' in html
    assert "Pay now" in html
    assert "Cancel order" in html
    assert "Sandbox (test payment)" in html  # the started payment
    # while awaiting payment it keeps its state fresh by itself
    assert f'data-poll-url="/api/v1/orders/{order.public_id}"' in html
    assert '<meta http-equiv="refresh"' in html


def test_another_browser_cannot_see_the_order(bought: tuple[Client, Order]) -> None:
    _client, order = bought
    stranger = browser()
    hold_in(stranger, order.session, ["M-3-1"])
    assert stranger.get(order_url(order)).status_code == 404
    assert browser().get(order_url(order)).status_code == 404
    assert (
        browser().get(reverse("web:order", kwargs={"public_id": "01NOSUCHORDER"})).status_code
        == 404
    )


def test_a_stranger_cannot_cancel_or_pay_the_order(bought: tuple[Client, Order]) -> None:
    _client, order = bought
    stranger = browser()
    cancel = stranger.post(reverse("web:order_cancel", kwargs={"public_id": order.public_id}))
    pay = stranger.post(
        reverse("web:order_pay", kwargs={"public_id": order.public_id}), {"provider": "sandbox"}
    )
    assert cancel.status_code == pay.status_code == 404
    order.refresh_from_db()
    assert order.state == OrderState.AWAITING_PAYMENT


def test_cancelling_releases_the_seats_and_the_page_shows_cancelled(
    bought: tuple[Client, Order],
) -> None:
    client, order = bought
    response = client.post(
        reverse("web:order_cancel", kwargs={"public_id": order.public_id}), follow=True
    )
    order.refresh_from_db()
    html = text(response)
    assert order.state == OrderState.CANCELLED
    assert not SeatState.objects.filter(session=order.session, state="held").exists()
    assert "Your order is cancelled; the seats are free for others." in html
    assert "This order is cancelled." in html
    assert "Pay now" not in html
    assert "data-poll-url" not in html


def test_paying_a_cancelled_order_is_refused_with_a_message(bought: tuple[Client, Order]) -> None:
    client, order = bought
    client.post(reverse("web:order_cancel", kwargs={"public_id": order.public_id}))
    response = client.post(
        reverse("web:order_pay", kwargs={"public_id": order.public_id}),
        {"provider": "sandbox"},
        follow=True,
    )
    assert "This order can no longer be paid." in text(response)
    assert Payment.objects.filter(order=order).count() == 1  # only the first attempt


def test_pay_again_returns_to_the_open_sandbox_payment(bought: tuple[Client, Order]) -> None:
    client, order = bought
    first = Payment.objects.get(order=order)
    response = client.post(
        reverse("web:order_pay", kwargs={"public_id": order.public_id}), {"provider": "sandbox"}
    )
    txn = SandboxTransaction.objects.get(reference=first.reference)
    assert response.status_code == 302
    assert response["Location"] == f"/payments/sandbox/{txn.public_id}/"
    assert Payment.objects.filter(order=order).count() == 1


def test_once_the_notification_arrives_the_order_page_shows_paid(
    bought: tuple[Client, Order],
) -> None:
    client, order = bought
    sandbox_pay(transaction=SandboxTransaction.objects.get())
    sandbox_deliver_due(send=lambda _url, headers, body: deliver_to_site(headers, body))

    html = text(client.get(order_url(order)))
    assert re.search(r'data-part="state">\s*Paid\s*<', html)
    assert "Pay now" not in html
    assert "Cancel order" not in html
    assert "data-poll-url" not in html


def test_a_payment_that_arrives_after_expiry_is_shown_as_refunded_automatically(
    bought: tuple[Client, Order], clock: Clock
) -> None:
    # given the buyer paid at the gateway, but the notification came after the deadline
    client, order = bought
    sandbox_pay(transaction=SandboxTransaction.objects.get())
    clock.shift(dt.timedelta(hours=1))
    order_expire_overdue()
    sandbox_deliver_due(send=lambda _url, headers, body: deliver_to_site(headers, body))

    html = text(client.get(order_url(order)))
    assert "Expired" in html
    assert "Refunded automatically: the order had expired." in html


# --- Looking an order up, my orders ------------------------------------------------------------


def test_lookup_by_code_and_phone_opens_the_order_in_another_browser(
    bought: tuple[Client, Order],
) -> None:
    _client, order = bought
    other = browser()
    response = other.post(
        reverse("web:order_lookup"), {"code": order.code.lower(), "phone": "13800138000"}
    )
    assert response.status_code == 302
    assert response["Location"] == order_url(order)
    assert other.get(order_url(order)).status_code == 200


def test_lookup_with_a_wrong_phone_or_unknown_code_says_the_same_and_grants_nothing(
    bought: tuple[Client, Order],
) -> None:
    _client, order = bought
    other = browser()
    wrong_phone = other.post(reverse("web:order_lookup"), {"code": order.code, "phone": "139"})
    unknown = other.post(reverse("web:order_lookup"), {"code": "NOSUCHCODE", "phone": PHONE})
    message = "No order matches this code and phone number."
    assert wrong_phone.status_code == unknown.status_code == 400
    assert message in text(wrong_phone)
    assert message in text(unknown)
    assert other.get(order_url(order)).status_code == 404


def test_my_orders_requires_signing_in(client: Client) -> None:
    response = client.get(reverse("web:orders"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:login"))
    assert "next=/orders/" in response["Location"]


def test_my_orders_lists_only_the_signed_in_buyers_orders(
    session: Session, make_user: Callable[..., User], organizer: Organizer
) -> None:
    mine, theirs = make_user(email="me@example.com"), make_user(email="them@example.com")
    clients = {}
    for user, seats in ((mine, ["M-1-1"]), (theirs, ["M-1-10"])):
        client = browser()
        client.force_login(user)
        hold = hold_seats(session=session, seat_codes=seats, holder_key=f"user:{user.pk}")
        post_checkout(client, hold)
        clients[user.pk] = client
    my_order = Order.objects.get(customer=mine)
    their_order = Order.objects.get(customer=theirs)

    html = text(clients[mine.pk].get(reverse("web:orders")))
    assert my_order.code in html
    assert their_order.code not in html
    assert "Awaiting payment" in html
    assert "¥180" in html
    # the signed-in buyer reaches the order by account, the other buyer does not
    assert clients[mine.pk].get(order_url(my_order)).status_code == 200
    assert clients[theirs.pk].get(order_url(my_order)).status_code == 404


# --- Links into the flow -----------------------------------------------------------------------


def test_the_session_page_hold_panel_has_a_checkout_link_template(session: Session) -> None:
    html = text(browser().get(reverse("web:session", kwargs={"public_id": session.public_id})))
    assert 'data-checkout-url="/checkout/HOLD_ID/"' in html
    assert 'data-part="checkout"' in html
    assert ">Check out<" in html


def test_the_header_links_guests_to_the_lookup_and_members_to_their_orders(
    make_user: Callable[..., User],
) -> None:
    guest = text(browser().get(reverse("web:home")))
    member = browser()
    member.force_login(make_user())
    signed_in = text(member.get(reverse("web:home")))
    assert f'href="{reverse("web:order_lookup")}"' in guest
    assert f'href="{reverse("web:orders")}"' in signed_in


def test_signing_in_keeps_the_browsers_hold_and_order(
    session: Session, make_user: Callable[..., User]
) -> None:
    """What a guest held and bought in this browser becomes theirs when they sign in."""
    user = make_user(email="wang@example.com", password="correct horse 42")
    client = browser()
    bought_hold = hold_in(client, session, ["M-1-1", "M-1-2"])
    post_checkout(client, bought_hold, phone=PHONE)
    order = Order.objects.get(hold=bought_hold)
    open_hold = hold_in(client, session, ["M-2-5"])

    response = client.post(
        reverse("web:login"), {"username": "wang@example.com", "password": "correct horse 42"}
    )
    assert response.status_code == 302

    open_hold.refresh_from_db()
    order.refresh_from_db()
    assert open_hold.holder_key == f"user:{user.pk}" and open_hold.customer == user
    assert order.customer == user
    # The hold can be checked out from the account now, and the order is among "my orders".
    assert client.get(checkout_url(open_hold)).status_code == 200
    assert order.code in text(client.get(reverse("web:orders")))
    # Someone else's anonymous holds were not touched.
    other = hold_in(browser(), session, ["M-3-5"])
    other.refresh_from_db()
    assert other.holder_key.startswith("anon:") and other.customer is None


def test_free_tickets_go_straight_to_the_paid_order(
    reserved_session: Callable[..., Session],
) -> None:
    free = reserved_session(tiers=[TierSpec(code="invite", name="邀请票", price=Decimal("0"))])
    client = browser()
    hold = hold_in(client, free, ["M-1-1"])
    response = post_checkout(client, hold, phone=PHONE)
    order = Order.objects.get(hold=hold)
    assert response.status_code == 302 and response["Location"] == order_url(order)
    assert order.state == OrderState.PAID and not order.payments.exists()
