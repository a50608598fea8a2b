"""The orders API: one-request purchase in each form and every refusal, checkout of a hold, who
may read / cancel an order, lookup by code + phone, and the OpenAPI documentation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import SalesChannel, Session
from piaowu.inventory.models import Hold, SeatState
from piaowu.inventory.selectors import session_availability
from piaowu.orders.models import Order, OrderHistory
from tests.api.test_holds import assert_error, general, held_codes, post_hold, reserved
from tests.inventory.conftest import Clock, clock

__all__ = ["clock"]

pytestmark = pytest.mark.django_db

PHONE = "13800138000"


def purchase(client: Client, session: Session, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        f"/api/v1/sessions/{session.public_id}/orders",
        body,
        content_type="application/json",
        headers=headers,
    )


def checkout(client: Client, hold_id: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(
        f"/api/v1/holds/{hold_id}/checkout",
        body if body is not None else {"contact_phone": PHONE},
        content_type="application/json",
    )


def bought(client: Client, session: Session, seats: list[str]) -> dict[str, Any]:
    response = purchase(client, session, {"seats": seats, "contact_phone": PHONE})
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def assert_no_order(session: Session) -> None:
    assert not Order.objects.filter(session=session).exists()
    assert held_codes(session) == []


# --- One-request purchase ---------------------------------------------------------------------


def test_purchase_named_seats_answers_the_order(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer, price="180")
    response = purchase(
        client, session, {"seats": ["M-1-1", "M-1-2"], "contact_phone": "138 0013 8000"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    order = Order.objects.get(public_id=body["id"])
    assert body["code"] == order.code
    assert body["state"] == "awaiting_payment"
    assert body["contact_phone"] == "138****8000"
    assert body["session"] == {
        "id": session.public_id,
        "event_title": session.event.title,
        "starts_at": session.starts_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "venue": session.venue.name,
    }
    assert body["total"] == {"amount": "360.00", "currency": "CNY"}
    assert [line["seat"] for line in body["lines"]] == ["M-1-1", "M-1-2"]
    assert body["lines"][0] == {
        "seat": "M-1-1",
        "tier": "std",
        "tier_name": "标准票",
        "unit_price": {"amount": "180.00", "currency": "CNY"},
        "quantity": 1,
    }
    assert body["payments"] == []
    assert body["paid_at"] is None
    assert body["payment_deadline"].endswith("Z")
    assert dt.datetime.fromisoformat(body["payment_deadline"]) > timezone.now()
    assert body["created_at"].endswith("Z")
    assert order.channel.kind == SalesChannel.Kind.WEB
    assert order.hold.holder_key.startswith("anon:")
    assert held_codes(session) == ["M-1-1", "M-1-2"]


def test_purchase_best_available(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    response = purchase(
        client,
        session,
        {"best_available": {"quantity": 3, "tier": None}, "contact_phone": PHONE},
    )
    assert response.status_code == 201, response.content
    seats = [line["seat"] for line in response.json()["lines"]]
    assert len(seats) == 3
    assert len({code.rsplit("-", 1)[0] for code in seats}) == 1  # one row
    assert held_codes(session) == sorted(seats)


def test_purchase_general_admission_by_tier_and_quantity(
    client: Client, organizer: Organizer
) -> None:
    session = general(organizer, capacity=5)
    response = purchase(
        client,
        session,
        {"tier": "ga", "quantity": 2, "contact_phone": PHONE},
        **{"Accept-Language": "en"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["lines"] == [
        {
            "seat": None,
            "tier": "ga",
            "tier_name": "Pass",
            "unit_price": {"amount": "280.50", "currency": "CNY"},
            "quantity": 2,
        }
    ]
    assert body["total"] == {"amount": "561.00", "currency": "CNY"}
    assert session_availability(session)["available"] == 3


def test_signed_in_buyer_needs_no_phone(
    client: Client, organizer: Organizer, make_user: Callable[..., User]
) -> None:
    user = make_user()
    client.force_login(user)
    session = reserved(organizer)
    response = purchase(client, session, {"seats": ["M-1-1"]})
    assert response.status_code == 201, response.content
    order = Order.objects.get(public_id=response.json()["id"])
    assert order.customer == user
    assert order.hold.holder_key == f"user:{user.pk}"
    assert response.json()["contact_phone"] == ""


def test_taken_seat_is_named_and_nothing_is_bought(organizer: Organizer) -> None:
    session = reserved(organizer)
    bought(Client(), session, ["M-1-1", "M-1-2"])
    response = purchase(
        Client(), session, {"seats": ["M-1-2", "M-1-3", "M-1-4"], "contact_phone": PHONE}
    )
    body = assert_error(response, 400, "seat_taken")
    assert body["details"]["seats"] == ["M-1-2"]
    assert Order.objects.filter(session=session).count() == 1
    assert held_codes(session) == ["M-1-1", "M-1-2"]
    assert Hold.objects.filter(session=session).count() == 1


@pytest.mark.parametrize(
    ("setup", "seats", "code", "details"),
    [
        ({}, ["M-1-1", "Z-9-9"], "seat_not_in_session", {"seats": ["Z-9-9"]}),
        ({"blocked_seats": ((1, 10),)}, ["M-1-10"], "seat_blocked", {"seats": ["M-1-10"]}),
        ({}, [f"M-1-{n}" for n in range(1, 8)], "over_limit", {"limit": 6}),
        (
            {"sales_open_at": timezone.now() + dt.timedelta(days=1)},
            ["M-1-1"],
            "sales_closed",
            {"sales_state": "not_open"},
        ),
        ({}, ["M-1-2"], "stranded_seat", {"seats": ["M-1-1"]}),
    ],
)
def test_refused_purchase_holds_nothing(
    client: Client,
    organizer: Organizer,
    setup: dict[str, Any],
    seats: list[str],
    code: str,
    details: dict[str, Any],
) -> None:
    session = reserved(organizer, **setup)
    body = assert_error(
        purchase(client, session, {"seats": seats, "contact_phone": PHONE}), 400, code
    )
    assert details.items() <= body["details"].items()
    assert_no_order(session)


def test_general_admission_sold_out(client: Client, organizer: Organizer) -> None:
    session = general(organizer, capacity=1)
    body = assert_error(
        purchase(client, session, {"tier": "ga", "quantity": 2, "contact_phone": PHONE}),
        400,
        "sold_out",
    )
    assert body["details"]["available"] == 1
    assert not Order.objects.filter(session=session).exists()
    assert session_availability(session)["available"] == 1


def test_guest_must_give_a_phone(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    body = assert_error(purchase(client, session, {"seats": ["M-1-1"]}), 400, "contact_required")
    assert body["details"] == {"field": "phone"}
    assert_no_order(session)


def test_phone_must_be_a_phone_number(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    body = assert_error(
        purchase(client, session, {"seats": ["M-1-1"], "contact_phone": "call me"}),
        400,
        "invalid_phone",
    )
    assert body["details"] == {"field": "phone"}
    assert_no_order(session)


@pytest.mark.parametrize(
    "body",
    [
        {"contact_phone": PHONE},
        {"seats": [], "contact_phone": PHONE},
        {"seats": ["M-1-1"], "tier": "std", "quantity": 1, "contact_phone": PHONE},
        {"best_available": {"quantity": 0}, "contact_phone": PHONE},
        {"seats": ["M-1-1"], "contact_phone": "1" * 33},
        {"seats": ["M-1-1"], "contact_phone": 13800138000},
    ],
)
def test_malformed_purchase_is_400_invalid_input(
    client: Client, organizer: Organizer, body: dict[str, Any]
) -> None:
    session = reserved(organizer)
    assert_error(purchase(client, session, body), 400, "invalid_input")
    assert_no_order(session)


def test_invalid_email_names_the_field(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    body = assert_error(
        purchase(
            client, session, {"seats": ["M-1-1"], "contact_phone": PHONE, "contact_email": "x@"}
        ),
        400,
        "invalid_email",
    )
    assert body["details"] == {"field": "email"}
    assert not Order.objects.exists() and not Hold.objects.exists()  # nothing held


def test_purchase_for_an_unknown_session_is_404(client: Client) -> None:
    assert_error(
        client.post(
            "/api/v1/sessions/nope/orders",
            {"seats": ["M-1-1"], "contact_phone": PHONE},
            content_type="application/json",
        ),
        404,
        "session_not_found",
    )


def test_browser_purchase_needs_the_csrf_token(organizer: Organizer) -> None:
    session = reserved(organizer)
    browser = Client(enforce_csrf_checks=True)
    browser.get(f"/sessions/{session.public_id}/")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    first = browser.post(
        f"/api/v1/sessions/{session.public_id}/holds",
        {"seats": ["M-3-1"]},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert first.status_code == 201, first.content
    # now the session cookie names the holder: a purchase without the token is refused
    assert_error(
        purchase(browser, session, {"seats": ["M-1-1"], "contact_phone": PHONE}), 403, "forbidden"
    )
    assert not Order.objects.filter(session=session).exists()
    ok = purchase(
        browser, session, {"seats": ["M-1-1"], "contact_phone": PHONE}, **{"X-CSRFToken": token}
    )
    assert ok.status_code == 201, ok.content


# --- Checking out a hold ----------------------------------------------------------------------


def test_checkout_of_own_hold(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    hold_id = post_hold(client, session, {"seats": ["M-1-1", "M-1-2"]}).json()["id"]
    response = checkout(client, hold_id, {"contact_phone": PHONE, "contact_email": "a@b.cn"})
    assert response.status_code == 201, response.content
    body = response.json()
    order = Order.objects.get(public_id=body["id"])
    assert order.hold.public_id == hold_id
    assert order.contact_email == "a@b.cn"
    assert [line["seat"] for line in body["lines"]] == ["M-1-1", "M-1-2"]
    # The hold now lasts until the payment deadline.
    assert Hold.objects.get(public_id=hold_id).expires_at == order.payment_deadline


def test_checking_out_twice_answers_the_same_order(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    hold_id = post_hold(client, session, {"seats": ["M-1-1"]}).json()["id"]
    first = checkout(client, hold_id)
    second = checkout(client, hold_id)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert Order.objects.filter(session=session).count() == 1
    assert OrderHistory.objects.filter(order__session=session).count() == 1


def test_checkout_of_an_expired_hold(client: Client, organizer: Organizer, clock: Clock) -> None:
    session = reserved(organizer)
    hold_id = post_hold(client, session, {"seats": ["M-1-1"]}).json()["id"]
    clock.shift(dt.timedelta(minutes=11))  # holds last ten minutes
    body = assert_error(checkout(client, hold_id), 400, "hold_expired")
    assert body["details"]["hold"] == hold_id
    assert not Order.objects.exists()


def test_checkout_of_a_released_hold(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    hold_id = post_hold(client, session, {"seats": ["M-1-1"]}).json()["id"]
    assert client.delete(f"/api/v1/holds/{hold_id}").status_code == 204
    assert_error(checkout(client, hold_id), 400, "hold_expired")
    assert not Order.objects.exists()


def test_checkout_of_someone_elses_hold_is_404(organizer: Organizer) -> None:
    session = reserved(organizer)
    owner, stranger = Client(), Client()
    hold_id = post_hold(owner, session, {"seats": ["M-1-1"]}).json()["id"]
    post_hold(stranger, session, {"seats": ["M-3-1"]})  # a holder key of their own
    assert_error(checkout(stranger, hold_id), 404, "hold_not_found")
    assert_error(checkout(Client(), hold_id), 404, "hold_not_found")
    assert not Order.objects.exists()
    assert Hold.objects.get(public_id=hold_id).status == Hold.Status.ACTIVE


def test_guest_checkout_needs_a_phone(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    hold_id = post_hold(client, session, {"seats": ["M-1-1"]}).json()["id"]
    assert_error(checkout(client, hold_id, {}), 400, "contact_required")
    assert not Order.objects.exists()
    assert held_codes(session) == ["M-1-1"]  # the hold is still there to try again


# --- Reading, finding and cancelling ----------------------------------------------------------


def test_buyer_reads_own_order_and_others_get_404(organizer: Organizer) -> None:
    session = reserved(organizer)
    buyer, stranger = Client(), Client()
    order = bought(buyer, session, ["M-1-1"])
    bought(stranger, session, ["M-3-1"])  # the stranger has a holder key of their own
    mine = buyer.get(f"/api/v1/orders/{order['id']}")
    assert mine.status_code == 200
    assert mine.json() == order
    assert_error(stranger.get(f"/api/v1/orders/{order['id']}"), 404, "order_not_found")
    assert_error(Client().get(f"/api/v1/orders/{order['id']}"), 404, "order_not_found")
    assert_error(stranger.post(f"/api/v1/orders/{order['id']}/cancel"), 404, "order_not_found")
    assert_error(
        stranger.post(
            f"/api/v1/orders/{order['id']}/payments",
            {"provider": "sandbox"},
            content_type="application/json",
        ),
        404,
        "order_not_found",
    )
    assert Order.objects.get(public_id=order["id"]).state == "awaiting_payment"
    assert_error(buyer.get("/api/v1/orders/nope"), 404, "order_not_found")


def test_signed_in_buyer_reads_own_order_from_another_browser(
    organizer: Organizer, make_user: Callable[..., User]
) -> None:
    user = make_user()
    phone, laptop = Client(), Client()
    phone.force_login(user)
    laptop.force_login(user)
    order = bought(phone, reserved(organizer), ["M-1-1"])
    assert laptop.get(f"/api/v1/orders/{order['id']}").status_code == 200
    other = Client()
    other.force_login(make_user())
    assert_error(other.get(f"/api/v1/orders/{order['id']}"), 404, "order_not_found")


def test_lookup_grants_this_browser_the_order(organizer: Organizer) -> None:
    session = reserved(organizer)
    order = bought(Client(), session, ["M-1-1"])
    elsewhere = Client()
    assert_error(elsewhere.get(f"/api/v1/orders/{order['id']}"), 404, "order_not_found")
    found = elsewhere.post(
        "/api/v1/orders/lookup",
        {"code": order["code"].lower(), "phone": "138-0013-8000"},
        content_type="application/json",
    )
    assert found.status_code == 200, found.content
    assert found.json()["id"] == order["id"]
    assert elsewhere.get(f"/api/v1/orders/{order['id']}").status_code == 200
    cancelled = elsewhere.post(f"/api/v1/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["state"] == "cancelled"


@pytest.mark.parametrize(
    "lookup",
    [
        {"phone": "13900139000"},  # wrong phone
        {"code": "NOSUCHCODE"},  # unknown code
    ],
)
def test_lookup_with_a_wrong_part_is_404_and_grants_nothing(
    organizer: Organizer, lookup: dict[str, str]
) -> None:
    order = bought(Client(), reserved(organizer), ["M-1-1"])
    guest = Client()
    body = {"code": order["code"], "phone": PHONE, **lookup}
    assert_error(
        guest.post("/api/v1/orders/lookup", body, content_type="application/json"),
        404,
        "order_not_found",
    )
    assert_error(guest.get(f"/api/v1/orders/{order['id']}"), 404, "order_not_found")


def test_lookup_needs_code_and_phone(client: Client) -> None:
    body = assert_error(
        client.post("/api/v1/orders/lookup", {"code": ""}, content_type="application/json"),
        400,
        "invalid_input",
    )
    assert set(body["details"]["fields"]) == {"code", "phone"}


def test_cancel_gives_the_seats_back(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    order = bought(client, session, ["M-1-1", "M-1-2"])
    response = client.post(f"/api/v1/orders/{order['id']}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert held_codes(session) == []
    assert not SeatState.objects.filter(session=session, state=SeatState.State.SOLD).exists()
    # Cancelling again (a double tap, a retry) is harmless.
    again = client.post(f"/api/v1/orders/{order['id']}/cancel")
    assert again.status_code == 200 and again.json()["state"] == "cancelled"
    assert held_codes(session) == []


def test_cancelled_order_cannot_be_paid(client: Client, organizer: Organizer) -> None:
    order = bought(client, reserved(organizer), ["M-1-1"])
    assert client.post(f"/api/v1/orders/{order['id']}/cancel").status_code == 200
    body = assert_error(
        client.post(
            f"/api/v1/orders/{order['id']}/payments",
            {"provider": "sandbox"},
            content_type="application/json",
        ),
        409,
        "order_not_payable",
    )
    assert body["details"]["state"] == "cancelled"
    assert not Order.objects.get(public_id=order["id"]).payments.exists()


def test_order_list_needs_sign_in(client: Client) -> None:
    assert_error(client.get("/api/v1/orders"), 401, "unauthorized")


def test_order_list_shows_only_my_orders_newest_first(
    client: Client, organizer: Organizer, make_user: Callable[..., User]
) -> None:
    user = make_user()
    client.force_login(user)
    session = reserved(organizer)
    first = bought(client, session, ["M-1-1"])
    second = bought(client, session, ["M-1-9", "M-1-10"])
    bought(Client(), session, ["M-3-1"])  # a guest's order
    response = client.get("/api/v1/orders", {"page_size": 1})
    assert response.status_code == 200, response.content
    page = response.json()
    assert [o["id"] for o in page["items"]] == [second["id"]]
    assert page["count"] == 2 and page["next_page"] == 2
    rest = client.get("/api/v1/orders", {"page": 2, "page_size": 1}).json()
    assert [o["id"] for o in rest["items"]] == [first["id"]]
    assert rest["next_page"] is None


# --- Documentation ----------------------------------------------------------------------------


def test_openapi_lists_the_new_paths_with_their_error_codes(client: Client) -> None:
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    expected = {
        ("/api/v1/sessions/{session_id}/orders", "post"),
        ("/api/v1/holds/{hold_id}/checkout", "post"),
        ("/api/v1/orders", "get"),
        ("/api/v1/orders/{order_id}", "get"),
        ("/api/v1/orders/lookup", "post"),
        ("/api/v1/orders/{order_id}/cancel", "post"),
        ("/api/v1/orders/{order_id}/payments", "post"),
        ("/api/v1/payments/providers", "get"),
        ("/api/v1/payments/{provider}/notifications", "post"),
    }
    for path, method in expected:
        assert method in paths.get(path, {}), (path, method)

    purchase_doc = paths["/api/v1/sessions/{session_id}/orders"]["post"]
    for code in (
        "seat_taken",
        "seat_not_in_session",
        "seat_blocked",
        "over_limit",
        "sales_closed",
        "stranded_seat",
        "contact_required",
        "invalid_phone",
        "idempotency_key_reused",
        "idempotency_key_in_progress",
        "invalid_idempotency_key",
    ):
        assert f"`{code}`" in purchase_doc["description"], code
    assert {"201", "400", "403", "404", "409", "422"} <= set(purchase_doc["responses"])
    header = [p for p in purchase_doc["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in header] == ["Idempotency-Key"]
    assert any(p["in"] == "path" for p in purchase_doc["parameters"])  # not replaced

    checkout_doc = paths["/api/v1/holds/{hold_id}/checkout"]["post"]["description"]
    assert "`hold_expired`" in checkout_doc and "`hold_not_found`" in checkout_doc
    assert "401" in paths["/api/v1/orders"]["get"]["responses"]
    cancel = paths["/api/v1/orders/{order_id}/cancel"]["post"]
    assert "`illegal_transition`" in cancel["description"]
    assert "409" in cancel["responses"]
    pay = paths["/api/v1/orders/{order_id}/payments"]["post"]["description"]
    assert "`order_not_payable`" in pay and "`payment_provider_unavailable`" in pay
    for path in (
        "/api/v1/sessions/{session_id}/holds",
        "/api/v1/holds/{hold_id}/extend",
        "/api/v1/holds/{hold_id}/checkout",
        "/api/v1/orders/{order_id}/cancel",
        "/api/v1/orders/{order_id}/payments",
    ):
        operation = paths[path]["post"]
        assert "422" in operation["responses"], path
        assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"]), path
    release = paths["/api/v1/holds/{hold_id}"]["delete"]
    assert any(p["name"] == "Idempotency-Key" for p in release["parameters"])
    description = schema["info"]["description"]
    for code in ("order_not_payable", "idempotency_key_reused", "payment_provider_unavailable"):
        assert f"`{code}`" in description


def test_order_list_reads_a_fixed_number_of_queries(
    client: Client, organizer: Organizer, make_user: Callable[..., User]
) -> None:
    client.force_login(make_user())
    session = reserved(organizer)
    bought(client, session, ["M-1-1"])
    with CaptureQueriesContext(connection) as one:
        assert len(client.get("/api/v1/orders").json()["items"]) == 1
    bought(client, session, ["M-2-1", "M-2-2"])
    bought(client, session, ["M-3-1"])
    with CaptureQueriesContext(connection) as three:
        assert len(client.get("/api/v1/orders").json()["items"]) == 3
    assert len(three.captured_queries) == len(one.captured_queries)  # no query per order


# --- The hot path: what a purchase writes and reads -------------------------------------------


def test_purchase_answer_is_the_order_as_read_back(client: Client, organizer: Organizer) -> None:
    session = general(organizer, capacity=5)
    response = purchase(client, session, {"tier": "ga", "quantity": 2, "contact_phone": PHONE})
    assert response.status_code == 201, response.content
    body = response.json()
    again = client.get(f"/api/v1/orders/{body['id']}")
    assert again.status_code == 200
    assert again.json() == body  # rendered from the objects in hand, identical to a re-read


def test_a_refused_purchase_writes_no_session_row_nor_key(organizer: Organizer) -> None:
    from django.contrib.sessions.models import Session as DjangoSession

    from piaowu.core.models import IdempotencyKey

    session = general(organizer, capacity=1)
    before = DjangoSession.objects.count()
    refused = Client()
    response = purchase(
        refused,
        session,
        {"tier": "ga", "quantity": 2, "contact_phone": PHONE},
        **{"Idempotency-Key": "refused-1"},
    )
    assert_error(response, 400, "sold_out")
    assert DjangoSession.objects.count() == before
    assert not IdempotencyKey.objects.filter(key="refused-1").exists()
    buyer = Client()
    response = purchase(
        buyer,
        session,
        {"tier": "ga", "quantity": 1, "contact_phone": PHONE},
        **{"Idempotency-Key": "bought-1"},
    )
    assert response.status_code == 201, response.content
    assert IdempotencyKey.objects.get(key="bought-1").status == 201
    # The new buyer's holder key was kept, so the order is theirs.
    assert buyer.get(f"/api/v1/orders/{response.json()['id']}").status_code == 200


def test_general_admission_purchase_query_budget(client: Client, organizer: Organizer) -> None:
    """Pinned after the hot-path work (38 queries in 4 transactions before): catalog reads
    cached, key row in the purchase's transaction, no re-read of the order."""
    session = general(organizer, capacity=50)
    body = {"tier": "ga", "quantity": 1, "contact_phone": PHONE}
    assert purchase(Client(), session, body).status_code == 201  # warms the caches
    buyer = Client()
    with CaptureQueriesContext(connection) as queries:
        response = purchase(buyer, session, body, **{"Idempotency-Key": "budget-1"})
    assert response.status_code == 201
    # key, room, hold, item, bucket, allocation, order, line, history, key answer, session
    # row (2) — 12 — plus, inside the test's own transaction, a savepoint pair per atomic
    # block (3) and the inventory check that is remembered only after a real commit (2).
    assert len(queries) <= 24, [q["sql"][:80] for q in queries]
