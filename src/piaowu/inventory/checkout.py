"""Inventory calls that checkout needs beyond `inventory.services` (same rules: single
conditional statements, time compared with `clock.now()`)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, QuotaAllocation, SeatState
from piaowu.inventory.services import _hold_refusal


def hold_extend_until(*, hold: Hold, until: datetime) -> Hold:
    """Make an active, unexpired hold (and what it holds) last until `until` — checkout sets it
    to the order's payment deadline. Unlike `hold_extend` it does not count as the buyer's one
    extension. Errors: `hold_expired` (expired or released), `hold_converted`,
    `invalid_deadline` (`until` already past)."""
    now = clock.now()
    if until <= now:
        raise DomainError("invalid_deadline", _("The new expiry must lie in the future."))
    try:
        with transaction.atomic():
            changed = Hold.objects.filter(
                pk=hold.pk, status=Hold.Status.ACTIVE, expires_at__gte=now
            ).update(expires_at=until)
            if not changed:
                raise _hold_refusal(hold)
            items = getattr(hold, "_prefetched_objects_cache", {}).get("items")
            if items is not None:
                # The items are in memory (never change once made): count them there.
                expected = sum(1 for item in items if item.seat_id is not None)
                seats_only = expected == len(items)
            else:
                expected = hold.items.filter(seat__isnull=False).count()
                seats_only = False
            moved = (
                SeatState.objects.filter(
                    hold=hold, state=SeatState.State.HELD, held_until__gte=now
                ).update(held_until=until)
                if expected
                else 0
            )
            if seats_only:
                # Only `hold_quantity` allocates from quotas, and it makes no seat items.
                expected_allocations = moved_allocations = 0
            else:
                expected_allocations = hold.allocations.count()
                moved_allocations = QuotaAllocation.objects.filter(
                    hold=hold, state=QuotaAllocation.State.ACTIVE, expires_at__gte=now
                ).update(expires_at=until)
            if moved != expected or moved_allocations != expected_allocations:
                raise DomainError(
                    "hold_expired",
                    _("Your reservation has expired; please choose again."),
                    {"hold": hold.public_id},
                )
    except DomainError:
        hold.refresh_from_db(fields=["status", "expires_at", "extended"])
        raise
    hold.expires_at = until
    return hold
