"""Reads of the waitlist (AFT-5): how many admissions of a tier are free now, a customer's
entries with their place in the queue, and a session's queue for staff.

The queue of a session and tier is its open entries (awaiting payment, waiting, offered) in id
order; a customer's position is one more than the number of open entries of the same session
and tier with a smaller id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.aftersales.models import WaitlistEntry
from piaowu.catalog.models import CapacityMode, PriceTier, Seat, Session, WaitlistMode
from piaowu.catalog.selectors import tier_for_seat
from piaowu.core import clock
from piaowu.core.errors import NotFound
from piaowu.inventory.selectors import session_availability, session_seat_states
from piaowu.inventory.services import max_per_customer

DEFAULT_CLOSE_HOURS = 2
DEFAULT_OFFER_MINUTES = 15

OPEN_STATES = (
    WaitlistEntry.State.AWAITING_PAYMENT,
    WaitlistEntry.State.WAITING,
    WaitlistEntry.State.OFFERED,
)

_RELATED = ("session__event", "session__venue", "tier", "deposit_order", "order", "offer_hold")


def close_hours() -> int:
    """The waitlist closes this many hours before the session starts."""
    return int(getattr(settings, "PIAOWU_WAITLIST_CLOSE_HOURS", DEFAULT_CLOSE_HOURS))


def offer_window() -> timedelta:
    """How long an offer (a hold for the next in line) lasts."""
    return timedelta(
        minutes=int(getattr(settings, "PIAOWU_WAITLIST_OFFER_MINUTES", DEFAULT_OFFER_MINUTES))
    )


def waitlist_latest_deadline(session: Session) -> datetime:
    """The latest an entry may wait: `PIAOWU_WAITLIST_CLOSE_HOURS` before the start, and never
    after online sales close (nothing can be bought for it then)."""
    return min(session.starts_at - timedelta(hours=close_hours()), session.sales_close_at)


def waitlist_quantity_limit(tier: PriceTier) -> int:
    """The most one entry may wait for: the per-customer limit and the tier's per-order limit."""
    return max(0, min(max_per_customer(), tier.max_per_order))


def tier_free_seat_codes(session: Session, tier: PriceTier) -> list[str]:
    """Codes of the free seats (available, or held past their expiry) of a reserved session
    that sell at `tier`, in code order."""
    states = session_seat_states(session)
    free = {code for code, state in states.items() if state == "available"}
    if not free:
        return []
    tiers = [t for t in session.price_tiers.all() if t.is_active]
    seats = Seat.objects.filter(seat_map=session.seat_map, code__in=free).values_list(
        "code", "section__code", "seat_type"
    )
    codes = []
    for code, section_code, seat_type in seats:
        match = tier_for_seat(tiers, section_code=section_code, seat_type=seat_type)
        if match is not None and match.pk == tier.pk:
            codes.append(code)
    return sorted(codes)


def tier_available(session: Session, tier: PriceTier) -> int:
    """How many admissions of `tier` could be held now (expired holds count as free)."""
    if session.capacity_mode == CapacityMode.RESERVED:
        return len(tier_free_seat_codes(session, tier))
    return int(session_availability(session)["tiers"].get(tier.code, 0))


@dataclass(frozen=True, slots=True)
class PanelTier:
    tier: PriceTier
    available: int
    quantities: list[int]


def waitlist_panel_tiers(session: Session) -> list[PanelTier]:
    """Active tiers a customer could wait for now (fewer left than they may buy), with the
    quantities to choose from; empty when the session has no waitlist or is not on sale."""
    if session.waitlist_mode == WaitlistMode.OFF or session.sales_state(clock.now()) != "on_sale":
        return []
    if waitlist_latest_deadline(session) <= clock.now():
        return []
    result = []
    quota_counts = (
        None
        if session.capacity_mode == CapacityMode.RESERVED
        else session_availability(session)["tiers"]
    )
    for tier in session.price_tiers.all():
        if not tier.is_active:
            continue
        limit = waitlist_quantity_limit(tier)
        low = max(1, tier.min_per_order)
        if limit < low:
            continue
        available = (
            tier_available(session, tier)
            if quota_counts is None
            else int(quota_counts.get(tier.code, 0))
        )
        if available < limit:
            choices = [n for n in range(low, limit + 1) if n > available]
            result.append(PanelTier(tier=tier, available=available, quantities=choices))
    return result


def waitlist_position(entry: WaitlistEntry) -> int | None:
    """1 for the head of the queue; None once the entry is no longer open."""
    if entry.state not in OPEN_STATES:
        return None
    ahead = WaitlistEntry.objects.filter(
        session_id=entry.session_id, tier_id=entry.tier_id, state__in=OPEN_STATES, id__lt=entry.pk
    ).count()
    return ahead + 1


def waitlist_entries_for_customer(customer: User) -> QuerySet[WaitlistEntry]:
    """The customer's entries, newest first."""
    return WaitlistEntry.objects.filter(customer=customer).select_related(*_RELATED).order_by("-id")


def waitlist_entry_get_for_customer(*, public_id: str, customer: User) -> WaitlistEntry:
    """The customer's own entry; someone else's is `waitlist_entry_not_found`, like an unknown
    id."""
    entry = (
        WaitlistEntry.objects.filter(public_id=public_id, customer=customer)
        .select_related(*_RELATED)
        .first()
        if customer.is_authenticated
        else None
    )
    if entry is None:
        raise NotFound("waitlist_entry", _("No such waitlist entry."), {"id": public_id})
    return entry


def waitlist_open_entry(*, session: Session, customer: User) -> WaitlistEntry | None:
    """The customer's open entry for this session, if any (at most one)."""
    return (
        WaitlistEntry.objects.filter(session=session, customer=customer, state__in=OPEN_STATES)
        .select_related(*_RELATED)
        .first()
    )


def waitlist_queue(session: Session, tier: PriceTier | None = None) -> QuerySet[WaitlistEntry]:
    """A session's open entries in queue order (for staff)."""
    entries = WaitlistEntry.objects.filter(session=session, state__in=OPEN_STATES)
    if tier is not None:
        entries = entries.filter(tier=tier)
    return entries.select_related("customer", "tier").order_by("tier_id", "id")


def waitlist_with_positions(entries: QuerySet[WaitlistEntry]) -> QuerySet[WaitlistEntry]:
    """`entries` annotated with `ahead`: the open entries of the same session and tier with a
    smaller id (the position of an open entry is `ahead + 1`), in one query."""
    ahead = (
        WaitlistEntry.objects.filter(
            session_id=OuterRef("session_id"),
            tier_id=OuterRef("tier_id"),
            state__in=OPEN_STATES,
            id__lt=OuterRef("id"),
        )
        .order_by()
        .values("session_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return entries.annotate(ahead=Coalesce(Subquery(ahead), 0))
