from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from pytest_django.fixtures import Settings

from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.payments.providers import get_provider
from piaowu.payments.providers.alipay import AlipayProvider, AlipaySettings
from piaowu.payments.providers.base import PaymentRequest
from tests.payments.helpers import Recorded, Reply, local_server
from tests.payments.keys import private_pem, public_pem, rsa2_sign, rsa2_verify

APP_ID = "2021000000000001"


def make_provider(
    gateway: str = "http://127.0.0.1:9/gateway.do", mode: str = "page"
) -> AlipayProvider:
    return AlipayProvider(
        AlipaySettings(
            app_id=APP_ID,
            app_private_key=private_pem("alipay-app"),
            alipay_public_key=public_pem("alipay-gateway"),
            gateway=gateway,
            pay_mode=mode,
        )
    )


def alipay_signed_form(fields: dict[str, str], signer: str = "alipay-gateway") -> dict[str, str]:
    """Sign like Alipay: RSA2 over sorted `k=v` pairs, without `sign` and `sign_type`."""
    unsigned = "&".join(
        f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type")
    )
    return {**fields, "sign_type": "RSA2", "sign": rsa2_sign(signer, unsigned)}


def notification_fields(**overrides: str) -> dict[str, str]:
    fields = {
        "app_id": APP_ID,
        "charset": "utf-8",
        "gmt_create": "2026-11-21 20:00:00",
        "gmt_payment": "2026-11-21 20:01:02",
        "notify_id": "2026112100222200102000000000000000",
        "notify_time": "2026-11-21 20:01:03",
        "notify_type": "trade_status_sync",
        "out_trade_no": "ORD-1",
        "subject": "周杰伦 演唱会 & more",
        "total_amount": "880.00",
        "trade_no": "2026112122001400000000000001",
        "trade_status": "TRADE_SUCCESS",
        "version": "1.0",
    }
    fields.update(overrides)
    return fields


def form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def error_code(body: bytes) -> str:
    with pytest.raises(DomainError) as caught:
        make_provider().parse_notification(headers={}, body=body)
    return caught.value.code


def test_good_notification_is_accepted_and_parsed() -> None:
    body = form(alipay_signed_form(notification_fields()))

    note = make_provider().parse_notification(
        headers={"Content-Type": "application/x-www-form-urlencoded"}, body=body
    )

    assert note.reference == "ORD-1"
    assert note.provider_transaction_id == "2026112122001400000000000001"
    assert note.amount == Money(Decimal("880.00"), "CNY")
    assert note.status == "paid"
    assert note.paid_at == datetime(2026, 11, 21, 12, 1, 2, tzinfo=UTC)


def test_closed_trade_is_reported_closed() -> None:
    fields = notification_fields(trade_status="TRADE_CLOSED")
    del fields["gmt_payment"]
    note = make_provider().parse_notification(headers={}, body=form(alipay_signed_form(fields)))
    assert (note.status, note.paid_at) == ("closed", None)


def test_tampered_amount_is_rejected() -> None:
    signed = alipay_signed_form(notification_fields())
    signed["total_amount"] = "0.01"
    assert error_code(form(signed)) == "notification_invalid_signature"


def test_signature_by_another_key_is_rejected() -> None:
    signed = alipay_signed_form(notification_fields(), signer="somebody-else")
    assert error_code(form(signed)) == "notification_invalid_signature"


def test_missing_sign_is_rejected() -> None:
    signed = alipay_signed_form(notification_fields())
    del signed["sign"]
    assert error_code(form(signed)) == "notification_invalid_signature"


def test_notification_for_another_app_is_rejected() -> None:
    signed = alipay_signed_form(notification_fields(app_id="2021999999999999"))
    assert error_code(form(signed)) == "notification_invalid_signature"


@pytest.mark.parametrize("missing", ["out_trade_no", "trade_no", "total_amount", "trade_status"])
def test_signed_notification_missing_a_field_is_malformed(missing: str) -> None:
    fields = notification_fields()
    del fields[missing]
    assert error_code(form(alipay_signed_form(fields))) == "notification_malformed"


def test_unknown_trade_status_and_garbage_are_malformed() -> None:
    assert error_code(form(alipay_signed_form(notification_fields(trade_status="WHAT")))) == (
        "notification_malformed"
    )
    assert error_code(b"\xff\xfe") == "notification_malformed"
    assert error_code(b"") == "notification_malformed"


def test_acknowledgement_is_the_plain_word_success() -> None:
    ack = make_provider().acknowledgement(True)
    assert (ack.status, ack.body, ack.content_type) == (200, "success", "text/plain")
    assert make_provider().acknowledgement(False).body != "success"


def request_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def app_signature_ok(params: dict[str, str]) -> bool:
    params = dict(params)
    sign = params.pop("sign")
    return rsa2_verify("alipay-app", "&".join(f"{k}={v}" for k, v in sorted(params.items())), sign)


@pytest.mark.parametrize(
    ("mode", "method"), [("page", "alipay.trade.page.pay"), ("wap", "alipay.trade.wap.pay")]
)
def test_start_builds_a_signed_pay_url(mode: str, method: str) -> None:
    provider = make_provider(gateway="https://gw.example/gateway.do", mode=mode)
    start = provider.start(
        PaymentRequest(
            reference="ORD-1",
            amount=Money.of("880", "CNY"),
            subject="演唱会",
            notify_url="https://piaowu.example/notify",
            return_url="https://piaowu.example/return",
            expires_at=datetime(2026, 11, 21, 12, 15, tzinfo=UTC),
        )
    )
    assert start.redirect_url.startswith("https://gw.example/gateway.do?")
    params = request_params(start.redirect_url)
    biz = json.loads(params["biz_content"])
    assert params["method"] == method
    assert params["notify_url"] == "https://piaowu.example/notify"
    assert biz["out_trade_no"] == "ORD-1"
    assert biz["total_amount"] == "880.00"
    assert biz["time_expire"] == "2026-11-21 20:15:00"
    assert app_signature_ok(params)


