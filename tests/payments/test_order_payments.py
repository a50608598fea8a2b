"""Paying orders: `payment_start`, notifications through the sandbox gateway (and the Alipay /
WeChat Pay adapters with local fake gateways), automatic refunds and the reconcile job.

The sandbox is driven as a buyer and a gateway would: `sandbox_pay` on the hosted page, then
`sandbox_deliver_due` posts the signed notification — here straight into
`payment_notification_receive`, which is what the notification endpoint calls.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from piaowu.core import clock as core_clock
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, SeatState
from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.services import order_cancel, order_expire_overdue
from piaowu.orders.states import OrderState
from piaowu.payments.models import (
    Payment,
    SandboxDelivery,
    SandboxRefund,
    SandboxTransaction,
)
from piaowu.payments.providers.alipay import ALIPAY_TZ, TIME_FORMAT
from piaowu.payments.providers.base import provider_error
from piaowu.payments.providers.sandbox import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SandboxProvider,
    notification_body,
    sign,
    signed_notification,
)
from piaowu.payments.services import (
    RECONCILE_AFTER_SECONDS,
    payment_notification_receive,
    payment_start,
    payments_reconcile,
    sandbox_abandon,
    sandbox_deliver_due,
    sandbox_fail,
    sandbox_pay,
)
from tests.orders.conftest import Clock, checkout, clock, reserved_session
from tests.payments.helpers import Recorded
from tests.payments.keys import private_pem, public_pem
from tests.payments.test_alipay import (
    APP_ID,
    alipay_signed_form,
    fake_gateway,
    form,
    notification_fields,
)
from tests.payments.test_wechat import (
    APIV3_KEY,
    MCHID,
    PUB_KEY_ID,
    encrypted_body,
    fake_wechat,
    transaction,
    wechat_headers,
)

__all__ = ["checkout", "clock", "reserved_session"]

pytestmark = pytest.mark.django_db

Checkout = Callable[..., Order]
NOTIFY_URL = "https://piaowu.test/api/v1/payments/{provider}/notifications"
SERVICES_LOGGER = "piaowu.payments.services"


# --- Helpers -----------------------------------------------------------------------------------


def start(order: Order, provider: str = "sandbox", return_url: str = "") -> Payment:
    return payment_start(
        order=order,
        provider_name=provider,
        notify_url=NOTIFY_URL.format(provider=provider),
        return_url=return_url,
    )


def sandbox_txn(payment: Payment) -> SandboxTransaction:
    return SandboxTransaction.objects.get(reference=payment.reference)


class Merchant:
    """Stands in for the notification endpoint: hands the gateway's post to the service and
    answers with the acknowledgement's HTTP status."""

    def __init__(self) -> None:
        self.answers: list[int] = []

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> int:
        provider = url.rstrip("/").split("/")[-2]
        ack, _payment = payment_notification_receive(
            provider_name=provider, headers=headers, body=body
        )
        self.answers.append(ack.status)
        return ack.status


def deliver() -> list[int]:
    """Let the sandbox post every notification that is due now; the merchant's answers."""
    merchant = Merchant()
    sandbox_deliver_due(send=merchant)
    return merchant.answers


def receive(headers: Mapping[str, str], body: bytes, provider: str = "sandbox") -> int:
    ack, _payment = payment_notification_receive(provider_name=provider, headers=headers, body=body)
    return ack.status


def signed(payload: dict[str, Any], *, key: bytes | None = None) -> tuple[dict[str, str], bytes]:
    """A sandbox notification for an arbitrary payload, signed like the sandbox signs."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(core_clock.now().timestamp()))
    nonce = f"test-{len(body)}-{id(payload)}"
    return {
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(timestamp=timestamp, nonce=nonce, body=body, key=key),
    }, body


def paid_history(order: Order) -> int:
    return OrderHistory.objects.filter(order=order, to_state=OrderState.PAID).count()


def seat_states(order: Order) -> set[str]:
    seat_ids = order.lines.values_list("seat_id", flat=True)
    return set(
        SeatState.objects.filter(session=order.session, seat_id__in=seat_ids).values_list(
            "state", flat=True
        )
    )


def refreshed(*rows: Any) -> None:
    for row in rows:
        row.refresh_from_db()


def refused_codes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The error codes of the notifications the service refused (and logged)."""
    codes = []
    for record in caplog.records:
        if record.name == SERVICES_LOGGER and record.msg.startswith("payment notification refused"):
            assert isinstance(record.args, tuple)
            codes.append(str(record.args[1]))
    return codes


