"""Waitlist pages: joining from a sold-out session's page, "My waitlist" with each entry's place
in the queue and state, leaving it, and the link an offer's message points to.

Parse → call `aftersales.services.waitlist` / `aftersales.selectors.waitlist` → render or
redirect. A refused join goes back to the session page with the service's message; someone
else's entry is the site's 404, like an unknown id.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from piaowu.accounts.models import User
from piaowu.aftersales.models import WaitlistEntry
from piaowu.aftersales.selectors.waitlist import (
    waitlist_entries_for_customer,
    waitlist_entry_get_for_customer,
    waitlist_position,
)
from piaowu.aftersales.services.waitlist import waitlist_cancel, waitlist_join
from piaowu.catalog.selectors import sales_channel_for, session_get
from piaowu.core.errors import DomainError, NotFound

ENTRIES_PAGE_SIZE = 20


class WaitlistJoinForm(forms.Form):
    """Its shape only: the service checks the tier, the quantity and the contacts."""

    tier = forms.CharField(max_length=40)
    quantity = forms.IntegerField(min_value=-1000, max_value=1000)
    phone = forms.CharField(max_length=32, required=False)
    email = forms.CharField(max_length=254, required=False)


def _customer(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User) and user.is_authenticated  # login_required
    return user


def _own_entry(request: HttpRequest, public_id: str) -> WaitlistEntry:
    try:
        return waitlist_entry_get_for_customer(public_id=public_id, customer=_customer(request))
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc


@login_required
@require_POST
def waitlist_join_view(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        session = session_get(public_id)
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc
    back = reverse("web:session", kwargs={"public_id": session.public_id}) + "#waitlist"
    form = WaitlistJoinForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a ticket type and how many tickets you want."))
        return redirect(back)
    tier = next((t for t in session.price_tiers.all() if t.code == form.cleaned_data["tier"]), None)
    if tier is None:
        messages.error(request, _("This ticket type is not sold for this session."))
        return redirect(back)
    try:
        entry = waitlist_join(
            session=session,
            tier=tier,
            customer=_customer(request),
            quantity=form.cleaned_data["quantity"],
            channel=sales_channel_for(session),
            contact_phone=form.cleaned_data["phone"],
            contact_email=form.cleaned_data["email"],
        )
    except DomainError as exc:
        messages.error(request, str(exc.message))
        return redirect(back)
    if entry.deposit_order is not None:
        messages.success(
            request,
            _(
                "Pay the deposit now to take your place in line; it is refunded in full if no "
                "tickets come back for you."
            ),
        )
        return redirect("web:order", public_id=entry.deposit_order.public_id)
    messages.success(
        request,
        _("You are number %(position)d on the waitlist. We will tell you when tickets come back.")
        % {"position": waitlist_position(entry) or 1},
    )
    return redirect("web:waitlist")


@dataclass(frozen=True)
class EntryRow:
    entry: WaitlistEntry
    position: int | None
    is_open: bool


@login_required
@require_GET
def my_waitlist(request: HttpRequest) -> HttpResponse:
    page = Paginator(waitlist_entries_for_customer(_customer(request)), ENTRIES_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [
        EntryRow(entry=entry, position=position, is_open=position is not None)
        for entry in page.object_list
        for position in [waitlist_position(entry)]
    ]
    return render(request, "web/waitlist.html", {"page": page, "rows": rows})


@login_required
@require_POST
def waitlist_cancel_view(request: HttpRequest, public_id: str) -> HttpResponse:
    entry = _own_entry(request, public_id)
    prepaid_paid = (
        entry.mode == WaitlistEntry.Mode.PREPAID and entry.state == WaitlistEntry.State.WAITING
    )
    try:
        waitlist_cancel(entry=entry, actor=_customer(request))
    except DomainError as exc:
        messages.error(request, str(exc.message))
    else:
        if prepaid_paid:
            messages.success(
                request, _("You left the waitlist; your deposit is being refunded in full.")
            )
        else:
            messages.success(request, _("You left the waitlist."))
    return redirect("web:waitlist")


@login_required
@require_GET
def waitlist_checkout(request: HttpRequest, public_id: str) -> HttpResponse:
    """Where an offer's message points: the checkout page of the hold kept for the customer."""
    entry = _own_entry(request, public_id)
    if entry.state == WaitlistEntry.State.OFFERED and entry.offer_hold is not None:
        return redirect("web:checkout", hold_id=entry.offer_hold.public_id)
    if entry.order is not None:
        return redirect("web:order", public_id=entry.order.public_id)
    messages.error(request, _("This offer is no longer available."))
    return redirect("web:waitlist")
