from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.payments.providers.base import PaymentRequest
from piaowu.payments.providers.wechat import WechatPayProvider, WechatPaySettings
from tests.payments.helpers import Recorded, Reply, local_server
from tests.payments.keys import private_pem, public_pem, rsa2_sign, rsa2_verify

pytestmark = pytest.mark.django_db

APIV3_KEY = "0123456789abcdef0123456789abcdef"
PUB_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"
MCHID = "1900000109"


def make_provider(gateway: str = "", apiv3_key: str = APIV3_KEY) -> WechatPayProvider:
    return WechatPayProvider(
        WechatPaySettings(
            mchid=MCHID,
            appid="wxd678efh567hg6787",
            private_key=private_pem("wechat-merchant"),
            cert_serial_no="444F4864EA9B34415",
            apiv3_key=apiv3_key,
            public_key=public_pem("wechat-platform"),
            public_key_id=PUB_KEY_ID,
            gateway=gateway,
        )
    )


def transaction(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "mchid": MCHID,
        "appid": "wxd678efh567hg6787",
        "out_trade_no": "ORD-1",
        "transaction_id": "4200000000202611210000000001",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "success_time": "2026-11-21T20:01:02+08:00",
        "amount": {"total": 88000, "payer_total": 88000, "currency": "CNY"},
    }
    data.update(overrides)
    return data


def encrypted_body(resource: dict[str, Any], key: str = APIV3_KEY) -> str:
    """Build a notification body as WeChat does: the resource AES-256-GCM encrypted."""
    nonce, associated = "fdasflkja484", "transaction"
    ciphertext = AESGCM(key.encode()).encrypt(
        nonce.encode(), json.dumps(resource).encode(), associated.encode()
    )
    return json.dumps(
        {
            "id": "EV-2018022511223320873",
            "create_time": "2026-11-21T20:01:03+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": associated,
                "nonce": nonce,
            },
        }
    )


def wechat_headers(
    body: str,
    *,
    nonce: str = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    when: datetime | None = None,
    signer: str = "wechat-platform",
) -> dict[str, str]:
    timestamp = str(int((when or clock.now()).timestamp()))
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": PUB_KEY_ID,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Wechatpay-Signature": rsa2_sign(signer, f"{timestamp}\n{nonce}\n{body}\n"),
    }


def error_code(
    headers: dict[str, str], body: str | bytes, provider: WechatPayProvider | None = None
) -> str:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(DomainError) as caught:
        (provider or make_provider()).parse_notification(headers=headers, body=raw)
    return caught.value.code


def test_good_notification_is_accepted_and_parsed() -> None:
    body = encrypted_body(transaction())
    note = make_provider().parse_notification(headers=wechat_headers(body), body=body.encode())
    assert note.reference == "ORD-1"
    assert note.provider_transaction_id == "4200000000202611210000000001"
    assert note.amount == Money(Decimal("880.00"), "CNY")
    assert note.status == "paid"
    assert note.paid_at == datetime(2026, 11, 21, 12, 1, 2, tzinfo=UTC)
    assert note.raw["trade_type"] == "NATIVE"


def test_closed_trade_is_reported_closed() -> None:
    body = encrypted_body(transaction(trade_state="CLOSED", success_time=None))
    note = make_provider().parse_notification(headers=wechat_headers(body), body=body.encode())
    assert (note.status, note.paid_at) == ("closed", None)


def test_tampered_body_is_rejected() -> None:
    body = encrypted_body(transaction())
    headers = wechat_headers(body)
    tampered = encrypted_body(transaction(amount={"total": 1, "currency": "CNY"}))
    assert error_code(headers, tampered) == "notification_invalid_signature"


def test_signature_by_another_key_is_rejected() -> None:
    body = encrypted_body(transaction())
    assert (
        error_code(wechat_headers(body, signer="impostor"), body)
        == "notification_invalid_signature"
    )


def test_missing_signature_or_unknown_key_id_is_rejected() -> None:
    body = encrypted_body(transaction())
    headers = wechat_headers(body)
    del headers["Wechatpay-Signature"]
    assert error_code(headers, body) == "notification_invalid_signature"
    headers = wechat_headers(body)
    headers["Wechatpay-Serial"] = "PUB_KEY_ID_OTHER"
    assert error_code(headers, body) == "notification_invalid_signature"


