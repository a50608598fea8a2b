"""Getting tickets to their holders: the PDF, the calendar entry, the e-mail and the SMS notice.

Paying an order queues one `Delivery` per channel (e-mail when the order has an address, SMS
when it has a phone) in the paid transaction; `deliveries_send_due` — a periodic job — sends
them. It never holds a row lock while it talks to a mail server or an SMS gateway: it claims a
due delivery with one conditional UPDATE (bumping `attempts` and pushing `next_attempt_at`
back by the retry delay), commits, sends, and then marks it sent. A worker that dies mid-send
leaves the delivery claimed until that delay passes, then another worker sends it again
(at-least-once: a customer may get a ticket mail twice, never none). A failure is retried with
exponential backoff (1, 2, 4 … minutes) and given up after `MAX_ATTEMPTS` (status `failed`,
logged; staff or the buyer can queue it again with `delivery_resend`).

Race tests only: `PIAOWU_TICKETS_UNSAFE_DELIVERY_CLAIM` claims without the row lock and the
conditions, and `PIAOWU_TICKETS_DELIVERY_RACE_PAUSE` (seconds) pauses inside the claim, so the
control run shows two workers sending the same delivery.

PDF text in Chinese needs a font with CJK glyphs that reportlab can embed: a TrueType font
(`.ttf`/`.ttc` with TrueType outlines — WenQuanYi Zen Hei, AR PL UMing, Droid Sans Fallback)
found on the system at run time, or `PIAOWU_PDF_FONT` (a path); Noto CJK is CFF-based and
cannot be embedded by reportlab. Without one, the PDF uses reportlab's built-in `STSong-Light`
CID font, which every PDF reader in China renders but which is not embedded.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import segno
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _
from icalendar import Calendar
from icalendar import Event as CalendarEvent
from reportlab.lib.pagesizes import A5
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.sms import SmsError, sms_send
from piaowu.orders.models import Order
from piaowu.orders.states import PAID_STATES
from piaowu.tickets.models import Delivery, Ticket
from piaowu.tickets.selectors import seat_label, ticket_qr_text, tickets_for_order

logger = logging.getLogger(__name__)

#: The buyer's e-ticket page (served by the web app).
TICKETS_PATH = "/orders/{public_id}/tickets/"
#: Sends after which a failing delivery is given up (status `failed`).
MAX_ATTEMPTS = 8
#: A delivery that was just sent is not queued again sooner than this (no mail bombing).
RESEND_MIN_INTERVAL = timedelta(minutes=1)
#: How long one SMTP conversation may take; shorter than the first retry delay, so a delivery
#: being sent is never claimed a second time by another worker.
SEND_TIMEOUT_SECONDS = 30
#: The SMS template the gateway must know (see `piaowu.core.sms`).
SMS_TEMPLATE = "tickets_issued"

CJK_FONT_NAME = "PiaowuCJK"
CID_FALLBACK_FONT = "STSong-Light"
#: TrueType CJK fonts of common Linux packages, tried in this order (then `fc-list`).
CJK_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",  # fonts-wqy-zenhei
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei
    "/usr/share/fonts/truetype/arphic/uming.ttc",  # fonts-arphic-uming
    "/usr/share/fonts/truetype/arphic/ukai.ttc",  # fonts-arphic-ukai
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",  # fonts-droid-fallback
    "/usr/share/fonts/wenquanyi/wqy-zenhei/wqy-zenhei.ttc",  # Fedora, Arch
    "/System/Library/Fonts/STHeiti Medium.ttc",  # macOS (developers)
)
LATIN_FONT = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"

PAGE_WIDTH, PAGE_HEIGHT = A5
MARGIN = 12 * mm
QR_SIZE = 62 * mm


def _conflict(code: str, message: str, details: dict[str, Any] | None = None) -> DomainError:
    error = DomainError(code, message, details)
    error.status = 409
    return error


def _require_paid(order: Order) -> None:
    if order.state not in PAID_STATES:
        raise _conflict(
            "order_not_paid",
            _("Tickets are available once the order is paid."),
            {"state": order.state},
        )


# --- Links and labels -------------------------------------------------------------------------


def public_url() -> str:
    """The site's address for links in mail and SMS (`PIAOWU_PUBLIC_URL`)."""
    public = getattr(settings, "PIAOWU_PUBLIC_URL", "") or os.environ.get("PIAOWU_PUBLIC_URL", "")
    return str(public or "http://localhost:8000").rstrip("/")