# --- Start -------------------------------------------------------------------------------------


def test_start_creates_a_payment_of_the_order_total_and_sends_to_the_hosted_page(
    checkout: Checkout,
) -> None:
    order = checkout()

    payment = start(order, return_url="https://piaowu.test/orders/x")

    txn = sandbox_txn(payment)
    assert (payment.status, payment.provider) == (Payment.Status.STARTED, "sandbox")
    assert (payment.amount, payment.currency) == (order.total_amount, order.currency)
    assert payment.amount == Decimal("360.00")
    assert payment.redirect_url == f"/payments/sandbox/{txn.public_id}/"
    assert payment.qr_code_payload == ""
    assert (txn.amount, txn.currency, txn.status) == (Decimal("360.00"), "CNY", "pending")
    assert txn.expires_at == order.payment_deadline
    assert txn.notify_url == NOTIFY_URL.format(provider="sandbox")
    assert txn.return_url == "https://piaowu.test/orders/x"
    assert order.code in txn.subject


def test_starting_again_returns_the_same_open_payment(checkout: Checkout) -> None:
    order = checkout()
    first = start(order)
    again = start(Order.objects.get(pk=order.pk))
    assert again.pk == first.pk
    assert Payment.objects.filter(order=order).count() == 1
    assert SandboxTransaction.objects.count() == 1


@pytest.mark.parametrize("how", ["cancelled", "expired", "past_deadline"])
def test_start_refuses_an_order_that_cannot_be_paid(
    checkout: Checkout, clock: Clock, how: str
) -> None:
    order = checkout()
    if how == "cancelled":
        order_cancel(order=order)
    else:
        clock.shift(dt.timedelta(minutes=16))
        if how == "expired":
            assert order_expire_overdue() == 1

    with pytest.raises(DomainError) as caught:
        start(order)

    assert caught.value.code == "order_not_payable"
    assert caught.value.status == 409
    expected_state = {"cancelled": "cancelled", "expired": "expired"}.get(how, "awaiting_payment")
    assert caught.value.details["state"] == expected_state
    assert not Payment.objects.exists()
    assert not SandboxTransaction.objects.exists()


@pytest.mark.parametrize("provider", ["alipay", "paypal"])
def test_start_with_a_disabled_or_unknown_provider_is_refused(
    checkout: Checkout, settings: SettingsWrapper, provider: str
) -> None:
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox"]
    order = checkout()
    with pytest.raises(DomainError) as caught:
        start(order, provider=provider)
    assert caught.value.code == "payment_provider_unavailable"
    assert not Payment.objects.exists()


# --- Notifications -----------------------------------------------------------------------------


def test_paid_notification_pays_the_order_and_sells_the_seats(checkout: Checkout) -> None:
    order = checkout()
    payment = start(order)
    txn = sandbox_pay(transaction=sandbox_txn(payment))
    assert Order.objects.get(pk=order.pk).state == OrderState.AWAITING_PAYMENT  # not before

    assert deliver() == [200]

    refreshed(order, payment)
    hold = Hold.objects.get(pk=order.hold_id)
    assert order.state == OrderState.PAID and order.paid_at == txn.paid_at
    assert hold.status == Hold.Status.CONVERTED
    assert seat_states(order) == {"sold"}
    assert payment.status == Payment.Status.PAID and payment.settles_order
    assert payment.provider_transaction_id == txn.public_id
    assert payment.paid_at == txn.paid_at
    assert paid_history(order) == 1
    assert SandboxDelivery.objects.get(transaction=txn).delivered_at is not None
    assert deliver() == []  # acknowledged: the gateway stops


def test_the_same_outcome_notified_twice_is_acknowledged_and_applied_once(
    checkout: Checkout,
) -> None:
    order = checkout()
    payment = start(order)
    txn = sandbox_pay(transaction=sandbox_txn(payment))
    assert deliver() == [200]
    refreshed(payment)
    before = (payment.status, payment.settles_order, payment.paid_at, payment.updated_at)

    headers, body = signed_notification(txn)  # the gateway's own retry: a fresh nonce
    assert receive(headers, body) == 200

    refreshed(payment, order)
    assert (payment.status, payment.settles_order, payment.paid_at, payment.updated_at) == before
    assert order.state == OrderState.PAID
    assert paid_history(order) == 1
    assert not SandboxRefund.objects.exists()


