"""The exchanges API: the quote (where to, at what cost), starting an exchange (downgrade at
once, upgrade awaiting payment), reading and cancelling it, the error shape of refusals, and who
may see what (someone else's order is 404)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import Exchange, Refund
from piaowu.orders.models import Order
from piaowu.orders.states import OrderState
from tests.aftersales.exchanges.conftest import (
    AddSession,
    Bought,
    Clock,
    MakeBought,
    exchange_rule,
    hours_before,
    make_other_event,
    sold_seats,
    valid_tickets,
)
from tests.orders.conftest import PHONE

pytestmark = pytest.mark.django_db

JSON = "application/json"


def signed_in(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def options_url(order: Order) -> str:
    return f"/api/v1/orders/{order.public_id}/exchange-options"


def start_url(order: Order) -> str:
    return f"/api/v1/orders/{order.public_id}/exchanges"


def post(client: Client, url: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
    return client.post(url, body or {}, content_type=JSON, headers=headers)


def test_the_buyer_sees_where_the_tickets_can_go_and_what_it_costs(
    old: Bought, buyer: User, add_session: AddSession
) -> None:
    cheaper = add_session(old.session.event, price="100")
    dearer = add_session(old.session.event, price="300")

    response = signed_in(buyer).get(options_url(old.order))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["refusal"] is None
    assert (body["old_value"], body["fee"], body["fee_percent"]) == (
        {"amount": "360.00", "currency": "CNY"},
        {"amount": "36.00", "currency": "CNY"},
        "10",
    )
    assert [t["serial"] for t in body["tickets"]] == [t.serial for t in old.tickets]
    by_session = {o["session"]["id"]: o for o in body["options"]}
    down, up = by_session[cheaper.public_id], by_session[dearer.public_id]
    assert (down["upgrade"], down["refund"]["amount"], down["pay_now"]["amount"]) == (
        False,
        "124.00",
        "0.00",
    )
    assert (up["upgrade"], up["pay_now"]["amount"], up["refund"]["amount"]) == (
        True,
        "600.00",
        "324.00",
    )
    assert up["difference"] == {"amount": "276.00", "currency": "CNY"}
    assert down["available"] == 30 and down["sold_out"] is False


def test_the_quote_for_some_tickets_and_its_refusal(
    old: Bought, buyer: User, add_session: AddSession, clock: Clock
) -> None:
    add_session(old.session.event, price="100")
    hours_before(clock, old.session, 1)

    response = signed_in(buyer).get(options_url(old.order), {"tickets": old.tickets[1].public_id})

    body = response.json()
    assert [t["serial"] for t in body["tickets"]] == [old.tickets[1].serial]
    assert body["refusal"]["code"] == "exchange_cutoff_passed"
    assert body["refusal"]["message"] == "It is too late to exchange tickets for this session."


def test_a_downgrade_through_the_api_completes_and_shows_its_refund(
    old: Bought,
    buyer: User,
    add_session: AddSession,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    target = add_session(old.session.event, price="100")
    client = signed_in(buyer)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            client,
            start_url(old.order),
            {"session": target.public_id, "tier": "std"},
            **{"Idempotency-Key": "9a1f0c1e-5d3b-4a53-9f3e-2c6f4f7f2a11"},
        )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "completed"
    assert body["difference"] == {"amount": "-124.00", "currency": "CNY"}
    assert body["refund"]["amount"] == {"amount": "124.00", "currency": "CNY"}
    # The provider is asked once the exchange committed, after this answer was made.
    assert body["refund"]["state"] == "approved"
    assert Refund.objects.get(number=body["refund"]["number"]).state == Refund.State.SUCCEEDED
    assert body["pay_url"] is None
    assert sorted(body["tickets"]) == sorted(t.serial for t in old.tickets)
    new_order = Order.objects.get(public_id=body["to_order"])
    assert new_order.state == OrderState.PAID
    # The buyer reads the new order and the exchange.
    assert client.get(f"/api/v1/orders/{new_order.public_id}").status_code == 200
    again = client.get(f"/api/v1/exchanges/{body['id']}")
    assert again.status_code == 200 and again.json()["state"] == "completed"
    # Retrying with the same key answers the same exchange; nothing happens twice.
    replay = post(
        client,
        start_url(old.order),
        {"session": target.public_id, "tier": "std"},
        **{"Idempotency-Key": "9a1f0c1e-5d3b-4a53-9f3e-2c6f4f7f2a11"},
    )
    assert replay.status_code == 201 and replay.json()["id"] == body["id"]
    assert Exchange.objects.count() == 1


def test_an_upgrade_through_the_api_awaits_payment_and_can_be_cancelled(
    old: Bought, buyer: User, add_session: AddSession
) -> None:
    target = add_session(old.session.event, price="300")
    client = signed_in(buyer)

    body = post(client, start_url(old.order), {"session": target.public_id, "tier": "std"}).json()

    assert body["state"] == "awaiting_payment"
    assert body["pay_url"] == f"/orders/{body['to_order']}/"
    assert body["new_value"] == {"amount": "600.00", "currency": "CNY"}
    # Paying the new order goes through the usual payments endpoint.
    paying = post(client, f"/api/v1/orders/{body['to_order']}/payments", {"provider": "sandbox"})
    assert paying.status_code == 201, paying.content
    assert paying.json()["amount"]["amount"] == "600.00"

    cancelled = post(client, f"/api/v1/exchanges/{body['id']}/cancel")

    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["state"] == "abandoned"
    assert len(valid_tickets(old.order)) == 2
    error(post(client, f"/api/v1/exchanges/{body['id']}/cancel"), 409, "exchange_not_pending")


def test_refusals_answer_with_code_message_and_details(
    old: Bought,
    buyer: User,
    add_session: AddSession,
    bought: MakeBought,
    make_user: Callable[..., User],
    organizer: Organizer,
) -> None:
    client = signed_in(buyer)
    full = add_session(old.session.event, rows=1, seats_per_row=2)
    bought(session=full, seats=["M-1-1", "M-1-2"], customer=make_user())
    elsewhere = add_session(make_other_event(organizer))

    body = error(
        post(client, start_url(old.order), {"session": full.public_id, "tier": "std"}),
        409,
        "exchange_target_sold_out",
    )
    assert body["message"] == "Not enough tickets are left for the session you chose."
    assert body["details"]["reason"] == "not_enough_seats"
    error(
        post(client, start_url(old.order), {"session": elsewhere.public_id, "tier": "std"}),
        400,
        "exchange_other_event",
    )
    error(post(client, start_url(old.order), {"session": full.public_id}), 400, "tier_required")
    error(
        post(client, start_url(old.order), {"session": "nope", "tier": "std"}),
        404,
        "session_not_found",
    )
    error(post(client, start_url(old.order), {"tier": "std"}), 400, "invalid_input")
    assert sold_seats(old.session) == ["M-1-5", "M-1-6"]
    assert not Exchange.objects.exists()


def test_someone_elses_order_and_exchange_are_not_found(
    old: Bought, add_session: AddSession, make_user: Callable[..., User], buyer: User
) -> None:
    target = add_session(old.session.event, price="100")
    stranger = signed_in(make_user())

    error(stranger.get(options_url(old.order)), 404, "order_not_found")
    error(
        post(stranger, start_url(old.order), {"session": target.public_id, "tier": "std"}),
        404,
        "order_not_found",
    )
    body = {"session": target.public_id, "tier": "std"}
    mine = post(signed_in(buyer), start_url(old.order), body)
    exchange_id = mine.json()["id"]
    error(stranger.get(f"/api/v1/exchanges/{exchange_id}"), 404, "exchange_not_found")
    error(post(stranger, f"/api/v1/exchanges/{exchange_id}/cancel"), 404, "exchange_not_found")
    error(Client().get(f"/api/v1/exchanges/{exchange_id}"), 404, "exchange_not_found")
    error(stranger.get("/api/v1/exchanges/01NOPE"), 404, "exchange_not_found")


def test_a_guest_who_looked_the_order_up_can_exchange_and_open_the_new_order(
    bought: MakeBought, reserved_session: Callable[..., Any], add_session: AddSession
) -> None:
    old = bought(session=reserved_session(), customer=None)
    exchange_rule(old.session.event)
    target = add_session(old.session.event, price="100")
    guest = Client(HTTP_ACCEPT_LANGUAGE="en")
    found = post(guest, "/api/v1/orders/lookup", {"code": old.order.code, "phone": PHONE})
    assert found.status_code == 200, found.content

    response = post(guest, start_url(old.order), {"session": target.public_id, "tier": "std"})

    assert response.status_code == 201, response.content
    new_id = response.json()["to_order"]
    assert guest.get(f"/api/v1/orders/{new_id}").status_code == 200
    assert Order.objects.get(public_id=new_id).contact_phone == old.order.contact_phone
    assert Decimal(response.json()["refund"]["amount"]["amount"]) == Decimal("124.00")