def test_start_refuses_other_currencies() -> None:
    with pytest.raises(DomainError) as caught:
        make_provider().start(
            PaymentRequest(
                reference="R", amount=Money.of("1", "USD"), subject="S", notify_url="https://x/n"
            )
        )
    assert caught.value.code == "payment_currency_unsupported"


def fake_gateway(answers: dict[str, dict[str, Any]], signer: str = "alipay-gateway"):  # type: ignore[no-untyped-def]
    """Answer like Alipay's gateway: `{"<method>_response": {...}, "sign": RSA2(inner JSON)}`."""

    def respond(request: Recorded) -> Reply:
        params = request_params(request.path)
        if not app_signature_ok(params):
            return Reply(
                200, b'{"error_response":{"code":"40002","sub_code":"isv.invalid-signature"}}'
            )
        method = params["method"]
        inner = json.dumps(answers[method], ensure_ascii=False, separators=(",", ":"))
        key = method.replace(".", "_") + "_response"
        raw = f'{{"{key}":{inner},"sign":"{rsa2_sign(signer, inner)}"}}'
        return Reply(200, raw.encode(), {"Content-Type": "application/json;charset=utf-8"})

    return local_server(respond)


def test_query_asks_the_gateway_and_verifies_its_answer() -> None:
    answer = {
        "code": "10000",
        "msg": "Success",
        "out_trade_no": "ORD-1",
        "trade_no": "T-1",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "880.00",
        "send_pay_date": "2026-11-21 20:01:02",
    }
    with fake_gateway({"alipay.trade.query": answer}) as (url, seen):
        status = make_provider(gateway=url + "/gateway.do").query(reference="ORD-1")
    assert (status.status, status.provider_transaction_id) == ("paid", "T-1")
    assert status.amount == Money.of("880", "CNY")
    assert json.loads(request_params(seen[0].path)["biz_content"]) == {"out_trade_no": "ORD-1"}


def test_query_of_an_unknown_trade_is_not_found() -> None:
    answer = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}
    with fake_gateway({"alipay.trade.query": answer}) as (url, _seen):
        status = make_provider(gateway=url + "/gateway.do").query(reference="ORD-404")
    assert status.status == "not_found"


def test_answer_signed_by_another_key_is_a_provider_error() -> None:
    answer = {"code": "10000", "trade_status": "TRADE_SUCCESS", "trade_no": "T-1"}
    with (
        fake_gateway({"alipay.trade.query": answer}, signer="impostor") as (url, _seen),
        pytest.raises(DomainError) as caught,
    ):
        make_provider(gateway=url + "/gateway.do").query(reference="ORD-1")
    assert caught.value.code == "payment_provider_error"


def test_unreachable_gateway_is_a_provider_error() -> None:
    with local_server(lambda r: Reply(200)) as (url, _seen):
        pass
    with pytest.raises(DomainError) as caught:
        make_provider(gateway=url + "/gateway.do").query(reference="ORD-1")
    assert caught.value.code == "payment_provider_error"


def test_refund_sends_out_request_no_for_idempotency() -> None:
    answer = {
        "code": "10000",
        "msg": "Success",
        "trade_no": "T-1",
        "out_trade_no": "ORD-1",
        "refund_fee": "100.00",
        "fund_change": "Y",
    }
    with fake_gateway({"alipay.trade.refund": answer}) as (url, seen):
        result = make_provider(gateway=url + "/gateway.do").refund(
            reference="ORD-1", refund_reference="RF-1", amount=Money.of("100", "CNY")
        )
    biz = json.loads(request_params(seen[0].path)["biz_content"])
    assert biz == {"refund_amount": "100.00", "out_trade_no": "ORD-1", "out_request_no": "RF-1"}
    assert (result.status, result.refund_reference, result.provider_refund_id) == (
        "succeeded",
        "RF-1",
        "T-1",
    )


def test_refused_refund_is_a_provider_error() -> None:
    answer = {
        "code": "40004",
        "msg": "Business Failed",
        "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    }
    with (
        fake_gateway({"alipay.trade.refund": answer}) as (url, _seen),
        pytest.raises(DomainError) as caught,
    ):
        make_provider(gateway=url + "/gateway.do").refund(
            reference="ORD-1", refund_reference="RF-1", amount=Money.of("1", "CNY")
        )
    assert caught.value.details["reason"] == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"


def test_registry_builds_alipay_from_settings(settings: Settings) -> None:
    settings.PIAOWU_PAYMENT_PROVIDERS = ["sandbox", "alipay"]
    settings.PIAOWU_ALIPAY_APP_ID = APP_ID
    settings.PIAOWU_ALIPAY_APP_PRIVATE_KEY = private_pem("alipay-app")
    # Bare base64, as Alipay's console shows it.
    settings.PIAOWU_ALIPAY_PUBLIC_KEY = "".join(public_pem("alipay-gateway").splitlines()[1:-1])
    provider = get_provider("alipay")
    note = provider.parse_notification(
        headers={}, body=form(alipay_signed_form(notification_fields()))
    )
    assert note.reference == "ORD-1"


def test_registry_refuses_unconfigured_alipay(settings: Settings) -> None:
    settings.PIAOWU_PAYMENT_PROVIDERS = "sandbox,alipay"
    settings.PIAOWU_ALIPAY_APP_ID = ""
    with pytest.raises(DomainError) as caught:
        get_provider("alipay")
    assert caught.value.code == "payment_provider_unavailable"
