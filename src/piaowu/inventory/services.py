"""Holding, releasing and selling inventory — the only writer of `inventory.models`.

Invariant 1 (never oversell) is kept by the database, in single conditional statements:

* **Reserved seats.** One `SeatState` row per seat of the session. A hold is one
  `UPDATE … SET state='held', hold_id=…, held_until=… WHERE session_id=… AND seat_id IN (…) AND
  (state='available' OR (state='held' AND held_until < now))`; if fewer rows changed than seats
  asked for, the transaction rolls back and `seat_taken` names the seats someone else has. Two
  buyers racing for a seat both run that UPDATE; PostgreSQL locks the row for the first and
  re-evaluates the WHERE for the second after the first commits, so the second finds it held.

* **General admission / daily capacity (quotas).** A session's capacity (and a tier's own
  capacity, e.g. a flight cabin) is a `Quota` split into up to 8 `QuotaBucket`s so buyers do not
  queue on one row. A hold takes `n` from a bucket with
  `UPDATE bucket SET taken = taken + n WHERE id = … AND taken + n <= capacity` (row count 1 or
  try the next bucket, starting at a random one); a CHECK constraint `taken <= capacity` backs it
  up. Only when no single bucket has room does it lock the quota's buckets (`SELECT … FOR UPDATE`,
  in id order) and spread `n` over several, still with conditional updates. What a hold took from
  a bucket is a `QuotaAllocation` row (quantity, state, expires_at).

  `taken` counts sold admissions plus *unreclaimed* holds. An allocation past its `expires_at` is
  free the instant it expires: availability reads add expired ACTIVE allocations back
  (`selectors.session_availability`), and a buyer who finds a quota short first *reclaims* them:
  `UPDATE allocation SET state='freed' WHERE id=… AND state='active' AND expires_at < now`
  and, only if that changed a row, `UPDATE bucket SET taken = taken - quantity`. The state
  guard makes each allocation's count come back exactly once, whoever (buyer, release, sweeper)
  gets there first; converting a hold flips its allocations `active → converted` with
  `expires_at >= now`, so an allocation is either sold or freed, never both. Reclaiming runs in
  its own short transaction before the hold's, so no transaction ever holds bucket locks out of
  the order (tier quota, then session quota; ids ascending within a quota).

Every availability decision compares with the current time; `holds_sweep` only tidies. After a
commit the changes are published on `session:<public_id>` for live seat maps.

`PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE` (tests only) swaps the conditional statements for a
read-then-write in Python with a pause in between, so race tests can show that their control run
really oversells.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q, Sum
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.catalog.models import CapacityMode, PriceTier, Seat, Session
from piaowu.catalog.selectors import tier_for_seat
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.pubsub import publish, session_channel
from piaowu.inventory.live import publish_throttled, sold_out_clear, sold_out_mark, sold_out_tiers
from piaowu.inventory.models import (
    Hold,
    HoldItem,
    Quota,
    QuotaAllocation,
    QuotaBucket,
    SeatState,
)
from piaowu.inventory.rules import RowSeat, couples_missing_partner, segments, stranded_seats
from piaowu.inventory.selectors import session_availability

logger = logging.getLogger(__name__)

DEFAULT_HOLD_TTL_SECONDS = 600
DEFAULT_EXTENSION = timedelta(minutes=10)
DEFAULT_MAX_PER_CUSTOMER = 6
MAX_BUCKETS = 64
#: Tries of the lock-free bucket pick before locking all buckets, and the pause between them.
TAKE_ATTEMPTS = 4
TAKE_RETRY_SECONDS = 0.003
BEST_AVAILABLE_ATTEMPTS = 12
UNSAFE_PAUSE_SECONDS = 0.05


def hold_ttl() -> timedelta:
    return timedelta(
        seconds=int(getattr(settings, "PIAOWU_HOLD_TTL_SECONDS", DEFAULT_HOLD_TTL_SECONDS))
    )


def max_per_customer() -> int:
    return int(getattr(settings, "PIAOWU_MAX_PER_CUSTOMER", DEFAULT_MAX_PER_CUSTOMER))


def stranded_rule_enabled(session: Session) -> bool:
    """Per-session switch of the stranded-seat rule (a setting until the catalog has a field)."""
    return bool(getattr(settings, "PIAOWU_INVENTORY_STRANDED_RULE", True))


def _unsafe() -> bool:
    return bool(getattr(settings, "PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE", False))


# Apps that must hear at once when admissions come back on sale (the waitlist serves its queue
# before the public can take them) register here from their AppConfig.ready(): inventory
# cannot import them. Hooks run after the commit; one that raises is logged, never re-raised.
_returned_hooks: list[Callable[[Session], object]] = []
_in_returned_hook = threading.local()


def on_admissions_returned(hook: Callable[[Session], object]) -> None:
    if hook not in _returned_hooks:
        _returned_hooks.append(hook)


def _returned_later(session: Session) -> None:
    if not _returned_hooks:
        return

    def run() -> None:
        if getattr(_in_returned_hook, "active", False):
            return  # a hook's own releases do not call the hooks again
        _in_returned_hook.active = True
        try:
            for hook in _returned_hooks:
                try:
                    hook(session)
                except Exception:
                    logger.exception("admissions-returned hook %r failed", hook)
        finally:
            _in_returned_hook.active = False

    transaction.on_commit(run)


def _publish_later(session: Session, message: dict[str, Any]) -> None:
    channel = session_channel(session.public_id)
    message = {**message, "session": session.public_id}

    def send() -> None:
        publish(channel, message)

    transaction.on_commit(send)


def _publish_seats(session: Session, changes: list[list[str]]) -> None:
    if changes:
        # Plain strings in seat order: the database returns rows in no particular order.
        ordered = sorted([str(code), str(state)] for code, state in changes)
        _publish_later(session, {"type": "seats", "changes": ordered})


def _publish_quota_later(session: Session, *, returned: bool = False) -> None:
    """After commit, publish the session's quota availability — rate-limited per session
    (`inventory.live.publish_throttled`: at most one publish per interval, the last change
    always published). `returned`: admissions came back, so clear the sold-out marker."""
    public_id = session.public_id
    session_pk = session.pk

    def send() -> None:
        # Read afresh (this may run later, on a timer thread): only ids are kept.
        fresh = Session.objects.select_related("event").get(pk=session_pk)
        availability = session_availability(fresh)
        publish(
            session_channel(public_id),
            {
                "type": "quota",
                "session": public_id,
                "tiers": availability["tiers"],
                "available": availability["available"],
            },
        )

    def after_commit() -> None:
        if returned:
            sold_out_clear(public_id)
        publish_throttled(f"quota:{public_id}", send)

    transaction.on_commit(after_commit)


def _remember_items(hold: Hold, items: list[HoldItem]) -> None:
    """Let `hold.items.all()` answer the items just created, without reading them back."""
    queryset = hold.items.all()
    queryset._result_cache = list(items)
    queryset._prefetch_done = True  # type: ignore[attr-defined]
    hold.__dict__.setdefault("_prefetched_objects_cache", {})["items"] = queryset


#: Sessions whose seat states / quotas are known to exist (by public id; never shrinks in use).
_ENSURED: set[str] = set()  # "<public id>:<seat map id>"
_ENSURED_LOCK = threading.Lock()


# --- Setting up a session's inventory ---------------------------------------------------------


def _bucket_sizes(capacity: int) -> list[int]:
    count = min(MAX_BUCKETS, max(1, capacity // 4))
    base, extra = divmod(capacity, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def session_inventory_ensure(session: Session) -> None:
    """Create the session's seat states or quotas if missing; safe to call again and at once.
    Remembered per process once complete, so the hot path does not count them again."""
    memo = f"{session.public_id}:{session.seat_map_id}"
    if memo in _ENSURED:
        return
    _session_inventory_ensure(session)
    complete = (
        SeatState.objects.filter(session=session).exists()
        if session.capacity_mode == CapacityMode.RESERVED
        else Quota.objects.filter(session=session, tier__isnull=True).exists()
    )
    if complete:

        def remember() -> None:
            with _ENSURED_LOCK:
                if len(_ENSURED) > 10_000:
                    _ENSURED.clear()
                _ENSURED.add(memo)

        # Only once committed: a caller's transaction that rolls back takes the rows with it.
        transaction.on_commit(remember)


def _session_inventory_ensure(session: Session) -> None:
    if session.capacity_mode == CapacityMode.RESERVED:
        seat_map = session.seat_map
        if seat_map is None:
            return
        if SeatState.objects.filter(session=session).count() >= seat_map.seat_count:
            return
        SeatState.objects.bulk_create(
            (
                SeatState(
                    session=session,
                    seat_id=seat_id,
                    state=SeatState.State.BLOCKED if blocked else SeatState.State.AVAILABLE,
                )
                for seat_id, blocked in Seat.objects.filter(seat_map=seat_map).values_list(
                    "id", "is_blocked"
                )
            ),
            batch_size=2000,
            ignore_conflicts=True,
        )
        return
    if Quota.objects.filter(session=session, tier__isnull=True).exists():
        return
    wanted = [Quota(session=session, tier=None, capacity=session.capacity or 0)]
    wanted += [
        Quota(session=session, tier=tier, capacity=tier.capacity)
        for tier in session.price_tiers.filter(capacity__isnull=False)
        if tier.capacity is not None
    ]
    with transaction.atomic():
        Quota.objects.bulk_create(wanted, ignore_conflicts=True)
        QuotaBucket.objects.bulk_create(
            [
                QuotaBucket(quota=quota, index=index, capacity=size)
                for quota in Quota.objects.filter(session=session)
                for index, size in enumerate(_bucket_sizes(quota.capacity))
            ],
            ignore_conflicts=True,
        )


# --- Validation shared by the hold services ---------------------------------------------------


def _check_on_sale(session: Session) -> None:
    state = session.sales_state(clock.now())
    if state != "on_sale":
        raise DomainError(
            "sales_closed",
            _("Tickets for this session are not on sale."),
            {"sales_state": state},
        )


def _check_holder(holder_key: str) -> None:
    if not holder_key or len(holder_key) > 64:
        raise DomainError("invalid_holder", _("A holder key (1–64 characters) is required."))


def _holder_q(holder_key: str, customer: User | None) -> Q:
    q = Q(hold__holder_key=holder_key)
    if customer is not None:
        q |= Q(hold__customer=customer)
    return q


def _check_customer_limit(
    session: Session, holder_key: str, customer: User | None, adding: int, *, fresh: bool = False
) -> None:
    """At most `max_per_customer()` live tickets per holder (and account) and session.
    `fresh`: the holder key was made for this very request, so nothing can count against it
    yet — only `adding` is checked (the aggregate is skipped)."""
    now = clock.now()
    if fresh and customer is None:
        limit = max_per_customer()
        if adding > limit:
            raise DomainError(
                "over_limit",
                _("At most %(n)d tickets per customer for this session.") % {"n": limit},
                {"limit": limit, "already": 0, "requested": adding},
            )
        return
    already = (
        HoldItem.objects.filter(_holder_q(holder_key, customer), hold__session=session)
        .filter(
            Q(hold__status=Hold.Status.CONVERTED)
            | Q(hold__status=Hold.Status.ACTIVE, hold__expires_at__gt=now)
        )
        .aggregate(n=Sum("quantity"))["n"]
        or 0
    )
    limit = max_per_customer()
    if already + adding > limit:
        raise DomainError(
            "over_limit",
            _("At most %(n)d tickets per customer for this session.") % {"n": limit},
            {"limit": limit, "already": already, "requested": adding},
        )


def _active_tiers(session: Session) -> list[PriceTier]:
    """The session's active tiers; from `price_tiers.all()` (prefetched by `session_get`, so
    no query) with the active filter applied here as well."""
    return sorted(
        (tier for tier in session.price_tiers.all() if tier.is_active),
        key=lambda tier: (tier.sort_order, tier.price),  # the model's ordering
    )


def _check_tier_limits(counts: Counter[PriceTier]) -> None:
    for tier, n in counts.items():
        if n > tier.max_per_order:
            raise DomainError(
                "over_limit",
                _("At most %(n)d tickets of %(tier)s per order.")
                % {"n": tier.max_per_order, "tier": tier.tr("name")},
                {"tier": tier.code, "limit": tier.max_per_order, "requested": n},
            )
        if n < tier.min_per_order:
            raise DomainError(
                "under_minimum",
                _("At least %(n)d tickets of %(tier)s per order.")
                % {"n": tier.min_per_order, "tier": tier.tr("name")},
                {"tier": tier.code, "minimum": tier.min_per_order, "requested": n},
            )


def _row_seats(session: Session, *, rows: set[tuple[int, str]] | None = None) -> list[RowSeat]:
    """The session's seats as rule input (optionally only the given (section id, row) rows)."""
    qs = Seat.objects.filter(seat_map=session.seat_map)
    if rows is not None:
        q = Q(pk__in=[])
        for section_id, row in rows:
            q |= Q(section_id=section_id, row_label=row)
        qs = qs.filter(q)
    values = list(
        qs.values_list(
            "id", "code", "section__code", "row_label", "x", "y", "seat_type", "pair__code"
        )
    )
    return [
        RowSeat(id=i, code=c, section=sec, row=r, x=x, y=y, seat_type=t, pair_code=p or "")
        for i, c, sec, r, x, y, t, p in values
    ]


