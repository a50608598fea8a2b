"""The built-in sandbox gateway: a real provider for demos, self-hosted trials and tests.

It behaves like an outside gateway: the buyer is sent to a hosted page (Pay / Fail / Abandon),
the sandbox posts a signed notification to `notify_url` and retries until acknowledged.

Notification wire format (HTTP POST, JSON body)::

    X-Piaowu-Timestamp: <unix seconds>
    X-Piaowu-Nonce: <random, single use>
    X-Piaowu-Signature: hex(HMAC-SHA256(key, "<timestamp>\\n<nonce>\\n<body>"))

    {"reference": …, "transaction_id": …, "amount": "12.00", "currency": "CNY",
     "status": "paid" | "failed" | "closed", "paid_at": ISO-8601 | null}

The key is `PIAOWU_SANDBOX_PAYMENT_KEY` (setting or environment), by default derived from
`SECRET_KEY`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from piaowu.core import clock
from piaowu.core.money import Money
from piaowu.payments.providers.base import (
    Acknowledgement,
    NotificationStatus,
    PaymentRequest,
    PaymentStart,
    ProviderStatus,
    RefundResult,
    VerifiedNotification,
    check_timestamp,
    invalid_signature,
    malformed,
    normalize_headers,
    remember_nonce,
)

if TYPE_CHECKING:
    from piaowu.payments.models import SandboxTransaction

NAME = "sandbox"
HEADER_TIMESTAMP = "X-Piaowu-Timestamp"
HEADER_NONCE = "X-Piaowu-Nonce"
HEADER_SIGNATURE = "X-Piaowu-Signature"

#: SandboxTransaction.status → notification status.
EVENT_FOR_STATUS: dict[str, NotificationStatus] = {
    "paid": "paid",
    "failed": "failed",
    "abandoned": "closed",
}


def sandbox_key() -> bytes:
    configured = getattr(settings, "PIAOWU_SANDBOX_PAYMENT_KEY", "") or os.environ.get(
        "PIAOWU_SANDBOX_PAYMENT_KEY", ""
    )
    if configured:
        return str(configured).encode()
    return hmac.new(
        str(settings.SECRET_KEY).encode(), b"piaowu.payments.sandbox", hashlib.sha256
    ).digest()


def sign(*, timestamp: str, nonce: str, body: bytes, key: bytes | None = None) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(key if key is not None else sandbox_key(), message, hashlib.sha256).hexdigest()


def notification_body(transaction: SandboxTransaction) -> bytes:
    payload = {
        "reference": transaction.reference,
        "transaction_id": transaction.public_id,
        "amount": str(transaction.amount),
        "currency": transaction.currency,
        "status": EVENT_FOR_STATUS[transaction.status],
        "paid_at": transaction.paid_at.isoformat() if transaction.paid_at else None,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signed_notification(
    transaction: SandboxTransaction, *, now: datetime | None = None, nonce: str | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and body of the notification for the transaction's current outcome."""
    body = notification_body(transaction)
    timestamp = str(int((now or clock.now()).timestamp()))
    nonce = nonce or secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json",
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(timestamp=timestamp, nonce=nonce, body=body),
    }
    return headers, body


def hosted_page_url(public_id: str) -> str:
    template = str(
        getattr(settings, "PIAOWU_SANDBOX_PAY_URL", "") or "/payments/sandbox/{public_id}/"
    )
    return template.format(public_id=public_id)


class SandboxProvider:
    name = NAME

    def start(self, request: PaymentRequest) -> PaymentStart:
        from piaowu.payments.services import sandbox_transaction_start

        txn = sandbox_transaction_start(request=request)
        return PaymentStart(
            provider=self.name,
            provider_reference=txn.public_id,
            redirect_url=hosted_page_url(txn.public_id),
        )

    def parse_notification(
        self, *, headers: Mapping[str, str], body: bytes, now: datetime | None = None
    ) -> VerifiedNotification:
        now = now or clock.now()
        found = normalize_headers(headers)
        timestamp = found.get(HEADER_TIMESTAMP.lower(), "")
        nonce = found.get(HEADER_NONCE.lower(), "")
        signature = found.get(HEADER_SIGNATURE.lower(), "")
        if not (timestamp and nonce and signature):
            raise invalid_signature({"reason": "missing signature headers"})
        expected = sign(timestamp=timestamp, nonce=nonce, body=body)
        if not hmac.compare_digest(expected, signature):
            raise invalid_signature()
        check_timestamp(timestamp, now=now)
        data = _decode(body)
        # Only a notification that reads correctly uses up its nonce.
        remember_nonce(provider=self.name, nonce=nonce, now=now)
        return VerifiedNotification(
            provider=self.name,
            reference=data["reference"],
            provider_transaction_id=data["transaction_id"],
            amount=data["amount"],
            status=data["status"],
            paid_at=data["paid_at"],
            raw=json.loads(body),
        )

    def acknowledgement(self, ok: bool) -> Acknowledgement:
        if ok:
            return Acknowledgement(200, '{"code":"SUCCESS"}', "application/json")
        return Acknowledgement(400, '{"code":"FAIL"}', "application/json")

    def query(self, *, reference: str) -> ProviderStatus:
        from piaowu.payments.models import SandboxTransaction

        txn = SandboxTransaction.objects.filter(reference=reference).first()
        if txn is None:
            return ProviderStatus(reference=reference, status="not_found")
        status = EVENT_FOR_STATUS.get(txn.status, "pending")
        return ProviderStatus(
            reference=reference,
            status=status,
            provider_transaction_id=txn.public_id,
            amount=Money(txn.amount, txn.currency),
            paid_at=txn.paid_at,
        )

    def refund(self, *, reference: str, refund_reference: str, amount: Money) -> RefundResult:
        from piaowu.payments.services import sandbox_refund

        refund = sandbox_refund(
            reference=reference, refund_reference=refund_reference, amount=amount
        )
        return RefundResult(
            reference=reference,
            refund_reference=refund.refund_reference,
            amount=Money(refund.amount, refund.transaction.currency),
            status="succeeded",
            provider_refund_id=str(refund.pk),
        )


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise malformed("not JSON") from exc
    if not isinstance(data, dict):
        raise malformed("not an object")
    for key in ("reference", "transaction_id", "amount", "currency", "status"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise malformed(key)
    if data["status"] not in ("paid", "failed", "closed"):
        raise malformed("status")
    try:
        amount = Money(Decimal(data["amount"]), data["currency"])
    except (InvalidOperation, ValueError) as exc:
        raise malformed("amount") from exc
    paid_at = parse_datetime(data["paid_at"]) if isinstance(data.get("paid_at"), str) else None
    if data["status"] == "paid" and paid_at is None:
        raise malformed("paid_at")
    return {
        "reference": data["reference"],
        "transaction_id": data["transaction_id"],
        "amount": amount,
        "status": data["status"],
        "paid_at": paid_at,
    }