def test_resource_encrypted_with_another_apiv3_key_is_rejected() -> None:
    body = encrypted_body(transaction(), key="f" * 32)
    assert error_code(wechat_headers(body), body) == "notification_invalid_signature"


def test_notification_for_another_merchant_is_rejected() -> None:
    body = encrypted_body(transaction(mchid="1999999999"))
    assert error_code(wechat_headers(body), body) == "notification_invalid_signature"


def test_stale_timestamp_is_rejected() -> None:
    body = encrypted_body(transaction())
    headers = wechat_headers(body, when=clock.now() - timedelta(minutes=10))
    assert error_code(headers, body) == "notification_stale"


def test_replayed_nonce_is_rejected() -> None:
    body = encrypted_body(transaction())
    headers = wechat_headers(body)
    make_provider().parse_notification(headers=headers, body=body.encode())
    assert error_code(headers, body) == "notification_replayed"


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"resource": "x"}),
        encrypted_body(transaction(amount={"total": "880", "currency": "CNY"})),
        encrypted_body(transaction(out_trade_no="")),
        encrypted_body(transaction(trade_state="NOTPAY")),
    ],
)
def test_malformed_but_correctly_signed_body_is_rejected(body: str) -> None:
    assert error_code(wechat_headers(body), body) == "notification_malformed"


def test_acknowledgement_is_json_success() -> None:
    ack = make_provider().acknowledgement(True)
    assert (ack.status, json.loads(ack.body)["code"], ack.content_type) == (
        200,
        "SUCCESS",
        "application/json",
    )
    assert make_provider().acknowledgement(False).status >= 400


def fake_wechat(answer: Any, status: int = 200):  # type: ignore[no-untyped-def]
    """Answer like api.mch.weixin.qq.com: JSON signed with the platform key."""

    def respond(request: Recorded) -> Reply:
        body = json.dumps(answer)
        headers = wechat_headers(body)
        headers["Content-Type"] = "application/json"
        return Reply(status, body.encode(), headers)

    return local_server(respond)


def test_start_asks_for_a_native_code_url() -> None:
    with fake_wechat({"code_url": "weixin://wxpay/bizpayurl?pr=abc"}) as (url, seen):
        start = make_provider(gateway=url).start(
            PaymentRequest(
                reference="ORD-1",
                amount=Money.of("880", "CNY"),
                subject="演唱会",
                notify_url="https://piaowu.example/notify",
            )
        )
    assert start.qr_code_payload == "weixin://wxpay/bizpayurl?pr=abc"
    assert seen[0].path == "/v3/pay/transactions/native"
    sent = json.loads(seen[0].body)
    assert sent["amount"] == {"total": 88000, "currency": "CNY"}
    assert (sent["out_trade_no"], sent["mchid"]) == ("ORD-1", MCHID)
    # The request carries our merchant signature (WECHATPAY2-SHA256-RSA2048 Authorization).
    auth = seen[0].headers["Authorization"]
    fields = dict(part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    message = "POST\n/v3/pay/transactions/native\n{}\n{}\n{}\n".format(
        fields["timestamp"].strip('"'), fields["nonce_str"].strip('"'), seen[0].body.decode()
    )
    assert rsa2_verify("wechat-merchant", message, fields["signature"].strip('"'))


def test_query_of_an_unknown_trade_is_not_found() -> None:
    with fake_wechat({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, status=404) as (url, _s):
        assert make_provider(gateway=url).query(reference="ORD-404").status == "not_found"


def test_response_signed_by_another_key_is_a_provider_error() -> None:
    def respond(request: Recorded) -> Reply:
        body = json.dumps({"code_url": "weixin://x"})
        headers = wechat_headers(body, signer="impostor")
        headers["Content-Type"] = "application/json"
        return Reply(200, body.encode(), headers)

    with local_server(respond) as (url, _seen), pytest.raises(DomainError) as caught:
        make_provider(gateway=url).start(
            PaymentRequest(
                reference="R", amount=Money.of("1", "CNY"), subject="S", notify_url="https://x/n"
            )
        )
    assert caught.value.code == "payment_provider_error"