def order_tickets_url(order: Order) -> str:
    return public_url() + TICKETS_PATH.format(public_id=order.public_id)


def session_time_label(order_or_ticket: Order | Ticket) -> str:
    """The session's start in the venue's time zone, e.g. `2026-05-01 19:30 (Asia/Shanghai)`."""
    session = order_or_ticket.session
    return f"{session.local_starts_at:%Y-%m-%d %H:%M} ({session.venue.timezone})"


def ticket_place_label(ticket: Ticket) -> str:
    """`池座 · 1排5座` / `Stalls · Row 1, seat 5`, or general admission: the section plus
    `tickets.selectors.seat_label`, for paper and mail where the section has no column."""
    if ticket.seat is None:
        return _("General admission")
    return f"{ticket.seat.section.tr('name')} · {seat_label(ticket)}"


def entrance_label(ticket: Ticket) -> str:
    """The entrance to use, when the seat's section names one."""
    if ticket.seat is not None and ticket.seat.section.entrance:
        return _("Entrance %(entrance)s") % {"entrance": ticket.seat.section.entrance}
    return ""


def venue_label(order_or_ticket: Order | Ticket) -> str:
    venue = order_or_ticket.session.venue
    return f"{venue.tr('name')} · {venue.tr('address')}"


def _valid_tickets(order: Order) -> list[Ticket]:
    _require_paid(order)
    # A ticket the buyer transferred to someone else carries that holder's QR: not the buyer's.
    tickets = [
        t
        for t in tickets_for_order(order)
        if t.state == Ticket.State.VALID and t.holder_id in (None, order.customer_id)
    ]
    if not tickets:
        raise _conflict(
            "no_valid_tickets",
            _("This order has no valid tickets (they were refunded or exchanged)."),
        )
    return tickets


# --- Fonts ------------------------------------------------------------------------------------


def _fc_list_fonts() -> list[str]:
    """TrueType-looking files fontconfig knows for Chinese (empty without fontconfig)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        found = subprocess.run(  # noqa: S603 (fixed arguments, no shell)
            [fc_list, ":lang=zh", "file"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = (line.split(":")[0].strip() for line in found.splitlines())
    return sorted({f for f in files if f.lower().endswith((".ttf", ".ttc"))})


def _font_candidates() -> Iterator[str]:
    configured = getattr(settings, "PIAOWU_PDF_FONT", "") or os.environ.get("PIAOWU_PDF_FONT", "")
    if configured:
        yield str(configured)
    yield from CJK_FONT_CANDIDATES
    yield from _fc_list_fonts()


def register_cjk_font(candidates: Iterable[str]) -> str:
    """Register the first candidate reportlab can embed that has Chinese glyphs; the name to
    use with `setFont`. Falls back to the built-in `STSong-Light` CID font."""
    for path in candidates:
        if not os.path.isfile(path):
            continue
        try:
            font = TTFont(CJK_FONT_NAME, path, subfontIndex=0)
        except (TTFError, OSError, ValueError) as exc:  # CFF outlines, broken file
            logger.debug("PDF font %s not usable: %s", path, exc)
            continue
        if ord("票") not in font.face.charToGlyph:
            continue
        pdfmetrics.registerFont(font)
        logger.info("PDF tickets use the font %s", path)
        return CJK_FONT_NAME
    pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK_FONT))
    logger.warning(
        "No embeddable TrueType CJK font found (install fonts-wqy-zenhei or set "
        "PIAOWU_PDF_FONT); PDF tickets use the non-embedded %s",
        CID_FALLBACK_FONT,
    )
    return CID_FALLBACK_FONT


@functools.cache
def cjk_font() -> str:
    """The registered CJK font's name (looked up once per process)."""
    return register_cjk_font(_font_candidates())