def _taken_codes(session: Session, seat_ids: list[int], now: datetime) -> set[str]:
    """Seats among `seat_ids` that are not free at `now` (blocked, sold or held unexpired)."""
    return set(
        SeatState.objects.filter(session=session, seat_id__in=seat_ids)
        .exclude(state=SeatState.State.AVAILABLE)
        .exclude(state=SeatState.State.HELD, held_until__lt=now)
        .values_list("seat__code", flat=True)
    )


def _free_q(now: datetime) -> Q:
    return Q(state=SeatState.State.AVAILABLE) | Q(state=SeatState.State.HELD, held_until__lt=now)


# --- Reserved seats -----------------------------------------------------------------------------


def _validate_seats(
    session: Session,
    seat_codes: list[str],
    holder_key: str,
    customer: User | None,
    *,
    fresh_holder: bool = False,
) -> tuple[list[Seat], dict[int, PriceTier]]:
    _check_holder(holder_key)
    if session.capacity_mode != CapacityMode.RESERVED or session.seat_map is None:
        raise DomainError(
            "not_reserved_seating",
            _("This session has no seat map; choose a quantity instead."),
        )
    codes = list(dict.fromkeys(code.strip() for code in seat_codes if code and code.strip()))
    if not codes:
        raise DomainError("no_seats", _("Choose at least one seat."))
    _check_on_sale(session)
    seats = list(
        Seat.objects.filter(seat_map=session.seat_map, code__in=codes).select_related("section")
    )
    found = {s.code for s in seats}
    missing = [c for c in codes if c not in found]
    if missing:
        raise DomainError(
            "seat_not_in_session",
            _("These seats are not part of this session: %(seats)s")
            % {"seats": ", ".join(missing)},
            {"seats": missing},
        )
    blocked = sorted(s.code for s in seats if s.is_blocked)
    if blocked:
        raise DomainError(
            "seat_blocked",
            _("These seats are not for sale: %(seats)s") % {"seats": ", ".join(blocked)},
            {"seats": blocked},
        )
    tiers = _active_tiers(session)
    tier_of: dict[int, PriceTier] = {}
    unpriced: list[str] = []
    for seat in seats:
        tier = tier_for_seat(tiers, section_code=seat.section.code, seat_type=seat.seat_type)
        if tier is None:
            unpriced.append(seat.code)
        else:
            tier_of[seat.pk] = tier
    if unpriced:
        raise DomainError(
            "seat_not_for_sale",
            _("These seats have no price: %(seats)s") % {"seats": ", ".join(sorted(unpriced))},
            {"seats": sorted(unpriced)},
        )
    _check_tier_limits(Counter(tier_of.values()))
    _check_customer_limit(session, holder_key, customer, len(seats), fresh=fresh_holder)
    return seats, tier_of


