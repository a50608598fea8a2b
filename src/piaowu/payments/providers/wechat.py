"""WeChat Pay (微信支付) API v3 through wechatpayv3: Native payment (a QR code to scan).

Configuration (Django setting or environment variable of the same name):

- `PIAOWU_WECHATPAY_MCHID`, `PIAOWU_WECHATPAY_APPID`: merchant and application ids.
- `PIAOWU_WECHATPAY_PRIVATE_KEY`, `PIAOWU_WECHATPAY_CERT_SERIAL_NO`: our API certificate's
  private key (PEM) and serial number, to sign requests.
- `PIAOWU_WECHATPAY_APIV3_KEY`: the 32-byte APIv3 key that encrypts notification resources.
- `PIAOWU_WECHATPAY_PUBLIC_KEY`, `PIAOWU_WECHATPAY_PUBLIC_KEY_ID`: the "WeChat Pay public key"
  (微信支付公钥, PEM) and its id (`PUB_KEY_ID_…`). We use this mode only: it needs no download
  of platform certificates at start-up.
- `PIAOWU_WECHATPAY_GATEWAY`: override `https://api.mch.weixin.qq.com` (tests, proxies).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.payments.providers.base import (
    Acknowledgement,
    NotificationStatus,
    PaymentRequest,
    PaymentStart,
    ProviderPaymentStatus,
    ProviderStatus,
    RefundResult,
    RefundStatus,
    VerifiedNotification,
    check_timestamp,
    invalid_signature,
    malformed,
    normalize_headers,
    provider_error,
    remember_nonce,
    require_yuan,
)

NAME = "wechat"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"

TRADE_STATE: dict[str, ProviderPaymentStatus] = {
    "SUCCESS": "paid",
    "REFUND": "paid",
    "NOTPAY": "pending",
    "USERPAYING": "pending",
    "CLOSED": "closed",
    "REVOKED": "closed",
    "PAYERROR": "failed",
}
REFUND_STATUS: dict[str, RefundStatus] = {
    "SUCCESS": "succeeded",
    "PROCESSING": "processing",
}


def _config(name: str) -> str:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name, "")
    return str(value)


def _pem_public(key: str) -> str:
    key = key.strip()
    if key.startswith("-----BEGIN"):
        return key
    return f"-----BEGIN PUBLIC KEY-----\n{key}\n-----END PUBLIC KEY-----"


@dataclass(frozen=True, slots=True)
class WechatPaySettings:
    mchid: str
    appid: str
    private_key: str
    cert_serial_no: str
    apiv3_key: str
    public_key: str
    public_key_id: str
    gateway: str = ""
    timeout: int = 15

    @classmethod
    def from_settings(cls) -> WechatPaySettings:
        found = cls(
            mchid=_config("PIAOWU_WECHATPAY_MCHID"),
            appid=_config("PIAOWU_WECHATPAY_APPID"),
            private_key=_config("PIAOWU_WECHATPAY_PRIVATE_KEY"),
            cert_serial_no=_config("PIAOWU_WECHATPAY_CERT_SERIAL_NO"),
            apiv3_key=_config("PIAOWU_WECHATPAY_APIV3_KEY"),
            public_key=_config("PIAOWU_WECHATPAY_PUBLIC_KEY"),
            public_key_id=_config("PIAOWU_WECHATPAY_PUBLIC_KEY_ID"),
            gateway=_config("PIAOWU_WECHATPAY_GATEWAY"),
        )
        required = (found.mchid, found.appid, found.private_key, found.cert_serial_no)
        if not all(required) or len(found.apiv3_key.encode()) != 32:
            raise _unavailable("not configured")
        if not (found.public_key and found.public_key_id):
            raise _unavailable("WeChat Pay public key not configured")
        return found


def _unavailable(reason: str) -> DomainError:
    return DomainError(
        "payment_provider_unavailable",
        _("This payment method is not available."),
        {"provider": NAME, "reason": reason},
    )


class WechatPayProvider:
    name = NAME

    def __init__(self, config: WechatPaySettings) -> None:
        self.config = config
        key = load_pem_public_key(_pem_public(config.public_key).encode())
        if not isinstance(key, RSAPublicKey):
            raise _unavailable("public key is not RSA")
        self.public_key = key
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (it loads keys; with a public key it makes no
        network call at construction)."""
        if self._client is None:
            from wechatpayv3 import WeChatPay, WeChatPayType  # type: ignore[import-untyped]

            self._client = WeChatPay(
                wechatpay_type=WeChatPayType.NATIVE,
                mchid=self.config.mchid,
                private_key=self.config.private_key,
                cert_serial_no=self.config.cert_serial_no,
                appid=self.config.appid,
                apiv3_key=self.config.apiv3_key,
                public_key=self.config.public_key,
                public_key_id=self.config.public_key_id,
                timeout=self.config.timeout,
            )
            if self.config.gateway:
                self._client._core._gate_way = self.config.gateway.rstrip("/")
        return self._client

    def start(self, request: PaymentRequest) -> PaymentStart:
        from wechatpayv3 import WeChatPayType

        extra: dict[str, Any] = {}
        if request.expires_at is not None:
            extra["time_expire"] = request.expires_at.isoformat(timespec="seconds")
        data = self._call(
            self.client.pay,
            description=request.subject[:127],
            out_trade_no=request.reference,
            amount={"total": _fen(request.amount), "currency": "CNY"},
            notify_url=request.notify_url,
            pay_type=WeChatPayType.NATIVE,
            **extra,
        )
        code_url = data.get("code_url")
        if not isinstance(code_url, str) or not code_url:
            raise provider_error(self.name, "no code_url")
        return PaymentStart(
            provider=self.name, provider_reference=request.reference, qr_code_payload=code_url
        )

    def parse_notification(
        self, *, headers: Mapping[str, str], body: bytes, now: datetime | None = None
    ) -> VerifiedNotification:
        """Verify `Wechatpay-Signature` (RSA-SHA256 over "timestamp\\nnonce\\nbody\\n" with the
        WeChat Pay public key), the timestamp and nonce, then decrypt the AES-256-GCM resource
        with the APIv3 key."""
        from wechatpayv3.utils import aes_decrypt, rsa_verify  # type: ignore[import-untyped]

        now = now or clock.now()
        found = normalize_headers(headers)
        signature = found.get("wechatpay-signature", "")
        timestamp = found.get("wechatpay-timestamp", "")
        nonce = found.get("wechatpay-nonce", "")
        serial = found.get("wechatpay-serial", "")
        if not (signature and timestamp and nonce):
            raise invalid_signature({"reason": "missing signature headers"})
        if found.get("wechatpay-signature-type", SIGNATURE_TYPE) != SIGNATURE_TYPE:
            raise invalid_signature({"reason": "signature type"})
        if serial != self.config.public_key_id:
            raise invalid_signature({"reason": "unknown key", "serial": serial})
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise malformed("not UTF-8") from exc
        if not rsa_verify(timestamp, nonce, text, signature, self.public_key):
            raise invalid_signature()
        check_timestamp(timestamp, now=now)
        resource = _resource(text)
        plain = aes_decrypt(
            nonce=resource["nonce"],
            ciphertext=resource["ciphertext"],
            associated_data=resource.get("associated_data", ""),
            apiv3_key=self.config.apiv3_key,
        )
        if plain is None:
            raise invalid_signature({"reason": "resource does not decrypt"})
        transaction = _transaction(plain)
        if transaction.get("mchid", self.config.mchid) != self.config.mchid:
            raise invalid_signature({"reason": "mchid"})
        remember_nonce(provider=self.name, nonce=nonce, now=now)
        state = TRADE_STATE.get(str(transaction["trade_state"]))
        if state == "paid" or state == "failed" or state == "closed":
            status: NotificationStatus = state
        else:
            raise malformed("trade_state")
        paid_at = None
        if status == "paid":
            paid_at = parse_datetime(str(transaction.get("success_time", "")))
            if paid_at is None:
                raise malformed("success_time")
        return VerifiedNotification(
            provider=self.name,
            reference=transaction["out_trade_no"],
            provider_transaction_id=transaction["transaction_id"],
            amount=transaction["amount"],
            status=status,
            paid_at=paid_at,
            raw=json.loads(plain),
        )

    def acknowledgement(self, ok: bool) -> Acknowledgement:
        if ok:
            return Acknowledgement(200, '{"code":"SUCCESS","message":"OK"}', "application/json")
        return Acknowledgement(400, '{"code":"FAIL","message":"FAIL"}', "application/json")

    def query(self, *, reference: str) -> ProviderStatus:
        try:
            data = self._call(self.client.query, out_trade_no=reference)
        except DomainError as exc:
            if exc.details.get("status") == 404:
                return ProviderStatus(reference=reference, status="not_found")
            raise
        amount = data.get("amount") or {}
        total = amount.get("total")
        return ProviderStatus(
            reference=reference,
            status=TRADE_STATE.get(str(data.get("trade_state")), "pending"),
            provider_transaction_id=str(data.get("transaction_id", "")),
            amount=Money(Decimal(total) / 100, "CNY").quantized() if total is not None else None,
            paid_at=parse_datetime(str(data.get("success_time", ""))),
        )

    def refund(self, *, reference: str, refund_reference: str, amount: Money) -> RefundResult:
        """WeChat is idempotent on `out_refund_no`. It wants the original total, so we ask it."""
        paid = self.query(reference=reference)
        if paid.amount is None or paid.status != "paid":
            raise provider_error(self.name, "payment not paid")
        data = self._call(
            self.client.refund,
            out_refund_no=refund_reference,
            amount={"refund": _fen(amount), "total": _fen(paid.amount), "currency": "CNY"},
            out_trade_no=reference,
        )
        return RefundResult(
            reference=reference,
            refund_reference=refund_reference,
            amount=amount.quantized(),
            status=REFUND_STATUS.get(str(data.get("status")), "failed"),
            provider_refund_id=str(data.get("refund_id", "")),
        )

    def _call(self, api: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            code, message = api(**kwargs)
        except Exception as exc:  # the SDK raises bare Exception (bad signature, network, …)
            raise provider_error(self.name, f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= int(code) < 300:
            error = provider_error(self.name, f"HTTP {code}")
            error.details["status"] = int(code)
            raise error
        try:
            data = json.loads(message) if message else {}
        except ValueError as exc:
            raise provider_error(self.name, "not JSON") from exc
        if not isinstance(data, dict):
            raise provider_error(self.name, "unexpected response")
        return data


def _fen(amount: Money) -> int:
    return int(require_yuan(amount, provider=NAME).amount * 100)


def _resource(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise malformed("not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("resource"), dict):
        raise malformed("resource")
    resource = data["resource"]
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise malformed("algorithm")
    for key in ("ciphertext", "nonce"):
        if not isinstance(resource.get(key), str) or not resource[key]:
            raise malformed(key)
    if not isinstance(resource.get("associated_data", ""), str):
        raise malformed("associated_data")
    return resource


def _transaction(plain: str) -> dict[str, Any]:
    try:
        data = json.loads(plain)
    except ValueError as exc:
        raise malformed("resource not JSON") from exc
    if not isinstance(data, dict):
        raise malformed("resource")
    for key in ("out_trade_no", "transaction_id", "trade_state"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise malformed(key)
    amount = data.get("amount")
    if not isinstance(amount, dict) or not isinstance(amount.get("total"), int):
        raise malformed("amount")
    if amount.get("currency", "CNY") != "CNY":
        raise malformed("currency")
    return {**data, "amount": Money(Decimal(amount["total"]) / 100, "CNY").quantized()}