def test_a_replayed_notification_is_refused_and_logged(
    checkout: Checkout, caplog: pytest.LogCaptureFixture
) -> None:
    order = checkout()
    payment = start(order)
    headers, body = signed_notification(sandbox_pay(transaction=sandbox_txn(payment)))
    assert receive(headers, body) == 200

    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        assert receive(headers, body) == 400

    assert refused_codes(caplog) == ["notification_replayed"]
    assert paid_history(order) == 1


def _forged(txn: SandboxTransaction) -> tuple[dict[str, str], bytes]:
    return signed(json.loads(notification_body(txn)), key=b"not the sandbox key")


def _tampered(txn: SandboxTransaction) -> tuple[dict[str, str], bytes]:
    headers, body = signed_notification(txn)
    return headers, body.replace(b'"amount":"360.00"', b'"amount":"0.01"')


def _stale(txn: SandboxTransaction) -> tuple[dict[str, str], bytes]:
    return signed_notification(txn, now=core_clock.now() - dt.timedelta(minutes=10))


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (_forged, "notification_invalid_signature"),
        (_tampered, "notification_invalid_signature"),
        (_stale, "notification_stale"),
    ],
    ids=["forged", "tampered", "stale"],
)
def test_forged_tampered_or_stale_notifications_are_refused(
    checkout: Checkout,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[SandboxTransaction], tuple[dict[str, str], bytes]],
    code: str,
) -> None:
    order = checkout()
    payment = start(order)
    txn = sandbox_pay(transaction=sandbox_txn(payment))
    headers, body = make(txn)

    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        assert receive(headers, body) == 400

    assert refused_codes(caplog) == [code]
    refreshed(order, payment)
    assert order.state == OrderState.AWAITING_PAYMENT
    assert payment.status == Payment.Status.STARTED and not payment.provider_transaction_id
    assert seat_states(order) == {"held"}
    # The genuine notification still goes through afterwards.
    assert deliver() == [200]
    assert Order.objects.get(pk=order.pk).state == OrderState.PAID


@pytest.mark.parametrize(
    "change",
    [{"amount": "0.01"}, {"currency": "USD"}, {"amount": "359.996"}],
    ids=["amount", "currency", "sub-fen amount"],
)
def test_a_wrong_amount_or_currency_is_refused_and_the_order_keeps_waiting(
    checkout: Checkout, caplog: pytest.LogCaptureFixture, change: dict[str, str]
) -> None:
    order = checkout()
    payment = start(order)
    txn = sandbox_pay(transaction=sandbox_txn(payment))
    payload = {**json.loads(notification_body(txn)), **change}

    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        assert receive(*signed(payload)) == 400

    assert refused_codes(caplog) == ["notification_amount_mismatch"]
    refreshed(order, payment)
    assert order.state == OrderState.AWAITING_PAYMENT
    assert payment.status == Payment.Status.STARTED and not payment.settles_order
    assert seat_states(order) == {"held"}
    assert not SandboxRefund.objects.exists()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"reference": "no-such-payment"}, "payment_not_found"),
        ({"transaction_id": "ANOTHER-TRANSACTION"}, "notification_transaction_mismatch"),
    ],
    ids=["unknown-payment", "other-transaction"],
)
def test_a_notification_about_an_unknown_payment_or_another_transaction_is_refused(
    checkout: Checkout, caplog: pytest.LogCaptureFixture, change: dict[str, str], code: str
) -> None:
    order = checkout()
    payment = start(order)
    txn = sandbox_pay(transaction=sandbox_txn(payment))
    assert deliver() == [200]
    refreshed(payment)
    settled = (payment.status, payment.provider_transaction_id, payment.settles_order)

    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        assert receive(*signed({**json.loads(notification_body(txn)), **change})) == 400

    assert refused_codes(caplog) == [code]
    refreshed(payment)
    assert (payment.status, payment.provider_transaction_id, payment.settles_order) == settled
    assert paid_history(order) == 1


