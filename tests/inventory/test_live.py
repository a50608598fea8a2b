"""Throttled availability publishing and the sold-out marker (`inventory.live`)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

import pytest
from django.db.models import prefetch_related_objects

from piaowu.catalog.models import Session
from piaowu.inventory import live
from piaowu.inventory.models import QuotaAllocation
from piaowu.inventory.services import hold_quantity, hold_release, holds_sweep
from tests.inventory.conftest import Clock, clock

MakeSession = Any
__all__ = ["clock"]

pytestmark = pytest.mark.django_db


def test_throttle_sends_at_once_then_one_trailing_publish_with_the_final_state(
    settings: Any,
) -> None:
    settings.PIAOWU_AVAILABILITY_PUBLISH_MS = 100
    key = f"test:{uuid.uuid4()}"
    state = {"value": 0}
    sent: list[int] = []
    done = threading.Event()

    def send() -> None:
        sent.append(state["value"])
        if len(sent) == 2:
            done.set()

    state["value"] = 1
    assert live.publish_throttled(key, send) is True
    for value in (2, 3, 4):  # three more changes inside the interval
        state["value"] = value
        assert live.publish_throttled(key, send) is False
    assert sent == [1]
    assert done.wait(2.0)
    time.sleep(0.3)  # no further publish follows
    assert sent == [1, 4]  # the last change was published, once


def test_throttle_off_publishes_every_change(settings: Any) -> None:
    settings.PIAOWU_AVAILABILITY_PUBLISH_MS = 0
    sent: list[int] = []
    for n in range(3):
        assert live.publish_throttled("test:off", lambda n=n: sent.append(n)) is True
    assert sent == [0, 1, 2]


def _sold_out_now(session: Session) -> None:
    with pytest.raises(Exception) as caught:
        hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="late")
    assert getattr(caught.value, "code", "") == "sold_out"


def test_sold_out_marker_refuses_without_queries_and_clears_on_release(
    ga_session: MakeSession,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    session = ga_session(capacity=2)
    sold = hold_quantity(session=session, tier_code="ga", quantity=2, holder_key="a")
    _sold_out_now(session)  # finds it sold out and sets the marker
    assert live.sold_out_tiers(session.public_id) == {"ga"}
    prefetch_related_objects([session], "price_tiers")  # as `session_get_for_sale` has them
    with django_assert_num_queries(0):
        _sold_out_now(session)
    with django_capture_on_commit_callbacks(execute=True):
        hold_release(hold=sold)
    assert live.sold_out_tiers(session.public_id) == set()
    hold = hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="b")
    assert hold.items.get().quantity == 1


def test_sold_out_marker_ends_when_the_first_hold_expires(
    ga_session: MakeSession, clock: Clock, settings: Any
) -> None:
    settings.PIAOWU_SOLD_OUT_MARKER_SECONDS = 3600  # only the hold's expiry may end it
    session = ga_session(capacity=2)
    old = hold_quantity(session=session, tier_code="ga", quantity=2, holder_key="a")
    _sold_out_now(session)
    assert live.sold_out_tiers(session.public_id) == {"ga"}
    clock.shift(dt.timedelta(minutes=10, seconds=1))  # the hold expired: sellable at once
    assert live.sold_out_tiers(session.public_id) == set()
    hold_quantity(session=session, tier_code="ga", quantity=2, holder_key="b")
    assert QuotaAllocation.objects.get(hold=old).state == "freed"


def test_sweeping_an_expired_hold_clears_the_marker(
    ga_session: MakeSession, clock: Clock, django_capture_on_commit_callbacks: Any
) -> None:
    session = ga_session(capacity=1)
    hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="a")
    _sold_out_now(session)
    clock.shift(dt.timedelta(minutes=10, seconds=1))
    live.sold_out_mark(session.public_id, "ga", until=None)  # as if marked again just now
    with django_capture_on_commit_callbacks(execute=True):
        assert holds_sweep(now=clock()) == 1
    assert live.sold_out_tiers(session.public_id) == set()


def test_a_fresh_holder_skips_the_customer_count_but_not_the_limit(
    ga_session: MakeSession, django_assert_max_num_queries: Any, settings: Any
) -> None:
    settings.PIAOWU_MAX_PER_CUSTOMER = 2
    session = ga_session(capacity=10)
    with pytest.raises(Exception) as caught:
        hold_quantity(
            session=session, tier_code="ga", quantity=3, holder_key="new", fresh_holder=True
        )
    assert getattr(caught.value, "code", "") == "over_limit"
    hold_quantity(session=session, tier_code="ga", quantity=2, holder_key="x")
    # An existing key is still counted.
    with pytest.raises(Exception) as again:
        hold_quantity(session=session, tier_code="ga", quantity=1, holder_key="x")
    assert getattr(again.value, "code", "") == "over_limit"
