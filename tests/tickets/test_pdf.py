"""The tickets PDF: one page per valid ticket, Chinese that renders, the QR of the current code
(or, for a rotating-code session, where to find the live code), and the calendar entry."""

from __future__ import annotations

import datetime as dt
import os
import re
from decimal import Decimal
from io import BytesIO
from typing import cast

import pytest
import segno
from icalendar import Calendar
from pypdf import PdfReader
from pypdf.generic import DictionaryObject
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, Session
from piaowu.catalog.services import TierSpec
from piaowu.core.errors import DomainError
from piaowu.inventory.services import hold_quantity
from piaowu.orders.services import order_checkout
from piaowu.tickets.delivery import (
    CID_FALLBACK_FONT,
    CJK_FONT_NAME,
    cjk_font,
    order_calendar_ics,
    order_tickets_pdf,
    register_cjk_font,
)
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import ticket_qr_text
from piaowu.tickets.services import ticket_reissue, ticket_void
from tests.factories import make_event, make_session, make_venue
from tests.orders.conftest import PHONE, web_channel
from tests.tickets.conftest import MakePaidOrder

NOTO_CFF = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


def pages_text(pdf: bytes) -> list[str]:
    """Each page's text, runs of white space (line breaks of wrapped text) made one space."""
    return [" ".join(page.extract_text().split()) for page in PdfReader(BytesIO(pdf)).pages]


def font_names(pdf: bytes) -> set[str]:
    """The base font names a PDF's pages use."""
    names: set[str] = set()
    for page in PdfReader(BytesIO(pdf)).pages:
        resources = cast(DictionaryObject, page["/Resources"].get_object())
        fonts = cast(DictionaryObject, resources["/Font"].get_object())
        for ref in fonts.values():
            names.add(str(cast(DictionaryObject, ref.get_object())["/BaseFont"]))
    return names


def filled_rectangles(pdf: bytes, page: int) -> int:
    content = PdfReader(BytesIO(pdf)).pages[page].get_contents()
    assert content is not None
    return len(re.findall(rb" re f\b", content.get_data()))


def qr_runs(text: str) -> int:
    """How many horizontal runs of dark modules the QR code of `text` has."""
    runs = 0
    for row in segno.make(text, error="m").matrix_iter(scale=1, border=4):
        previous = False
        for dark in row:
            if dark and not previous:
                runs += 1
            previous = bool(dark)
    return runs


def tokyo_session(organizer: Organizer, *, rotating_qr: bool = False) -> Session:
    venue = make_venue(
        organizer,
        name="东京巨蛋",
        city="东京",
        timezone_name="Asia/Tokyo",
        address="文京区后乐 1-3-61",
    )
    event = make_event(organizer, title="周杰伦 嘉年华 世界巡回演唱会")
    return make_session(
        event,
        venue=venue,
        starts_in=dt.timedelta(days=5),
        capacity_mode=CapacityMode.GENERAL,
        capacity=30,
        tiers=[TierSpec(code="ga", name="站席", price=Decimal("880"))],
        rotating_qr=rotating_qr,
    )


def test_a_page_per_ticket_with_serial_event_time_venue_seat_tier_and_order_code(
    paid_order: MakePaidOrder,
) -> None:
    order = paid_order()
    tickets = list(Ticket.objects.filter(order=order).order_by("id"))

    texts = pages_text(order_tickets_pdf(order))

    assert len(texts) == len(tickets) == 2
    session = order.session
    local = session.local_starts_at
    for text, ticket in zip(texts, tickets, strict=True):
        assert ticket.serial in text
        assert session.event.title in text  # Chinese: 演出 N
        assert f"{local:%Y-%m-%d %H:%M}" in text
        assert session.venue.name in text and session.venue.address in text
        assert ticket.seat is not None
        assert f"Row {ticket.seat.row_label}, seat {ticket.seat.number_label}" in text
        assert ticket.tier.name in text
        assert order.code in text
    # Each page carries only its own ticket.
    assert tickets[1].serial not in texts[0]


def test_chinese_is_drawn_with_an_embedded_cjk_font(paid_order: MakePaidOrder) -> None:
    order = paid_order()
    title = order.session.event.title

    pdf = order_tickets_pdf(order)

    used = font_names(pdf)
    if cjk_font() == CID_FALLBACK_FONT:  # no TrueType CJK font on this machine
        assert "/STSong-Light" in used
    else:
        # A subset of the TrueType font is embedded, and it has a glyph for every character.
        font = pdfmetrics.getFont(cjk_font())
        assert isinstance(font, TTFont)
        face = font.face.name.decode()
        assert any(name.endswith(face) or f"{face}-" in name for name in used), used
        assert all(ord(char) in font.face.charToGlyph for char in title if not char.isascii())
    assert title in pages_text(pdf)[0]


