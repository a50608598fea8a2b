"""Reads of a session's inventory. Time is data: held seats and quota allocations past their
expiry are reported as available, whether or not the sweeper has tidied them yet."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Sum

from piaowu.catalog.models import CapacityMode, Seat, Session
from piaowu.core import clock
from piaowu.inventory.models import Hold, Quota, QuotaAllocation, SeatState

LOW_STOCK_SHARE = 0.10


def session_seat_states(session: Session) -> dict[str, str]:
    """Seat code → "available" / "held" / "sold" / "blocked" for a reserved session."""
    if session.seat_map is None:
        return {}
    now = clock.now()
    states: dict[str, str] = {
        code: SeatState.State.BLOCKED if blocked else SeatState.State.AVAILABLE
        for code, blocked in Seat.objects.filter(seat_map=session.seat_map).values_list(
            "code", "is_blocked"
        )
    }
    rows = SeatState.objects.filter(session=session).exclude(state=SeatState.State.AVAILABLE)
    for code, state, held_until in rows.values_list("seat__code", "state", "held_until"):
        if state == SeatState.State.HELD and held_until is not None and held_until < now:
            state = SeatState.State.AVAILABLE
        states[code] = state
    return states


def _quota_numbers(quota: Quota) -> dict[str, int]:
    now = clock.now()
    taken = int(quota.buckets.aggregate(t=Sum("taken"))["t"] or 0)
    allocations = QuotaAllocation.objects.filter(bucket__quota=quota)
    # Sold and not given back since (refunds, exchanges: `returned`).
    sold = int(
        allocations.filter(state=QuotaAllocation.State.CONVERTED).aggregate(
            n=Sum(F("quantity") - F("returned"))
        )["n"]
        or 0
    )
    active = allocations.filter(state=QuotaAllocation.State.ACTIVE)
    held = int(active.filter(expires_at__gte=now).aggregate(n=Sum("quantity"))["n"] or 0)
    expired = int(active.filter(expires_at__lt=now).aggregate(n=Sum("quantity"))["n"] or 0)
    return {
        "capacity": quota.capacity,
        "available": max(0, quota.capacity - taken + expired),
        "held": held,
        "sold": sold,
    }


def session_availability(session: Session) -> dict[str, Any]:
    """Counts for a session: `available`, `held`, `sold`, `capacity`, `tiers` (tier code →
    available, quotas only), `sold_out` and `low_stock` (under 10 % left)."""
    tiers: dict[str, int] = {}
    if session.capacity_mode == CapacityMode.RESERVED:
        counts = {state: 0 for state in SeatState.State.values}
        for state in session_seat_states(session).values():
            counts[state] += 1
        capacity = counts["available"] + counts["held"] + counts["sold"]
        available, held, sold = counts["available"], counts["held"], counts["sold"]
    else:
        quotas = {q.tier_id: q for q in Quota.objects.filter(session=session)}
        total = quotas.get(None)
        if total is None:
            capacity = available = session.capacity or 0
            held = sold = 0
        else:
            numbers = _quota_numbers(total)
            capacity, available = numbers["capacity"], numbers["available"]
            held, sold = numbers["held"], numbers["sold"]
        for tier in session.price_tiers.filter(is_active=True):
            tier_quota = quotas.get(tier.pk)
            if tier_quota is not None:
                tiers[tier.code] = min(available, _quota_numbers(tier_quota)["available"])
            elif tier.capacity is not None:
                tiers[tier.code] = min(available, tier.capacity)
            else:
                tiers[tier.code] = available
    return {
        "capacity": capacity,
        "available": available,
        "held": held,
        "sold": sold,
        "tiers": tiers,
        "sold_out": available == 0,
        "low_stock": 0 < available < capacity * LOW_STOCK_SHARE,
    }


def hold_for_holder(public_id: str, holder_key: str) -> Hold | None:
    """The hold with this public id if `holder_key` owns it (else None: never reveal others'),
    with its session, items, seats and tiers loaded for display."""
    return (
        Hold.objects.filter(public_id=public_id, holder_key=holder_key)
        .select_related("session__event", "session__venue")
        .prefetch_related("items__seat__section", "items__tier")
        .first()
    )
