"""The after-sales notice outbox: refund notices go out by e-mail over a real SMTP server
(aiosmtpd on a free local port) and by SMS through the console provider, exactly once, with
retries and backoff when the mail server is away."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from piaowu.accounts.models import User
from piaowu.aftersales.models import Notice, Refund
from piaowu.aftersales.services.notices import (
    MAX_ATTEMPTS,
    Recipients,
    notice_queue,
    notices_send_due,
    retry_delay,
)
from piaowu.aftersales.services.refunds import refund_request
from piaowu.core import sms
from piaowu.core.sms import SmsError
from tests.aftersales.refunds.conftest import MakeBought, refund_rule
from tests.tickets.test_delivery import Inbox, free_port, smtp_settings, start_smtp

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp(settings: SettingsWrapper) -> Iterator[Inbox]:
    inbox = Inbox(port=free_port())
    controller = start_smtp(inbox)
    smtp_settings(settings, inbox.port)
    yield inbox
    controller.stop()


def later(minutes: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(minutes=minutes)


def refunded(bought: MakeBought, buyer: User) -> Refund:
    purchase = bought()
    refund_rule(purchase.session.event)
    return refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)


def test_refund_notices_arrive_by_mail_over_smtp_and_by_sms(
    smtp: Inbox, bought: MakeBought, buyer: User, caplog: pytest.LogCaptureFixture
) -> None:
    refund = refunded(bought, buyer)

    with caplog.at_level(logging.INFO, logger="piaowu.core.sms"):
        assert notices_send_due(now=later(0.1)) == 4  # approved + succeeded, mail + SMS

    subjects = sorted(str(message["Subject"]) for message in smtp.messages)
    assert subjects == [
        f"Refund {refund.number} approved: 180.00 CNY on its way",
        f"Refund {refund.number} completed: 180.00 CNY returned",
    ]
    assert smtp.recipients == [[buyer.email], [buyer.email]]
    body = smtp.messages[-1].get_content()
    assert refund.order.code in body and f"/refunds/{refund.public_id}/" in body
    texts = [r.getMessage() for r in caplog.records if r.name == "piaowu.core.sms"]
    assert len(texts) == 2 and all("aftersales_notice" in text for text in texts)
    assert any(f"[Piaowu] Refund {refund.number} completed" in text for text in texts)
    assert set(Notice.objects.values_list("status", flat=True)) == {"sent"}
    assert all(n.sent_at is not None and n.attempts == 1 for n in Notice.objects.all())
    # sent once: another run sends nothing
    assert notices_send_due(now=later(10)) == 0
    assert len(smtp.messages) == 2


def test_queueing_the_same_notice_again_does_nothing() -> None:
    to = Recipients(email="a@example.com", phone="13800138000")

    first = notice_queue(topic="refund:R1:approved", recipients=to, subject="s", body="b")
    again = notice_queue(topic="refund:R1:approved", recipients=to, subject="s2", body="b2")

    assert (first, again) == (2, 0)
    assert Notice.objects.count() == 2
    assert Notice.objects.get(kind="email").subject == "s"
    assert Notice.objects.get(kind="sms").body == "s"  # the SMS falls back to the subject
    assert notice_queue(topic="t", recipients=Recipients(), subject="s", body="b") == 0


def test_a_notice_not_yet_due_waits(settings: SettingsWrapper) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notice_queue(topic="t", recipients=Recipients(email="a@example.com"), subject="s", body="b")

    assert notices_send_due(now=timezone.now() - dt.timedelta(minutes=1)) == 0
    assert notices_send_due(now=later(0.1)) == 1


def test_a_mail_server_away_is_retried_with_backoff(
    settings: SettingsWrapper, bought: MakeBought, buyer: User
) -> None:
    port = free_port()
    smtp_settings(settings, port)  # nothing listens there yet
    refund = refunded(bought, buyer)
    start = later(0.1)

    assert notices_send_due(now=start) == 2  # the SMS went out

    mails = Notice.objects.filter(kind="email").order_by("id")
    assert [(n.status, n.attempts) for n in mails] == [("pending", 1), ("pending", 1)]
    assert all(n.next_attempt_at == start + retry_delay(1) for n in mails)
    assert all("Connection" in n.last_error or "refused" in n.last_error for n in mails)
    # not before the wait is over
    assert notices_send_due(now=start + dt.timedelta(seconds=30)) == 0
    # the server is back: the mails go out on the next try
    inbox = Inbox(port=port)
    controller = start_smtp(inbox)
    try:
        assert notices_send_due(now=start + retry_delay(1)) == 2
    finally:
        controller.stop()
    assert len(inbox.messages) == 2 and refund.number in str(inbox.messages[0]["Subject"])
    assert set(Notice.objects.values_list("status", flat=True)) == {"sent"}


def test_a_notice_is_given_up_after_the_last_attempt(
    settings: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_settings(settings, free_port())
    notice_queue(topic="t", recipients=Recipients(email="a@example.com"), subject="s", body="b")
    now = later(0.1)

    with caplog.at_level(logging.ERROR, logger="piaowu.aftersales.services.notices"):
        for _ in range(MAX_ATTEMPTS + 2):
            notices_send_due(now=now)
            now += dt.timedelta(days=1)

    notice = Notice.objects.get()
    assert (notice.status, notice.attempts) == ("failed", MAX_ATTEMPTS)
    assert any("failed for good" in r.getMessage() for r in caplog.records)
    assert [retry_delay(n) for n in (1, 2, 3)] == [dt.timedelta(minutes=m) for m in (1, 2, 4)]


def test_an_sms_the_gateway_will_never_accept_is_given_up_at_once(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Rejecting:
        name = "rejecting"

        def send(self, phone: str, text: str, template: str, params: Mapping[str, str]) -> str:
            raise SmsError("sms_rejected", "invalid number", provider=self.name, retryable=False)

    monkeypatch.setitem(sms._PROVIDERS, "rejecting", Rejecting)
    settings.PIAOWU_SMS_PROVIDER = "rejecting"
    notice_queue(topic="t", recipients=Recipients(phone="12"), subject="s", body="b")

    assert notices_send_due(now=later(0.1)) == 0

    notice = Notice.objects.get()
    assert (notice.status, notice.attempts) == ("failed", 1)
    assert "invalid number" in notice.last_error
