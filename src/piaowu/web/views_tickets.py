"""Customer e-ticket pages: an order's tickets with their QR codes (static, or rotating every
few seconds), the calendar and PDF downloads, and redeeming a code for a ticket.

Who may see an order's tickets is exactly who may see the order (`views._buyer_order`); anyone
else gets the site's 404, like for an unknown id. A rotating ticket's page carries its
per-ticket secret so the phone can make the time codes offline; the page is never cached.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from piaowu.aftersales.selectors.transfers import ticket_holder_id, transfers_pending_by_ticket
from piaowu.catalog.models import Audience, Seat, Session
from piaowu.catalog.selectors import sales_channel_for, session_get
from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound
from piaowu.inventory.holders import holder_key_for
from piaowu.orders.models import Order
from piaowu.orders.states import PAID_STATES
from piaowu.tickets import delivery
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import (
    redeemable_sessions,
    redemption_code_get,
    ticket_held_by,
    ticket_qr_text,
    ticket_rotation_secret,
    tickets_for_order,
)
from piaowu.tickets.services import redemption_redeem
from piaowu.web.forms import RedeemForm
from piaowu.web.views import _buyer_order, _customer, _grant_order, map_links, seat_label

# --- The e-ticket page -------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketCard:
    """One ticket as its card shows it. `qr_text` is set for a valid static ticket (drawn on
    the server); a valid rotating ticket has `rotation_static` + `rotation_secret` instead
    (drawn by ticket.js); a void ticket has neither, nor has a ticket the viewer transferred
    to someone else (`held` false). `transferable`: the card offers "Transfer"."""

    ticket: Ticket
    number: int
    void: bool
    qr_text: str
    rotation_static: str
    rotation_secret: str
    seat_label: str  # "" for general admission
    entrance: str
    tier_name: str
    audience: str
    held: bool = True
    transferable: bool = False
    transfer_pending: bool = False


def ticket_card(
    ticket: Ticket,
    number: int,
    *,
    held: bool = True,
    transferable: bool = False,
    transfer_pending: bool = False,
) -> TicketCard:
    void = ticket.state != Ticket.State.VALID
    hidden = void or not held  # a transferred ticket's code is its new holder's alone
    static = "" if hidden else ticket_qr_text(ticket)
    rotating = ticket.rotating and not hidden
    seat: Seat | None = ticket.seat
    tier = ticket.tier
    return TicketCard(
        ticket=ticket,
        number=number,
        void=void,
        qr_text="" if rotating else static,
        rotation_static=static if rotating else "",
        rotation_secret=(
            base64.b64encode(ticket_rotation_secret(ticket)).decode("ascii") if rotating else ""
        ),
        seat_label=seat_label(seat) if seat is not None else "",
        entrance=seat.section.entrance if seat is not None else "",
        tier_name=tier.tr("name"),
        audience=tier.get_audience_display() if tier.audience != Audience.ANY else "",
        held=held,
        transferable=transferable and held and not void,
        transfer_pending=transfer_pending,
    )


def _paid_order(request: HttpRequest, public_id: str) -> Order | HttpResponse:
    """The buyer's order (404 for anyone else), or a redirect to its page while unpaid."""
    order = _buyer_order(request, public_id)
    if order.state not in PAID_STATES:
        return redirect("web:order", public_id=order.public_id)
    return order


def _private(response: HttpResponse) -> HttpResponse:
    # The page and files hold ticket codes (and rotating secrets): never in a shared cache.
    patch_cache_control(response, private=True, no_store=True, max_age=0)
    return response


@require_GET
def order_tickets(request: HttpRequest, public_id: str) -> HttpResponse:
    order = _paid_order(request, public_id)
    if isinstance(order, HttpResponse):
        return order
    session = order.session
    venue = session.venue
    customer = _customer(request)
    tickets = list(tickets_for_order(order))
    pending = transfers_pending_by_ticket(t.pk for t in tickets) if customer else {}
    cards = [
        ticket_card(
            t,
            n,
            held=ticket_held_by(t, customer),
            transferable=(
                session.transfers_allowed
                and customer is not None
                and ticket_holder_id(t) == customer.pk
            ),
            transfer_pending=t.pk in pending,
        )
        for n, t in enumerate(tickets, start=1)
    ]
    context = {
        "order": order,
        "session": session,
        "event": session.event,
        "venue": venue,
        "cards": cards,
        "map_links": map_links(venue),
        "any_rotating": any(card.rotation_secret for card in cards),
        "any_valid": any(not card.void and card.held for card in cards),
        "step_seconds": settings.PIAOWU_ROTATING_QR_STEP_SECONDS,
        # The server's clock, so a phone whose clock is off still shows current codes.
        "server_ms": int(clock.now().timestamp() * 1000),
    }
    return _private(render(request, "web/tickets.html", context))


