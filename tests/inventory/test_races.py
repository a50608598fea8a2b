"""Real concurrency on PostgreSQL: threads, each with its own connection, lined up on a barrier.

Every race runs twice: with the real services (never oversells) and with the test-only
`PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE` control, which must oversell — otherwise a green race
test would prove nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import Q, Sum
from django.utils import timezone

from piaowu.catalog.models import Session
from piaowu.inventory.models import Hold, HoldItem, QuotaAllocation, QuotaBucket, SeatState
from piaowu.inventory.services import hold_convert, hold_quantity, hold_seats
from tests.races import race as race_all

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MakeSession = Callable[..., Session]


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` for i in 0..n-1 at once, through the shared harness (tests/races.py)."""
    return race_all([functools.partial(work, i) for i in range(n)])


def seat_oversell(session: Session, at: dt.datetime | None = None) -> int:
    """Seats claimed by a live hold (converted, or active and unexpired at `at`) that the seat
    row does not record, plus converted holds' seats that are not sold: both mean a seat went
    to two buyers."""
    at = at or timezone.now()
    claims = HoldItem.objects.filter(
        Q(hold__status=Hold.Status.CONVERTED)
        | Q(hold__status=Hold.Status.ACTIVE, hold__expires_at__gte=at),
        hold__session=session,
        seat__isnull=False,
    ).values_list("hold_id", "hold__status", "seat_id")
    rows = {
        seat_id: (hold_id, state)
        for seat_id, hold_id, state in SeatState.objects.filter(session=session).values_list(
            "seat_id", "hold_id", "state"
        )
    }
    bad = 0
    for hold_id, status, seat_id in claims:
        owner, state = rows[seat_id]
        if owner != hold_id or (status == Hold.Status.CONVERTED and state != "sold"):
            bad += 1
    return bad


def hold_seats_race(session: Session) -> tuple[list[Any], int]:
    wanted = [[f"M-1-{3 + i % 5}", f"M-1-{4 + i % 5}"] for i in range(12)]

    def buy(i: int) -> Hold:
        own = Session.objects.get(pk=session.pk)
        return hold_seats(session=own, seat_codes=wanted[i], holder_key=f"buyer-{i}")

    results = race(12, buy)
    return results, seat_oversell(session)


@pytest.mark.parametrize("unsafe", [False, True], ids=["protected", "control"])
def test_buyers_racing_for_overlapping_seats(
    transactional_db: None, reserved_session: MakeSession, settings: Any, unsafe: bool
) -> None:
    settings.PIAOWU_INVENTORY_STRANDED_RULE = False
    settings.PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE = unsafe
    session = reserved_session()
    results, oversell = hold_seats_race(session)
    holds = [r for r in results if isinstance(r, Hold)]
    if unsafe:
        assert oversell > 0, results
        return
    assert oversell == 0
    assert holds and all(isinstance(r, Hold) or r == "seat_taken" for r in results), results
    held = list(
        SeatState.objects.filter(session=session, state="held").values_list("seat_id", flat=True)
    )
    assert len(held) == len(set(held)) == 2 * len(holds)  # nothing half-held
    assert Hold.objects.filter(session=session).count() == len(holds)


def quota_race(session: Session) -> tuple[list[Any], int]:
    def buy(i: int) -> Hold:
        own = Session.objects.get(pk=session.pk)
        return hold_quantity(session=own, tier_code="ga", quantity=1, holder_key=f"buyer-{i}")

    results = race(50, buy)
    claimed = (
        QuotaAllocation.objects.filter(
            hold__session=session, state__in=["active", "converted"]
        ).aggregate(n=Sum("quantity"))["n"]
        or 0
    )
    return results, claimed - (session.capacity or 0)


@pytest.mark.parametrize("unsafe", [False, True], ids=["protected", "control"])
def test_fifty_buyers_racing_for_a_small_quota(
    transactional_db: None, ga_session: MakeSession, settings: Any, unsafe: bool
) -> None:
    settings.PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE = unsafe
    session = ga_session(capacity=10)
    results, oversell = quota_race(session)
    if unsafe:
        assert oversell > 0, results
        return
    assert oversell == 0
    assert sum(isinstance(r, Hold) for r in results) == 10
    assert all(isinstance(r, Hold) or r == "sold_out" for r in results), results
    assert QuotaBucket.objects.filter(quota__session=session).aggregate(t=Sum("taken"))["t"] == 10


class ThreadClock:
    """Each thread sees its own time: the converting thread just before the hold expires,
    the buyers just after — the boundary where expiry and checkout meet."""

    def __init__(self) -> None:
        self.local = threading.local()

    def __call__(self) -> dt.datetime:
        return timezone.now() + getattr(self.local, "offset", dt.timedelta())

    def set(self, offset: dt.timedelta) -> None:
        self.local.offset = offset


@pytest.mark.parametrize("unsafe", [False, True], ids=["protected", "control"])
def test_hold_expiry_racing_checkout_ends_consistent(
    transactional_db: None,
    reserved_session: MakeSession,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    unsafe: bool,
) -> None:
    clock = ThreadClock()
    monkeypatch.setattr("piaowu.core.clock.now", clock)

    def attempt() -> tuple[Session, Hold, list[Any], int]:
        settings.PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE = False
        session = reserved_session()
        hold = hold_seats(session=session, seat_codes=["M-1-5", "M-1-6"], holder_key="first")
        settings.PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE = unsafe

        def work(i: int) -> Any:
            own = Session.objects.get(pk=session.pk)
            if i == 0:
                clock.set(dt.timedelta(minutes=10) - dt.timedelta(seconds=1))
                time.sleep(0.01)  # let the buyers read first
                hold_convert(hold=Hold.objects.get(pk=hold.pk))
                return "converted"
            clock.set(dt.timedelta(minutes=11))
            return hold_seats(session=own, seat_codes=["M-1-5", "M-1-6"], holder_key=f"b{i}")

        results = race(8, work)
        oversell = seat_oversell(session, at=timezone.now() + dt.timedelta(minutes=11))
        return session, hold, results, oversell

    if unsafe:
        # The control only has to show that the race can happen; thread scheduling on a
        # loaded machine may line the threads up harmlessly once, so allow a few attempts.
        for _ in range(5):
            _session, _hold, results, oversell = attempt()
            if oversell > 0:
                break
        assert oversell > 0, results
        return
    session, hold, results, oversell = attempt()
    assert oversell == 0, results
    winners = [r for r in results if isinstance(r, Hold) or r == "converted"]
    assert len(winners) == 1, results
    assert all(
        isinstance(r, Hold) or r in {"converted", "hold_expired", "seat_taken"} for r in results
    ), results
    converted = Hold.objects.get(pk=hold.pk).status == Hold.Status.CONVERTED
    sold = SeatState.objects.filter(session=session, state="sold").count()
    assert sold == (2 if converted else 0)
