"""The SMS provider interface: the console provider logs, unknown providers and provider
failures are clear exceptions."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest
from pytest_django.fixtures import Settings

from piaowu.core import sms
from piaowu.core.sms import ConsoleSmsProvider, SmsError, get_sms_provider, sms_send


def test_the_console_provider_logs_the_text_template_and_params(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="piaowu.core.sms"):
        message_id = sms_send(
            phone="13800138000",
            text="【票务】订单 AB12 已出票",
            template="tickets_issued",
            params={"code": "AB12"},
        )

    assert message_id.startswith("console-")
    [record] = caplog.records
    logged = record.getMessage()
    assert "13800138000" in logged
    assert "【票务】订单 AB12 已出票" in logged
    assert "tickets_issued" in logged and "AB12" in logged
    assert message_id in logged


def test_the_provider_is_chosen_by_the_setting(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, str, dict[str, str]]] = []

    class Recording:
        name = "recording"

        def send(self, phone: str, text: str, template: str, params: Mapping[str, str]) -> str:
            sent.append((phone, template, dict(params)))
            return "r-1"

    monkeypatch.setitem(sms._PROVIDERS, "recording", Recording)
    settings.PIAOWU_SMS_PROVIDER = "recording"

    assert sms_send(phone="1", text="t", template="tpl", params={"a": "b"}) == "r-1"
    assert sent == [("1", "tpl", {"a": "b"})]
    assert isinstance(get_sms_provider("console"), ConsoleSmsProvider)


def test_an_unknown_provider_is_a_clear_error(settings: Settings) -> None:
    settings.PIAOWU_SMS_PROVIDER = "carrier-pigeon"

    with pytest.raises(SmsError) as error:
        sms_send(phone="13800138000", text="hi", template="tickets_issued")

    assert error.value.code == "sms_provider_unknown"
    assert error.value.retryable is False
    assert "carrier-pigeon" in str(error.value) and "console" in str(error.value)


def test_the_console_provider_rejects_an_empty_number() -> None:
    with pytest.raises(SmsError) as error:
        ConsoleSmsProvider().send("  ", "hi", "tickets_issued", {})
    assert error.value.code == "sms_rejected" and error.value.retryable is False


def test_a_provider_error_carries_code_provider_and_details() -> None:
    error = SmsError(
        "sms_rejected",
        "template not approved",
        provider="aliyun",
        retryable=False,
        details={"gateway_code": "isv.SMS_TEMPLATE_ILLEGAL"},
    )
    assert str(error) == "sms_rejected: template not approved"
    assert error.provider == "aliyun"
    assert error.details == {"gateway_code": "isv.SMS_TEMPLATE_ILLEGAL"}
