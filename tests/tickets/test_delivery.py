"""Ticket e-mail over a real SMTP server (aiosmtpd on a free local port), SMS notices, retries
with backoff, and queueing a delivery again."""

from __future__ import annotations

import datetime as dt
import email
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from io import BytesIO
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone
from icalendar import Calendar
from pypdf import PdfReader
from pytest_django.fixtures import Settings as SettingsWrapper

from piaowu.core import sms
from piaowu.core.errors import DomainError
from piaowu.core.sms import SmsError
from piaowu.orders.models import Order
from piaowu.tickets.delivery import (
    MAX_ATTEMPTS,
    deliveries_send_due,
    delivery_resend,
    retry_delay,
)
from piaowu.tickets.models import Delivery, Ticket
from piaowu.tickets.services import ticket_void
from tests.tickets.conftest import MakePaidOrder

BUYER = "buyer@example.com"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Inbox:
    """What the local SMTP server received."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def smtp_settings(settings: SettingsWrapper, port: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""


def start_smtp(inbox: Inbox) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    return controller


@pytest.fixture
def smtp(settings: SettingsWrapper) -> Iterator[Inbox]:
    inbox = Inbox(port=free_port())
    controller = start_smtp(inbox)
    smtp_settings(settings, inbox.port)
    yield inbox
    controller.stop()


def pdf_text(data: bytes) -> str:
    return " ".join(
        " ".join(page.extract_text().split()) for page in PdfReader(BytesIO(data)).pages
    )


def attachments(message: EmailMessage) -> dict[str, tuple[str, bytes]]:
    found: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[str(part.get_filename())] = (part.get_content_type(), payload)
    return found


def later(minutes: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(minutes=minutes)


def email_delivery(order: Order) -> Delivery:
    return Delivery.objects.get(order=order, kind=Delivery.Kind.EMAIL)


# --- E-mail over SMTP -------------------------------------------------------------------------


def test_the_ticket_mail_arrives_over_smtp_with_the_pdf_and_calendar_attached(
    smtp: Inbox, paid_order: MakePaidOrder
) -> None:
    order = paid_order(contact_email=BUYER)
    serials = list(Ticket.objects.filter(order=order).values_list("serial", flat=True))

    sent = deliveries_send_due(now=later(0.1))

    assert sent == 2  # the e-mail and the SMS notice
    assert len(smtp.messages) == 1 and smtp.recipients == [[BUYER]]
    message = smtp.messages[0]
    title = order.session.event.title
    assert title in str(message["subject"])
    assert f"{order.session.local_starts_at:%Y-%m-%d %H:%M}" in str(message["subject"])
    assert "tickets@piaowu.local" in str(message["from"])
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    link = f"/orders/{order.public_id}/tickets/"
    assert link in text.get_content() and link in html.get_content()
    assert all(serial in text.get_content() for serial in serials)

    files = attachments(message)
    assert set(files) == {f"tickets-{order.code}.pdf", f"tickets-{order.code}.ics"}
    content_type, pdf = files[f"tickets-{order.code}.pdf"]
    assert content_type == "application/pdf"
    extracted = pdf_text(pdf)
    assert all(serial in extracted for serial in serials)
    assert title in extracted  # the Chinese title survived font embedding and extraction
    ics_type, ics = files[f"tickets-{order.code}.ics"]
    assert ics_type == "text/calendar"
    event = next(iter(Calendar.from_ical(ics).walk("VEVENT")))
    assert event.decoded("dtstart") == order.session.starts_at.replace(microsecond=0)

    delivery = email_delivery(order)
    assert delivery.status == Delivery.Status.SENT
    assert delivery.attempts == 1 and delivery.sent_at is not None

    # Sent is sent: the next run sends nothing again.
    assert deliveries_send_due(now=later(60)) == 0
    assert len(smtp.messages) == 1


def test_smtp_down_is_retried_with_backoff_and_not_lost(
    settings: SettingsWrapper, paid_order: MakePaidOrder, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox(port=free_port())
    smtp_settings(settings, inbox.port)  # nothing listens there yet
    order = paid_order(contact_email=BUYER)
    start = later(0.1)

    with caplog.at_level(logging.WARNING, logger="piaowu.tickets.delivery"):
        deliveries_send_due(now=start)

    delivery = email_delivery(order)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempts == 1
    assert delivery.next_attempt_at == start + dt.timedelta(minutes=1)
    assert delivery.last_error  # e.g. ConnectionRefusedError
    assert any("retrying" in record.getMessage() for record in caplog.records)

    # Not due yet: nothing is tried.
    deliveries_send_due(now=start + dt.timedelta(seconds=30))
    assert email_delivery(order).attempts == 1

    # Still down a minute later: the next wait doubles.
    second = start + dt.timedelta(minutes=1)
    deliveries_send_due(now=second)
    delivery = email_delivery(order)
    assert delivery.attempts == 2
    assert delivery.next_attempt_at == second + dt.timedelta(minutes=2)

    # The server comes up: the next due run delivers it.
    controller = start_smtp(inbox)
    try:
        deliveries_send_due(now=second + dt.timedelta(minutes=2))
    finally:
        controller.stop()
    delivery = email_delivery(order)
    assert delivery.status == Delivery.Status.SENT and delivery.attempts == 3
    assert delivery.last_error == ""
    assert len(inbox.messages) == 1


def test_a_delivery_is_given_up_after_the_last_attempt(
    settings: SettingsWrapper, paid_order: MakePaidOrder, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_settings(settings, free_port())  # down for good
    order = paid_order(contact_email=BUYER)
    now = later(0.1)

    for attempt in range(1, MAX_ATTEMPTS + 1):
        with caplog.at_level(logging.ERROR, logger="piaowu.tickets.delivery"):
            deliveries_send_due(now=now)
        delivery = email_delivery(order)
        assert delivery.attempts == attempt
        now = delivery.next_attempt_at

    assert delivery.status == Delivery.Status.FAILED
    assert any("failed for good" in r.getMessage() for r in caplog.records)
    deliveries_send_due(now=now + dt.timedelta(days=1))
    assert email_delivery(order).attempts == MAX_ATTEMPTS  # no more tries
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [dt.timedelta(minutes=m) for m in (1, 2, 4, 8)]


# --- SMS --------------------------------------------------------------------------------------


def test_the_sms_notice_is_logged_by_the_console_provider(
    paid_order: MakePaidOrder, caplog: pytest.LogCaptureFixture
) -> None:
    order = paid_order()  # a phone, no e-mail: only the SMS notice

    with caplog.at_level(logging.INFO, logger="piaowu.core.sms"):
        assert deliveries_send_due(now=later(0.1)) == 1

    [record] = [r for r in caplog.records if r.name == "piaowu.core.sms"]
    logged = record.getMessage()
    assert order.code in logged
    assert f"{order.session.local_starts_at:%Y-%m-%d %H:%M}" in logged
    assert f"/orders/{order.public_id}/tickets/" in logged
    assert "tickets_issued" in logged
    sms_delivery = Delivery.objects.get(order=order, kind=Delivery.Kind.SMS)
    assert sms_delivery.status == Delivery.Status.SENT


class FlakyProvider:
    """Fails for one number, sends to the others."""

    name = "flaky"
    sent: list[str] = []

    def send(self, phone: str, text: str, template: str, params: Mapping[str, str]) -> str:
        if phone.replace(" ", "").endswith("9999"):
            raise SmsError("sms_unavailable", "gateway timeout", provider=self.name)
        self.sent.append(params["code"])
        return "id-1"


def test_one_failing_delivery_does_not_stop_the_others(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch, paid_order: MakePaidOrder
) -> None:
    monkeypatch.setitem(sms._PROVIDERS, "flaky", FlakyProvider)
    monkeypatch.setattr(FlakyProvider, "sent", [])
    settings.PIAOWU_SMS_PROVIDER = "flaky"
    failing = paid_order(seats=["M-1-1"], contact_phone="139 0000 9999", holder_key="a")
    fine = paid_order(seats=["M-1-3"], contact_phone="139 0000 1111", holder_key="b")

    assert deliveries_send_due(now=later(0.1)) == 1

    assert FlakyProvider.sent == [fine.code]
    bad = Delivery.objects.get(order=failing)
    assert bad.status == Delivery.Status.PENDING and bad.attempts == 1  # retried later
    assert "gateway timeout" in bad.last_error


def test_a_failure_a_retry_cannot_fix_is_given_up_at_once(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch, paid_order: MakePaidOrder
) -> None:
    class Rejecting:
        name = "rejecting"

        def send(self, phone: str, text: str, template: str, params: Mapping[str, str]) -> str:
            raise SmsError("sms_rejected", "invalid number", provider=self.name, retryable=False)

    monkeypatch.setitem(sms._PROVIDERS, "rejecting", Rejecting)
    settings.PIAOWU_SMS_PROVIDER = "rejecting"
    order = paid_order()

    deliveries_send_due(now=later(0.1))

    delivery = Delivery.objects.get(order=order)
    assert delivery.status == Delivery.Status.FAILED and delivery.attempts == 1


def test_a_delivery_of_an_order_whose_tickets_were_all_voided_fails(
    paid_order: MakePaidOrder,
) -> None:
    order = paid_order()
    for ticket in Ticket.objects.filter(order=order):
        ticket_void(ticket=ticket, actor=None, reason="refund")

    assert deliveries_send_due(now=later(0.1)) == 0

    delivery = Delivery.objects.get(order=order)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error.startswith("no_valid_tickets: ")


def test_limit_caps_one_run(paid_order: MakePaidOrder) -> None:
    for n, seat in enumerate(["M-1-1", "M-1-3", "M-1-5"]):
        paid_order(seats=[seat], holder_key=f"h{n}")

    assert deliveries_send_due(now=later(0.1), limit=2) == 2
    assert deliveries_send_due(now=later(0.1), limit=2) == 1
    assert deliveries_send_due(now=later(0.1), limit=2) == 0


# --- Sending again ----------------------------------------------------------------------------


def test_resend_queues_a_sent_delivery_again_once_a_minute_has_passed(
    paid_order: MakePaidOrder, clock: Any
) -> None:
    order = paid_order()
    deliveries_send_due(now=later(0.1))
    assert Delivery.objects.get(order=order).status == Delivery.Status.SENT

    with pytest.raises(DomainError) as error:
        delivery_resend(order=order, kind=Delivery.Kind.SMS)
    assert error.value.code == "delivery_resend_too_soon"
    assert error.value.details["retry_after"] >= 1

    clock.shift(dt.timedelta(minutes=2))
    delivery = delivery_resend(order=order, kind=Delivery.Kind.SMS)
    assert delivery.status == Delivery.Status.PENDING and delivery.attempts == 0
    # Asking again while it is queued changes nothing.
    assert delivery_resend(order=order, kind=Delivery.Kind.SMS).pk == delivery.pk
    assert deliveries_send_due(now=later(3)) == 1


def test_resend_of_a_failed_delivery_gives_it_fresh_attempts(
    settings: SettingsWrapper, paid_order: MakePaidOrder
) -> None:
    smtp_settings(settings, free_port())
    order = paid_order(contact_email=BUYER)
    now = later(0.1)
    for _ in range(MAX_ATTEMPTS):
        deliveries_send_due(now=now)
        now = email_delivery(order).next_attempt_at
    assert email_delivery(order).status == Delivery.Status.FAILED

    delivery = delivery_resend(order=order, kind=Delivery.Kind.EMAIL)

    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempts == 0 and delivery.last_error == ""


def test_resend_creates_a_missing_delivery_and_refuses_bad_requests(
    paid_order: MakePaidOrder,
) -> None:
    order = paid_order()  # phone only: no e-mail delivery was queued
    assert not Delivery.objects.filter(order=order, kind=Delivery.Kind.EMAIL).exists()

    with pytest.raises(DomainError) as error:
        delivery_resend(order=order, kind=Delivery.Kind.EMAIL)
    assert error.value.code == "no_recipient"

    with pytest.raises(DomainError) as error:
        delivery_resend(order=order, kind="fax")
    assert error.value.code == "invalid_delivery_kind"

    # An address given after payment (customer service has no service for it yet: set it).
    with_mail = paid_order(seats=["M-2-1"], holder_key="other")
    Order.objects.filter(pk=with_mail.pk).update(contact_email=BUYER)
    with_mail.refresh_from_db()
    created = delivery_resend(order=with_mail, kind=Delivery.Kind.EMAIL)
    assert created.recipient == BUYER and created.status == Delivery.Status.PENDING


# --- Two workers at the same instant (PostgreSQL) ----------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("unsafe", [False, True], ids=["protected", "control"])
def test_racing_workers_send_each_delivery_once(
    settings: SettingsWrapper,
    monkeypatch: pytest.MonkeyPatch,
    paid_order: MakePaidOrder,
    unsafe: bool,
) -> None:
    sent: list[str] = []
    lock = threading.Lock()

    class Recording:
        name = "recording"

        def send(self, phone: str, text: str, template: str, params: Mapping[str, str]) -> str:
            with lock:
                sent.append(params["code"])
            return "id"

    monkeypatch.setitem(sms._PROVIDERS, "recording", Recording)
    settings.PIAOWU_SMS_PROVIDER = "recording"
    orders = [paid_order(seats=[seat], holder_key=seat) for seat in ("M-1-1", "M-1-3")]
    settings.PIAOWU_TICKETS_UNSAFE_DELIVERY_CLAIM = unsafe
    settings.PIAOWU_TICKETS_DELIVERY_RACE_PAUSE = 0.2  # both runs: the window is wide open
    now = later(0.1)
    n = 3
    barrier = threading.Barrier(n)
    errors: list[str] = []

    def worker() -> None:
        try:
            barrier.wait()
            deliveries_send_due(now=now)
        except Exception as exc:  # surfaced in the assertion below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    codes = sorted(order.code for order in orders)
    if unsafe:
        # The control: without the lock and the conditional claim, workers send twice.
        assert len(sent) > len(codes), sent
        return
    assert sorted(sent) == codes
    assert all(d.status == Delivery.Status.SENT and d.attempts == 1 for d in Delivery.objects.all())