@pytest.mark.parametrize(
    ("settle", "status"),
    [(sandbox_fail, Payment.Status.FAILED), (sandbox_abandon, Payment.Status.CLOSED)],
    ids=["failed", "abandoned"],
)
def test_a_failed_or_abandoned_attempt_ends_and_a_new_one_can_start(
    checkout: Checkout, settle: Callable[..., SandboxTransaction], status: str
) -> None:
    order = checkout()
    payment = start(order)
    settle(transaction=sandbox_txn(payment))

    assert deliver() == [200]

    refreshed(order, payment)
    assert payment.status == status and not payment.settles_order
    assert order.state == OrderState.AWAITING_PAYMENT
    assert seat_states(order) == {"held"}
    retry = start(order)
    assert retry.pk != payment.pk and retry.status == Payment.Status.STARTED
    assert retry.redirect_url and retry.redirect_url != payment.redirect_url
    sandbox_pay(transaction=sandbox_txn(retry))
    assert deliver() == [200]
    refreshed(order, retry)
    assert order.state == OrderState.PAID and retry.settles_order


# --- Payments that cannot pay their order are refunded -----------------------------------------


def assert_refunded(payment: Payment, reason: str) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert payment.refund_reason == reason
    assert payment.refunded_at is not None
    assert not payment.settles_order
    refunds = list(SandboxRefund.objects.filter(transaction__reference=payment.reference))
    assert [(r.amount, r.refund_reference) for r in refunds] == [
        (payment.amount, f"{payment.reference}-R")
    ]


def test_a_payment_arriving_after_the_order_expired_is_refunded(
    checkout: Checkout, clock: Clock
) -> None:
    order = checkout()
    payment = start(order)
    # The buyer pays in time, but the notification only arrives after the sweeper expired it.
    sandbox_pay(transaction=sandbox_txn(payment))
    clock.shift(dt.timedelta(minutes=16))
    assert order_expire_overdue() == 1

    assert deliver() == [200]

    assert_refunded(payment, "order_not_payable")
    refreshed(order)
    assert order.state == OrderState.EXPIRED
    assert seat_states(order) == {"available"}
    assert paid_history(order) == 0


def test_a_payment_arriving_after_the_deadline_before_the_sweep_is_refunded(
    checkout: Checkout, clock: Clock
) -> None:
    order = checkout()
    payment = start(order)
    sandbox_pay(transaction=sandbox_txn(payment))
    clock.shift(dt.timedelta(minutes=16))  # the hold has run out; the sweeper has not run yet

    assert deliver() == [200]

    assert_refunded(payment, "order_not_payable")
    refreshed(order)
    # The late payment expires the order at once (not on the sweeper's next turn) and its
    # seats go back: never sold.
    assert order.state == OrderState.EXPIRED
    assert seat_states(order) == {"available"}
    assert Hold.objects.get(pk=order.hold_id).status != Hold.Status.CONVERTED
    assert order_expire_overdue() == 0


def test_a_payment_for_a_cancelled_order_is_refunded(checkout: Checkout) -> None:
    order = checkout()
    payment = start(order)
    sandbox_pay(transaction=sandbox_txn(payment))
    order_cancel(order=order)

    assert deliver() == [200]

    assert_refunded(payment, "order_not_payable")
    refreshed(order)
    assert order.state == OrderState.CANCELLED
    assert seat_states(order) == {"available"}


# --- Alipay and WeChat Pay end to end (local fake gateways) --------------------------------------

ALIPAY_GATEWAY = "https://alipay.gateway.test/gateway.do"


@pytest.fixture
def alipay_enabled(settings: SettingsWrapper) -> SettingsWrapper:
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox", "alipay"]
    settings.PIAOWU_ALIPAY_APP_ID = APP_ID
    settings.PIAOWU_ALIPAY_APP_PRIVATE_KEY = private_pem("alipay-app")
    settings.PIAOWU_ALIPAY_PUBLIC_KEY = public_pem("alipay-gateway")
    settings.PIAOWU_ALIPAY_GATEWAY = ALIPAY_GATEWAY
    return settings


def alipay_paid_form(payment: Payment, **overrides: str) -> dict[str, str]:
    fields = notification_fields(
        out_trade_no=payment.reference,
        total_amount=f"{payment.amount:.2f}",
        trade_no=f"2026{payment.pk:024d}",
        gmt_payment=core_clock.now().astimezone(ALIPAY_TZ).strftime(TIME_FORMAT),
        **overrides,
    )
    return alipay_signed_form(fields)


