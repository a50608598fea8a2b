"""Text messages: one provider interface, the provider picked by `PIAOWU_SMS_PROVIDER`.

A message is sent as a *template* name with *params*, plus the rendered `text`. Chinese SMS
gateways (Alibaba Cloud SMS, Tencent Cloud SMS) only send texts from templates the carrier has
approved: the caller names our template (`"tickets_issued"`) and passes its parameters; a
gateway provider maps the name to its own template code (from its settings) and sends the
params only. Providers that send free text, and the console provider, use `text`.

Adding a provider: a class with `name` and `send(phone, text, template, params) -> str` (the
provider's message id), registered with `register_provider("aliyun", factory)`. A provider
reports failure by raising `SmsError` (never by returning a flag): `code` is a stable
snake_case code (`sms_rejected`, `sms_unavailable`, the gateway's own code in `details`), and
`retryable` tells the caller whether trying again later may help (a timeout, throttling) or
not (a malformed number, a template the gateway does not know).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from django.conf import settings

logger = logging.getLogger(__name__)


class SmsError(Exception):
    """A provider could not send the message (or no provider is configured)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        provider: str = "",
        retryable: bool = True,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.provider = provider
        self.retryable = retryable
        self.details = dict(details or {})


class SmsProvider(Protocol):
    name: str

    def send(self, phone: str, text: str, template: str, params: Mapping[str, str]) -> str:
        """Send one message; return the provider's message id. Raise `SmsError` on failure."""
        ...


class ConsoleSmsProvider:
    """Development and demo: writes the message to the log instead of a phone."""

    name = "console"

    def send(self, phone: str, text: str, template: str, params: Mapping[str, str]) -> str:
        if not phone.strip():
            raise SmsError("sms_rejected", "no phone number", provider=self.name, retryable=False)
        message_id = f"console-{uuid.uuid4().hex[:12]}"
        logger.info(
            "SMS to %s [template %s, params %s] (%s): %s",
            phone,
            template,
            dict(params),
            message_id,
            text,
        )
        return message_id


ProviderFactory = Callable[[], SmsProvider]

_PROVIDERS: dict[str, ProviderFactory] = {"console": ConsoleSmsProvider}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Make `name` selectable with `PIAOWU_SMS_PROVIDER` (registering again replaces it)."""
    _PROVIDERS[name] = factory


def get_sms_provider(name: str | None = None) -> SmsProvider:
    """The provider called `name`, by default the configured one; `SmsError`
    (`sms_provider_unknown`, not retryable) when there is none by that name."""
    name = name or str(getattr(settings, "PIAOWU_SMS_PROVIDER", "") or "console")
    factory = _PROVIDERS.get(name)
    if factory is None:
        raise SmsError(
            "sms_provider_unknown",
            f"no SMS provider called {name!r} (known: {', '.join(sorted(_PROVIDERS))})",
            provider=name,
            retryable=False,
        )
    return factory()


def sms_send(
    *, phone: str, text: str, template: str, params: Mapping[str, str] | None = None
) -> str:
    """Send a message with the configured provider; returns its message id. Raises `SmsError`."""
    return get_sms_provider().send(phone, text, template, dict(params or {}))
