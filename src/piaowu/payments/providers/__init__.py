"""Payment providers and the registry that picks one by name.

`PIAOWU_PAYMENT_PROVIDERS` (setting, or environment variable as a comma-separated list) names
the enabled providers; default: `sandbox` only. Alipay and WeChat Pay read their credentials
from settings or the environment (see docs/payments.md).
"""

from __future__ import annotations

import os

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from piaowu.core.errors import DomainError
from piaowu.payments.providers.base import PaymentProvider

PROVIDER_NAMES = ("sandbox", "alipay", "wechat")
#: Where providers post notifications (served by the API, `api/v1/payments.py`).
NOTIFY_PATH = "/api/v1/payments/{provider}/notifications"


def notify_url(provider: str, *, base_url: str) -> str:
    """The notification address to give `provider`: under `PIAOWU_PUBLIC_URL` when set (the
    address the gateway can reach, e.g. behind a proxy), else under `base_url` (this request's
    scheme and host)."""
    public = getattr(settings, "PIAOWU_PUBLIC_URL", "") or os.environ.get("PIAOWU_PUBLIC_URL", "")
    return str(public or base_url).rstrip("/") + NOTIFY_PATH.format(provider=provider)


def enabled_providers() -> list[str]:
    configured = getattr(settings, "PIAOWU_PAYMENT_PROVIDERS", None)
    if configured is None:
        configured = os.environ.get("PIAOWU_PAYMENT_PROVIDERS", "sandbox")
    if isinstance(configured, str):
        configured = configured.split(",")
    return [name.strip() for name in configured if name.strip()]


def get_provider(name: str) -> PaymentProvider:
    """The configured provider called `name`; `payment_provider_unavailable` otherwise."""
    if name not in PROVIDER_NAMES or name not in enabled_providers():
        raise DomainError(
            "payment_provider_unavailable",
            _("This payment method is not available."),
            {"provider": name},
        )
    if name == "sandbox":
        from piaowu.payments.providers.sandbox import SandboxProvider

        return SandboxProvider()
    if name == "alipay":
        from piaowu.payments.providers.alipay import AlipayProvider, AlipaySettings

        return AlipayProvider(AlipaySettings.from_settings())
    from piaowu.payments.providers.wechat import WechatPayProvider, WechatPaySettings

    return WechatPayProvider(WechatPaySettings.from_settings())
