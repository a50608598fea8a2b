"""Paying orders: start a payment, list the payment methods, and receive providers'
notifications.

`POST /orders/{id}/payments` is the buyer's (same access rule as the order, CSRF token and
optional `Idempotency-Key`). `POST /payments/{provider}/notifications` is the gateway's: it
carries no cookie and no CSRF token — the provider's signature is the authentication — and needs
no `Idempotency-Key`, because `payments.services` acts on each provider transaction once however
often it is notified. It answers with exactly the acknowledgement the gateway expects (sandbox
200 `{"code":"SUCCESS"}` / 400 `{"code":"FAIL"}`; a refusal makes the gateway retry).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from ninja import Field, Router, Schema, Status
from pydantic import field_validator

from piaowu.api.errors import ErrorOut
from piaowu.api.idempotency import IDEMPOTENCY_ERRORS, idempotency_openapi, run_idempotent
from piaowu.api.v1.holds import csrf_check, errors_doc
from piaowu.api.v1.orders import MUTATION_RESPONSES, PaymentOut, own_order, payment_out
from piaowu.core.errors import NotFound
from piaowu.payments.providers import PROVIDER_NAMES, enabled_providers, notify_url
from piaowu.payments.services import payment_notification_receive, payment_start

router = Router(tags=["payments"])

PROVIDER_LABELS = {
    "sandbox": gettext_lazy("Sandbox (test payments)"),
    "alipay": gettext_lazy("Alipay"),
    "wechat": gettext_lazy("WeChat Pay"),
}

PAYMENT_ERRORS: dict[str, str] = {
    "order_not_found": "404 — no order with this id is yours.",
    "forbidden": "403 — a session cookie came without its CSRF token (`X-CSRFToken`).",
    "invalid_input": "400 — the body is not valid (details.fields).",
    "order_not_payable": "409 — the order was cancelled, expired or already paid (details.state).",
    "payment_provider_unavailable": "400 — this payment method is not enabled (details.provider).",
    "payment_provider_error": "502 — the provider refused or could not be reached; try again "
    "(details.reason).",
    "payment_currency_unsupported": "400 — this payment method does not take the order's currency.",
    "payment_amount_invalid": "400 — the order is free: there is nothing to pay.",
    **IDEMPOTENCY_ERRORS,
}


class PaymentStartIn(Schema):
    provider: str = Field(
        ..., min_length=1, max_length=20, description="From `/payments/providers`."
    )
    return_url: str = Field(
        "",
        max_length=500,
        description="Where the provider sends the buyer back: `https://…` or a path on this site.",
    )

    @field_validator("return_url")
    @classmethod
    def return_url_is_web(cls, value: str) -> str:
        value = value.strip()
        if value and not (
            value.startswith(("https://", "http://"))
            or (value.startswith("/") and not value.startswith("//"))
        ):
            raise ValueError(_("Give an http(s) address or a path starting with /."))
        return value


class ProviderOut(Schema):
    name: str
    label: str


@router.post(
    "/orders/{order_id}/payments",
    response={201: PaymentOut, **MUTATION_RESPONSES, 502: ErrorOut},
    summary="Start paying an order",
    description=(
        "Opens a payment with the provider and answers where to send the buyer: "
        "`redirect_url` (sandbox, Alipay) or `qr_code_payload` (WeChat Pay). Starting again "
        "with the same provider while that attempt is open answers it again. The order "
        "becomes `paid` when the provider's notification arrives." + errors_doc(PAYMENT_ERRORS)
    ),
    openapi_extra=idempotency_openapi(),
)
def payments_start(
    request: HttpRequest, order_id: str, payload: PaymentStartIn
) -> Status | HttpResponse:
    csrf_check(request)

    def start() -> tuple[int, dict[str, Any]]:
        order = own_order(request, order_id, details=False)
        return_url = payload.return_url
        if return_url.startswith("/"):
            return_url = request.build_absolute_uri(return_url)  # providers need an address
        payment = payment_start(
            order=order,
            provider_name=payload.provider,
            notify_url=notify_url(payload.provider, base_url=request.build_absolute_uri("/")),
            return_url=return_url,
        )
        return 201, payment_out(payment)

    return run_idempotent(request, start)


@router.get(
    "/payments/providers",
    response={200: list[ProviderOut]},
    summary="Payment methods",
    description="The payment providers enabled on this site (`PIAOWU_PAYMENT_PROVIDERS`).",
)
def payments_providers(request: HttpRequest) -> list[dict[str, str]]:
    return [
        {"name": name, "label": str(PROVIDER_LABELS[name])}
        for name in enabled_providers()
        if name in PROVIDER_NAMES
    ]


@router.post(
    "/payments/{provider}/notifications",
    response={404: ErrorOut},
    summary="A payment provider's notification",
    description=(
        "For payment gateways, not buyers: the raw notification (the provider's own format "
        "and signature). Answers the provider's acknowledgement — sandbox: 200 "
        '`{"code":"SUCCESS"}`, or 400 `{"code":"FAIL"}` for a forged, tampered, replayed, '
        "stale or unreadable notification or a wrong amount (logged; the order is left as it "
        "was). Notifying the same outcome again changes nothing. No CSRF token, no "
        "`Idempotency-Key`."
        + errors_doc({"payment_provider_not_found": "404 — no enabled provider with this name."})
    ),
    openapi_extra={
        "responses": {
            "200": {"description": "Acknowledged (the provider's success answer)."},
            "400": {"description": "Refused (the provider's failure answer); it will retry."},
        }
    },
)
def payments_notification(request: HttpRequest, provider: str) -> HttpResponse:
    if provider not in PROVIDER_NAMES or provider not in enabled_providers():
        raise NotFound("payment_provider", _("No such payment method."), {"provider": provider})
    acknowledgement, _payment = payment_notification_receive(
        provider_name=provider, headers=request.headers, body=request.body
    )
    return HttpResponse(
        acknowledgement.body,
        status=acknowledgement.status,
        content_type=acknowledgement.content_type,
    )