def _check_seat_rules(session: Session, seats: list[Seat], now: datetime) -> None:
    rows = {(s.section_id, s.row_label) for s in seats}
    row_seats = _row_seats(session, rows=rows)
    chosen_codes = {s.code for s in seats}
    missing = couples_missing_partner([r for r in row_seats if r.code in chosen_codes])
    if missing:
        raise DomainError(
            "couple_pair_required",
            _("Couple seats are sold in pairs; also choose the partner of %(seats)s.")
            % {"seats": ", ".join(missing)},
            {"seats": missing},
        )
    if not stranded_rule_enabled(session):
        return
    taken = _taken_codes(session, [r.id for r in row_seats], now)
    stranded = stranded_seats(segments(row_seats), taken=taken, chosen=chosen_codes)
    if stranded:
        raise DomainError(
            "stranded_seat",
            _("This choice would leave a single empty seat: %(seats)s")
            % {"seats": ", ".join(stranded)},
            {"seats": stranded},
        )


def _claim_seats_unsafe(session: Session, seat_ids: list[int], hold: Hold, now: datetime) -> int:
    """TEST-ONLY control: read, pause, then write without any condition — the race it loses."""
    free = list(
        SeatState.objects.filter(session=session, seat_id__in=seat_ids)
        .filter(_free_q(now))
        .values_list("id", flat=True)
    )
    time.sleep(UNSAFE_PAUSE_SECONDS)
    if len(free) != len(seat_ids):
        return len(free)
    return SeatState.objects.filter(id__in=free).update(
        state=SeatState.State.HELD, hold=hold, held_until=hold.expires_at
    )