# --- PDF --------------------------------------------------------------------------------------


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break `text` into lines no wider than `width`, between any two characters (Chinese
    has no spaces), preferring a space when there is one."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for char in paragraph:
            if pdfmetrics.stringWidth(line + char, font, size) <= width or not line:
                line += char
                continue
            cut = line.rfind(" ")
            if cut > 0:
                lines.append(line[:cut])
                line = line[cut + 1 :] + char
            else:
                lines.append(line)
                line = char
        lines.append(line)
    return lines


def _draw_qr(canvas: Canvas, text: str, x: float, y: float, size: float) -> None:
    """The QR code of `text` as filled rectangles (one per horizontal run of dark modules),
    `size` wide with its lower left corner at (x, y), quiet zone included."""
    qr = segno.make(text, error="m")
    rows = [list(row) for row in qr.matrix_iter(scale=1, border=4)]
    module = size / len(rows)
    canvas.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(rows):
        top = y + size - (r + 1) * module
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            canvas.rect(x + start * module, top, (c - start) * module, module, stroke=0, fill=1)


def _draw_ticket(canvas: Canvas, ticket: Ticket, number: int, count: int, font: str) -> None:
    width = PAGE_WIDTH - 2 * MARGIN
    y = PAGE_HEIGHT - MARGIN
    session = ticket.session

    canvas.setFont(font, 9)
    canvas.setFillColorRGB(0.4, 0.4, 0.4)
    canvas.drawString(MARGIN, y - 9, _("Piaowu e-ticket"))
    canvas.drawRightString(
        PAGE_WIDTH - MARGIN,
        y - 9,
        _("Ticket %(number)s of %(count)s") % {"number": number, "count": count},
    )
    y -= 18
    canvas.setFillColorRGB(0, 0, 0)
    for line in _wrap(session.event.tr("title"), font, 16, width)[:3]:
        y -= 20
        canvas.setFont(font, 16)
        canvas.drawString(MARGIN, y, line)

    y -= 8
    details = [
        (_("Time"), session_time_label(ticket)),
        (_("Venue"), session.venue.tr("name")),
        (_("Address"), session.venue.tr("address")),
        (_("Seat"), ticket_place_label(ticket)),
    ]
    entrance = entrance_label(ticket)
    if entrance:
        details.append((_("Entrance"), entrance))
    details.append((_("Ticket type"), ticket.tier.tr("name")))
    if ticket.attendee_name:
        details.append((_("Attendee"), ticket.attendee_name))
    label_width = 22 * mm
    for label, value in details:
        lines = _wrap(value, font, 10.5, width - label_width) or [""]
        y -= 15
        canvas.setFont(font, 9)
        canvas.setFillColorRGB(0.4, 0.4, 0.4)
        canvas.drawString(MARGIN, y, label)
        canvas.setFillColorRGB(0, 0, 0)
        canvas.setFont(font, 10.5)
        for i, line in enumerate(lines[:3]):
            if i:
                y -= 13
            canvas.drawString(MARGIN + label_width, y, line)

    # The code, or where to find it.
    y -= 10 + QR_SIZE
    x = (PAGE_WIDTH - QR_SIZE) / 2
    if ticket.rotating:
        # No static code: a printed code of a rotating ticket is refused at the gate anyway.
        canvas.setStrokeColorRGB(0.4, 0.4, 0.4)
        canvas.rect(MARGIN, y, width, QR_SIZE, stroke=1, fill=0)
        text_width = width - 10 * mm
        notice = _wrap(_("Show the live code on your phone"), font, 13, text_width)
        explain = _wrap(
            _("This ticket's code changes every few seconds; a printed code is not accepted."),
            font,
            9,
            text_width,
        )
        text_y = y + QR_SIZE / 2 + 14
        for line in notice:
            canvas.setFont(font, 13)
            canvas.drawCentredString(PAGE_WIDTH / 2, text_y, line)
            text_y -= 16
        for line in explain:
            canvas.setFont(font, 9)
            canvas.drawCentredString(PAGE_WIDTH / 2, text_y, line)
            text_y -= 11
    else:
        _draw_qr(canvas, ticket_qr_text(ticket), x, y, QR_SIZE)

    # The serial, large: staff can type it when a code does not scan.
    y -= 26
    canvas.setFont(LATIN_BOLD, 22)
    canvas.drawCentredString(PAGE_WIDTH / 2, y, ticket.serial)
    y -= 16
    canvas.setFont(font, 10)
    canvas.drawCentredString(PAGE_WIDTH / 2, y, _("Order %(code)s") % {"code": ticket.order.code})

    canvas.setFont(font, 8)
    canvas.setFillColorRGB(0.4, 0.4, 0.4)
    for i, line in enumerate(
        _wrap(
            _("Each ticket admits once. Do not share pictures of the code."),
            font,
            8,
            width,
        )
    ):
        canvas.drawString(MARGIN, MARGIN + 10 - i * 10, line)


