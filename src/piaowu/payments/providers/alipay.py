"""Alipay (支付宝) through python-alipay-sdk: computer-site and mobile-site payment.

Configuration (Django setting or environment variable of the same name):

- `PIAOWU_ALIPAY_APP_ID`: the application id.
- `PIAOWU_ALIPAY_APP_PRIVATE_KEY`: our RSA2 private key (PEM, or the bare base64 that Alipay's
  key tool prints).
- `PIAOWU_ALIPAY_PUBLIC_KEY`: Alipay's public key for our app (PEM or bare base64).
- `PIAOWU_ALIPAY_SANDBOX`: `1` to use Alipay's sandbox gateway.
- `PIAOWU_ALIPAY_GATEWAY`: override the gateway URL (tests, proxies).
- `PIAOWU_ALIPAY_PAY_MODE`: `page` (computer site, default) or `wap` (mobile site).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from alipay import AliPay  # type: ignore[import-untyped]
from alipay.exceptions import (  # type: ignore[import-untyped]
    AliPayException,
    AliPayValidationError,
)
from django.conf import settings
from django.utils.translation import gettext_lazy as _

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
    VerifiedNotification,
    invalid_signature,
    malformed,
    provider_error,
    require_yuan,
)

NAME = "alipay"
#: Alipay speaks Beijing time in its parameters.
ALIPAY_TZ = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
GATEWAY = "https://openapi.alipay.com/gateway.do"
SANDBOX_GATEWAY = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"

TRADE_STATUS: dict[str, ProviderPaymentStatus] = {
    "WAIT_BUYER_PAY": "pending",
    "TRADE_SUCCESS": "paid",
    "TRADE_FINISHED": "paid",
    "TRADE_CLOSED": "closed",
}


def _config(name: str, default: str = "") -> str:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name, default)
    return str(value)


def _pem(key: str) -> str | bytes:
    """Accept PEM, or the bare base64 DER that Alipay's key tool prints."""
    key = key.strip()
    if key.startswith("-----BEGIN"):
        return key
    return base64.b64decode(key)


@dataclass(frozen=True, slots=True)
class AlipaySettings:
    app_id: str
    app_private_key: str
    alipay_public_key: str
    sandbox: bool = False
    gateway: str = ""
    pay_mode: str = "page"
    timeout: int = 15

    @classmethod
    def from_settings(cls) -> AlipaySettings:
        found = cls(
            app_id=_config("PIAOWU_ALIPAY_APP_ID"),
            app_private_key=_config("PIAOWU_ALIPAY_APP_PRIVATE_KEY"),
            alipay_public_key=_config("PIAOWU_ALIPAY_PUBLIC_KEY"),
            sandbox=_config("PIAOWU_ALIPAY_SANDBOX", "0").lower() in ("1", "true", "yes"),
            gateway=_config("PIAOWU_ALIPAY_GATEWAY"),
            pay_mode=_config("PIAOWU_ALIPAY_PAY_MODE", "page"),
        )
        if not (found.app_id and found.app_private_key and found.alipay_public_key):
            raise DomainError(
                "payment_provider_unavailable",
                _("This payment method is not available."),
                {"provider": NAME, "reason": "not configured"},
            )
        return found

    @property
    def gateway_url(self) -> str:
        return self.gateway or (SANDBOX_GATEWAY if self.sandbox else GATEWAY)


