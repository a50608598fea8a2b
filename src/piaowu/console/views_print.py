"""Staff pages for printing tickets: find an order, print its tickets (80 mm thermal or A4),
see its print log.

Staff with `orders.sell` at the order's organizer only: anyone else gets 403 (no such
permission anywhere) or 404 (not one of their organizers' orders, like an unknown id). A print
is a POST that logs it through `tickets.printing` (a second print of a ticket is a reprint that
voids the earlier paper) and answers the printable page, which opens the browser's print
dialog. Each print button carries a one-time key: submitting the same form again (reload,
double click) shows the same print instead of reprinting.
"""

from __future__ import annotations

import secrets
from typing import Any

import segno
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from piaowu.accounts.models import User
from piaowu.accounts.permissions import Perm, organizer_ids_with
from piaowu.core.errors import DomainError, NotFound, PermissionDenied
from piaowu.core.idempotency import idempotent, request_fingerprint
from piaowu.tickets.delivery import entrance_label, session_time_label, ticket_place_label
from piaowu.tickets.models import PrintLog, Ticket
from piaowu.tickets.printing import (
    order_find_for_printing,
    order_get_for_printing,
    print_get_for_printing,
    prints_for_order,
    ticket_get_for_printing,
    ticket_print_record,
)
from piaowu.tickets.selectors import ticket_qr_text, tickets_for_order

DEVICE_SESSION_KEY = "piaowu_print_device"
LAYOUT_TEMPLATES = {
    PrintLog.Layout.THERMAL_80: "console/print/thermal80.html",
    PrintLog.Layout.A4: "console/print/a4.html",
}


def _staff(request: HttpRequest) -> User:
    """The signed-in user, if they may print at some organizer (else 403)."""
    user = request.user
    assert isinstance(user, User)
    if organizer_ids_with(user, Perm.ORDERS_SELL) == set():
        raise PermissionDenied(_("You do not have permission to print tickets."))
    return user


def _forbidden(request: HttpRequest, error: DomainError) -> HttpResponse:
    return render(
        request,
        "console/print/index.html",
        {**admin.site.each_context(request), "title": _("Print tickets"), "error": error.message},
        status=403,
    )


def _default_device(request: HttpRequest) -> str:
    return str(request.session.get(DEVICE_SESSION_KEY) or _("Box office browser"))


@login_required(login_url="admin:login")
@require_GET
def print_index(request: HttpRequest) -> HttpResponse:
    """Find an order by its code."""
    try:
        user = _staff(request)
    except PermissionDenied as error:
        return _forbidden(request, error)
    code = request.GET.get("code", "").strip()
    problem = ""
    if code:
        try:
            order = order_find_for_printing(user=user, code=code)
        except NotFound as exc:
            problem = str(exc.message)
        else:
            return HttpResponseRedirect(reverse("print:order", args=[order.public_id]))
    context = {
        **admin.site.each_context(request),
        "title": _("Print tickets"),
        "code": code,
        "error": problem,
    }
    return render(request, "console/print/index.html", context, status=404 if problem else 200)


def _order_page(
    request: HttpRequest, public_id: str, *, error: str = "", status: int = 200
) -> HttpResponse:
    user = _staff(request)
    try:
        order = order_get_for_printing(user=user, public_id=public_id)
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc
    tickets = list(tickets_for_order(order))
    printed: dict[int, int] = {}
    prints = list(prints_for_order(order)[:200])
    for log in prints:
        printed[log.ticket_id] = printed.get(log.ticket_id, 0) + 1
    rows = [
        {
            "ticket": ticket,
            "seat": ticket_place_label(ticket),
            "entrance": entrance_label(ticket),
            "tier": ticket.tier.tr("name"),
            "prints": printed.get(ticket.pk, 0),
            "valid": ticket.state == Ticket.State.VALID,
            "print_key": secrets.token_urlsafe(16),
        }
        for ticket in tickets
    ]
    context = {
        **admin.site.each_context(request),
        "title": _("Print tickets of order %(code)s") % {"code": order.code},
        "order": order,
        "event_title": order.session.event.tr("title"),
        "session_time": session_time_label(order),
        "venue_name": order.session.venue.tr("name"),
        "rows": rows,
        "prints": prints,
        "device": _default_device(request),
        "layouts": PrintLog.Layout.choices,
        "error": error,
    }
    return render(request, "console/print/order.html", context, status=status)


@login_required(login_url="admin:login")
@require_GET
def print_order(request: HttpRequest, public_id: str) -> HttpResponse:
    """The order's tickets with print buttons, and its print log."""
    try:
        return _order_page(request, public_id)
    except PermissionDenied as error:
        return _forbidden(request, error)


def qr_svg(text: str) -> SafeString:
    """The ticket's QR as inline SVG; segno draws the text as modules only, so it is safe."""
    svg = segno.make(text, error="m").svg_inline(scale=4, border=4, omitsize=True)
    return mark_safe(svg)  # noqa: S308


def _layout_context(log: PrintLog) -> dict[str, Any]:
    ticket = log.ticket
    superseded = log.secret_version != ticket.secret_version or ticket.state != Ticket.State.VALID
    return {
        "log": log,
        "ticket": ticket,
        "order": ticket.order,
        "event_title": ticket.session.event.tr("title"),
        "session_time": session_time_label(ticket),
        "venue_name": ticket.session.venue.tr("name"),
        "venue_address": ticket.session.venue.tr("address"),
        "seat": ticket_place_label(ticket),
        "entrance": entrance_label(ticket),
        "tier": ticket.tier.tr("name"),
        "superseded": superseded,
        "qr": None if superseded or ticket.rotating else qr_svg(ticket_qr_text(ticket)),
    }


@login_required(login_url="admin:login")
@require_POST
def print_ticket(request: HttpRequest, public_id: str) -> HttpResponse:
    """Log a print of the ticket and answer its printable page (80 mm or A4)."""
    try:
        user = _staff(request)
    except PermissionDenied as error:
        return _forbidden(request, error)
    try:
        ticket = ticket_get_for_printing(user=user, public_id=public_id)
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc
    layout = request.POST.get("layout", "")
    device = request.POST.get("device", "").strip() or _default_device(request)
    key = request.POST.get("print_key", "")

    def compute() -> tuple[int, dict[str, Any]]:
        log = ticket_print_record(ticket=ticket, layout=layout, device=device, actor=user)
        return 201, {"print_id": log.pk}

    try:
        if key:
            _status, body = idempotent(
                scope=f"user:{user.pk}:print",
                key=key,
                fingerprint=request_fingerprint(
                    "POST", request.path, f"{layout}\n{device}".encode()
                ),
                compute=compute,
            )
        else:
            _status, body = compute()
    except DomainError as error:
        return _order_page(
            request, ticket.order.public_id, error=str(error.message), status=error.status
        )
    request.session[DEVICE_SESSION_KEY] = device
    log = print_get_for_printing(user=user, print_id=int(body["print_id"]))
    return render(request, LAYOUT_TEMPLATES[PrintLog.Layout(log.layout)], _layout_context(log))
