"""The waitlist API: join, my entries with their position, one entry, leave — a customer's own
entries only (anyone else's is 404, anonymous callers 401), every refusal with its code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import User
from piaowu.aftersales.models import WaitlistEntry
from piaowu.aftersales.services.waitlist import waitlist_offer_due
from piaowu.catalog.models import Session, WaitlistMode
from tests.aftersales.waitlist.conftest import (
    Join,
    MakeSoldOut,
    deposit_of,
    give_back,
    pay,
    set_waitlist,
)

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    return client


def post(client: Client, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
    return client.post(
        f"/api/v1{path}", body or {}, content_type="application/json", headers=headers
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert set(body) == {"code", "message", "details"}
    return body


def join_path(session: Session) -> str:
    return f"/sessions/{session.public_id}/waitlist"


def test_anonymous_callers_get_401_everywhere(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out()
    entry = join(s.session, customers[0])
    anonymous = Client(headers={"accept-language": "en"})

    assert_error(
        post(anonymous, join_path(s.session), {"tier": "ga", "quantity": 1}), 401, "unauthorized"
    )
    assert_error(anonymous.get("/api/v1/waitlist"), 401, "unauthorized")
    assert_error(anonymous.get(f"/api/v1/waitlist/{entry.public_id}"), 401, "unauthorized")
    assert_error(post(anonymous, f"/waitlist/{entry.public_id}/cancel"), 401, "unauthorized")
    assert WaitlistEntry.objects.count() == 1


def test_join_an_offer_mode_waitlist(sold_out: MakeSoldOut, customers: list[User]) -> None:
    s = sold_out()

    response = post(signed_in(customers[0]), join_path(s.session), {"tier": "ga", "quantity": 2})

    assert response.status_code == 201, response.content
    body = response.json()
    entry = WaitlistEntry.objects.get(public_id=body["id"])
    assert entry.customer == customers[0]
    assert body["state"] == "waiting" and body["mode"] == "offer"
    assert body["position"] == 1
    assert body["quantity"] == 2
    assert body["tier"] == {"code": "ga", "name": "通票"}
    assert body["unit_price"] == {"amount": "280.00", "currency": "CNY"}
    assert body["session"]["id"] == s.session.public_id
    assert body["deadline"].endswith("Z")
    assert body["deposit_order"] is None and body["offer"] is None and body["order"] is None


def test_join_a_prepaid_waitlist_returns_the_deposit_order_to_pay(
    sold_out: MakeSoldOut, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    client = signed_in(customers[0])

    body = post(
        client, join_path(s.session), {"tier": "ga", "quantity": 2, "contact_phone": "13800138000"}
    ).json()

    assert body["state"] == "awaiting_payment"
    deposit = body["deposit_order"]
    assert deposit["state"] == "awaiting_payment"
    assert deposit["total"] == {"amount": "560.00", "currency": "CNY"}
    entry = WaitlistEntry.objects.get(public_id=body["id"])
    pay(deposit_of(entry))
    after = client.get(f"/api/v1/waitlist/{entry.public_id}").json()
    assert after["state"] == "waiting"
    assert after["deposit_order"]["state"] == "paid"


def test_an_offered_entry_shows_where_to_check_out(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out()
    entry = join(s.session, customers[0], quantity=2)
    give_back(staff, s.orders[0])
    waitlist_offer_due()

    body = signed_in(customers[0]).get(f"/api/v1/waitlist/{entry.public_id}").json()

    entry.refresh_from_db()
    assert body["state"] == "offered"
    assert entry.offer_hold is not None
    assert body["offer"]["hold"] == entry.offer_hold.public_id
    assert body["offer"]["checkout_url"] == f"/waitlist/{entry.public_id}/checkout/"
    assert body["offer"]["expires_at"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"tier": "ga", "quantity": 0}, "invalid_quantity"),
        ({"tier": "ga", "quantity": 7}, "invalid_quantity"),
        ({"tier": "vip", "quantity": 1}, "waitlist_tier_invalid"),
        (
            {"tier": "ga", "quantity": 1, "wait_until": "2020-01-01T00:00:00Z"},
            "waitlist_deadline_invalid",
        ),
        ({"tier": "ga"}, "invalid_input"),
        ({"tier": "ga", "quantity": "many"}, "invalid_input"),
    ],
)
def test_bad_joins_are_refused_with_their_code(
    sold_out: MakeSoldOut, customers: list[User], body: dict[str, Any], code: str
) -> None:
    s = sold_out()

    assert_error(post(signed_in(customers[0]), join_path(s.session), body), 400, code)
    assert not WaitlistEntry.objects.exists()


def test_a_tier_of_another_session_is_refused(
    sold_out: MakeSoldOut, ga_session: Callable[..., Session], customers: list[User]
) -> None:
    from decimal import Decimal

    from piaowu.catalog.services import TierSpec

    s = sold_out()
    ga_session(tiers=[TierSpec(code="vip", name="贵宾票", price=Decimal("680"))])

    body = assert_error(
        post(signed_in(customers[0]), join_path(s.session), {"tier": "vip", "quantity": 1}),
        400,
        "waitlist_tier_invalid",
    )
    assert body["details"] == {"tier": "vip"}


def test_joining_an_on_sale_session_is_refused(
    ga_session: Callable[..., Session], customers: list[User]
) -> None:
    session = set_waitlist(ga_session(capacity=5), WaitlistMode.OFFER)

    body = assert_error(
        post(signed_in(customers[0]), join_path(session), {"tier": "ga", "quantity": 2}),
        400,
        "waitlist_not_sold_out",
    )
    assert body["message"] == "These tickets are still on sale; buy them directly."
    assert body["details"] == {"available": 5}


def test_a_session_without_a_waitlist_and_an_unknown_one_are_refused(
    sold_out: MakeSoldOut, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.OFF)
    client = signed_in(customers[0])

    assert_error(
        post(client, join_path(s.session), {"tier": "ga", "quantity": 1}), 400, "waitlist_off"
    )
    assert_error(
        post(client, "/sessions/01NOSUCHSESSION0000000000/waitlist", {"tier": "ga", "quantity": 1}),
        404,
        "session_not_found",
    )


def test_joining_twice_is_refused_with_409(sold_out: MakeSoldOut, customers: list[User]) -> None:
    s = sold_out()
    client = signed_in(customers[0])
    first = post(client, join_path(s.session), {"tier": "ga", "quantity": 1}).json()

    body = assert_error(
        post(client, join_path(s.session), {"tier": "ga", "quantity": 2}),
        409,
        "waitlist_already_joined",
    )
    assert body["details"] == {"entry": first["id"]}


def test_a_retried_join_with_the_same_idempotency_key_answers_the_same(
    sold_out: MakeSoldOut, customers: list[User]
) -> None:
    s = sold_out()
    client = signed_in(customers[0])

    first = post(
        client, join_path(s.session), {"tier": "ga", "quantity": 1}, **{"Idempotency-Key": "k1"}
    )
    again = post(
        client, join_path(s.session), {"tier": "ga", "quantity": 1}, **{"Idempotency-Key": "k1"}
    )

    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert WaitlistEntry.objects.count() == 1


def test_my_entries_are_mine_only_newest_first(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s, t = sold_out(), sold_out()
    older = join(s.session, customers[0])
    newer = join(t.session, customers[0], quantity=2)
    join(s.session, customers[1])  # ahead of nobody of customer 0's; someone else's

    body = signed_in(customers[0]).get("/api/v1/waitlist").json()

    assert [item["id"] for item in body["items"]] == [newer.public_id, older.public_id]
    assert [item["position"] for item in body["items"]] == [1, 1]
    assert body["count"] == 2 and body["next_page"] is None


def test_someone_elses_entry_is_404_to_read_and_to_cancel(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out()
    theirs = join(s.session, customers[1])
    client = signed_in(customers[0])

    assert_error(
        client.get(f"/api/v1/waitlist/{theirs.public_id}"), 404, "waitlist_entry_not_found"
    )
    assert_error(
        post(client, f"/waitlist/{theirs.public_id}/cancel"), 404, "waitlist_entry_not_found"
    )

    theirs.refresh_from_db()
    assert theirs.state == "waiting"


def test_leave_the_waitlist_once(sold_out: MakeSoldOut, join: Join, customers: list[User]) -> None:
    s = sold_out()
    entry = join(s.session, customers[0])
    client = signed_in(customers[0])

    response = post(client, f"/waitlist/{entry.public_id}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled" and response.json()["position"] is None
    body = assert_error(
        post(client, f"/waitlist/{entry.public_id}/cancel"), 409, "waitlist_not_open"
    )
    assert body["details"] == {"state": "cancelled"}


def test_the_endpoints_are_in_the_openapi_document() -> None:
    paths = Client().get("/api/openapi.json").json()["paths"]

    assert "/api/v1/sessions/{session_id}/waitlist" in paths
    assert {
        "/api/v1/waitlist",
        "/api/v1/waitlist/{entry_id}",
        "/api/v1/waitlist/{entry_id}/cancel",
    } <= set(paths)
    assert (
        "waitlist_not_sold_out"
        in paths["/api/v1/sessions/{session_id}/waitlist"]["post"]["description"]
    )