class AlipayProvider:
    name = NAME

    def __init__(self, config: AlipaySettings) -> None:
        self.config = config
        self.client = AliPay(
            appid=config.app_id,
            app_private_key_string=_pem(config.app_private_key),
            alipay_public_key_string=_pem(config.alipay_public_key),
            sign_type="RSA2",
        )
        # The SDK only knows the two public gateways; point it at the configured one.
        self.client._gateway = config.gateway_url
        self.client._config.timeout = config.timeout

    def start(self, request: PaymentRequest) -> PaymentStart:
        amount = require_yuan(request.amount, provider=NAME)
        extra: dict[str, Any] = {}
        if request.expires_at is not None:
            extra["time_expire"] = request.expires_at.astimezone(ALIPAY_TZ).strftime(TIME_FORMAT)
        build = (
            self.client.api_alipay_trade_wap_pay
            if self.config.pay_mode == "wap"
            else self.client.api_alipay_trade_page_pay
        )
        query = build(
            subject=request.subject[:256],
            out_trade_no=request.reference,
            total_amount=str(amount.amount),
            return_url=request.return_url or None,
            notify_url=request.notify_url,
            **extra,
        )
        return PaymentStart(
            provider=self.name,
            provider_reference=request.reference,
            redirect_url=f"{self.config.gateway_url}?{query}",
        )

    def parse_notification(
        self, *, headers: Mapping[str, str], body: bytes
    ) -> VerifiedNotification:
        """Alipay posts a form; its RSA2 signature covers the other fields sorted by name
        (`sign` and `sign_type` excluded). Alipay has no nonce: callers stay idempotent on
        `trade_no`."""
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise malformed("not a form") from exc
        if not pairs:
            raise malformed("empty")
        data = dict(pairs)
        if len(data) != len(pairs):
            raise malformed("repeated field")
        signature = data.pop("sign", "")
        if not signature:
            raise invalid_signature({"reason": "missing sign"})
        try:
            verified = self.client.verify(dict(data), signature)
        except (AliPayException, ValueError, TypeError):
            verified = False
        if not verified:
            raise invalid_signature()
        if data.get("app_id") != self.config.app_id:
            raise invalid_signature({"reason": "app_id"})
        for key in ("out_trade_no", "trade_no", "total_amount", "trade_status"):
            if not data.get(key):
                raise malformed(key)
        status = TRADE_STATUS.get(data["trade_status"])
        if status is None or status == "not_found":
            raise malformed("trade_status")
        note_status: NotificationStatus = status
        try:
            amount = Money(Decimal(data["total_amount"]), "CNY")
        except InvalidOperation as exc:
            raise malformed("total_amount") from exc
        paid_at = _parse_time(data.get("gmt_payment", "")) if status == "paid" else None
        if status == "paid" and paid_at is None:
            raise malformed("gmt_payment")
        data.pop("sign_type", None)
        return VerifiedNotification(
            provider=self.name,
            reference=data["out_trade_no"],
            provider_transaction_id=data["trade_no"],
            amount=amount,
            status=note_status,
            paid_at=paid_at,
            raw=data,
        )

    def acknowledgement(self, ok: bool) -> Acknowledgement:
        # Alipay stops retrying only on the exact body "success".
        if ok:
            return Acknowledgement(200, "success", "text/plain")
        return Acknowledgement(400, "failure", "text/plain")

    def query(self, *, reference: str) -> ProviderStatus:
        response = self._call(self.client.api_alipay_trade_query, out_trade_no=reference)
        if response.get("code") == "40004" and response.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return ProviderStatus(reference=reference, status="not_found")
        if response.get("code") != "10000":
            raise provider_error(self.name, str(response.get("sub_code") or response.get("code")))
        status = TRADE_STATUS.get(str(response.get("trade_status")), "pending")
        amount = None
        if response.get("total_amount"):
            amount = Money(Decimal(str(response["total_amount"])), "CNY")
        return ProviderStatus(
            reference=reference,
            status=status,
            provider_transaction_id=str(response.get("trade_no", "")),
            amount=amount,
            paid_at=_parse_time(str(response.get("send_pay_date", ""))),
        )

    def refund(self, *, reference: str, refund_reference: str, amount: Money) -> RefundResult:
        """Alipay is idempotent on `out_request_no`: asking again returns the first refund."""
        amount = require_yuan(amount, provider=NAME)
        response = self._call(
            self.client.api_alipay_trade_refund,
            refund_amount=str(amount.amount),
            out_trade_no=reference,
            out_request_no=refund_reference,
        )
        if response.get("code") != "10000":
            raise provider_error(self.name, str(response.get("sub_code") or response.get("code")))
        return RefundResult(
            reference=reference,
            refund_reference=refund_reference,
            amount=amount,
            status="succeeded",
            provider_refund_id=str(response.get("trade_no", "")),
        )

    def _call(self, api: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            response = api(**kwargs)
        except AliPayValidationError as exc:
            raise provider_error(self.name, "response signature invalid") from exc
        except AliPayException as exc:
            raise provider_error(self.name, f"gateway error {exc}") from exc
        except OSError as exc:
            raise provider_error(self.name, "unreachable") from exc
        except (ValueError, KeyError, AttributeError) as exc:  # a response the SDK cannot read
            raise provider_error(self.name, type(exc).__name__) from exc
        if not isinstance(response, dict):
            raise provider_error(self.name, "unexpected response")
        return response


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=ALIPAY_TZ)
    except ValueError:
        return None
