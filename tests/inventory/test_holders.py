"""The buyer identity kept in the browser session: holder key and orders it may open."""

from __future__ import annotations

from typing import Any

from piaowu.inventory.holders import (
    MAX_GRANTED_ORDERS,
    grant_order,
    granted_order_ids,
    holder_key_for,
)


class Anonymous:
    is_authenticated = False


class SignedIn:
    is_authenticated = True
    pk = 7


def test_holder_key_is_the_account_or_a_session_key_made_on_demand() -> None:
    session: dict[str, Any] = {}
    assert holder_key_for(user=SignedIn(), session=session, create=True) == "user:7"
    assert session == {}
    assert holder_key_for(user=Anonymous(), session=session) == ""
    made = holder_key_for(user=Anonymous(), session=session, create=True)
    assert made.startswith("anon:") and len(made) > 20
    assert holder_key_for(user=None, session=session) == made


def test_granted_orders_keep_the_newest_once_and_ignore_garbage() -> None:
    session: dict[str, Any] = {"piaowu_orders": "not a list"}
    assert granted_order_ids(session) == []
    for n in range(MAX_GRANTED_ORDERS + 5):
        grant_order(session, f"order-{n}")
    grant_order(session, "order-10")  # again: moves to the end, not twice
    granted = granted_order_ids(session)
    assert len(granted) == MAX_GRANTED_ORDERS
    assert granted[-1] == "order-10" and granted.count("order-10") == 1
    assert "order-0" not in granted  # the oldest went first