def hold_seats(
    *,
    session: Session,
    seat_codes: list[str],
    holder_key: str,
    customer: User | None = None,
    ttl: timedelta | None = None,
    fresh_holder: bool = False,
) -> Hold:
    """Hold the named seats for `holder_key`, all of them or none. `fresh_holder`: the
    anonymous holder key was made for this request (it can hold nothing yet).

    Errors: `invalid_holder`, `not_reserved_seating`, `no_seats`, `sales_closed`,
    `seat_not_in_session`, `seat_blocked`, `seat_not_for_sale`, `over_limit`, `under_minimum`,
    `couple_pair_required`, `stranded_seat`, `seat_taken` (details `seats`: the taken ones).
    """
    seats, tier_of = _validate_seats(
        session, seat_codes, holder_key, customer, fresh_holder=fresh_holder
    )
    session_inventory_ensure(session)
    now = clock.now()
    _check_seat_rules(session, seats, now)
    seat_ids = [s.pk for s in seats]
    with transaction.atomic():
        hold = Hold.objects.create(
            session=session,
            holder_key=holder_key,
            customer=customer,
            expires_at=now + (ttl or hold_ttl()),
        )
        items = HoldItem.objects.bulk_create(
            [HoldItem(hold=hold, seat=seat, tier=tier_of[seat.pk], quantity=1) for seat in seats]
        )
        if _unsafe():
            changed = _claim_seats_unsafe(session, seat_ids, hold, now)
        else:
            changed = (
                SeatState.objects.filter(session=session, seat_id__in=seat_ids)
                .filter(_free_q(now))
                .update(state=SeatState.State.HELD, hold=hold, held_until=hold.expires_at)
            )
        if changed != len(seat_ids):
            taken = sorted(
                SeatState.objects.filter(session=session, seat_id__in=seat_ids)
                .exclude(hold=hold)
                .values_list("seat__code", flat=True)
            )
            raise DomainError(
                "seat_taken",
                _("These seats were just taken by someone else: %(seats)s")
                % {"seats": ", ".join(taken)},
                {"seats": taken},
            )
        _publish_seats(session, [[s.code, SeatState.State.HELD] for s in seats])
    _remember_items(hold, items)
    return hold


# --- Best available -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Windows:
    """Every run of `quantity` adjacent seats a tier may sell on one seat-map version, best
    first — what does not change while a session sells. Only the free/taken state is read per
    request."""

    segments: list[list[RowSeat]]
    #: (segment index, start) of each window, sorted by score (central, then near the front).
    ranked: list[tuple[int, int]]
    code_of: dict[int, str]


_WINDOWS_LOCK = threading.Lock()
_WINDOWS: OrderedDict[tuple[Any, ...], _Windows] = OrderedDict()
_WINDOWS_SIZE = 32


def _static_windows(
    session: Session, quantity: int, tier_code: str | None, tiers: list[PriceTier]
) -> _Windows:
    """The ranked windows, cached per process: seat-map versions are immutable, and the key
    carries everything of the tiers that decides which seat sells at which tier."""
    signature = tuple(
        (t.pk, t.code, t.section_codes, t.seat_type, t.audience, str(t.price)) for t in tiers
    )
    seat_map = session.seat_map
    # The creation stamp guards against a reused pk (SQLite reuses rolled-back ids).
    stamp = seat_map.created_at if seat_map is not None else None
    key = (session.seat_map_id, stamp, quantity, tier_code, signature)
    with _WINDOWS_LOCK:
        cached = _WINDOWS.get(key)
        if cached is not None:
            _WINDOWS.move_to_end(key)
            return cached
    all_seats = _row_seats(session)
    blocked_ids = set(
        Seat.objects.filter(seat_map=session.seat_map, is_blocked=True).values_list("id", flat=True)
    )
    segs = segments(all_seats)
    scored: list[tuple[float, int, int]] = []
    if all_seats:
        centre_x = (min(s.x for s in all_seats) + max(s.x for s in all_seats)) / 2
        front_y = min(s.y for s in all_seats)
        for index, seg in enumerate(segs):
            for start in range(0, len(seg) - quantity + 1):
                group = seg[start : start + quantity]
                if any(s.id in blocked_ids for s in group):
                    continue
                if tier_code is not None:
                    matches = [
                        tier_for_seat(tiers, section_code=s.section, seat_type=s.seat_type)
                        for s in group
                    ]
                    if any(t is None or t.code != tier_code for t in matches):
                        continue
                if couples_missing_partner(group):
                    continue
                cx = sum(s.x for s in group) / quantity
                cy = sum(s.y for s in group) / quantity
                scored.append((abs(cx - centre_x) + 0.75 * (cy - front_y), index, start))
    scored.sort()
    windows = _Windows(
        segments=segs,
        ranked=[(index, start) for _score, index, start in scored],
        code_of={s.id: s.code for s in all_seats},
    )
    with _WINDOWS_LOCK:
        _WINDOWS[key] = windows
        while len(_WINDOWS) > _WINDOWS_SIZE:
            _WINDOWS.popitem(last=False)
    return windows


