"""General-admission / daily quotas: buckets, instant reclaim of expired holds, refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum

from piaowu.catalog.models import CapacityMode, Session
from piaowu.catalog.services import TierSpec
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, Quota, QuotaAllocation, QuotaBucket
from piaowu.inventory.selectors import session_availability
from piaowu.inventory.services import (
    _bucket_sizes,
    hold_best_available,
    hold_convert,
    hold_quantity,
    hold_release,
    hold_seats,
    holds_sweep,
    session_inventory_ensure,
)
from tests.inventory.conftest import Clock

pytestmark = pytest.mark.django_db

MakeSession = Callable[..., Session]


def taken(session: Session, tier_id: int | None = None) -> int:
    quota = Quota.objects.get(session=session, tier_id=tier_id)
    return int(quota.buckets.aggregate(t=Sum("taken"))["t"] or 0)


def refused(code: str, call: Callable[[], Any]) -> DomainError:
    with pytest.raises(DomainError) as info:
        call()
    assert info.value.code == code, info.value.as_dict()
    return info.value


def test_bucket_sizes_add_up_to_the_capacity() -> None:
    assert _bucket_sizes(1) == [1]
    assert _bucket_sizes(10) == [5, 5]
    assert _bucket_sizes(1000) == [16] * 40 + [15] * 24  # at most 64 buckets
    assert sum(_bucket_sizes(37)) == 37 and len(_bucket_sizes(37)) == 9  # at least 4 each


def test_ensure_builds_session_and_tier_quotas_once(ga_session: MakeSession) -> None:
    tiers = [
        TierSpec(code="eco", name="经济舱", price=Decimal("800"), capacity=12),
        TierSpec(code="biz", name="公务舱", price=Decimal("3000"), capacity=4),
    ]
    session = ga_session(capacity=16, tiers=tiers)
    session_inventory_ensure(session)
    session_inventory_ensure(session)
    assert Quota.objects.filter(session=session).count() == 3
    assert QuotaBucket.objects.filter(quota__session=session).aggregate(c=Sum("capacity"))["c"] == (
        16 + 12 + 4
    )


def test_hold_quantity_takes_from_a_bucket_and_publishes(
    ga_session: MakeSession,
    published: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    session = ga_session(capacity=20)
    with django_capture_on_commit_callbacks(execute=True):
        hold = hold_quantity(session=session, tier_code="ga", quantity=3, holder_key="a")
    assert hold.items.get().quantity == 3
    assert taken(session) == 3
    assert published == [
        (
            f"session:{session.public_id}",
            {"type": "quota", "session": session.public_id, "tiers": {"ga": 17}, "available": 17},
        )
    ]


def test_quantity_spreads_over_buckets_when_no_single_one_has_room(
    ga_session: MakeSession,
) -> None:
    session = ga_session(capacity=8)  # two buckets of 4
    hold_quantity(session=session, tier_code="ga", quantity=3, holder_key="a")
    hold_quantity(session=session, tier_code="ga", quantity=3, holder_key="b")
    assert sorted(
        QuotaBucket.objects.filter(quota__session=session).values_list("taken", flat=True)
    ) == [3, 3]
    hold = hold_quantity(session=session, tier_code="ga", quantity=2, holder_key="c")
    assert hold.allocations.count() == 2
    assert taken(session) == 8
    error = refused(
        "sold_out",
        lambda: hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="d"),
    )
    assert error.details == {"available": 0, "tier": "ga"}
    assert session_availability(session)["sold_out"] is True


def test_sold_out_leaves_nothing_half_held(ga_session: MakeSession) -> None:
    tiers = [TierSpec(code="biz", name="公务舱", price=Decimal("3000"), capacity=4)]
    session = ga_session(capacity=5, tiers=tiers)
    hold_quantity(session=session, tier_code="biz", quantity=2, holder_key="a")
    hold_quantity(session=session, tier_code="biz", quantity=2, holder_key="b")
    error = refused(
        "sold_out",
        lambda: hold_quantity(session=session, tier_code="biz", quantity=2, holder_key="c"),
    )
    assert error.details["available"] == 0
    tier_id = session.price_tiers.get(code="biz").pk
    assert taken(session, tier_id) == 4
    assert taken(session) == 4
    assert Hold.objects.filter(session=session).count() == 2


def test_expired_quantities_are_reclaimed_at_once(ga_session: MakeSession, clock: Clock) -> None:
    session = ga_session(capacity=4)
    old = hold_quantity(session=session, tier_code="ga", quantity=4, holder_key="a")
    refused(
        "sold_out",
        lambda: hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="b"),
    )
    clock.shift(dt.timedelta(minutes=10, seconds=1))
    assert session_availability(session)["available"] == 4  # before anyone reclaims
    hold_quantity(session=session, tier_code="ga", quantity=4, holder_key="b")
    assert taken(session) == 4
    assert QuotaAllocation.objects.get(hold=old).state == "freed"
    refused("hold_expired", lambda: hold_convert(hold=old))
    assert holds_sweep(now=clock()) == 1
    assert taken(session) == 4  # the sweeper does not give the count back twice


def test_release_and_convert_of_quantities(ga_session: MakeSession) -> None:
    session = ga_session(capacity=10, mode=CapacityMode.DAILY)
    kept = hold_quantity(session=session, tier_code="ga", quantity=2, holder_key="a")
    dropped = hold_quantity(session=session, tier_code="ga", quantity=3, holder_key="b")
    hold_release(hold=dropped)
    assert taken(session) == 2
    hold_convert(hold=kept)
    numbers = session_availability(session)
    assert (numbers["available"], numbers["held"], numbers["sold"]) == (8, 0, 2)
    refused("hold_converted", lambda: hold_convert(hold=kept))


def test_quantity_refusals(ga_session: MakeSession, reserved_session: MakeSession) -> None:
    tiers = [TierSpec(code="ga", name="通票", price=Decimal("280"), max_per_order=4)]
    session = ga_session(capacity=50, tiers=tiers)
    refused(
        "invalid_quantity",
        lambda: hold_quantity(session=session, tier_code="ga", quantity=0, holder_key="a"),
    )
    refused(
        "tier_not_found",
        lambda: hold_quantity(session=session, tier_code="vip", quantity=1, holder_key="a"),
    )
    refused(
        "over_limit",
        lambda: hold_quantity(session=session, tier_code="ga", quantity=5, holder_key="a"),
    )
    refused(
        "invalid_holder",
        lambda: hold_quantity(session=session, tier_code="ga", quantity=1, holder_key=""),
    )
    hold_quantity(session=session, tier_code="ga", quantity=4, holder_key="a")
    error = refused(
        "over_limit",
        lambda: hold_quantity(session=session, tier_code="ga", quantity=3, holder_key="a"),
    )
    assert error.details == {"limit": 6, "already": 4, "requested": 3}
    refused(
        "not_reserved_seating",
        lambda: hold_seats(session=session, seat_codes=["M-1-1"], holder_key="z"),
    )
    refused(
        "tier_required",
        lambda: hold_best_available(session=session, quantity=1, holder_key="z"),
    )
    seated = reserved_session()
    refused(
        "not_quota_session",
        lambda: hold_quantity(session=seated, tier_code="std", quantity=1, holder_key="z"),
    )
    assert taken(session) == 4
