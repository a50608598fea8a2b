"""The refunds API: the quote, asking for a refund (Idempotency-Key), following it; guests who
looked their order up; staff refunding on a customer's behalf, approving, rejecting, retrying;
and who may see what."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Refund
from piaowu.aftersales.services.refunds import MAX_ATTEMPTS, refunds_process_due
from piaowu.payments.models import SandboxRefund
from piaowu.payments.providers.base import RefundResult
from piaowu.payments.providers.sandbox import SandboxProvider
from piaowu.tickets.models import Ticket
from tests.aftersales.refunds.conftest import Clock, MakeBought, hours_before, refund_rule
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


def quote_url(order_id: str) -> str:
    return f"/api/v1/orders/{order_id}/refund-quote"


def refunds_url(order_id: str) -> str:
    return f"/api/v1/orders/{order_id}/refunds"


def ask(client: Client, order_id: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(refunds_url(order_id), body, content_type=JSON, headers=headers)


# --- The quote ---------------------------------------------------------------------------------


def test_the_buyer_sees_the_rule_and_the_amount_per_ticket(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 30)

    response = signed_in(buyer).get(quote_url(purchase.order.public_id))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["refundable"] is True and body["needs_approval"] is False
    assert body["fee_percent"] == "10.00"
    assert body["rule"][:2] == [
        "Until 48 hours before the start: free refund.",
        "Until 24 hours before the start: 10 % fee.",
    ]
    assert (body["gross"], body["fee"], body["amount"]) == (
        {"amount": "360.00", "currency": "CNY"},
        {"amount": "36.00", "currency": "CNY"},
        {"amount": "324.00", "currency": "CNY"},
    )
    first = body["tickets"][0]
    assert first["seat"] == "M-1-5" and first["tier"] == "std"
    assert first["price"]["amount"] == "180.00" and first["fee"]["amount"] == "18.00"
    assert first["amount"]["amount"] == "162.00" and first["refusal"] is None


def test_the_quote_of_some_tickets_by_serial_or_id(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    one, two = purchase.tickets
    client = signed_in(buyer)

    by_serial = client.get(quote_url(purchase.order.public_id), {"tickets": [one.serial]}).json()
    by_ids = client.get(
        quote_url(purchase.order.public_id), {"tickets": [one.public_id, two.public_id]}
    ).json()

    assert [t["serial"] for t in by_serial["tickets"]] == [one.serial]
    assert [t["id"] for t in by_ids["tickets"]] == [one.public_id, two.public_id]


def test_a_quote_after_the_cut_off_says_why_not(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 1)

    body = signed_in(buyer).get(quote_url(purchase.order.public_id)).json()

    assert body["refundable"] is False and body["fee_percent"] is None
    assert body["tickets"][0]["refusal"] == {
        "code": "refund_not_allowed",
        "message": "This ticket can no longer be refunded under the event's rules.",
    }


def test_a_quote_of_a_ticket_of_another_order_is_refused(bought: MakeBought, buyer: User) -> None:
    purchase = bought()
    other = bought(seats=["M-3-1"])

    response = signed_in(buyer).get(
        quote_url(purchase.order.public_id), {"tickets": [other.tickets[0].serial]}
    )

    error(response, 400, "refund_tickets_invalid")


def test_someone_elses_order_is_not_found(
    bought: MakeBought, make_user: Callable[..., User]
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    stranger = signed_in(make_user())

    error(stranger.get(quote_url(purchase.order.public_id)), 404, "order_not_found")
    error(ask(stranger, purchase.order.public_id, {}), 404, "order_not_found")
    error(stranger.get(refunds_url(purchase.order.public_id)), 404, "order_not_found")
    error(Client().get(quote_url(purchase.order.public_id)), 404, "order_not_found")
    assert not Refund.objects.exists()


# --- Asking for a refund -------------------------------------------------------------------------


def test_the_buyer_refunds_one_ticket_and_sees_its_progress(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    client = signed_in(buyer)

    body = {"tickets": [purchase.tickets[0].serial], "reason": "有事"}
    response = ask(client, purchase.order.public_id, body)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "succeeded" and body["state_label"] == "Refunded"
    assert body["kind"] == "customer" and body["reason"] == "有事"
    assert body["amount"] == {"amount": "180.00", "currency": "CNY"}
    assert [t["seat"] for t in body["tickets"]] == ["M-1-5"]
    assert [(s["state"], s["reached"], s["current"]) for s in body["progress"]] == [
        ("requested", True, False),
        ("approved", True, False),
        ("processing", True, False),
        ("succeeded", True, True),
    ]
    assert [(h["from_state"], h["to_state"]) for h in body["history"]] == [
        ("", "requested"),
        ("requested", "approved"),
        ("approved", "processing"),
        ("processing", "succeeded"),
    ]
    assert body["history"][0]["note"] == "有事"
    assert body["attempts"] is None and body["last_error"] is None  # staff only
    # the refund is the buyer's to read, alone and in lists
    assert client.get(f"/api/v1/refunds/{body['id']}").json()["number"] == body["number"]
    assert [r["id"] for r in client.get(refunds_url(purchase.order.public_id)).json()] == [
        body["id"]
    ]
    mine = client.get("/api/v1/refunds").json()
    assert [r["id"] for r in mine["items"]] == [body["id"]] and mine["count"] == 1
    # and the order says so
    assert client.get(f"/api/v1/orders/{purchase.order.public_id}").json()["state"] == (
        "partially_refunded"
    )


def test_a_retried_request_with_the_same_idempotency_key_refunds_once(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    client = signed_in(buyer)
    body = {"tickets": [purchase.tickets[0].public_id]}

    first = ask(client, purchase.order.public_id, body, **{"Idempotency-Key": "k-1"})
    again = ask(client, purchase.order.public_id, body, **{"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert Refund.objects.count() == 1 and SandboxRefund.objects.count() == 1
    # without the key the same request is a second refund of the same ticket: refused
    error(ask(client, purchase.order.public_id, body), 409, "ticket_void")


def test_a_refund_waiting_for_approval_then_asked_again_is_in_progress(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    client = signed_in(buyer)

    first = ask(client, purchase.order.public_id, {})
    assert first.status_code == 201 and first.json()["state"] == "requested"
    body = error(ask(client, purchase.order.public_id, {}), 409, "refund_in_progress")
    assert body["details"]["ticket"] == purchase.tickets[0].serial


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"tickets": []}, "refund_tickets_invalid"),
        ({"tickets": ["NOPE"]}, "refund_tickets_invalid"),
        ({"tickets": ["a", "a"]}, "refund_tickets_invalid"),
        ({"reason": "x" * 201}, "invalid_input"),
        ({"tickets": "M-1-5"}, "invalid_input"),
    ],
)
def test_bad_bodies_are_refused(
    bought: MakeBought, buyer: User, body: dict[str, Any], code: str
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)

    error(ask(signed_in(buyer), purchase.order.public_id, body), 400, code)
    assert not Refund.objects.exists()


def test_a_refund_after_the_cut_off_is_refused_with_the_reason(
    bought: MakeBought, buyer: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 1)

    body = error(ask(signed_in(buyer), purchase.order.public_id, {}), 400, "refund_not_allowed")

    assert body["message"] == "This ticket can no longer be refunded under the event's rules."
    assert Ticket.objects.filter(order=purchase.order, state="valid").count() == 2


def test_a_browser_with_a_session_cookie_needs_the_csrf_token(
    bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")
    browser.force_login(buyer)

    error(ask(browser, purchase.order.public_id, {}), 403, "forbidden")
    assert not Refund.objects.exists()


# --- Guests ---------------------------------------------------------------------------------------


def look_up(client: Client, code: str) -> None:
    response = client.post(
        "/api/v1/orders/lookup", {"code": code, "phone": PHONE}, content_type=JSON
    )
    assert response.status_code == 200, response.content


def test_a_guest_who_looked_up_a_guest_order_may_refund_it(bought: MakeBought) -> None:
    purchase = bought(customer=None)
    refund_rule(purchase.session.event)
    guest = Client(HTTP_ACCEPT_LANGUAGE="en")
    error(ask(guest, purchase.order.public_id, {}), 404, "order_not_found")
    look_up(guest, purchase.order.code)

    response = ask(guest, purchase.order.public_id, {"tickets": [purchase.tickets[1].serial]})

    assert response.status_code == 201, response.content
    refund_id = response.json()["id"]
    assert guest.get(f"/api/v1/refunds/{refund_id}").status_code == 200
    error(Client().get(f"/api/v1/refunds/{refund_id}"), 404, "refund_not_found")
    error(guest.get("/api/v1/refunds"), 401, "unauthorized")


def test_a_guest_who_looked_up_an_account_order_may_see_but_not_refund_it(
    bought: MakeBought,
) -> None:
    purchase = bought()  # bought with the buyer's account
    refund_rule(purchase.session.event)
    guest = Client(HTTP_ACCEPT_LANGUAGE="en")
    look_up(guest, purchase.order.code)

    assert guest.get(quote_url(purchase.order.public_id)).status_code == 200
    body = error(ask(guest, purchase.order.public_id, {}), 403, "refund_sign_in_required")
    assert body["message"] == "Sign in with the account that bought this order to refund it."
    assert not Refund.objects.exists()


# --- Staff ----------------------------------------------------------------------------------------


def on_behalf(client: Client, order_id: str, body: dict[str, Any]) -> Any:
    return client.post(f"{refunds_url(order_id)}/on-behalf", body, content_type=JSON)


def test_staff_refund_on_behalf_after_the_cut_off_with_a_reason(
    bought: MakeBought, staff: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 1)

    response = on_behalf(
        signed_in(staff),
        purchase.order.public_id,
        {"tickets": [purchase.tickets[0].serial], "reason": "航班取消", "waive_fee": True},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["state"], body["reason"]) == ("staff", "succeeded", "航班取消")
    assert body["fee"]["amount"] == "0.00" and body["amount"]["amount"] == "180.00"
    assert body["attempts"] == 1 and body["last_error"] == ""


def test_staff_refund_on_behalf_needs_a_reason_the_permission_and_the_organizer(
    bought: MakeBought,
    staff: User,
    make_staff: Callable[..., User],
    organizer: Organizer,
    other_organizer: Organizer,
) -> None:
    order_id = bought().order.public_id

    error(on_behalf(signed_in(staff), order_id, {}), 400, "invalid_input")
    error(on_behalf(signed_in(staff), order_id, {"reason": "  "}), 400, "refund_reason_required")
    finance = signed_in(make_staff(organizer, role=Role.FINANCE))  # sees orders, no refunds
    error(on_behalf(finance, order_id, {"reason": "x"}), 403, "forbidden")
    rival = signed_in(make_staff(other_organizer))
    error(on_behalf(rival, order_id, {"reason": "x"}), 404, "order_not_found")
    error(on_behalf(Client(), order_id, {"reason": "x"}), 401, "unauthorized")
    assert not Refund.objects.exists()


def test_staff_approve_or_reject_requested_refunds_of_their_organizer(
    bought: MakeBought,
    buyer: User,
    staff: User,
    make_staff: Callable[..., User],
    other_organizer: Organizer,
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    customer = signed_in(buyer)
    first = ask(customer, purchase.order.public_id, {"tickets": [purchase.tickets[0].serial]})
    second = ask(customer, purchase.order.public_id, {"tickets": [purchase.tickets[1].serial]})
    first_id, second_id = first.json()["id"], second.json()["id"]
    desk = signed_in(staff)

    # the desk sees what waits for them, the rival organizer does not
    waiting = desk.get("/api/v1/refunds", {"as_staff": "true", "state": "requested"}).json()
    assert {r["id"] for r in waiting["items"]} == {first_id, second_id}
    rival = signed_in(make_staff(other_organizer))
    assert rival.get("/api/v1/refunds", {"as_staff": "true"}).json()["items"] == []
    error(rival.post(f"/api/v1/refunds/{first_id}/approve"), 404, "refund_not_found")
    error(customer.post(f"/api/v1/refunds/{first_id}/approve"), 404, "refund_not_found")

    approved = desk.post(f"/api/v1/refunds/{first_id}/approve")
    assert approved.status_code == 200, approved.content
    assert approved.json()["state"] == "succeeded"
    error(desk.post(f"/api/v1/refunds/{first_id}/approve"), 409, "refund_state_changed")

    error(
        desk.post(f"/api/v1/refunds/{second_id}/reject", {}, content_type=JSON),
        400,
        "invalid_input",
    )
    rejected = desk.post(
        f"/api/v1/refunds/{second_id}/reject", {"reason": "证件不符"}, content_type=JSON
    )
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    # the customer sees why
    seen = customer.get(f"/api/v1/refunds/{second_id}").json()
    assert seen["history"][-1]["note"] == "证件不符"
    assert [s["state"] for s in seen["progress"]] == ["requested", "rejected"]


def test_staff_retry_a_failed_refund(
    bought: MakeBought, buyer: User, staff: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SandboxProvider.refund
    broken = {"on": True}

    def refund(self: SandboxProvider, **kw: Any) -> RefundResult:
        if broken["on"]:
            return RefundResult(kw["reference"], kw["refund_reference"], kw["amount"], "failed")
        return real(self, **kw)

    monkeypatch.setattr(SandboxProvider, "refund", refund)
    purchase = bought()
    refund_rule(purchase.session.event)
    refund_id = ask(signed_in(buyer), purchase.order.public_id, {}).json()["id"]
    stored = Refund.objects.get(public_id=refund_id)
    for _ in range(MAX_ATTEMPTS):
        stored.refresh_from_db()
        if stored.next_attempt_at is not None:
            refunds_process_due(now=stored.next_attempt_at)
    desk = signed_in(staff)
    failed = desk.get(f"/api/v1/refunds/{refund_id}").json()
    assert failed["state"] == "failed" and failed["attempts"] == MAX_ATTEMPTS
    assert failed["last_error"] == "provider answered: failed"
    # the customer sees it failed, not the provider's error
    assert signed_in(buyer).get(f"/api/v1/refunds/{refund_id}").json()["last_error"] is None
    broken["on"] = False

    retried = desk.post(f"/api/v1/refunds/{refund_id}/retry")

    assert retried.status_code == 200, retried.content
    assert retried.json()["state"] == "succeeded"
    assert SandboxRefund.objects.get().amount == Decimal("360")
    error(desk.post(f"/api/v1/refunds/{refund_id}/retry"), 409, "refund_state_changed")