def test_alipay_end_to_end(checkout: Checkout, alipay_enabled: SettingsWrapper) -> None:
    order = checkout()
    payment = start(order, provider="alipay")

    params = dict(parse_qsl(urlsplit(payment.redirect_url).query))
    biz = json.loads(params["biz_content"])
    assert payment.redirect_url.startswith(ALIPAY_GATEWAY + "?")
    assert (biz["out_trade_no"], biz["total_amount"]) == (payment.reference, "360.00")
    assert params["notify_url"] == NOTIFY_URL.format(provider="alipay")

    # Tampered: the amount changed after Alipay signed.
    tampered = alipay_paid_form(payment)
    tampered["total_amount"] = "0.01"
    ack, none = payment_notification_receive(
        provider_name="alipay", headers={}, body=form(tampered)
    )
    assert (ack.status, ack.body, none) == (400, "failure", None)
    assert Order.objects.get(pk=order.pk).state == OrderState.AWAITING_PAYMENT

    paid = alipay_paid_form(payment)
    ack, got = payment_notification_receive(provider_name="alipay", headers={}, body=form(paid))

    assert (ack.status, ack.body) == (200, "success")
    assert got is not None and got.pk == payment.pk
    refreshed(order, payment)
    assert order.state == OrderState.PAID and seat_states(order) == {"sold"}
    assert payment.settles_order and payment.provider_transaction_id == paid["trade_no"]
    # Alipay has no nonce: the same notification again is simply applied once.
    assert receive({}, form(paid), provider="alipay") == 200
    assert paid_history(order) == 1


@pytest.fixture
def wechat_gateway(settings: SettingsWrapper) -> Iterator[list[Recorded]]:
    with fake_wechat({"code_url": "weixin://wxpay/bizpayurl?pr=piaowu"}) as (url, seen):
        wechat_settings(settings, gateway=url)
        yield seen


def wechat_settings(settings: SettingsWrapper, *, gateway: str) -> None:
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox", "wechat"]
    settings.PIAOWU_WECHATPAY_MCHID = MCHID
    settings.PIAOWU_WECHATPAY_APPID = "wxd678efh567hg6787"
    settings.PIAOWU_WECHATPAY_PRIVATE_KEY = private_pem("wechat-merchant")
    settings.PIAOWU_WECHATPAY_CERT_SERIAL_NO = "444F4864EA9B34415"
    settings.PIAOWU_WECHATPAY_APIV3_KEY = APIV3_KEY
    settings.PIAOWU_WECHATPAY_PUBLIC_KEY = public_pem("wechat-platform")
    settings.PIAOWU_WECHATPAY_PUBLIC_KEY_ID = PUB_KEY_ID
    settings.PIAOWU_WECHATPAY_GATEWAY = gateway


def test_wechat_pay_end_to_end(checkout: Checkout, wechat_gateway: list[Recorded]) -> None:
    order = checkout()
    payment = start(order, provider="wechat")

    assert payment.qr_code_payload == "weixin://wxpay/bizpayurl?pr=piaowu"
    sent = json.loads(wechat_gateway[0].body)
    assert sent["out_trade_no"] == payment.reference
    assert sent["amount"] == {"total": 36000, "currency": "CNY"}
    assert sent["notify_url"] == NOTIFY_URL.format(provider="wechat")

    resource = transaction(
        out_trade_no=payment.reference,
        transaction_id="4200000000202611219999999999",
        success_time=core_clock.now().isoformat(timespec="seconds"),
        amount={"total": 36000, "payer_total": 36000, "currency": "CNY"},
    )
    body = encrypted_body(resource)
    # Tampered: another body under the genuine headers.
    cheap = encrypted_body({**resource, "amount": {"total": 1, "currency": "CNY"}})
    assert receive(wechat_headers(body, nonce="N-TAMPERED"), cheap.encode(), "wechat") == 400
    assert Order.objects.get(pk=order.pk).state == OrderState.AWAITING_PAYMENT

    ack, got = payment_notification_receive(
        provider_name="wechat", headers=wechat_headers(body, nonce="N-1"), body=body.encode()
    )

    assert ack.status == 200 and json.loads(ack.body)["code"] == "SUCCESS"
    assert got is not None and got.pk == payment.pk
    refreshed(order, payment)
    assert order.state == OrderState.PAID and seat_states(order) == {"sold"}
    assert payment.provider_transaction_id == "4200000000202611219999999999"
    # WeChat's retry carries a new nonce; the replay of the first one is refused.
    assert receive(wechat_headers(body, nonce="N-2"), body.encode(), "wechat") == 200
    assert receive(wechat_headers(body, nonce="N-1"), body.encode(), "wechat") == 400
    assert paid_history(order) == 1