def _best_candidates(
    session: Session, quantity: int, tier_code: str | None, now: datetime, *, limit: int
) -> list[list[RowSeat]]:
    """Up to `limit` free windows, best first, that strand no seat."""
    tiers = _active_tiers(session)
    windows = _static_windows(session, quantity, tier_code, tiers)
    if not windows.ranked:
        return []
    taken_ids = set(
        SeatState.objects.filter(session=session)
        .exclude(_free_q(now))
        .values_list("seat_id", flat=True)
    )
    taken = {windows.code_of[i] for i in taken_ids if i in windows.code_of}
    check_stranded = stranded_rule_enabled(session)
    found: list[list[RowSeat]] = []
    for index, start in windows.ranked:
        seg = windows.segments[index]
        group = seg[start : start + quantity]
        if any(s.id in taken_ids for s in group):
            continue
        if check_stranded and stranded_seats([seg], taken=taken, chosen={s.code for s in group}):
            continue
        found.append(group)
        if len(found) >= limit:
            break
    return found


def hold_best_available(
    *,
    session: Session,
    quantity: int,
    tier_code: str | None = None,
    holder_key: str,
    customer: User | None = None,
    ttl: timedelta | None = None,
    fresh_holder: bool = False,
) -> Hold:
    """Hold `quantity` adjacent seats in one row segment, as central and near the front as the
    tier allows; if another buyer wins a candidate, try the next one.

    For general admission / daily sessions this is `hold_quantity` (a tier code is required).
    Errors: those of `hold_seats`/`hold_quantity`, `invalid_quantity`, `not_enough_seats`.
    """
    if session.capacity_mode != CapacityMode.RESERVED:
        if not tier_code:
            raise DomainError("tier_required", _("Choose a ticket type."))
        return hold_quantity(
            session=session,
            tier_code=tier_code,
            quantity=quantity,
            holder_key=holder_key,
            customer=customer,
            ttl=ttl,
            fresh_holder=fresh_holder,
        )
    _check_holder(holder_key)
    if quantity < 1 or quantity > max_per_customer():
        raise DomainError(
            "invalid_quantity",
            _("Choose between 1 and %(n)d seats.") % {"n": max_per_customer()},
            {"limit": max_per_customer()},
        )
    _check_on_sale(session)
    session_inventory_ensure(session)
    for _round in range(3):
        candidates = _best_candidates(
            session, quantity, tier_code, clock.now(), limit=BEST_AVAILABLE_ATTEMPTS
        )
        if not candidates:
            break
        # The best window first; if someone took it meanwhile (at an on-sale everyone aims at
        # the same best seats), the next ones in random order, so buyers spread out instead of
        # colliding again on the second best.
        # Seats a lost race reported taken rule out every later candidate that uses them.
        rest = candidates[1:]
        random.shuffle(rest)
        known_taken: set[str] = set()
        for group in [candidates[0], *rest]:
            codes = [s.code for s in group]
            if known_taken.intersection(codes):
                continue
            try:
                return hold_seats(
                    session=session,
                    seat_codes=codes,
                    holder_key=holder_key,
                    customer=customer,
                    ttl=ttl,
                    fresh_holder=fresh_holder,
                )
            except DomainError as exc:
                if exc.code not in {"seat_taken", "stranded_seat"}:
                    raise
                known_taken.update(exc.details.get("seats", ()))
    raise DomainError(
        "not_enough_seats",
        _("There are not %(n)d seats together left.") % {"n": quantity},
        {"quantity": quantity, "tier": tier_code},
    )


# --- Quotas (general admission, daily capacity) -------------------------------------------------


_QUOTAS_LOCK = threading.Lock()
_QUOTAS: OrderedDict[tuple[str, int], list[Quota]] = OrderedDict()


def _quotas_for(session: Session, tier: PriceTier) -> list[Quota]:
    """The quotas a tier draws on, in lock order: the tier's own first, then the session's.
    Cached per process: quotas are created once (`session_inventory_ensure`) and only their
    buckets' counts change, which are never read from these objects."""
    key = (session.public_id, tier.pk)
    with _QUOTAS_LOCK:
        cached = _QUOTAS.get(key)
    if cached is not None:
        return cached
    quotas = {
        q.tier_id: q
        for q in Quota.objects.filter(Q(tier__isnull=True) | Q(tier=tier), session=session)
    }
    ordered = [quotas[tier.pk]] if tier.pk in quotas else []
    if None in quotas:
        ordered.append(quotas[None])

        def remember() -> None:
            with _QUOTAS_LOCK:
                _QUOTAS[key] = ordered
                while len(_QUOTAS) > 1024:
                    _QUOTAS.popitem(last=False)

        # Only once committed: quotas made in a transaction that rolls back must be forgotten.
        transaction.on_commit(remember)
    return ordered


def _reclaim(allocations: Any, now: datetime) -> int:
    """Free the expired ACTIVE allocations of `allocations`; each count comes back once."""
    freed = 0
    rows = list(
        allocations.filter(state=QuotaAllocation.State.ACTIVE, expires_at__lt=now)
        .order_by("bucket__quota__tier_id", "bucket_id", "id")
        .values_list("id", "bucket_id", "quantity")
    )
    for allocation_id, bucket_id, quantity in rows:
        if QuotaAllocation.objects.filter(
            id=allocation_id, state=QuotaAllocation.State.ACTIVE, expires_at__lt=now
        ).update(state=QuotaAllocation.State.FREED):
            QuotaBucket.objects.filter(id=bucket_id).update(taken=F("taken") - quantity)
            freed += quantity
    return freed


def _room(quota: Quota) -> int:
    room = quota.buckets.aggregate(r=Sum(F("capacity") - F("taken")))["r"]
    return int(room or 0)


