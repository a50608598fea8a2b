"""`{% session_change_notice session %}` / `{% session_change_notice session order %}`: the
line on the session and order pages after the organizer cancelled or rescheduled the session
(`aftersales.selectors.cancellations.session_notice`), times in the venue's time zone."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from piaowu.aftersales.selectors.cancellations import session_notice
from piaowu.catalog.models import Session
from piaowu.orders.models import Order

register = template.Library()


@register.inclusion_tag("web/_session_change.html")
def session_change_notice(session: Session, order: Order | None = None) -> dict[str, Any]:
    notice = session_notice(session, order)
    if notice is None:
        return {"notice": None}
    tz = session.venue.tzinfo
    reschedule = notice.reschedule
    return {
        "notice": notice,
        "order": order,
        "new_start": timezone.localtime(reschedule.new_starts_at, tz) if reschedule else None,
        "old_start": timezone.localtime(reschedule.old_starts_at, tz) if reschedule else None,
        "free_until": timezone.localtime(reschedule.free_refund_until, tz) if reschedule else None,
        "reason": reschedule.reason if reschedule else "",
    }
