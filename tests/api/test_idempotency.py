"""`Idempotency-Key` on the mutating endpoints: a retry gets the first answer and does no work
twice; a key reused for another request, an invalid key and a key still in progress are refused;
scopes keep clients apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer, User
from piaowu.api.v1 import holds as holds_api
from piaowu.catalog.models import Session
from piaowu.core.idempotency import request_fingerprint
from piaowu.core.models import IdempotencyKey
from piaowu.inventory.models import Hold
from piaowu.orders.models import Order
from piaowu.payments.models import Payment
from tests.api.test_holds import assert_error, held_codes, reserved
from tests.api.test_orders import PHONE

pytestmark = pytest.mark.django_db

KEY = "5b7e1c2a-2f0e-4f55-9d1c-0c6a4c1f8e21"


def post(client: Client, path: str, body: Any = None, key: str | None = KEY) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        path,
        body if body is not None else {},
        content_type="application/json",
        headers=headers,
    )


def hold_path(session: Session) -> str:
    return f"/api/v1/sessions/{session.public_id}/holds"


def order_path(session: Session) -> str:
    return f"/api/v1/sessions/{session.public_id}/orders"


# --- Replays ------------------------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_hold(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    first = post(client, hold_path(session), {"seats": ["M-1-1"]})
    again = post(client, hold_path(session), {"seats": ["M-1-1"]})
    assert first.status_code == again.status_code == 201, again.content
    assert again.json() == first.json()
    assert Hold.objects.filter(session=session).count() == 1
    assert held_codes(session) == ["M-1-1"]


def test_without_a_key_two_posts_make_two_holds(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    first = post(client, hold_path(session), {"best_available": {"quantity": 1}}, key=None)
    second = post(client, hold_path(session), {"best_available": {"quantity": 1}}, key=None)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert Hold.objects.filter(session=session).count() == 2
    assert not IdempotencyKey.objects.exists()


def test_same_key_replays_the_first_purchase(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    body = {"best_available": {"quantity": 2}, "contact_phone": PHONE}
    first = post(client, order_path(session), body)
    again = post(client, order_path(session), body)
    assert first.status_code == again.status_code == 201, again.content
    assert again.json() == first.json()
    assert Order.objects.filter(session=session).count() == 1
    assert Hold.objects.filter(session=session).count() == 1
    assert len(held_codes(session)) == 2


def test_same_key_with_another_body_is_422(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    assert post(client, hold_path(session), {"seats": ["M-1-1"]}).status_code == 201
    assert_error(
        post(client, hold_path(session), {"seats": ["M-2-1"]}), 422, "idempotency_key_reused"
    )
    assert held_codes(session) == ["M-1-1"]


def test_same_key_on_another_path_is_422(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    body = {"seats": ["M-1-1"], "contact_phone": PHONE}
    assert post(client, order_path(session), body).status_code == 201
    assert_error(post(client, hold_path(session), body), 422, "idempotency_key_reused")
    assert Hold.objects.filter(session=session).count() == 1


def test_release_with_a_key_replays_204(
    client: Client, organizer: Organizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = reserved(organizer)
    hold_id = post(client, hold_path(session), {"seats": ["M-1-1"]}, key=None).json()["id"]
    calls: list[str] = []
    real_release = holds_api.hold_release

    def counting_release(*, hold: Hold) -> None:
        calls.append(hold.public_id)
        real_release(hold=hold)

    monkeypatch.setattr(holds_api, "hold_release", counting_release)
    first = client.delete(f"/api/v1/holds/{hold_id}", headers={"Idempotency-Key": KEY})
    again = client.delete(f"/api/v1/holds/{hold_id}", headers={"Idempotency-Key": KEY})
    assert first.status_code == again.status_code == 204
    assert again.content == b""
    assert calls == [hold_id]  # the retry did not release again
    assert held_codes(session) == []


def test_extend_with_a_key_replays_instead_of_refusing(
    client: Client, organizer: Organizer
) -> None:
    session = reserved(organizer)
    hold_id = post(client, hold_path(session), {"seats": ["M-1-1"]}, key=None).json()["id"]
    first = post(client, f"/api/v1/holds/{hold_id}/extend")
    again = post(client, f"/api/v1/holds/{hold_id}/extend")
    assert first.status_code == again.status_code == 200, again.content
    assert again.json() == first.json()
    # Without the key the second extension is refused: the replay really skipped the work.
    assert_error(post(client, f"/api/v1/holds/{hold_id}/extend", key=None), 400, "already_extended")


def test_cancel_and_checkout_with_a_key_replay(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    hold_id = post(client, hold_path(session), {"seats": ["M-1-1"]}, key=None).json()["id"]
    checkout = f"/api/v1/holds/{hold_id}/checkout"
    first = post(client, checkout, {"contact_phone": PHONE}, key="checkout-1")
    assert post(client, checkout, {"contact_phone": PHONE}, key="checkout-1").json() == first.json()
    cancel = f"/api/v1/orders/{first.json()['id']}/cancel"
    cancelled = post(client, cancel, key="cancel-1")
    replayed = post(client, cancel, key="cancel-1")
    assert cancelled.status_code == replayed.status_code == 200
    assert replayed.json() == cancelled.json()
    assert replayed.json()["state"] == "cancelled"
    # Without a key a repeated cancel is still harmless: the order stays cancelled.
    again = post(client, cancel, key=None)
    assert again.status_code == 200 and again.json()["state"] == "cancelled"


def test_payment_start_with_a_key_replays(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    order = post(
        client, order_path(session), {"seats": ["M-1-1"], "contact_phone": PHONE}, key=None
    )
    path = f"/api/v1/orders/{order.json()['id']}/payments"
    first = post(client, path, {"provider": "sandbox"}, key="pay-1")
    again = post(client, path, {"provider": "sandbox"}, key="pay-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert Payment.objects.count() == 1


# --- What is not remembered, and what is refused ------------------------------------------------


def test_a_refused_request_is_not_remembered(organizer: Organizer) -> None:
    session = reserved(organizer)
    owner, buyer = Client(), Client(REMOTE_ADDR="10.0.0.9")
    hold_id = post(owner, hold_path(session), {"seats": ["M-1-1"]}, key=None).json()["id"]
    assert_error(post(buyer, hold_path(session), {"seats": ["M-1-1"]}), 400, "seat_taken")
    assert owner.delete(f"/api/v1/holds/{hold_id}").status_code == 204
    retry = post(buyer, hold_path(session), {"seats": ["M-1-1"]})
    assert retry.status_code == 201, retry.content
    assert held_codes(session) == ["M-1-1"]


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_invalid_key_is_400(client: Client, organizer: Organizer, key: str) -> None:
    session = reserved(organizer)
    assert_error(
        post(client, hold_path(session), {"seats": ["M-1-1"]}, key=key),
        400,
        "invalid_idempotency_key",
    )
    assert held_codes(session) == []


def test_key_still_in_progress_is_409(client: Client, organizer: Organizer, settings: Any) -> None:
    settings.PIAOWU_IDEMPOTENCY_WAIT_SECONDS = 0
    session = reserved(organizer)
    body = json.dumps({"seats": ["M-1-1"]})
    # A first request from this address with the same key is still running.
    IdempotencyKey.objects.create(
        scope="anon:127.0.0.1",
        key=KEY,
        fingerprint=request_fingerprint("POST", hold_path(session), body.encode()),
    )
    assert_error(post(client, hold_path(session), body), 409, "idempotency_key_in_progress")
    assert held_codes(session) == []


def test_a_forged_browser_request_cannot_read_a_stored_answer(organizer: Organizer) -> None:
    session = reserved(organizer)
    browser = Client(enforce_csrf_checks=True)
    browser.get(f"/sessions/{session.public_id}/")
    token = browser.cookies["csrftoken"].value
    first = browser.post(
        hold_path(session),
        {"seats": ["M-1-1"]},
        content_type="application/json",
        headers={"X-CSRFToken": token, "Idempotency-Key": KEY},
    )
    assert first.status_code == 201
    assert_error(post(browser, hold_path(session), {"seats": ["M-1-1"]}), 403, "forbidden")


# --- Scopes -------------------------------------------------------------------------------------


def test_users_do_not_share_keys(organizer: Organizer, make_user: Callable[..., User]) -> None:
    session = reserved(organizer)
    alice, bob = Client(), Client()
    alice.force_login(make_user())
    bob.force_login(make_user())
    a = post(alice, hold_path(session), {"best_available": {"quantity": 1}})
    b = post(bob, hold_path(session), {"best_available": {"quantity": 1}})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert Hold.objects.filter(session=session).count() == 2


def test_a_user_replays_across_browsers(
    organizer: Organizer, make_user: Callable[..., User]
) -> None:
    user = make_user()
    session = reserved(organizer)
    phone, laptop = Client(), Client()
    phone.force_login(user)
    laptop.force_login(user)
    first = post(phone, hold_path(session), {"seats": ["M-1-1"]})
    again = post(laptop, hold_path(session), {"seats": ["M-1-1"]})
    assert again.json() == first.json()
    assert Hold.objects.filter(session=session).count() == 1


def test_a_browser_whose_first_answer_was_lost_gets_its_hold_and_owns_it(
    organizer: Organizer,
) -> None:
    session = reserved(organizer)
    # The first answer (and with it the session cookie) never reached the browser …
    lost = post(Client(), hold_path(session), {"seats": ["M-1-1"]})
    assert lost.status_code == 201
    # … so its retry comes again without a cookie, from the same address.
    browser = Client()
    retry = post(browser, hold_path(session), {"seats": ["M-1-1"]})
    assert retry.status_code == 201
    assert retry.json() == lost.json()
    assert Hold.objects.filter(session=session).count() == 1
    # The retry's session now holds the key that bought the hold.
    mine = browser.get(f"/api/v1/holds/{lost.json()['id']}")
    assert mine.status_code == 200, mine.content


def test_another_browser_behind_the_same_address_cannot_replay(organizer: Organizer) -> None:
    session = reserved(organizer)
    owner, neighbour = Client(), Client()
    first = post(owner, hold_path(session), {"seats": ["M-1-1"]})
    assert first.status_code == 201
    post(neighbour, hold_path(session), {"seats": ["M-3-1"]}, key=None)  # has its own holder key
    body = assert_error(
        post(neighbour, hold_path(session), {"seats": ["M-1-1"]}), 422, "idempotency_key_reused"
    )
    assert first.json()["id"] not in str(body)
    assert_error(neighbour.get(f"/api/v1/holds/{first.json()['id']}"), 404, "hold_not_found")


def test_another_address_without_a_cookie_is_another_client(organizer: Organizer) -> None:
    session = reserved(organizer)
    here = post(Client(), hold_path(session), {"best_available": {"quantity": 1}})
    there = post(
        Client(REMOTE_ADDR="10.0.0.2"), hold_path(session), {"best_available": {"quantity": 1}}
    )
    assert here.status_code == there.status_code == 201
    assert here.json()["id"] != there.json()["id"]