def _take_unsafe(quota: Quota, quantity: int, hold: Hold) -> bool:
    """TEST-ONLY control: read the bucket, pause, write the sum back — loses updates."""
    bucket = quota.buckets.order_by("index").first()
    if bucket is None or bucket.taken + quantity > bucket.capacity:
        return False
    time.sleep(UNSAFE_PAUSE_SECONDS)
    QuotaBucket.objects.filter(id=bucket.pk).update(taken=bucket.taken + quantity)
    QuotaAllocation.objects.create(
        hold=hold, bucket=bucket, quantity=quantity, expires_at=hold.expires_at
    )
    return True


_TAKE_SKIP_LOCKED_SQL = """
UPDATE {table} SET taken = taken + %(n)s
WHERE taken + %(n)s <= capacity AND id = (
    SELECT id FROM {table} WHERE quota_id = %(quota)s AND taken + %(n)s <= capacity
    ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


def _take_one_bucket(quota: Quota, quantity: int) -> int | None:
    """Add `quantity` to one bucket with room; its id, or None if none could take it now.

    PostgreSQL: one statement picks a random bucket with room that nobody has locked (SKIP
    LOCKED) and updates it, so buyers spread over the buckets and never wait on one another
    here; a transaction holds at most one bucket of a quota from this step. If every bucket
    with room is locked by buyers still in their transactions, it tries again a few
    milliseconds later before the caller falls back to locking them all. (Waiting on a locked
    bucket instead would keep the lock of a bucket whose room ran out while waiting, and two
    buyers could deadlock; so would `UPDATE … WHERE taken + n <= capacity` tried bucket after
    bucket.) Elsewhere (SQLite serialises writers) the conditional updates are tried bucket by
    bucket.
    """
    if connection.vendor == "postgresql":
        sql = _TAKE_SKIP_LOCKED_SQL.format(table=QuotaBucket._meta.db_table)
        with connection.cursor() as cursor:
            for attempt in range(TAKE_ATTEMPTS):
                cursor.execute(sql, {"n": quantity, "quota": quota.pk})
                row = cursor.fetchone()
                if row:
                    return int(row[0])
                if attempt + 1 < TAKE_ATTEMPTS and _room(quota) >= quantity:
                    time.sleep(TAKE_RETRY_SECONDS * (attempt + 1))
                else:
                    break
        return None
    bucket_ids = list(quota.buckets.order_by("id").values_list("id", flat=True))
    if not bucket_ids:
        return None
    start = random.randrange(len(bucket_ids))
    for bucket_id in bucket_ids[start:] + bucket_ids[:start]:
        if QuotaBucket.objects.filter(id=bucket_id, taken__lte=F("capacity") - quantity).update(
            taken=F("taken") + quantity
        ):
            return bucket_id
    return None


def _take(quota: Quota, quantity: int, hold: Hold) -> bool:
    """Take `quantity` from the quota's buckets for `hold` with conditional updates."""
    bucket_id = _take_one_bucket(quota, quantity)
    if bucket_id is not None:
        QuotaAllocation.objects.create(
            hold=hold, bucket_id=bucket_id, quantity=quantity, expires_at=hold.expires_at
        )
        return True
    # No single bucket has room: lock them all (id order) and spread the quantity.
    buckets = list(QuotaBucket.objects.select_for_update().filter(quota=quota).order_by("id"))
    if sum(b.capacity - b.taken for b in buckets) < quantity:
        return False
    left = quantity
    for bucket in buckets:
        part = min(left, bucket.capacity - bucket.taken)
        if part <= 0:
            continue
        changed = QuotaBucket.objects.filter(id=bucket.pk, taken__lte=F("capacity") - part).update(
            taken=F("taken") + part
        )
        if not changed:  # pragma: no cover - the rows are locked; this cannot happen
            return False
        QuotaAllocation.objects.create(
            hold=hold, bucket=bucket, quantity=part, expires_at=hold.expires_at
        )
        left -= part
        if left == 0:
            break
    return left == 0


def hold_quantity(
    *,
    session: Session,
    tier_code: str,
    quantity: int,
    holder_key: str,
    customer: User | None = None,
    ttl: timedelta | None = None,
    fresh_holder: bool = False,
) -> Hold:
    """Hold `quantity` admissions of a tier of a general-admission / daily session.
    `fresh_holder`: the anonymous holder key was made for this request (it holds nothing yet,
    so the per-customer count is not read).

    A tier recently found sold out (`inventory.live` marker, cleared whenever admissions come
    back, a few seconds at most) is refused before any query.

    Errors: `invalid_holder`, `not_quota_session`, `invalid_quantity`, `tier_not_found`,
    `sales_closed`, `over_limit`, `under_minimum`, `sold_out` (details `available`).
    """
    _check_holder(holder_key)
    if session.capacity_mode == CapacityMode.RESERVED:
        raise DomainError("not_quota_session", _("This session has reserved seats; choose seats."))
    if quantity < 1:
        raise DomainError("invalid_quantity", _("Choose at least one ticket."))
    tier = next((t for t in _active_tiers(session) if t.code == tier_code), None)
    if tier is None:
        raise DomainError(
            "tier_not_found", _("No such ticket type for this session."), {"tier": tier_code}
        )
    _check_on_sale(session)
    if tier.code in sold_out_tiers(session.public_id):
        raise _sold_out(0, tier)
    _check_tier_limits(Counter({tier: quantity}))
    _check_customer_limit(session, holder_key, customer, quantity, fresh=fresh_holder)
    session_inventory_ensure(session)
    quotas = _quotas_for(session, tier)
    now = clock.now()
    if any(_room(q) < quantity for q in quotas):
        with transaction.atomic():
            freed = _reclaim(QuotaAllocation.objects.filter(bucket__quota__in=quotas), now)
            if freed:
                _publish_quota_later(session, returned=True)
        available = max(0, min(_room(q) for q in quotas))
        if available < quantity:
            # Sold out even after reclaiming expired holds: refuse without writing anything
            # (at a hot on-sale most buyers arrive after this point).
            if available == 0:
                next_expiry = QuotaAllocation.objects.filter(
                    bucket__quota__in=quotas, state=QuotaAllocation.State.ACTIVE
                ).aggregate(m=Min("expires_at"))["m"]
                sold_out_mark(session.public_id, tier.code, until=next_expiry)
            raise _sold_out(available, tier)
    take: Callable[[Quota, int, Hold], bool] = _take_unsafe if _unsafe() else _take
    with transaction.atomic():
        hold = Hold.objects.create(
            session=session,
            holder_key=holder_key,
            customer=customer,
            expires_at=now + (ttl or hold_ttl()),
        )
        item = HoldItem.objects.create(hold=hold, tier=tier, quantity=quantity)
        for quota in quotas:
            if not take(quota, quantity, hold):
                # Counted inside the transaction (nothing failed in the database, so it can
                # still answer); the exception then rolls the hold back.
                raise _sold_out(max(0, min(_room(q) for q in quotas)), tier)
        _publish_quota_later(session)
    _remember_items(hold, [item])
    return hold