def _download_or_back(
    request: HttpRequest,
    order: Order,
    make: Callable[[], bytes],
    content_type: str,
    filename: str,
) -> HttpResponse:
    """The file, or back to the tickets page with the reason (e.g. `no_valid_tickets`)."""
    try:
        body = make()
    except DomainError as exc:
        messages.error(request, str(exc.message))
        return redirect("web:order_tickets", public_id=order.public_id)
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return _private(response)


@require_GET
def order_tickets_ics(request: HttpRequest, public_id: str) -> HttpResponse:
    order = _paid_order(request, public_id)
    if isinstance(order, HttpResponse):
        return order
    return _download_or_back(
        request,
        order,
        lambda: delivery.order_calendar_ics(order),
        "text/calendar; charset=utf-8",
        f"piaowu-{order.code}.ics",
    )


@require_GET
def order_tickets_pdf(request: HttpRequest, public_id: str) -> HttpResponse:
    order = _paid_order(request, public_id)
    if isinstance(order, HttpResponse):
        return order
    return _download_or_back(
        request,
        order,
        lambda: delivery.order_tickets_pdf(order),
        "application/pdf",
        f"piaowu-tickets-{order.code}.pdf",
    )


# --- Redeeming a code --------------------------------------------------------------------------


NO_SESSION_FOR_CODE = gettext_lazy(
    "No session can be booked with this code right now. Try again later, or ask whoever gave "
    "you the code."
)


@require_http_methods(["GET", "POST"])
def redeem(request: HttpRequest) -> HttpResponse:
    """Step 1 (GET `?code=`): the sessions the code can be redeemed for. Step 2 (POST): one
    ticket for the chosen session at no charge, then its e-tickets."""
    customer = _customer(request)
    posted = request.method == "POST"
    data = request.POST if posted else (request.GET if "code" in request.GET else None)
    form = RedeemForm(data, guest=customer is None, redeeming=posted)
    sessions: list[Session] = []
    code = ""
    if data is not None:
        form.is_valid()
        code = form.cleaned_data.get("code", "")
    if code:
        sessions = _sessions_for_code(form, code)
    if posted and code and not form.errors:
        order = _redeem(request, form, code)
        if order is not None:
            _grant_order(request, order)
            return redirect("web:order_tickets", public_id=order.public_id)
        if "code" in form.errors:  # used or expired meanwhile: back to step 1
            sessions = []
    chosen = str(form.data.get("session", "")) if data is not None else ""
    if not chosen and len(sessions) == 1:
        chosen = sessions[0].public_id
    context = {
        "form": form,
        "sessions": sessions,
        "chosen": chosen,
        "step": 2 if sessions else 1,
    }
    return render(request, "web/redeem.html", context, status=400 if form.errors else 200)


def _sessions_for_code(form: RedeemForm, code: str) -> list[Session]:
    """The sessions the code is good for; an unknown, used or expired code (or one with no
    session on sale) becomes an error on the code field, in the service's words."""
    try:
        redemption_code_get(code)
    except DomainError as exc:
        if "code" not in form.errors:
            form.add_error("code", str(exc.message))
        return []
    sessions = list(redeemable_sessions(code))
    if not sessions and "code" not in form.errors:
        form.add_error("code", NO_SESSION_FOR_CODE)
    return sessions


def _redeem(request: HttpRequest, form: RedeemForm, code: str) -> Order | None:
    """Call the service; its refusal becomes a form error (on the field it names)."""
    try:
        session = session_get(form.cleaned_data["session"])
    except NotFound:
        form.add_error("session", _("Choose one of the sessions listed."))
        return None
    customer = _customer(request)
    try:
        return redemption_redeem(
            code=code,
            session=session,
            channel=sales_channel_for(session),
            holder_key=holder_key_for(user=customer, session=request.session, create=True),
            customer=customer,
            contact_phone=form.cleaned_data["phone"],
            contact_email=form.cleaned_data["email"],
        )
    except DomainError as exc:
        field = "code" if exc.code.startswith("redemption_code_") else exc.details.get("field")
        form.add_error(field if field in form.fields else None, str(exc.message))
        return None