def test_a_gateway_refusing_the_start_is_a_provider_error_and_the_attempt_is_recorded(
    checkout: Checkout, settings: SettingsWrapper
) -> None:
    order = checkout()
    with fake_wechat({"code": "SYSTEM_ERROR", "message": "系统错误"}, status=500) as (url, seen):
        wechat_settings(settings, gateway=url)
        with pytest.raises(DomainError) as caught:
            start(order, provider="wechat")
    assert caught.value.code == "payment_provider_error"
    assert len(seen) == 1
    failed = Payment.objects.get(order=order)
    assert (failed.status, failed.qr_code_payload) == (Payment.Status.FAILED, "")
    # The buyer can try again (the failed attempt is not handed out as the open one).
    with fake_wechat({"code_url": "weixin://wxpay/bizpayurl?pr=again"}) as (url, _seen):
        settings.PIAOWU_WECHATPAY_GATEWAY = url
        retry = start(order, provider="wechat")
    assert retry.pk != failed.pk and retry.qr_code_payload == "weixin://wxpay/bizpayurl?pr=again"


def test_a_second_paid_payment_of_an_order_is_refunded_as_a_duplicate(
    checkout: Checkout, alipay_enabled: SettingsWrapper
) -> None:
    # The buyer started with Alipay on the phone and with the sandbox on the desktop, and
    # finished both.
    order = checkout()
    by_alipay = start(order, provider="alipay")
    by_sandbox = start(order)
    sandbox_pay(transaction=sandbox_txn(by_sandbox))
    assert receive({}, form(alipay_paid_form(by_alipay)), provider="alipay") == 200

    assert deliver() == [200]

    refreshed(order, by_alipay)
    assert order.state == OrderState.PAID and by_alipay.settles_order
    assert_refunded(by_sandbox, "duplicate_payment")
    assert paid_history(order) == 1
    assert seat_states(order) == {"sold"}


# --- Reconcile ---------------------------------------------------------------------------------


def after_quiet_period(clock: Clock) -> None:
    clock.shift(dt.timedelta(seconds=RECONCILE_AFTER_SECONDS + 1))


def test_reconcile_pays_the_order_when_the_notification_was_lost(
    checkout: Checkout, clock: Clock
) -> None:
    order = checkout()
    payment = start(order)
    txn = sandbox_pay(transaction=sandbox_txn(payment))
    SandboxDelivery.objects.filter(transaction=txn).delete()  # the gateway never tells us

    assert payments_reconcile() == 0  # too early to ask
    assert Order.objects.get(pk=order.pk).state == OrderState.AWAITING_PAYMENT
    after_quiet_period(clock)

    assert payments_reconcile() == 1

    refreshed(order, payment)
    assert order.state == OrderState.PAID and seat_states(order) == {"sold"}
    assert payment.status == Payment.Status.PAID and payment.settles_order
    assert payment.provider_transaction_id == txn.public_id
    assert payment.last_checked_at is not None
    after_quiet_period(clock)
    assert payments_reconcile() == 0  # nothing left to do
    assert paid_history(order) == 1


def test_reconcile_closes_an_abandoned_attempt_and_leaves_a_pending_one(
    checkout: Checkout, clock: Clock
) -> None:
    abandoned, pending = start(checkout()), start(checkout())
    SandboxDelivery.objects.filter(
        transaction=sandbox_abandon(transaction=sandbox_txn(abandoned))
    ).delete()
    after_quiet_period(clock)

    assert payments_reconcile() == 1

    refreshed(abandoned, pending)
    assert abandoned.status == Payment.Status.CLOSED
    assert pending.status == Payment.Status.STARTED and pending.last_checked_at is not None