def _sold_out(available: int, tier: PriceTier) -> DomainError:
    return DomainError(
        "sold_out",
        _("Only %(n)d tickets left.") % {"n": available},
        {"available": available, "tier": tier.code},
    )


# --- Hold life cycle ----------------------------------------------------------------------------


def _release_contents(hold: Hold, *, now: datetime | None = None) -> None:
    """Give the hold's seats and quantities back (only those still its own)."""
    seats = SeatState.objects.filter(hold=hold, state=SeatState.State.HELD)
    if now is not None:
        seats = seats.filter(held_until__lt=now)
    codes = list(seats.values_list("seat__code", flat=True))
    seats.update(state=SeatState.State.AVAILABLE, hold=None, held_until=None)
    _publish_seats(hold.session, [[code, SeatState.State.AVAILABLE] for code in codes])
    allocations = QuotaAllocation.objects.filter(hold=hold, state=QuotaAllocation.State.ACTIVE)
    rows = list(
        allocations.order_by("bucket__quota__tier_id", "bucket_id").values_list(
            "id", "bucket_id", "quantity"
        )
    )
    for allocation_id, bucket_id, quantity in rows:
        if QuotaAllocation.objects.filter(
            id=allocation_id, state=QuotaAllocation.State.ACTIVE
        ).update(state=QuotaAllocation.State.FREED):
            QuotaBucket.objects.filter(id=bucket_id).update(taken=F("taken") - quantity)
    if rows:
        _publish_quota_later(hold.session, returned=True)
    if codes or rows:
        _returned_later(hold.session)


def hold_release(*, hold: Hold) -> None:
    """Give a hold back at once. Releasing twice is harmless; a converted hold is refused."""
    with transaction.atomic():
        changed = Hold.objects.filter(pk=hold.pk, status=Hold.Status.ACTIVE).update(
            status=Hold.Status.RELEASED
        )
        if not changed:
            hold.refresh_from_db(fields=["status"])
            if hold.status == Hold.Status.CONVERTED:
                raise DomainError("hold_converted", _("These tickets were already bought."))
            return
        _release_contents(hold)
    hold.status = Hold.Status.RELEASED


def _hold_refusal(hold: Hold) -> DomainError:
    hold.refresh_from_db(fields=["status", "expires_at", "extended"])
    if hold.status == Hold.Status.CONVERTED:
        return DomainError("hold_converted", _("These tickets were already bought."))
    return DomainError(
        "hold_expired",
        _("Your reservation has expired; please choose again."),
        {"hold": hold.public_id},
    )


def hold_extend(*, hold: Hold, by: timedelta = DEFAULT_EXTENSION) -> Hold:
    """Extend an active, unexpired hold once. Errors: `hold_expired`, `hold_converted`,
    `already_extended`."""
    now = clock.now()
    try:
        with transaction.atomic():
            _extend(hold, by, now)
    except DomainError:
        hold.refresh_from_db(fields=["status", "expires_at", "extended"])
        raise
    return hold


def _extend(hold: Hold, by: timedelta, now: datetime) -> None:
    """Inside `hold_extend`'s transaction: move the expiry of the hold and of what it holds."""
    changed = Hold.objects.filter(
        pk=hold.pk, status=Hold.Status.ACTIVE, extended=False, expires_at__gte=now
    ).update(expires_at=F("expires_at") + by, extended=True)
    if not changed:
        error = _hold_refusal(hold)
        if hold.status == Hold.Status.ACTIVE and hold.extended and hold.expires_at >= now:
            raise DomainError("already_extended", _("A reservation can be extended only once."))
        raise error
    hold.refresh_from_db(fields=["expires_at", "extended"])
    expected = hold.items.filter(seat__isnull=False).count()
    moved = SeatState.objects.filter(
        hold=hold, state=SeatState.State.HELD, held_until__gte=now
    ).update(held_until=hold.expires_at)
    allocations = QuotaAllocation.objects.filter(
        hold=hold, state=QuotaAllocation.State.ACTIVE, expires_at__gte=now
    )
    expected_allocations = hold.allocations.count()
    moved_allocations = allocations.update(expires_at=hold.expires_at)
    if moved != expected or moved_allocations != expected_allocations:
        raise DomainError(
            "hold_expired",
            _("Your reservation has expired; please choose again."),
            {"hold": hold.public_id},
        )