def test_a_truetype_font_is_preferred_and_cff_or_missing_fonts_fall_back_to_stsong() -> None:
    # Noto CJK (CFF outlines) cannot be embedded by reportlab; a missing file is skipped.
    assert register_cjk_font(["/nonexistent/font.ttc", NOTO_CFF]) == CID_FALLBACK_FONT
    wqy = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
    if not os.path.isfile(wqy):
        pytest.skip("fonts-wqy-zenhei is not installed (apt-get install fonts-wqy-zenhei)")
    assert register_cjk_font(["/nonexistent/font.ttc", NOTO_CFF, wqy]) == CJK_FONT_NAME


def test_the_page_draws_the_qr_of_the_current_code_and_a_reissue_changes_it(
    paid_order: MakePaidOrder,
) -> None:
    order = paid_order(ga=1)
    ticket = Ticket.objects.get(order=order)
    first = order_tickets_pdf(order)
    assert filled_rectangles(first, 0) == qr_runs(ticket_qr_text(ticket))

    ticket_reissue(ticket=ticket, actor=None, reason="test")
    ticket.refresh_from_db()
    second = order_tickets_pdf(order)

    assert filled_rectangles(second, 0) == qr_runs(ticket_qr_text(ticket))
    assert first != second


def test_the_same_order_gives_the_same_bytes(paid_order: MakePaidOrder) -> None:
    order = paid_order()
    assert order_tickets_pdf(order) == order_tickets_pdf(order)


def test_general_admission_and_the_venue_time_zone(
    organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    session = tokyo_session(organizer)
    order = paid_order(session=session, ga=2)

    texts = pages_text(order_tickets_pdf(order))

    assert len(texts) == 2
    tokyo = session.starts_at.astimezone(dt.timezone(dt.timedelta(hours=9)))
    for text in texts:
        assert "General admission" in text
        assert f"{tokyo:%Y-%m-%d %H:%M} (Asia/Tokyo)" in text
        assert "站席" in text
        assert "周杰伦" in text


def test_a_rotating_code_ticket_prints_no_scannable_code(
    organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    order = paid_order(session=tokyo_session(organizer, rotating_qr=True), ga=1)
    ticket = Ticket.objects.get(order=order)
    assert ticket.rotating

    pdf = order_tickets_pdf(order)
    text = pages_text(pdf)[0]

    assert "Show the live code on your phone" in text
    assert ticket.serial in text
    assert filled_rectangles(pdf, 0) == 0  # the frame is stroked, no QR modules are filled


def test_void_tickets_are_left_out(paid_order: MakePaidOrder) -> None:
    order = paid_order()
    void, kept = list(Ticket.objects.filter(order=order).order_by("id"))
    ticket_void(ticket=void, actor=None, reason="refund")

    texts = pages_text(order_tickets_pdf(order))

    assert len(texts) == 1
    assert kept.serial in texts[0] and void.serial not in texts[0]

    ticket_void(ticket=kept, actor=None, reason="refund")
    with pytest.raises(DomainError) as error:
        order_tickets_pdf(order)
    assert error.value.code == "no_valid_tickets"


def test_an_unpaid_order_has_no_pdf_and_no_calendar_entry(
    organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    session = tokyo_session(organizer)
    hold = hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="guest")
    order = order_checkout(
        hold=hold, channel=web_channel(organizer), holder_key="guest", contact_phone=PHONE
    )

    for make in (order_tickets_pdf, order_calendar_ics):
        with pytest.raises(DomainError) as error:
            make(order)
        assert error.value.code == "order_not_paid"
        assert error.value.status == 409


def test_the_calendar_entry_has_the_session_in_utc_and_the_venue_address(
    organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    session = tokyo_session(organizer)
    order = paid_order(session=session, ga=1)

    calendar = Calendar.from_ical(order_calendar_ics(order))
    events = list(calendar.walk("VEVENT"))

    assert len(events) == 1
    event = events[0]
    start = event.decoded("dtstart")
    assert start.utcoffset() == dt.timedelta(0)
    assert start == session.starts_at.replace(microsecond=0)
    assert event.decoded("dtend") == session.ends_at.replace(microsecond=0)
    assert b"DTSTART:" in order_calendar_ics(order) and b"Z\r\n" in order_calendar_ics(order)
    assert str(event["summary"]) == "周杰伦 嘉年华 世界巡回演唱会"
    assert "文京区后乐 1-3-61" in str(event["location"])
    assert order.code in str(event["description"])
    assert str(event["url"]).endswith(f"/orders/{order.public_id}/tickets/")
