"""Customer notices of after-sales (refund progress, cancellations, reschedules, waitlist
offers, transfers): written to the `Notice` outbox inside the business transaction, sent by the
`aftersales.notices_send_due` job with retries. Nothing waits on a mail server or SMS gateway.

A notice is rendered when it is queued, in the customer's language, so the job only sends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import translation

from piaowu.accounts.models import User
from piaowu.aftersales.models import Notice
from piaowu.core import clock
from piaowu.core.sms import SmsError, sms_send
from piaowu.orders.models import Order
from piaowu.tickets.delivery import retry_delay

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
SEND_TIMEOUT_SECONDS = 30
SMS_TEMPLATE = "aftersales_notice"


@dataclass(frozen=True, slots=True)
class Recipients:
    email: str = ""
    phone: str = ""
    language: str = ""


def order_recipients(order: Order) -> Recipients:
    """Where an order's buyer hears from us: the order's contacts, else the customer's."""
    customer = order.customer
    email = order.contact_email or (customer.email if customer is not None else "")
    phone = order.contact_phone
    language = (customer.preferred_language if customer is not None else "") or ""
    return Recipients(email=email, phone=phone, language=language)


def user_recipients(user: User) -> Recipients:
    """Where a signed-up person hears from us: their account's e-mail, in their language."""
    return Recipients(email=user.email, language=user.preferred_language or "")


def notice_queue(
    *, topic: str, recipients: Recipients, subject: str, body: str, sms: str = ""
) -> int:
    """Queue a notice by e-mail (subject + body) and SMS (`sms`, else the subject) to whatever
    contacts `recipients` has. `subject`, `body` and `sms` are rendered by the caller, inside
    `notice_language(recipients)`. Queuing the same topic for the same contact again does
    nothing (exactly once from at-least-once callers). Returns how many were queued."""
    now = clock.now()
    queued = 0
    wanted: list[tuple[str, str]] = []
    if recipients.email:
        wanted.append(("email", recipients.email))
    if recipients.phone:
        wanted.append(("sms", recipients.phone))
    for kind, recipient in wanted:
        try:
            with transaction.atomic():
                Notice.objects.create(
                    topic=topic[:80],
                    kind=kind,
                    recipient=recipient,
                    subject=subject[:200],
                    body=body if kind == "email" else (sms or subject),
                    next_attempt_at=now,
                    created_at=now,
                )
            queued += 1
        except IntegrityError:
            continue
    return queued


def notice_language(recipients: Recipients) -> translation.override:
    """Render a notice's texts inside this, so they come out in the customer's language."""
    return translation.override(recipients.language or settings.LANGUAGE_CODE)


def _claim(notice_id: int, now: datetime) -> Notice | None:
    """One conditional UPDATE takes a due notice for this worker (attempts unchanged), so two
    workers never both send it; the retry delay is the lease."""
    notice = Notice.objects.filter(
        pk=notice_id, status=Notice.Status.PENDING, next_attempt_at__lte=now
    ).first()
    if notice is None:
        return None
    attempts = notice.attempts + 1
    claimed = Notice.objects.filter(
        pk=notice.pk, status=Notice.Status.PENDING, attempts=notice.attempts
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + retry_delay(attempts))
    if not claimed:
        return None
    notice.attempts = attempts
    return notice


def _send(notice: Notice) -> None:
    if notice.kind == "email":
        message = EmailMessage(
            subject=notice.subject,
            body=notice.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[notice.recipient],
            connection=get_connection(timeout=SEND_TIMEOUT_SECONDS),
        )
        message.send(fail_silently=False)
    else:
        sms_send(
            phone=notice.recipient,
            text=notice.body,
            template=SMS_TEMPLATE,
            params={"text": notice.body},
        )


def notices_send_due(*, now: datetime | None = None, limit: int = 100) -> int:
    """Send up to `limit` due notices; returns how many were sent. Failures are retried with
    backoff; after `MAX_ATTEMPTS`, or at once for an SMS the gateway will never accept, the
    notice is `failed` (and logged as an error for the operators)."""
    now = now or clock.now()
    due = list(
        Notice.objects.filter(status=Notice.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for notice_id in due:
        notice = _claim(notice_id, now)
        if notice is None:
            continue
        try:
            _send(notice)
        except Exception as exc:
            permanent = isinstance(exc, SmsError) and not exc.retryable
            give_up = permanent or notice.attempts >= MAX_ATTEMPTS
            error = f"{type(exc).__name__}: {exc}"[:300]
            update: dict[str, object] = {"last_error": error}
            if give_up:
                update["status"] = Notice.Status.FAILED
                logger.error(
                    "notice %s to %s failed for good: %s", notice.topic, notice.recipient, error
                )
            else:
                logger.warning(
                    "notice %s to %s failed, will retry: %s", notice.topic, notice.recipient, error
                )
            Notice.objects.filter(pk=notice.pk, status=Notice.Status.PENDING).update(**update)
            continue
        Notice.objects.filter(pk=notice.pk, status=Notice.Status.PENDING).update(
            status=Notice.Status.SENT, sent_at=clock.now(), last_error=""
        )
        sent += 1
    return sent


def notices_retry(*, notice_ids: list[int], now: datetime | None = None) -> int:
    """Operator tool: send the selected failed or pending notices at the next run, with their
    attempts counted afresh. Sent ones are left alone. Returns how many were rescheduled."""
    return Notice.objects.filter(
        pk__in=notice_ids, status__in=[Notice.Status.PENDING, Notice.Status.FAILED]
    ).update(
        status=Notice.Status.PENDING, attempts=0, next_attempt_at=now or clock.now(), last_error=""
    )