def hold_convert(*, hold: Hold) -> None:
    """Turn an unexpired active hold into sold seats / admissions (checkout calls this inside its
    own transaction). Errors: `hold_expired` (expired or released), `hold_converted`."""
    now = clock.now()
    with transaction.atomic():
        changed = Hold.objects.filter(
            pk=hold.pk, status=Hold.Status.ACTIVE, expires_at__gte=now
        ).update(status=Hold.Status.CONVERTED)
        if not changed:
            raise _hold_refusal(hold)
        expected = hold.items.filter(seat__isnull=False).count()
        codes = list(
            SeatState.objects.filter(
                hold=hold, state=SeatState.State.HELD, held_until__gte=now
            ).values_list("seat__code", flat=True)
        )
        sold = SeatState.objects.filter(
            hold=hold, state=SeatState.State.HELD, held_until__gte=now
        ).update(state=SeatState.State.SOLD, held_until=None)
        expected_allocations = hold.allocations.count()
        converted = QuotaAllocation.objects.filter(
            hold=hold, state=QuotaAllocation.State.ACTIVE, expires_at__gte=now
        ).update(state=QuotaAllocation.State.CONVERTED)
        if sold != expected or converted != expected_allocations:
            raise DomainError(
                "hold_expired",
                _("Your reservation has expired; please choose again."),
                {"hold": hold.public_id},
            )
        _publish_seats(hold.session, [[code, SeatState.State.SOLD] for code in codes])
        if expected_allocations:
            _publish_quota_later(hold.session)
    hold.status = Hold.Status.CONVERTED


def sold_return(*, hold: Hold, seat_ids: list[int], tier_quantities: dict[int, int]) -> None:
    """Put sold admissions of a converted hold back on sale (refunds, exchanges, cancellations):
    the seats `seat_ids`, and per tier id the number of general-admission / daily admissions.

    Each seat goes `sold → available` with one conditional UPDATE on this hold's seats; each
    quota count comes back through its allocations with
    `UPDATE allocation SET returned = returned + n WHERE … AND returned + n <= quantity`
    (a CHECK backs it), then `taken - n` on the bucket — so an admission returns at most once,
    whoever asks twice. Runs inside the caller's transaction. Errors: `not_sold` (409) when a
    seat or a quantity is not (or no longer) sold under this hold.
    """
    session = hold.session
    with transaction.atomic():
        if seat_ids:
            codes = list(
                SeatState.objects.filter(
                    session=session, seat_id__in=seat_ids, hold=hold, state=SeatState.State.SOLD
                ).values_list("seat__code", flat=True)
            )
            returned = SeatState.objects.filter(
                session=session, seat_id__in=seat_ids, hold=hold, state=SeatState.State.SOLD
            ).update(state=SeatState.State.AVAILABLE, hold=None, held_until=None)
            if returned != len(set(seat_ids)):
                raise _not_sold()
            _publish_seats(session, [[code, SeatState.State.AVAILABLE] for code in codes])
        tiers = {t.pk: t for t in PriceTier.objects.filter(pk__in=list(tier_quantities))}
        for tier_id, quantity in sorted(tier_quantities.items()):
            if quantity <= 0:
                continue
            if tier_id not in tiers:
                raise _not_sold()
            for quota in _quotas_for(session, tiers[tier_id]):
                _return_to_quota(hold, quota, quantity)
        if any(quantity > 0 for quantity in tier_quantities.values()):
            _publish_quota_later(session, returned=True)
        if seat_ids or any(quantity > 0 for quantity in tier_quantities.values()):
            _returned_later(session)


def _not_sold() -> DomainError:
    error = DomainError("not_sold", _("These admissions are not sold under this order."))
    error.status = 409
    return error


def _return_to_quota(hold: Hold, quota: Quota, quantity: int) -> None:
    left = quantity
    allocations = list(
        QuotaAllocation.objects.filter(
            hold=hold, bucket__quota=quota, state=QuotaAllocation.State.CONVERTED
        )
        .order_by("id")
        .values_list("id", "bucket_id", "quantity", "returned")
    )
    for allocation_id, bucket_id, allocated, already in allocations:
        if left <= 0:
            break
        n = min(left, allocated - already)
        if n <= 0:
            continue
        if QuotaAllocation.objects.filter(id=allocation_id, returned__lte=F("quantity") - n).update(
            returned=F("returned") + n
        ):
            QuotaBucket.objects.filter(id=bucket_id).update(taken=F("taken") - n)
            left -= n
    if left:
        raise _not_sold()


def hold_create_empty(
    *, session: Session, holder_key: str, customer: User | None, expires_at: datetime
) -> Hold:
    """An active hold of nothing until `expires_at`, for an order that sells no admissions (a
    prepaid waitlist deposit: `Order.hold` is required). It takes no seat and no quota, so
    converting it when the order is paid sells nothing, and releasing or sweeping it gives
    nothing back. Errors: `invalid_holder`."""
    _check_holder(holder_key)
    hold = Hold.objects.create(
        session=session, holder_key=holder_key, customer=customer, expires_at=expires_at
    )
    _remember_items(hold, [])
    return hold


def holds_adopt(*, holder_key: str, new_holder_key: str, customer: User) -> int:
    """Move the active and converted holds of `holder_key` to `new_holder_key` (a buyer signed
    in). Returns how many moved."""
    _check_holder(new_holder_key)
    return Hold.objects.filter(
        holder_key=holder_key, status__in=[Hold.Status.ACTIVE, Hold.Status.CONVERTED]
    ).update(holder_key=new_holder_key, customer=customer)


def holds_sweep(*, now: datetime | None = None) -> int:
    """Tidy up: mark expired active holds released and give back what they still hold.
    Availability never waits for this. Returns how many holds it tidied."""
    now = now or clock.now()
    count = 0
    expired = list(
        Hold.objects.filter(status=Hold.Status.ACTIVE, expires_at__lt=now)
        .select_related("session")
        .order_by("id")[:1000]
    )
    for hold in expired:
        with transaction.atomic():
            if Hold.objects.filter(
                pk=hold.pk, status=Hold.Status.ACTIVE, expires_at__lt=now
            ).update(status=Hold.Status.RELEASED):
                _release_contents(hold, now=now)
                count += 1
    return count
