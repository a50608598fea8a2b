"""The provider interface: what every payment gateway adapter offers the rest of Piaowu.

What is being paid is opaque here: a `reference` (our order number) and an amount. Orders,
tickets and the ledger live above this layer and only see the value objects below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from piaowu.core.errors import DomainError
from piaowu.core.money import Money

NotificationStatus = Literal["paid", "failed", "closed", "pending"]
ProviderPaymentStatus = Literal["pending", "paid", "failed", "closed", "not_found"]
RefundStatus = Literal["succeeded", "processing", "failed"]

#: How far a notification's signed timestamp may be from our clock.
NOTIFICATION_MAX_SKEW_SECONDS = 300


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    reference: str
    amount: Money
    subject: str
    notify_url: str
    return_url: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PaymentStart:
    """Where to send the buyer: a page to redirect to, or a QR code to show (WeChat Native)."""

    provider: str
    provider_reference: str
    redirect_url: str = ""
    qr_code_payload: str = ""


@dataclass(frozen=True, slots=True)
class VerifiedNotification:
    """A notification whose signature has been checked; safe to act on (idempotently)."""

    provider: str
    reference: str
    provider_transaction_id: str
    amount: Money
    status: NotificationStatus
    paid_at: datetime | None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    reference: str
    status: ProviderPaymentStatus
    provider_transaction_id: str = ""
    amount: Money | None = None
    paid_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    reference: str
    refund_reference: str
    amount: Money
    status: RefundStatus
    provider_refund_id: str = ""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The HTTP answer a gateway expects to a notification; anything else makes it retry."""

    status: int
    body: str
    content_type: str


class PaymentProvider(Protocol):
    name: str

    def start(self, request: PaymentRequest) -> PaymentStart: ...

    def parse_notification(
        self, *, headers: Mapping[str, str], body: bytes
    ) -> VerifiedNotification: ...

    def acknowledgement(self, ok: bool) -> Acknowledgement: ...

    def query(self, *, reference: str) -> ProviderStatus: ...

    def refund(self, *, reference: str, refund_reference: str, amount: Money) -> RefundResult: ...


def normalize_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case, dash-separated header names; accepts Django's `HTTP_X_FOO` META keys too."""
    normalized: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower().replace("_", "-")
        if key.startswith("http-"):
            key = key[len("http-") :]
        normalized[key] = value
    return normalized


def invalid_signature(details: dict[str, Any] | None = None) -> DomainError:
    return DomainError(
        "notification_invalid_signature",
        _("The payment notification's signature is not valid."),
        details,
    )


def malformed(reason: str) -> DomainError:
    return DomainError(
        "notification_malformed",
        _("The payment notification could not be read."),
        {"reason": reason},
    )


def stale(details: dict[str, Any] | None = None) -> DomainError:
    return DomainError(
        "notification_stale",
        _("The payment notification is too old or from the future."),
        details,
    )


def require_yuan(amount: Money, *, provider: str) -> Money:
    """`amount` rounded to fen; Alipay and WeChat Pay settle in CNY only."""
    if amount.currency != "CNY":
        raise DomainError(
            "payment_currency_unsupported",
            _("This payment method only accepts Chinese yuan."),
            {"provider": provider, "currency": amount.currency},
        )
    return amount.quantized()


def provider_error(provider: str, reason: str) -> DomainError:
    """The gateway failed, not the client: 502, so clients know to retry later."""
    error = DomainError(
        "payment_provider_error",
        _("The payment provider refused or could not be reached."),
        {"provider": provider, "reason": reason},
    )
    error.status = 502
    return error


def check_timestamp(timestamp: str, *, now: datetime) -> None:
    """Reject a signed Unix timestamp further than the allowed skew from `now`."""
    try:
        sent = int(timestamp)
    except ValueError as exc:
        raise malformed("timestamp") from exc
    skew = abs(now.timestamp() - sent)
    if skew > NOTIFICATION_MAX_SKEW_SECONDS:
        raise stale({"skew_seconds": int(skew)})


def remember_nonce(*, provider: str, nonce: str, now: datetime) -> None:
    """Record a notification nonce; raises `notification_replayed` if it was seen before."""
    from piaowu.payments.models import NotificationNonce

    if not nonce or len(nonce) > 64:
        raise malformed("nonce")
    try:
        with transaction.atomic():
            NotificationNonce.objects.create(provider=provider, nonce=nonce, seen_at=now)
    except IntegrityError as exc:
        raise DomainError(
            "notification_replayed",
            _("This payment notification was already received."),
            {"nonce": nonce},
        ) from exc


def notification_nonces_purge(*, now: datetime) -> int:
    """Forget nonces older than twice the allowed skew: their timestamp alone now rejects a
    replay. Returns how many were deleted."""
    from piaowu.payments.models import NotificationNonce

    cutoff = now - timedelta(seconds=2 * NOTIFICATION_MAX_SKEW_SECONDS)
    deleted, _rows = NotificationNonce.objects.filter(seen_at__lt=cutoff).delete()
    return deleted
