"""The holds API: each body form, every refusal with its code, ownership, and nothing half-held."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import CapacityMode, Session
from piaowu.catalog.services import TierSpec
from piaowu.inventory.models import Hold, HoldItem, QuotaAllocation, SeatState
from piaowu.inventory.selectors import session_availability
from tests.factories import make_event, make_session, make_venue
from tests.inventory.conftest import make_block_hall

pytestmark = pytest.mark.django_db

_SEQ = itertools.count(1)


def reserved(organizer: Organizer, *, tiers: list[TierSpec] | None = None, **kw: Any) -> Session:
    block = {k: kw.pop(k) for k in ("blocked_seats", "couple_rows") if k in kw}
    hall = make_block_hall(organizer, rows=3, seats_per_row=10, **block)
    event = make_event(organizer, title=f"演出 {next(_SEQ)}")
    return make_session(event, venue=hall.venue, hall=hall, tiers=tiers, **kw)


def general(organizer: Organizer, *, capacity: int = 5) -> Session:
    venue = make_venue(organizer, name=f"草地 {next(_SEQ)}")
    event = make_event(organizer, title=f"音乐节 {next(_SEQ)}")
    tiers = [TierSpec(code="ga", name="通票", name_en="Pass", price=Decimal("280.5"))]
    return make_session(
        event, venue=venue, capacity_mode=CapacityMode.GENERAL, capacity=capacity, tiers=tiers
    )


def post_hold(client: Client, session: Session, body: Any, language: str = "zh-hans") -> Any:
    return client.post(
        f"/api/v1/sessions/{session.public_id}/holds",
        body,
        content_type="application/json",
        headers={"Accept-Language": language},
    )


def held_codes(session: Session) -> list[str]:
    return sorted(
        SeatState.objects.filter(session=session, state=SeatState.State.HELD).values_list(
            "seat__code", flat=True
        )
    )


def assert_nothing_held(session: Session) -> None:
    assert held_codes(session) == []
    assert not Hold.objects.filter(session=session).exists()
    assert not HoldItem.objects.filter(hold__session=session).exists()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert set(body) == {"code", "message", "details"}
    return body


# --- Happy paths ------------------------------------------------------------------------------


def test_hold_named_seats_answers_201_with_items_total_and_expiry(
    client: Client, organizer: Organizer
) -> None:
    session = reserved(organizer, price="180")
    response = post_hold(client, session, {"seats": ["M-1-1", "M-1-2"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["session"] == session.public_id
    assert body["status"] == "active"
    assert dt.datetime.fromisoformat(body["expires_at"]) > timezone.now()
    assert [i["seat"] for i in body["items"]] == ["M-1-1", "M-1-2"]
    item = body["items"][0]
    assert item["tier"] == "std"
    assert item["tier_name"] == "标准票"
    assert item["unit_price"] == {"amount": "180.00", "currency": "CNY"}
    assert item["quantity"] == 1
    assert body["total"] == {"amount": "360.00", "currency": "CNY"}
    assert held_codes(session) == ["M-1-1", "M-1-2"]
    assert Hold.objects.get(public_id=body["id"]).holder_key.startswith("anon:")


def test_best_available_holds_adjacent_seats(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    response = post_hold(client, session, {"best_available": {"quantity": 3, "tier": None}})
    assert response.status_code == 201, response.content
    seats = [i["seat"] for i in response.json()["items"]]
    assert len(seats) == 3
    assert held_codes(session) == sorted(seats)
    rows = {code.rsplit("-", 1)[0] for code in seats}
    assert len(rows) == 1  # one row, next to each other
    numbers = sorted(int(code.rsplit("-", 1)[1]) for code in seats)
    assert numbers == list(range(numbers[0], numbers[0] + 3))


def test_general_admission_quantity_hold(client: Client, organizer: Organizer) -> None:
    session = general(organizer, capacity=5)
    response = post_hold(client, session, {"tier": "ga", "quantity": 2}, "en")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["items"] == [
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


def test_signed_in_holder_key_is_the_user(
    client: Client, organizer: Organizer, make_user: Any
) -> None:
    user: User = make_user()
    client.force_login(user)
    session = reserved(organizer)
    response = post_hold(client, session, {"seats": ["M-1-1"]})
    assert response.status_code == 201
    hold = Hold.objects.get(public_id=response.json()["id"])
    assert hold.holder_key == f"user:{user.pk}"
    assert hold.customer == user


def test_get_extend_and_release_own_hold(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    hold_id = post_hold(client, session, {"seats": ["M-1-1", "M-1-2"]}).json()["id"]
    first = client.get(f"/api/v1/holds/{hold_id}")
    assert first.status_code == 200
    assert first.json()["extended"] is False

    extended = client.post(f"/api/v1/holds/{hold_id}/extend")
    assert extended.status_code == 200, extended.content
    assert extended.json()["extended"] is True
    assert extended.json()["expires_at"] > first.json()["expires_at"]

    released = client.delete(f"/api/v1/holds/{hold_id}")
    assert released.status_code == 204
    assert held_codes(session) == []
    assert client.get(f"/api/v1/holds/{hold_id}").json()["status"] == "released"


def test_the_anonymous_key_survives_across_requests(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    post_hold(client, session, {"seats": ["M-1-1"]})
    post_hold(client, session, {"seats": ["M-2-1"]})
    keys = set(Hold.objects.filter(session=session).values_list("holder_key", flat=True))
    assert len(keys) == 1


# --- Refusals ---------------------------------------------------------------------------------


def test_taken_seat_is_named_and_nothing_is_half_held(organizer: Organizer) -> None:
    session = reserved(organizer)
    first, second = Client(), Client()
    assert post_hold(first, session, {"seats": ["M-1-1", "M-1-2"]}).status_code == 201
    body = assert_error(
        post_hold(second, session, {"seats": ["M-1-2", "M-1-3", "M-1-4"]}), 400, "seat_taken"
    )
    assert body["details"]["seats"] == ["M-1-2"]
    assert "M-1-2" in body["message"]
    assert held_codes(session) == ["M-1-1", "M-1-2"]
    assert Hold.objects.filter(session=session).count() == 1


def test_unknown_seat(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    body = assert_error(
        post_hold(client, session, {"seats": ["M-1-1", "Z-9-9"]}), 400, "seat_not_in_session"
    )
    assert body["details"]["seats"] == ["Z-9-9"]
    assert_nothing_held(session)


def test_blocked_seat(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer, blocked_seats=((1, 10),))
    body = assert_error(post_hold(client, session, {"seats": ["M-1-10"]}), 400, "seat_blocked")
    assert body["details"]["seats"] == ["M-1-10"]
    assert_nothing_held(session)


def test_over_limit(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    seats = [f"M-1-{n}" for n in range(1, 8)]
    body = assert_error(post_hold(client, session, {"seats": seats}), 400, "over_limit")
    assert body["details"]["limit"] == 6
    assert_nothing_held(session)


def test_sales_closed(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer, sales_open_at=timezone.now() + dt.timedelta(days=1))
    body = assert_error(post_hold(client, session, {"seats": ["M-1-1"]}), 400, "sales_closed")
    assert body["details"]["sales_state"] == "not_open"
    assert_nothing_held(session)


def test_stranded_seat(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    body = assert_error(post_hold(client, session, {"seats": ["M-1-2"]}), 400, "stranded_seat")
    assert body["details"]["seats"] == ["M-1-1"]
    assert_nothing_held(session)


def test_couple_seat_needs_its_partner(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer, couple_rows=(1,))
    assert_error(post_hold(client, session, {"seats": ["M-1-1"]}), 400, "couple_pair_required")
    assert_nothing_held(session)


def test_general_admission_sold_out(client: Client, organizer: Organizer) -> None:
    session = general(organizer, capacity=3)
    assert post_hold(Client(), session, {"tier": "ga", "quantity": 2}).status_code == 201
    body = assert_error(post_hold(client, session, {"tier": "ga", "quantity": 2}), 400, "sold_out")
    assert body["details"]["available"] == 1
    assert Hold.objects.filter(session=session).count() == 1
    assert session_availability(session)["available"] == 1


def test_unknown_tier(client: Client, organizer: Organizer) -> None:
    session = general(organizer)
    assert_error(post_hold(client, session, {"tier": "vip", "quantity": 1}), 400, "tier_not_found")
    assert not QuotaAllocation.objects.filter(hold__session=session).exists()


def test_unknown_session(client: Client) -> None:
    assert_error(
        client.post(
            "/api/v1/sessions/nope/holds", {"seats": ["M-1-1"]}, content_type="application/json"
        ),
        404,
        "session_not_found",
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"seats": []},
        {"seats": "M-1-1"},
        {"seats": ["M-1-1"], "tier": "std", "quantity": 1},
        {"tier": "std"},
        {"quantity": 2},
        {"best_available": {"quantity": 0}},
        {"best_available": {}},
        {"tier": "ga", "quantity": "two"},
        {"seats": ["x" * 41]},
    ],
)
def test_malformed_body_is_400_invalid_input(
    client: Client, organizer: Organizer, body: dict[str, Any]
) -> None:
    session = reserved(organizer)
    assert_error(post_hold(client, session, body), 400, "invalid_input")
    assert_nothing_held(session)


def test_not_json_is_400(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    response = client.post(
        f"/api/v1/sessions/{session.public_id}/holds", "{", content_type="application/json"
    )
    assert response.status_code == 400
    assert_nothing_held(session)


def test_someone_elses_hold_is_404_for_every_verb(organizer: Organizer) -> None:
    session = reserved(organizer)
    owner, stranger = Client(), Client()
    hold_id = post_hold(owner, session, {"seats": ["M-1-1"]}).json()["id"]
    post_hold(stranger, session, {"seats": ["M-3-1"]})  # the stranger has a key of their own
    assert_error(stranger.get(f"/api/v1/holds/{hold_id}"), 404, "hold_not_found")
    assert_error(stranger.post(f"/api/v1/holds/{hold_id}/extend"), 404, "hold_not_found")
    assert_error(stranger.delete(f"/api/v1/holds/{hold_id}"), 404, "hold_not_found")
    assert_error(Client().get(f"/api/v1/holds/{hold_id}"), 404, "hold_not_found")
    assert held_codes(session) == ["M-1-1", "M-3-1"]
    assert not Hold.objects.get(public_id=hold_id).extended


def test_unknown_hold_is_404(client: Client) -> None:
    assert_error(client.get("/api/v1/holds/nope"), 404, "hold_not_found")


def test_extend_twice_is_refused(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    hold_id = post_hold(client, session, {"seats": ["M-1-1"]}).json()["id"]
    assert client.post(f"/api/v1/holds/{hold_id}/extend").status_code == 200
    expires = Hold.objects.get(public_id=hold_id).expires_at
    assert_error(client.post(f"/api/v1/holds/{hold_id}/extend"), 400, "already_extended")
    assert Hold.objects.get(public_id=hold_id).expires_at == expires


def test_release_then_extend_is_refused(client: Client, organizer: Organizer) -> None:
    session = reserved(organizer)
    hold_id = post_hold(client, session, {"seats": ["M-1-1"]}).json()["id"]
    assert client.delete(f"/api/v1/holds/{hold_id}").status_code == 204
    assert client.delete(f"/api/v1/holds/{hold_id}").status_code == 204  # harmless
    assert_error(client.post(f"/api/v1/holds/{hold_id}/extend"), 400, "hold_expired")
    assert held_codes(session) == []


def test_browser_mutations_need_the_csrf_token(organizer: Organizer) -> None:
    session = reserved(organizer)
    browser = Client(enforce_csrf_checks=True)
    browser.get(f"/sessions/{session.public_id}/")  # the page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    first = browser.post(
        f"/api/v1/sessions/{session.public_id}/holds",
        {"seats": ["M-1-1"]},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert first.status_code == 201, first.content
    hold_id = first.json()["id"]
    # now the session cookie names the holder: a request without the token is refused
    assert_error(post_hold(browser, session, {"seats": ["M-2-1"]}), 403, "forbidden")
    assert_error(browser.delete(f"/api/v1/holds/{hold_id}"), 403, "forbidden")
    assert_error(browser.post(f"/api/v1/holds/{hold_id}/extend"), 403, "forbidden")
    assert held_codes(session) == ["M-1-1"]
    assert not Hold.objects.get(public_id=hold_id).extended


def test_cookieless_client_needs_no_csrf_token(organizer: Organizer) -> None:
    session = reserved(organizer)
    response = post_hold(Client(enforce_csrf_checks=True), session, {"seats": ["M-1-1"]})
    assert response.status_code == 201, response.content


def test_openapi_documents_the_hold_error_codes(client: Client) -> None:
    schema = client.get("/api/openapi.json").json()
    create = schema["paths"]["/api/v1/sessions/{session_id}/holds"]["post"]["description"]
    for code in (
        "seat_taken",
        "seat_not_in_session",
        "seat_blocked",
        "over_limit",
        "sales_closed",
        "stranded_seat",
        "couple_pair_required",
        "sold_out",
    ):
        assert f"`{code}`" in create
    extend = schema["paths"]["/api/v1/holds/{hold_id}/extend"]["post"]["description"]
    assert "`already_extended`" in extend and "`hold_expired`" in extend
