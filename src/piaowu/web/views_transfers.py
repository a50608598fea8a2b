"""Ticket transfer pages: the tickets a customer holds (bought and received), one ticket's
e-ticket page, the "Transfer" form with its pending state and cancel button, and the page at the
link the receiver gets, which asks them to sign in and then accept.

A ticket's page is open to whoever may see its order (`tickets.selectors.ticket_get_for_buyer`)
and to its holder; its QR (and a rotating ticket's secret) is rendered for the current holder
only (`ticket_held_by`). The rules are `aftersales.services.transfers`'; their refusals are
shown in the customer's language.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from piaowu.aftersales.models import Transfer
from piaowu.aftersales.selectors.transfers import (
    ticket_holder_id,
    tickets_held_by,
    transfer_get_by_code,
    transfer_get_for_sender,
    transfer_pending_for_ticket,
    transfer_state,
    transfers_sent,
)
from piaowu.aftersales.services.transfers import (
    transfer_accept,
    transfer_cancel,
    transfer_cutoff,
    transfer_offer,
)
from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import ticket_get_for_buyer, ticket_held_by
from piaowu.web.views import _customer, _granted_orders, _holder_key, map_links, seat_label
from piaowu.web.views_tickets import TicketCard, _private, ticket_card

TICKETS_PAGE_SIZE = 20
SENT_SHOWN = 10


class TransferForm(forms.Form):
    receiver_name = forms.CharField(
        label=gettext_lazy("Receiver's name"),
        max_length=80,
        help_text=gettext_lazy("The name the ticket will carry, as on their ID."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    receiver_contact = forms.CharField(
        label=gettext_lazy("Receiver's mobile phone or e-mail"),
        max_length=254,
        help_text=gettext_lazy("We send them a link and a code to accept the ticket."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


def _ticket(request: HttpRequest, public_id: str) -> Ticket:
    """The ticket if this browser may see it (its order's buyer, or its holder); else 404."""
    try:
        return ticket_get_for_buyer(
            public_id=public_id,
            customer=_customer(request),
            holder_key=_holder_key(request),
            granted=_granted_orders(request),
        )
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc


def _card(request: HttpRequest, ticket: Ticket, pending: Transfer | None) -> TicketCard:
    customer = _customer(request)
    return ticket_card(
        ticket,
        1,
        held=ticket_held_by(ticket, customer),
        transferable=(
            ticket.session.transfers_allowed
            and customer is not None
            and ticket_holder_id(ticket) == customer.pk
        ),
        transfer_pending=pending is not None,
    )


def _ticket_context(request: HttpRequest, ticket: Ticket) -> dict[str, Any]:
    session = ticket.session
    pending = transfer_pending_for_ticket(ticket)
    card = _card(request, ticket, pending)
    return {
        "ticket": ticket,
        "card": card,
        "cards": [card],
        "session": session,
        "event": session.event,
        "venue": session.venue,
        "map_links": map_links(session.venue),
        "pending": pending,
        "step_seconds": settings.PIAOWU_ROTATING_QR_STEP_SECONDS,
        "server_ms": int(clock.now().timestamp() * 1000),
    }


# --- The tickets a customer holds --------------------------------------------------------------


@login_required
@require_GET
def my_tickets(request: HttpRequest) -> HttpResponse:
    customer = _customer(request)
    assert customer is not None  # login_required
    page = Paginator(tickets_held_by(customer), TICKETS_PAGE_SIZE).get_page(request.GET.get("page"))
    now = clock.now()
    sent = [
        (transfer, transfer_state(transfer, now))
        for transfer in transfers_sent(customer)[:SENT_SHOWN]
    ]
    return render(request, "web/transfer_my_tickets.html", {"page": page, "sent": sent})


@require_GET
def ticket_page(request: HttpRequest, public_id: str) -> HttpResponse:
    """One ticket's e-ticket: the QR for its holder, "transferred" for the buyer who gave it
    away."""
    ticket = _ticket(request, public_id)
    return _private(render(request, "web/transfer_ticket.html", _ticket_context(request, ticket)))


# --- Offering and cancelling -------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def ticket_transfer(request: HttpRequest, public_id: str) -> HttpResponse:
    """The transfer form; while a transfer is pending, its state and a cancel button."""
    ticket = _ticket(request, public_id)
    customer = _customer(request)
    assert customer is not None  # login_required
    form = TransferForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            transfer_offer(
                ticket=ticket,
                sender=customer,
                receiver_contact=form.cleaned_data["receiver_contact"],
                receiver_name=form.cleaned_data["receiver_name"],
            )
        except DomainError as exc:
            field = exc.details.get("field")
            form.add_error(field if field in form.fields else None, str(exc.message))
        else:
            messages.success(
                request,
                _("We sent the ticket to %(name)s. It moves to them once they accept it.")
                % {"name": form.cleaned_data["receiver_name"]},
            )
            return redirect("web:ticket_transfer", public_id=ticket.public_id)
    context = _ticket_context(request, ticket)
    context.update(
        {
            "form": form,
            "cutoff": transfer_cutoff(ticket.session),
            "offer_hours": 48,
        }
    )
    status = 400 if form.errors else 200
    return _private(render(request, "web/transfer.html", context, status=status))


@login_required
@require_POST
def transfer_cancel_view(request: HttpRequest, public_id: str) -> HttpResponse:
    customer = _customer(request)
    assert customer is not None  # login_required
    try:
        transfer = transfer_get_for_sender(public_id=public_id, user=customer)
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc
    try:
        transfer_cancel(transfer=transfer, actor=customer)
    except DomainError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("Transfer cancelled: the ticket stays yours."))
    return redirect("web:ticket_transfer", public_id=transfer.ticket.public_id)


# --- Accepting ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def transfer_accept_view(request: HttpRequest, code: str) -> HttpResponse:
    """What the receiver's link opens: the ticket offered, then "sign in" or "accept"."""
    try:
        transfer = transfer_get_by_code(code)
    except DomainError as exc:
        return render(
            request,
            "web/transfer_accept.html",
            {"transfer": None, "problem": str(exc.message)},
            status=exc.status,
        )
    customer = _customer(request)
    here = reverse("web:transfer_accept", kwargs={"code": transfer.code})
    problem = ""
    status = 200
    if request.method == "POST":
        if customer is None:
            return redirect(f"{reverse('web:login')}?next={here}")
        try:
            accepted = transfer_accept(code=transfer.code, receiver=customer)
        except DomainError as exc:
            problem = str(exc.message)
            status = exc.status
            transfer.refresh_from_db()
        else:
            messages.success(request, _("The ticket is yours. Show this code at the gate."))
            return redirect("web:ticket", public_id=accepted.ticket.public_id)
    ticket = transfer.ticket
    context: dict[str, Any] = {
        "transfer": transfer,
        "state": transfer_state(transfer),
        "ticket": ticket,
        "session": ticket.session,
        "event": ticket.session.event,
        "venue": ticket.session.venue,
        "seat": seat_label(ticket.seat) if ticket.seat is not None else "",
        "is_sender": customer is not None and customer.pk == transfer.sender_id,
        "is_receiver": customer is not None and customer.pk == transfer.receiver_id,
        "problem": problem,
        "here": here,
    }
    return render(request, "web/transfer_accept.html", context, status=status)
