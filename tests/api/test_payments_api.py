"""The payments API end to end over HTTP: start a payment, pay on the sandbox's hosted page,
let the sandbox deliver its signed notification to our notifications endpoint, and see the order
paid — and every notification that must be refused (forged, tampered, replayed, wrong amount)
refused, logged and without effect; a payment that arrives too late is refunded."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer
from piaowu.inventory.models import SeatState
from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.services import order_cancel, order_expire_overdue
from piaowu.payments.models import Payment, SandboxDelivery, SandboxRefund, SandboxTransaction
from piaowu.payments.providers.sandbox import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    sign,
    signed_notification,
)
from piaowu.payments.services import Sender, sandbox_deliver_due, sandbox_pay
from tests.api.test_holds import assert_error, reserved
from tests.api.test_orders import bought
from tests.inventory.conftest import Clock, clock

__all__ = ["clock"]

pytestmark = pytest.mark.django_db

NOTIFY_PATH = "/api/v1/payments/sandbox/notifications"
SERVICES_LOGGER = "piaowu.payments.services"


def start_payment(client: Client, order_id: str, **body: Any) -> Any:
    return client.post(
        f"/api/v1/orders/{order_id}/payments",
        {"provider": "sandbox", **body},
        content_type="application/json",
    )


def gateway() -> Client:
    """The payment gateway's side: no cookies, and Django would enforce CSRF if asked to."""
    return Client(enforce_csrf_checks=True)


def post_notification(headers: Mapping[str, str], body: bytes) -> Any:
    extra = {name: value for name, value in headers.items() if name != "Content-Type"}
    return gateway().generic(
        "POST",
        NOTIFY_PATH,
        body,
        content_type=headers.get("Content-Type", "application/json"),
        headers=extra,
    )


def through_django(seen: list[int]) -> Sender:
    """A `send` for `sandbox_deliver_due` that posts through Django's test client."""

    def send(url: str, headers: Mapping[str, str], body: bytes) -> int:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("http", "testserver", NOTIFY_PATH)
        status = int(post_notification(headers, body).status_code)
        seen.append(status)
        return status

    return send


def started(client: Client, organizer: Organizer) -> tuple[dict[str, Any], Payment]:
    """A guest's order for two seats and its sandbox payment, started through the API."""
    order = bought(client, reserved(organizer, price="120"), ["M-1-1", "M-1-2"])
    response = start_payment(client, order["id"])
    assert response.status_code == 201, response.content
    return order, Payment.objects.get(public_id=response.json()["id"])


def transaction_of(payment: Payment) -> SandboxTransaction:
    return SandboxTransaction.objects.get(reference=payment.reference)


def assert_refused(response: Any) -> None:
    assert response.status_code == 400, response.content
    assert response.json() == {"code": "FAIL"}


def assert_unpaid(order_id: str, payment: Payment) -> None:
    order = Order.objects.get(public_id=order_id)
    assert order.state == "awaiting_payment"
    assert order.paid_at is None
    payment.refresh_from_db()
    assert payment.status == Payment.Status.STARTED
    assert not payment.settles_order


def refusal_logged(caplog: pytest.LogCaptureFixture, code: str) -> bool:
    return any(
        record.name == SERVICES_LOGGER
        and record.levelno == logging.WARNING
        and f"code={code}" in record.getMessage()
        for record in caplog.records
    )


# --- Starting -----------------------------------------------------------------------------------


def test_start_answers_the_sandbox_page_to_send_the_buyer_to(
    client: Client, organizer: Organizer
) -> None:
    order = bought(client, reserved(organizer, price="120"), ["M-1-1"])
    response = start_payment(client, order["id"], return_url="/orders/done")
    assert response.status_code == 201, response.content
    body = response.json()
    payment = Payment.objects.get(public_id=body["id"])
    txn = transaction_of(payment)
    assert body == {
        "id": payment.public_id,
        "provider": "sandbox",
        "status": "started",
        "amount": {"amount": "120.00", "currency": "CNY"},
        "redirect_url": f"/payments/sandbox/{txn.public_id}/",
        "qr_code_payload": None,
    }
    assert txn.notify_url == "http://testserver" + NOTIFY_PATH
    assert txn.return_url == "http://testserver/orders/done"
    assert txn.amount == payment.amount
    page = client.get(body["redirect_url"])
    assert page.status_code == 200
    # The order shows its payment attempt.
    shown = client.get(f"/api/v1/orders/{order['id']}").json()
    assert shown["payments"] == [body]


