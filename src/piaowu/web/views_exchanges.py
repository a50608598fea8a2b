"""Exchange pages (改签): from a paid order's page, "Change session" → choose the tickets and
the session / ticket type (best available seats) → see the old value, the new value, the fee
and what you pay or get back → confirm → pay the new order if it costs more.

Open to whoever may see the order (`web.views._buyer_order`); the rules are
`aftersales.services.exchanges`' and their refusals are shown in the customer's language.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from piaowu.aftersales.selectors.exchanges import (
    ExchangeOption,
    ExchangeQuote,
    exchange_quote,
    exchange_tickets,
)
from piaowu.aftersales.services.exchanges import exchange_start
from piaowu.core.errors import DomainError
from piaowu.inventory.holders import grant_order
from piaowu.orders.models import Order
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import seat_label
from piaowu.web.views import _buyer_order, _customer


def _chosen_tickets(request: HttpRequest) -> list[str] | None:
    """The ticket ids ticked on the page (None: every valid ticket of the order)."""
    source = request.POST if request.method == "POST" else request.GET
    chosen = [t for t in source.getlist("tickets") if t.strip()]
    return chosen or None


def _target(request: HttpRequest) -> tuple[str, str]:
    """`target=<session id>:<tier code>` of the option chosen."""
    source = request.POST if request.method == "POST" else request.GET
    session_id, _sep, tier_code = source.get("target", "").partition(":")
    return session_id, tier_code


def _option(quote: ExchangeQuote, session_id: str, tier_code: str) -> ExchangeOption | None:
    return next(
        (
            option
            for option in quote.options
            if option.session.public_id == session_id and option.tier.code == tier_code
        ),
        None,
    )


def _rows(tickets: list[Ticket], chosen: set[str]) -> list[dict[str, Any]]:
    return [
        {
            "ticket": ticket,
            "seat": seat_label(ticket),
            "tier_name": ticket.tier.tr("name"),
            "chosen": ticket.public_id in chosen,
        }
        for ticket in tickets
    ]


def _context(order: Order, quote: ExchangeQuote) -> dict[str, Any]:
    session = order.session
    chosen = {ticket.public_id for ticket in quote.tickets}
    return {
        "order": order,
        "session": session,
        "event": session.event,
        "venue": session.venue,
        "quote": quote,
        "tickets": _rows(quote.tickets, chosen),
    }


@require_GET
def exchange_page(request: HttpRequest, public_id: str) -> HttpResponse:
    """Choose the tickets and where to move them; each option shows what it would cost."""
    order = _buyer_order(request, public_id)
    quote = exchange_quote(order=order, ticket_ids=_chosen_tickets(request))
    if not quote.tickets:
        quote = exchange_quote(order=order)  # a stale selection: start again with all tickets
    context = _context(order, quote)
    chosen = {ticket.public_id for ticket in quote.tickets}
    context["all_tickets"] = _rows(exchange_tickets(order), chosen)
    return render(request, "web/exchange.html", context)


@require_http_methods(["GET", "POST"])
def exchange_confirm(request: HttpRequest, public_id: str) -> HttpResponse:
    """The exact amounts for the chosen option; POST makes the exchange."""
    order = _buyer_order(request, public_id)
    ticket_ids = _chosen_tickets(request)
    quote = exchange_quote(order=order, ticket_ids=ticket_ids)
    session_id, tier_code = _target(request)
    option = _option(quote, session_id, tier_code)
    back = reverse("web:exchange", kwargs={"public_id": order.public_id})
    if option is None or not quote.tickets:
        messages.error(request, _("Choose the tickets and a session to exchange them for."))
        return redirect(back)
    error = ""
    if request.method == "POST" and quote.ok:
        try:
            exchange = exchange_start(
                order=order,
                session=option.session,
                ticket_ids=[t.public_id for t in quote.tickets],
                tier_code=option.tier.code,
                actor=_customer(request),
            )
        except DomainError as exc:
            error = str(exc.message)
        else:
            new_order = exchange.to_order
            if new_order is None:  # pragma: no cover - the service always sets it
                raise Http404
            grant_order(request.session, new_order.public_id)
            if exchange.state == exchange.State.COMPLETED:
                messages.success(request, _completed_message(exchange.refund_id is not None))
            else:
                messages.info(
                    request,
                    _(
                        "Pay the new order to complete the exchange. Your old tickets stay "
                        "valid until then."
                    ),
                )
            return redirect("web:order", public_id=new_order.public_id)
    context = _context(order, quote)
    context.update(
        {
            "option": option,
            "target": f"{option.session.public_id}:{option.tier.code}",
            "target_session": option.session,
            "error": error,
        }
    )
    status = 400 if error or (request.method == "POST" and not quote.ok) else 200
    return render(request, "web/exchange_confirm.html", context, status=status)


def _completed_message(refunded: bool) -> str:
    if refunded:
        return _(
            "Exchanged. Here are your new tickets; the difference is being refunded to you. "
            "Your old tickets no longer admit anyone."
        )
    return _("Exchanged. Here are your new tickets; your old tickets no longer admit anyone.")