def order_tickets_pdf(order: Order) -> bytes:
    """All valid tickets of a paid order, one A5 page each: QR (or, for a rotating-code
    session, where to find the live code), serial, event, time in the venue's time zone,
    venue and address, seat or general admission, entrance, tier and order code.
    Errors: `order_not_paid` (409), `no_valid_tickets` (409)."""
    tickets = _valid_tickets(order)
    font = cjk_font()
    buffer = BytesIO()
    # invariant: no creation date or random id, so the same tickets give the same bytes.
    canvas = Canvas(buffer, pagesize=A5, invariant=1)
    canvas.setTitle(_("Tickets %(code)s") % {"code": order.code})
    canvas.setAuthor("Piaowu")
    for number, ticket in enumerate(tickets, start=1):
        _draw_ticket(canvas, ticket, number, len(tickets), font)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# --- Calendar ---------------------------------------------------------------------------------


def order_calendar_ics(order: Order) -> bytes:
    """One VEVENT for the order's session (times in UTC, the venue's address as location), for
    the buyer's calendar. Errors: `order_not_paid` (409)."""
    _require_paid(order)
    session = order.session
    venue = session.venue
    calendar = Calendar()
    calendar.add("prodid", "-//Piaowu//Tickets//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = CalendarEvent()
    event.add("uid", f"order-{order.public_id}@piaowu")
    event.add("dtstamp", (order.paid_at or order.created_at).astimezone(UTC))
    event.add("dtstart", session.starts_at.astimezone(UTC))
    event.add("dtend", session.ends_at.astimezone(UTC))
    event.add("summary", session.event.tr("title"))
    event.add("location", f"{venue.tr('name')}, {venue.tr('address')}")
    if venue.latitude is not None and venue.longitude is not None:
        event.add("geo", (float(venue.latitude), float(venue.longitude)))
    labels = Counter(
        ticket_place_label(t) for t in tickets_for_order(order) if t.state == Ticket.State.VALID
    )
    # Seats are each named once; general admissions repeat one label, so count them instead.
    seats = [label if n == 1 else f"{label} × {n}" for label, n in labels.items()]
    description = [_("Order %(code)s") % {"code": order.code}, *seats]
    url = order_tickets_url(order)
    description.append(_("Your tickets: %(url)s") % {"url": url})
    event.add("description", "\n".join(description))
    event.add("url", url)
    calendar.add_component(event)
    return bytes(calendar.to_ical())


# --- E-mail and SMS ---------------------------------------------------------------------------


def _language(order: Order) -> str:
    customer = order.customer
    preferred = customer.preferred_language if customer is not None else ""
    return preferred or settings.LANGUAGE_CODE


def ticket_email(order: Order, recipient: str) -> EmailMultiAlternatives:
    """The ticket mail: text and HTML bodies, the PDF and the calendar entry attached."""
    tickets = _valid_tickets(order)
    session = order.session
    context = {
        "order": order,
        "event_title": session.event.tr("title"),
        "session_time": session_time_label(order),
        "venue": venue_label(order),
        "tickets": [
            {
                "serial": t.serial,
                "seat": ticket_place_label(t),
                "entrance": entrance_label(t),
                "tier": t.tier.tr("name"),
            }
            for t in tickets
        ],
        "rotating": any(t.rotating for t in tickets),
        "tickets_url": order_tickets_url(order),
    }
    subject = _("Your tickets: %(title)s, %(time)s") % {
        "title": context["event_title"],
        "time": context["session_time"],
    }
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("tickets/email_tickets.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient],
    )
    message.attach_alternative(render_to_string("tickets/email_tickets.html", context), "text/html")
    message.attach(f"tickets-{order.code}.pdf", order_tickets_pdf(order), "application/pdf")
    message.attach(
        f"tickets-{order.code}.ics", order_calendar_ics(order), "text/calendar; method=PUBLISH"
    )
    return message


def ticket_sms(order: Order) -> tuple[str, dict[str, str]]:
    """The SMS notice: its text and the params of the `tickets_issued` template."""
    _valid_tickets(order)
    title = order.session.event.tr("title")
    params = {
        "code": order.code,
        "event": title if len(title) <= 20 else title[:19] + "…",
        "time": f"{order.session.local_starts_at:%Y-%m-%d %H:%M}",
        "url": order_tickets_url(order),
    }
    text = _("[Piaowu] Order %(code)s: %(event)s, %(time)s. Your tickets: %(url)s") % params
    return text, params


def _send(delivery: Delivery) -> None:
    order = delivery.order
    with translation.override(_language(order)):
        if delivery.kind == Delivery.Kind.EMAIL:
            message = ticket_email(order, delivery.recipient)
            message.connection = get_connection(timeout=SEND_TIMEOUT_SECONDS)
            message.send(fail_silently=False)
        else:
            text, params = ticket_sms(order)
            sms_send(phone=delivery.recipient, text=text, template=SMS_TEMPLATE, params=params)


def retry_delay(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failed send: 1, 2, 4, 8 … minutes."""
    return timedelta(minutes=2 ** max(attempts - 1, 0))


def _claim(delivery_id: int, now: datetime) -> Delivery | None:
    """Take a due delivery for this worker: skip rows another worker has locked, then one
    conditional UPDATE (still pending, still due, attempts unchanged) so two workers never
    both send it. The lease is the retry delay: a worker that dies mid-send is retried then."""
    unsafe = bool(getattr(settings, "PIAOWU_TICKETS_UNSAFE_DELIVERY_CLAIM", False))
    pause = float(getattr(settings, "PIAOWU_TICKETS_DELIVERY_RACE_PAUSE", 0))
    with transaction.atomic():
        rows = Delivery.objects.filter(
            pk=delivery_id, status=Delivery.Status.PENDING, next_attempt_at__lte=now
        )
        if not unsafe:
            rows = rows.select_for_update(skip_locked=True)
        delivery = rows.first()
        if delivery is None:
            return None
        if pause:
            time.sleep(pause)  # tests only: widen the window a missing claim would leave open
        attempts = delivery.attempts + 1
        if unsafe:
            # TEST-ONLY control: write what was read, without the conditions.
            claimed = Delivery.objects.filter(pk=delivery.pk).update(
                attempts=attempts, next_attempt_at=now + retry_delay(attempts)
            )
        else:
            claimed = Delivery.objects.filter(
                pk=delivery.pk,
                status=Delivery.Status.PENDING,
                attempts=delivery.attempts,
                next_attempt_at__lte=now,
            ).update(attempts=F("attempts") + 1, next_attempt_at=now + retry_delay(attempts))
    if not claimed:
        return None
    return (
        Delivery.objects.select_related(
            "order__session__event", "order__session__venue", "order__customer"
        )
        .filter(pk=delivery_id)
        .first()
    )


def deliveries_send_due(*, now: datetime | None = None, limit: int = 50) -> int:
    """Send up to `limit` due pending deliveries; returns how many were sent. A failure is
    logged and retried later (1, 2, 4 … minutes); after `MAX_ATTEMPTS` sends, or at once for a
    failure a retry cannot fix (no valid tickets, a number the SMS gateway rejects), the
    delivery is `failed`. One delivery's failure never stops the others."""
    now = now or clock.now()
    due = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for delivery_id in due:
        delivery = _claim(delivery_id, now)
        if delivery is None:
            continue
        try:
            _send(delivery)
        except Exception as exc:
            permanent = isinstance(exc, DomainError) or (
                isinstance(exc, SmsError) and not exc.retryable
            )
            _record_failure(delivery, exc, permanent=permanent)
            continue
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SENT, sent_at=clock.now(), last_error=""
        )
        sent += 1
    return sent


def _record_failure(delivery: Delivery, exc: Exception, *, permanent: bool) -> None:
    # A domain error's stable code first, so the log reads the same in every language.
    name = exc.code if isinstance(exc, DomainError) else type(exc).__name__
    error = f"{name}: {exc}"[:300]
    give_up = permanent or delivery.attempts >= MAX_ATTEMPTS
    update: dict[str, Any] = {"last_error": error}
    if give_up:
        update["status"] = Delivery.Status.FAILED
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(**update)
    if give_up:
        logger.error(
            "Ticket %s for order %s to %s failed for good after %s attempt(s): %s",
            delivery.kind,
            delivery.order.code,
            delivery.recipient,
            delivery.attempts,
            error,
        )
    else:
        logger.warning(
            "Ticket %s for order %s failed (attempt %s of %s), retrying after %s: %s",
            delivery.kind,
            delivery.order.code,
            delivery.attempts,
            MAX_ATTEMPTS,
            retry_delay(delivery.attempts),
            error,
        )


def delivery_resend(*, order: Order, kind: str) -> Delivery:
    """Queue the order's ticket e-mail or SMS again (fresh retries, sent by the next job run).
    Already queued: nothing changes. Creates the delivery when the order has a recipient but
    none was queued. Errors: `order_not_paid` (409), `invalid_delivery_kind`,
    `no_recipient` (the order has no address / phone for it), `delivery_resend_too_soon`
    (409: it was sent less than a minute ago; details.retry_after seconds)."""
    if kind not in Delivery.Kind.values:
        raise DomainError(
            "invalid_delivery_kind",
            _("Unknown delivery kind."),
            {"kind": kind, "allowed": list(Delivery.Kind.values)},
        )
    _require_paid(order)
    now = clock.now()
    if not Delivery.objects.filter(order=order, kind=kind).exists():
        if kind == Delivery.Kind.EMAIL:
            recipient = order.contact_email or (order.customer.email if order.customer else "")
        else:
            recipient = order.contact_phone
        if not recipient:
            raise DomainError(
                "no_recipient",
                _("The order has no e-mail address or phone number to send this to."),
                {"kind": kind},
            )
        Delivery.objects.bulk_create(
            [
                Delivery(
                    order=order,
                    kind=kind,
                    recipient=recipient,
                    next_attempt_at=now,
                    created_at=now,
                )
            ],
            ignore_conflicts=True,
        )
        return Delivery.objects.get(order=order, kind=kind)
    requeued = (
        Delivery.objects.filter(order=order, kind=kind)
        .exclude(status=Delivery.Status.PENDING)
        .exclude(sent_at__gt=now - RESEND_MIN_INTERVAL)
        .update(status=Delivery.Status.PENDING, attempts=0, next_attempt_at=now, last_error="")
    )
    delivery = Delivery.objects.get(order=order, kind=kind)
    if not requeued and delivery.status != Delivery.Status.PENDING:
        assert delivery.sent_at is not None
        wait = RESEND_MIN_INTERVAL - (now - delivery.sent_at)
        raise _conflict(
            "delivery_resend_too_soon",
            _("The tickets were just sent; try again in a minute."),
            {"retry_after": max(int(wait.total_seconds()) + 1, 1)},
        )
    return delivery
