"""The transfers API: offer, cancel, accept, the sent / received lists, and how the tickets API
shows a transferred ticket (the receiver gets its QR, the buyer no longer does) — with the
refusals, sign-in, CSRF and Idempotency-Key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import User
from piaowu.aftersales.models import Transfer
from piaowu.aftersales.services.transfers import ACCEPT_PATH, transfer_accept
from piaowu.tickets.selectors import ticket_qr_text
from tests.aftersales.transfers.conftest import RECEIVER_EMAIL, Bought, MakeBought

pytestmark = pytest.mark.django_db


def client_for(user: User | None = None, **kw: Any) -> Client:
    client = Client(headers={"accept-language": "en"}, **kw)
    if user is not None:
        client.force_login(user)
    return client


def offer(client: Client, bought: Bought, index: int = 0, **body: Any) -> Any:
    body.setdefault("receiver_name", "王小明")
    body.setdefault("receiver_contact", RECEIVER_EMAIL)
    return client.post(
        f"/api/v1/tickets/{bought.tickets[index].public_id}/transfers",
        body,
        content_type="application/json",
    )


def accept(client: Client, code: str, **headers: str) -> Any:
    return client.post(
        "/api/v1/transfers/accept", {"code": code}, content_type="application/json", **headers
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["message"]
    return body


def test_the_holder_offers_a_ticket(bought: Bought) -> None:
    response = offer(client_for(bought.buyer), bought)

    assert response.status_code == 201, response.content
    body = response.json()
    transfer = Transfer.objects.get()
    assert body["id"] == transfer.public_id
    assert body["state"] == "pending"
    assert body["ticket"]["id"] == bought.ticket.public_id
    assert body["ticket"]["serial"] == bought.ticket.serial
    assert body["ticket"]["seat"] == "Row 1, seat 5"
    assert body["receiver_name"] == "王小明"
    assert body["receiver_contact"] == RECEIVER_EMAIL
    assert body["accepted_at"] is None
    assert body["expires_at"].endswith("Z")
    assert body["accept_url"].endswith(ACCEPT_PATH.format(code=transfer.code))


def test_offering_needs_sign_in(bought: Bought) -> None:
    assert_error(offer(client_for(), bought), 401, "unauthorized")
    assert not Transfer.objects.exists()


def test_someone_elses_ticket_is_not_found(bought: Bought, make_user: Callable[..., User]) -> None:
    assert_error(offer(client_for(make_user()), bought), 404, "ticket_not_found")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"receiver_contact": "not a contact"}, "invalid_contact"),
        ({"receiver_name": "  "}, "invalid_receiver_name"),
    ],
)
def test_bad_input_is_a_400_with_the_field(bought: Bought, body: dict[str, str], code: str) -> None:
    error = assert_error(offer(client_for(bought.buyer), bought, **body), 400, code)
    assert error["details"]["field"] in {"receiver_contact", "receiver_name"}


def test_an_over_long_name_is_invalid_input(bought: Bought) -> None:
    response = offer(client_for(bought.buyer), bought, receiver_name="名" * 81)
    error = assert_error(response, 400, "invalid_input")
    assert "receiver_name" in error["details"]["fields"]


def test_a_session_without_transfers_refuses(make_bought: MakeBought) -> None:
    bought = make_bought(allowed=False)
    assert_error(offer(client_for(bought.buyer), bought), 400, "transfers_not_allowed")


def test_a_second_offer_is_a_conflict(bought: Bought) -> None:
    client = client_for(bought.buyer)
    assert offer(client, bought).status_code == 201
    assert_error(
        offer(client, bought, receiver_contact="other@example.com"), 409, "transfer_pending"
    )


def test_an_offer_retried_with_its_idempotency_key_is_made_once(bought: Bought) -> None:
    client = client_for(bought.buyer)
    url = f"/api/v1/tickets/{bought.ticket.public_id}/transfers"
    body = {"receiver_name": "王小明", "receiver_contact": RECEIVER_EMAIL}
    headers = {"HTTP_IDEMPOTENCY_KEY": "3f1c2b1e-offer"}
    one = client.post(url, body, content_type="application/json", **headers)
    two = client.post(url, body, content_type="application/json", **headers)

    assert one.status_code == two.status_code == 201
    assert one.json() == two.json()
    assert Transfer.objects.count() == 1


def test_a_browser_must_send_the_csrf_token(bought: Bought) -> None:
    browser = client_for(bought.buyer, enforce_csrf_checks=True)
    assert_error(offer(browser, bought), 403, "forbidden")
    assert not Transfer.objects.exists()


def test_the_receiver_accepts_and_gets_the_ticket_with_a_fresh_qr(
    bought: Bought, receiver: User
) -> None:
    code = Transfer.objects.get(public_id=offer(client_for(bought.buyer), bought).json()["id"]).code
    old_qr = ticket_qr_text(bought.fresh())

    response = accept(client_for(receiver), code.lower())

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["transfer"]["state"] == "accepted"
    assert body["transfer"]["accepted_at"] is not None
    assert body["transfer"]["accept_url"] is None  # never shown to the receiver
    assert body["ticket"]["id"] == bought.ticket.public_id
    assert body["ticket"]["attendee_name"] == "王小明"
    assert body["ticket"]["held"] is True
    assert body["ticket"]["qr"] == ticket_qr_text(bought.fresh()) != old_qr


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        ("wrong", 404, "transfer_code_invalid"),
        ("twice", 409, "transfer_already_accepted"),
        ("other", 409, "transfer_code_used"),
        ("sender", 400, "transfer_to_self"),
    ],
)
def test_accept_refusals(
    bought: Bought,
    receiver: User,
    make_user: Callable[..., User],
    setup: str,
    status: int,
    code: str,
) -> None:
    transfer = Transfer.objects.get(public_id=offer(client_for(bought.buyer), bought).json()["id"])
    who = receiver
    if setup in {"twice", "other"}:
        transfer_accept(code=transfer.code, receiver=receiver)
        who = receiver if setup == "twice" else make_user()
    elif setup == "sender":
        who = bought.buyer
    sent = "ZZZZZZZZZZZZ" if setup == "wrong" else transfer.code
    assert_error(accept(client_for(who), sent), status, code)


def test_accepting_needs_sign_in(bought: Bought) -> None:
    transfer = Transfer.objects.get(public_id=offer(client_for(bought.buyer), bought).json()["id"])
    assert_error(accept(client_for(), transfer.code), 401, "unauthorized")
    transfer.refresh_from_db()
    assert transfer.state == "pending"


def test_after_the_transfer_the_buyer_sees_no_qr_and_the_receiver_does(
    bought: Bought, receiver: User
) -> None:
    buyer = client_for(bought.buyer)
    transfer = Transfer.objects.get(public_id=offer(buyer, bought).json()["id"])
    transfer_accept(code=transfer.code, receiver=receiver)
    url = f"/api/v1/tickets/{bought.ticket.public_id}"

    mine = client_for(receiver).get(url).json()
    theirs = buyer.get(url).json()
    listed = buyer.get(f"/api/v1/orders/{bought.order.public_id}/tickets").json()

    assert mine["held"] is True and mine["qr"] == ticket_qr_text(bought.fresh())
    assert theirs["held"] is False and theirs["qr"] is None and theirs["rotating"] is None
    assert [(t["id"], t["held"], t["qr"] is None) for t in listed] == [
        (bought.tickets[0].public_id, False, True),
        (bought.tickets[1].public_id, True, False),
    ]
    # The receiver cannot read the buyer's order.
    assert client_for(receiver).get(f"/api/v1/orders/{bought.order.public_id}").status_code == 404


def test_my_tickets_lists_received_and_drops_given_away(bought: Bought, receiver: User) -> None:
    buyer = client_for(bought.buyer)
    transfer = Transfer.objects.get(public_id=offer(buyer, bought).json()["id"])
    transfer_accept(code=transfer.code, receiver=receiver)

    theirs = buyer.get("/api/v1/tickets").json()
    mine = client_for(receiver).get("/api/v1/tickets").json()

    assert [t["id"] for t in theirs["items"]] == [bought.tickets[1].public_id]
    assert [t["id"] for t in mine["items"]] == [bought.tickets[0].public_id]
    assert mine["count"] == 1 and mine["items"][0]["qr"]
    assert_error(client_for().get("/api/v1/tickets"), 401, "unauthorized")


def test_the_sender_cancels_and_others_cannot(
    bought: Bought, make_user: Callable[..., User]
) -> None:
    buyer = client_for(bought.buyer)
    transfer_id = offer(buyer, bought).json()["id"]
    url = f"/api/v1/transfers/{transfer_id}/cancel"

    assert_error(client_for(make_user()).post(url), 404, "transfer_not_found")
    response = buyer.post(url)
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert response.json()["accept_url"] is None
    assert_error(buyer.post(url), 409, "transfer_not_pending")


def test_sent_and_received_lists(bought: Bought, receiver: User) -> None:
    buyer = client_for(bought.buyer)
    first = offer(buyer, bought, index=0).json()["id"]
    second = offer(buyer, bought, index=1, receiver_contact="13900139000").json()["id"]
    transfer_accept(code=Transfer.objects.get(public_id=first).code, receiver=receiver)

    sent = buyer.get("/api/v1/transfers/sent").json()
    received = client_for(receiver).get("/api/v1/transfers/received").json()

    assert [(t["id"], t["state"]) for t in sent["items"]] == [
        (second, "pending"),
        (first, "accepted"),
    ]
    assert sent["items"][0]["accept_url"] and sent["items"][1]["accept_url"] is None
    assert [(t["id"], t["sender_name"]) for t in received["items"]] == [(first, str(bought.buyer))]
    assert buyer.get("/api/v1/transfers/received").json()["items"] == []
    assert_error(client_for().get("/api/v1/transfers/sent"), 401, "unauthorized")


def test_the_endpoints_document_their_error_codes(client: Client) -> None:
    schema = client.get("/api/openapi.json").json()
    offer_doc = schema["paths"]["/api/v1/tickets/{ticket_id}/transfers"]["post"]["description"]
    accept_doc = schema["paths"]["/api/v1/transfers/accept"]["post"]["description"]
    for code in ("transfer_pending", "transfer_to_self", "invalid_contact", "ticket_used"):
        assert f"`{code}`" in offer_doc
    for code in ("transfer_code_invalid", "transfer_expired", "transfer_code_used"):
        assert f"`{code}`" in accept_doc