def test_reconcile_finishes_a_settlement_a_crash_interrupted(
    checkout: Checkout, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = checkout()
    payment = start(order)
    sandbox_pay(transaction=sandbox_txn(payment))
    with monkeypatch.context() as patch:
        # The process dies right after recording the money, before the order is settled.
        def crash(payment: Payment) -> Payment:
            raise SystemExit("worker killed")

        patch.setattr("piaowu.payments.services._payment_settle", crash)
        with pytest.raises(SystemExit):
            deliver()
    refreshed(order, payment)
    assert (payment.status, payment.settles_order) == (Payment.Status.PAID, False)
    assert order.state == OrderState.AWAITING_PAYMENT

    assert payments_reconcile() == 0  # it may still be in progress elsewhere
    after_quiet_period(clock)
    assert payments_reconcile() == 1

    refreshed(order, payment)
    assert order.state == OrderState.PAID and seat_states(order) == {"sold"}
    assert payment.settles_order and not SandboxRefund.objects.exists()
    # The gateway's retry of the notification then changes nothing.
    clock.shift(dt.timedelta(minutes=2))
    assert deliver() == [200]
    assert paid_history(order) == 1


def test_a_refund_the_provider_failed_is_retried_by_reconcile_and_happens_once(
    checkout: Checkout,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_refund = SandboxProvider.refund
    calls: list[str] = []

    def refund_failing_once(self: SandboxProvider, **kw: Any) -> Any:
        calls.append(kw["refund_reference"])
        if len(calls) == 1:
            raise provider_error("sandbox", "gateway timeout")
        return real_refund(self, **kw)

    monkeypatch.setattr(SandboxProvider, "refund", refund_failing_once)
    order = checkout()
    payment = start(order)
    sandbox_pay(transaction=sandbox_txn(payment))
    order_cancel(order=order)

    with caplog.at_level(logging.WARNING, logger=SERVICES_LOGGER):
        # The payment is recorded and its refund is owed: the notification is acknowledged.
        assert deliver() == [200]

    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDING
    assert payment.refund_reason == "order_not_payable"
    assert not SandboxRefund.objects.exists()
    assert any("payment_provider_error" in r.getMessage() for r in caplog.records)

    assert payments_reconcile() == 0  # not yet: leave a just-failed refund a moment
    after_quiet_period(clock)
    assert payments_reconcile() == 1

    assert_refunded(payment, "order_not_payable")
    after_quiet_period(clock)
    assert payments_reconcile() == 0
    assert SandboxRefund.objects.count() == 1
    assert calls == [f"{payment.reference}-R"] * 2  # the same refund reference both times


def test_reconcile_keeps_going_past_a_payment_it_cannot_finish(
    checkout: Checkout,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two refunds are owed after the provider was down; then one of them keeps crashing.
    orders = [checkout(), checkout()]
    payments = [start(order) for order in orders]
    for order, payment in zip(orders, payments, strict=True):
        sandbox_pay(transaction=sandbox_txn(payment))
        order_cancel(order=order)
    real_refund = SandboxProvider.refund

    def provider_down(self: SandboxProvider, **kw: Any) -> Any:
        raise provider_error("sandbox", "unreachable")

    monkeypatch.setattr(SandboxProvider, "refund", provider_down)
    assert deliver() == [200, 200]
    refreshed(*payments)
    assert [p.status for p in payments] == [Payment.Status.REFUNDING] * 2

    def crashes_for_the_second(self: SandboxProvider, **kw: Any) -> Any:
        if kw["reference"] == payments[1].reference:
            raise RuntimeError("bug in the provider adapter")
        return real_refund(self, **kw)

    monkeypatch.setattr(SandboxProvider, "refund", crashes_for_the_second)
    after_quiet_period(clock)
    with caplog.at_level(logging.ERROR, logger=SERVICES_LOGGER):
        assert payments_reconcile() == 1

    refreshed(*payments)
    assert [p.status for p in payments] == [Payment.Status.REFUNDED, Payment.Status.REFUNDING]
    assert any(payments[1].reference in r.getMessage() for r in caplog.records)


def test_reconcile_asks_alipay_about_a_silent_payment(
    checkout: Checkout, clock: Clock, alipay_enabled: SettingsWrapper
) -> None:
    order = checkout()
    payment = start(order, provider="alipay")
    answer: dict[str, Any] = {
        "code": "10000",
        "msg": "Success",
        "out_trade_no": payment.reference,
        "trade_no": "T-RECONCILED",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "360.00",
        "send_pay_date": core_clock.now().astimezone(ALIPAY_TZ).strftime(TIME_FORMAT),
    }
    with fake_gateway({"alipay.trade.query": answer}) as (url, seen):
        alipay_enabled.PIAOWU_ALIPAY_GATEWAY = url + "/gateway.do"
        after_quiet_period(clock)
        assert payments_reconcile() == 1

    assert len(seen) == 1
    refreshed(order, payment)
    assert order.state == OrderState.PAID
    assert payment.provider_transaction_id == "T-RECONCILED"
