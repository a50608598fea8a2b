"""`{% waitlist_panel session %}`: the "Join the waitlist" form on a sold-out session's page (or
the customer's place in line when they already wait), from `aftersales.selectors.waitlist`."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from piaowu.accounts.models import User
from piaowu.aftersales.selectors.waitlist import (
    offer_window,
    waitlist_latest_deadline,
    waitlist_open_entry,
    waitlist_panel_tiers,
    waitlist_position,
)
from piaowu.catalog.models import Session, WaitlistMode

register = template.Library()


@register.inclusion_tag("web/_waitlist_panel.html", takes_context=True)
def waitlist_panel(context: template.Context, session: Session) -> dict[str, Any]:
    if session.waitlist_mode == WaitlistMode.OFF:
        return {"show": False}
    request = context.get("request")
    user = getattr(request, "user", None)
    customer = user if isinstance(user, User) and user.is_authenticated else None
    entry = waitlist_open_entry(session=session, customer=customer) if customer else None
    tiers = [] if entry is not None else waitlist_panel_tiers(session)
    if entry is None and not tiers:
        return {"show": False}
    quantities = sorted({n for panel in tiers for n in panel.quantities})
    return {
        "show": True,
        "session": session,
        "entry": entry,
        "position": waitlist_position(entry) if entry is not None else None,
        "tiers": tiers,
        "quantities": quantities,
        "prepaid": session.waitlist_mode == WaitlistMode.PREPAID,
        "offer_minutes": int(offer_window().total_seconds() // 60),
        "closes": timezone.localtime(waitlist_latest_deadline(session), session.venue.tzinfo),
        "signed_in": customer is not None,
        "customer": customer,
        "request": request,
        "csrf_token": context.get("csrf_token"),
    }