def test_starting_again_answers_the_open_payment(client: Client, organizer: Organizer) -> None:
    order = bought(client, reserved(organizer), ["M-1-1"])
    first = start_payment(client, order["id"]).json()
    second = start_payment(client, order["id"]).json()
    assert first == second
    assert Payment.objects.filter(order__public_id=order["id"]).count() == 1


def test_provider_that_is_not_enabled_is_refused(
    client: Client, organizer: Organizer, settings: Any
) -> None:
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox"]
    order = bought(client, reserved(organizer), ["M-1-1"])
    body = assert_error(
        start_payment(client, order["id"], provider="alipay"), 400, "payment_provider_unavailable"
    )
    assert body["details"] == {"provider": "alipay"}
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"provider": ""},
        {"return_url": "javascript:alert(1)"},
        {"return_url": "//evil.example/x"},
        {"return_url": "https://example.com/" + "x" * 500},
    ],
)
def test_malformed_start_is_400_invalid_input(
    client: Client, organizer: Organizer, body: dict[str, Any]
) -> None:
    order = bought(client, reserved(organizer), ["M-1-1"])
    assert_error(start_payment(client, order["id"], **body), 400, "invalid_input")
    assert not Payment.objects.exists()


def test_providers_lists_the_enabled_ones(client: Client, settings: Any) -> None:
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox", "alipay", "bogus"]
    response = client.get("/api/v1/payments/providers", headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert response.json() == [
        {"name": "sandbox", "label": "Sandbox (test payments)"},
        {"name": "alipay", "label": "Alipay"},
    ]


# --- The whole sandbox flow over HTTP -----------------------------------------------------------


def test_pay_on_the_sandbox_page_and_the_notification_pays_the_order(
    client: Client, organizer: Organizer
) -> None:
    # given an order awaiting payment and a started sandbox payment
    order, payment = started(client, organizer)
    redirect_url = client.get(f"/api/v1/orders/{order['id']}").json()["payments"][0]["redirect_url"]
    # when the buyer pays on the hosted page
    paid = client.post(redirect_url + "pay/")
    assert paid.status_code == 302
    assert transaction_of(payment).status == SandboxTransaction.Status.PAID
    assert Order.objects.get(public_id=order["id"]).state == "awaiting_payment"  # not yet
    # and the sandbox delivers its signed notification to our endpoint
    statuses: list[int] = []
    assert sandbox_deliver_due(send=through_django(statuses)) == 1
    # then it was acknowledged, and the order is paid with its seats sold
    assert statuses == [200]
    delivery = SandboxDelivery.objects.get(transaction__reference=payment.reference)
    assert delivery.delivered_at is not None
    shown = client.get(f"/api/v1/orders/{order['id']}").json()
    assert shown["state"] == "paid"
    assert shown["paid_at"] is not None and shown["paid_at"].endswith("Z")
    assert [p["status"] for p in shown["payments"]] == ["paid"]
    payment.refresh_from_db()
    assert payment.settles_order
    assert payment.provider_transaction_id == transaction_of(payment).public_id
    sold = SeatState.objects.filter(
        session__orders__public_id=order["id"], state=SeatState.State.SOLD
    ).values_list("seat__code", flat=True)
    assert sorted(sold) == ["M-1-1", "M-1-2"]
    # a paid order can be neither paid again nor cancelled
    assert_error(start_payment(client, order["id"]), 409, "order_not_payable")
    assert_error(client.post(f"/api/v1/orders/{order['id']}/cancel"), 400, "illegal_transition")


def test_a_failed_payment_leaves_the_order_waiting(client: Client, organizer: Organizer) -> None:
    order, payment = started(client, organizer)
    assert (
        client.post(f"/payments/sandbox/{transaction_of(payment).public_id}/fail/").status_code
        == 302
    )
    statuses: list[int] = []
    sandbox_deliver_due(send=through_django(statuses))
    assert statuses == [200]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    assert Order.objects.get(public_id=order["id"]).state == "awaiting_payment"


# --- Notifications that must be refused ---------------------------------------------------------


def paid_at_gateway(payment: Payment) -> tuple[dict[str, str], bytes]:
    """The buyer paid at the sandbox; the genuine notification it would send."""
    return signed_notification(sandbox_pay(transaction=transaction_of(payment)))


def test_forged_signature_is_refused_and_logged(
    client: Client, organizer: Organizer, caplog: pytest.LogCaptureFixture
) -> None:
    order, payment = started(client, organizer)
    headers, body = paid_at_gateway(payment)
    headers[HEADER_SIGNATURE] = sign(
        timestamp=headers[HEADER_TIMESTAMP], nonce=headers[HEADER_NONCE], body=body, key=b"guess"
    )
    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        assert_refused(post_notification(headers, body))
    assert refusal_logged(caplog, "notification_invalid_signature")
    assert_unpaid(order["id"], payment)


def test_tampered_body_is_refused_and_logged(
    client: Client, organizer: Organizer, caplog: pytest.LogCaptureFixture
) -> None:
    order, payment = started(client, organizer)
    headers, body = paid_at_gateway(payment)
    tampered = body.replace(b'"status":"paid"', b'"status":"paid","extra":1')
    assert tampered != body
    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        assert_refused(post_notification(headers, tampered))
    assert refusal_logged(caplog, "notification_invalid_signature")
    assert_unpaid(order["id"], payment)


def test_unsigned_notification_is_refused(client: Client, organizer: Organizer) -> None:
    order, payment = started(client, organizer)
    _headers, body = paid_at_gateway(payment)
    assert_refused(post_notification({"Content-Type": "application/json"}, body))
    assert_unpaid(order["id"], payment)


def test_wrong_amount_is_refused_even_when_correctly_signed(
    client: Client, organizer: Organizer, caplog: pytest.LogCaptureFixture
) -> None:
    order, payment = started(client, organizer)
    headers, body = paid_at_gateway(payment)
    data = json.loads(body)
    assert data["amount"] == "240.00"
    data["amount"] = "0.01"
    cheap = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    headers[HEADER_SIGNATURE] = sign(
        timestamp=headers[HEADER_TIMESTAMP], nonce=headers[HEADER_NONCE], body=cheap
    )
    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        assert_refused(post_notification(headers, cheap))
    assert refusal_logged(caplog, "notification_amount_mismatch")
    assert_unpaid(order["id"], payment)


def test_replayed_notification_is_refused_and_changes_nothing(
    client: Client, organizer: Organizer, caplog: pytest.LogCaptureFixture
) -> None:
    order, payment = started(client, organizer)
    headers, body = paid_at_gateway(payment)
    accepted = post_notification(headers, body)
    assert accepted.status_code == 200
    assert accepted.json() == {"code": "SUCCESS"}
    paid = Order.objects.get(public_id=order["id"])
    assert paid.state == "paid"
    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        assert_refused(post_notification(headers, body))
    assert refusal_logged(caplog, "notification_replayed")
    again = Order.objects.get(public_id=order["id"])
    assert (again.state, again.paid_at) == ("paid", paid.paid_at)
    assert OrderHistory.objects.filter(order=again, to_state="paid").count() == 1
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID


def test_notification_for_an_unknown_or_disabled_provider_is_404(
    settings: Any,
) -> None:
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox"]
    for provider in ("paypal", "alipay"):
        response = gateway().post(
            f"/api/v1/payments/{provider}/notifications", b"{}", content_type="application/json"
        )
        assert_error(response, 404, "payment_provider_not_found")


# --- Late payments ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["expired", "cancelled"])
def test_payment_arriving_after_the_order_ended_is_refunded(
    client: Client, organizer: Organizer, clock: Clock, how: str
) -> None:
    # given the buyer paid at the gateway just before the deadline
    order, payment = started(client, organizer)
    sandbox_pay(transaction=transaction_of(payment))
    # when the order ends before the notification arrives
    if how == "expired":
        clock.shift(dt.timedelta(minutes=16))  # past the 15-minute payment deadline
        assert order_expire_overdue() == 1
    else:
        order_cancel(order=Order.objects.get(public_id=order["id"]))
    statuses: list[int] = []
    assert sandbox_deliver_due(now=clock(), send=through_django(statuses)) == 1
    # then the notification is acknowledged (nothing to retry), and the money goes back
    assert statuses == [200]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert payment.refund_reason == "order_not_payable"
    assert not payment.settles_order
    refund = SandboxRefund.objects.get(transaction__reference=payment.reference)
    assert refund.amount == payment.amount
    assert refund.refund_reference == f"{payment.reference}-R"
    ended = Order.objects.get(public_id=order["id"])
    assert ended.state == how
    assert ended.paid_at is None
    shown = client.get(f"/api/v1/orders/{order['id']}").json()
    assert [p["status"] for p in shown["payments"]] == ["refunded"]
