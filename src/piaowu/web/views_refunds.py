"""Customer refund pages: choose the tickets (each with its price, fee and what comes back, and
the refund rule), review the exact amount, confirm; then follow the refund's progress.

Who may see these pages is who may see the order (`views._buyer_order`); anyone else gets the
site's 404. Asking for a refund of an order bought with an account needs that account signed
in (`aftersales.selectors.refunds.refund_sign_in_required`). The rules live in
`aftersales.services.refunds`; these views parse, call and render.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from piaowu.aftersales.models import Refund
from piaowu.aftersales.policy import Quote, TicketQuote
from piaowu.aftersales.selectors.refunds import (
    order_refund_options,
    order_tickets,
    refund_get_for_buyer,
    refund_progress,
    refund_sign_in_required,
)
from piaowu.aftersales.services.refunds import refund_quote, refund_request
from piaowu.core.errors import DomainError, NotFound
from piaowu.orders.models import Order
from piaowu.tickets.models import Ticket
from piaowu.web.views import _buyer_order, _customer, _granted_orders, _holder_key, seat_label

#: Steps of a refund as the customer reads them on its timeline.
TIMELINE: dict[str, Any] = {
    Refund.State.REQUESTED: gettext_lazy("You asked for the refund"),
    Refund.State.APPROVED: gettext_lazy("Approved: the tickets are cancelled, the seats released"),
    Refund.State.PROCESSING: gettext_lazy("Sent to the payment provider"),
    Refund.State.SUCCEEDED: gettext_lazy("The money is on its way back to how you paid"),
    Refund.State.FAILED: gettext_lazy(
        "The payment provider could not refund yet; our staff have been told and will retry"
    ),
    Refund.State.REJECTED: gettext_lazy("Not approved"),
}
#: States after which the refund page no longer refreshes itself.
SETTLED = frozenset({Refund.State.SUCCEEDED, Refund.State.REJECTED, Refund.State.FAILED})
#: Notes of the history the customer sees: their own reason and why staff refused.
CUSTOMER_NOTES = frozenset({Refund.State.REQUESTED, Refund.State.REJECTED})
REFRESH_SECONDS = 5


@dataclass(frozen=True)
class TicketRow:
    """One ticket on the refund pages."""

    ticket: Ticket
    label: str
    tier_name: str
    gross: Decimal
    fee: Decimal
    amount: Decimal
    refusal: str  # a message; "" when the ticket may be refunded


def _label(ticket: Ticket) -> str:
    if ticket.seat is not None:
        return seat_label(ticket.seat)
    return _("%(tier)s · ticket %(serial)s") % {
        "tier": ticket.tier.tr("name"),
        "serial": ticket.serial,
    }


def _row(item: TicketQuote) -> TicketRow:
    return TicketRow(
        ticket=item.ticket,
        label=_label(item.ticket),
        tier_name=item.ticket.tier.tr("name"),
        gross=item.gross,
        fee=item.fee,
        amount=item.amount,
        refusal=item.refusal_message,
    )


def _order_context(order: Order) -> dict[str, Any]:
    session = order.session
    return {"order": order, "session": session, "event": session.event, "venue": session.venue}


def _private(response: HttpResponse) -> HttpResponse:
    patch_cache_control(response, private=True, no_store=True, max_age=0)
    return response


def _login_url(request: HttpRequest) -> str:
    return reverse("web:login") + "?" + urlencode({"next": request.get_full_path()})


# --- Choose, review, confirm ---------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def order_refund(request: HttpRequest, public_id: str) -> HttpResponse:
    """GET: the tickets to choose from. POST `step=review`: the chosen tickets' exact amount.
    POST `step=confirm`: ask for the refund (if the amount is still what was shown)."""
    order = _buyer_order(request, public_id)
    options = order_refund_options(order)
    if not options.paid:
        messages.error(request, _("Only a paid order can be refunded."))
        return redirect("web:order", public_id=order.public_id)
    customer = _customer(request)
    sign_in = refund_sign_in_required(order, customer)
    if request.method == "POST":
        if sign_in:
            messages.error(request, _("Sign in with the account that bought this order first."))
            return redirect(_login_url(request))
        return _refund_post(request, order)
    context = {
        **_order_context(order),
        "rule_lines": options.quote.rule_lines if options.quote else [],
        "rows": [_row(item) for item in options.quote.items] if options.quote else [],
        "void_rows": [(t, _label(t)) for t in options.void_tickets],
        "can_refund": options.can_refund,
        "sign_in_url": _login_url(request) if sign_in else "",
    }
    return _private(render(request, "web/refund_choose.html", context))


def _chosen(request: HttpRequest, order: Order) -> list[Ticket] | None:
    ids = request.POST.getlist("tickets")
    if not ids or len(set(ids)) != len(ids):
        return None
    tickets = order_tickets(order, ids=ids)
    return tickets if len(tickets) == len(ids) else None


def _refund_post(request: HttpRequest, order: Order) -> HttpResponse:
    tickets = _chosen(request, order)
    if tickets is None:
        messages.error(request, _("Choose the tickets to refund."))
        return redirect("web:order_refund", public_id=order.public_id)
    quote = refund_quote(order=order, tickets=tickets)
    refused = quote.first_refusal()
    if refused is not None:
        messages.error(request, f"{_label(refused.ticket)}: {refused.refusal_message}")
        return redirect("web:order_refund", public_id=order.public_id)
    expected = request.POST.get("expected", "")
    if request.POST.get("step") != "confirm" or expected != str(quote.amount.amount):
        changed = request.POST.get("step") == "confirm"
        return _confirm_page(request, order, quote, changed=changed)
    try:
        refund = refund_request(
            order=order,
            tickets=tickets,
            actor=_customer(request),
            kind=Refund.Kind.CUSTOMER,
            reason=request.POST.get("reason", "").strip()[:200],
        )
    except DomainError as exc:
        messages.error(request, str(exc.message))
        return redirect("web:order_refund", public_id=order.public_id)
    if refund.state == Refund.State.REQUESTED:
        messages.success(request, _("Your refund request was sent; staff will review it."))
    else:
        messages.success(request, _("Your refund is under way."))
    return redirect("web:refund", public_id=refund.public_id)


def _confirm_page(
    request: HttpRequest, order: Order, quote: Quote, *, changed: bool
) -> HttpResponse:
    context = {
        **_order_context(order),
        "rows": [_row(item) for item in quote.items],
        "quote": quote,
        "expected": str(quote.amount.amount),
        "changed": changed,
        "reason": request.POST.get("reason", "")[:200],
    }
    return _private(render(request, "web/refund_confirm.html", context))


# --- Progress -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    state: str
    text: str
    note: str


@require_GET
def refund_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        refund = refund_get_for_buyer(
            public_id=public_id,
            customer=_customer(request),
            holder_key=_holder_key(request),
            granted=_granted_orders(request),
        )
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc
    order = refund.order
    zone = order.session.venue.tzinfo
    timeline = [
        TimelineEntry(
            at=entry.at.astimezone(zone),
            state=entry.to_state,
            text=str(TIMELINE.get(entry.to_state, entry.to_state)),
            note=entry.note if entry.to_state in CUSTOMER_NOTES else "",
        )
        for entry in refund.history.all()
    ]
    context = {
        **_order_context(order),
        "refund": refund,
        "steps": refund_progress(refund),
        "timeline": timeline,
        "items": [(item, _label(item.ticket)) for item in refund.items.all()],
        "settled": refund.state in SETTLED,
        "refresh_seconds": REFRESH_SECONDS,
    }
    return _private(render(request, "web/refund.html", context))
