"""The tickets API: a buyer's tickets (who may see them, what they show, void and rotating
tickets), redemption codes (sessions, redeeming, every refusal, idempotency, CSRF), and the
OpenAPI documentation of the error codes."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import CapacityMode, Session
from piaowu.catalog.services import TierSpec
from piaowu.inventory.models import Hold
from piaowu.orders.models import Order
from piaowu.orders.services import order_mark_paid
from piaowu.tickets import codec
from piaowu.tickets.models import RedemptionBatch, RedemptionCode, Ticket
from piaowu.tickets.selectors import ticket_qr_text, ticket_rotation_secret
from piaowu.tickets.services import redemption_batch_create, ticket_reissue, ticket_void
from tests.api.test_holds import assert_error, general
from tests.factories import make_event, make_session, make_venue
from tests.inventory.conftest import clock, make_block_hall

__all__ = ["clock"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    """A client that reads answers in English (the site's default language is Chinese)."""
    return Client(headers={"accept-language": "en"})


PHONE = "13800138000"


def reserved_with_entrance(organizer: Organizer) -> Session:
    hall = make_block_hall(organizer, rows=3, seats_per_row=10, entrance="A口")
    event = make_event(organizer, title="话剧《茶馆》", title_en="Teahouse")
    return make_session(event, venue=hall.venue, hall=hall)


def buy(client: Client, session: Session, body: dict[str, Any]) -> Order:
    response = client.post(
        f"/api/v1/sessions/{session.public_id}/orders",
        {**body, "contact_phone": PHONE},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return Order.objects.get(public_id=response.json()["id"])


def bought_and_paid(client: Client, session: Session, body: dict[str, Any]) -> Order:
    return order_mark_paid(order=buy(client, session, body))


def tickets_of(client: Client, order: Order) -> Any:
    return client.get(f"/api/v1/orders/{order.public_id}/tickets")


# --- A buyer's tickets -------------------------------------------------------------------------


def test_the_buyer_reads_the_tickets_of_a_paid_order(client: Client, organizer: Organizer) -> None:
    session = reserved_with_entrance(organizer)
    order = bought_and_paid(client, session, {"seats": ["M-1-5", "M-1-6"]})

    response = tickets_of(client, order)

    assert response.status_code == 200, response.content
    body = response.json()
    tickets = {t.public_id: t for t in Ticket.objects.filter(order=order)}
    assert sorted(item["id"] for item in body) == sorted(tickets)
    first = body[0]
    ticket = Ticket.objects.select_related("signing_key", "seat").get(public_id=first["id"])
    assert first["serial"] == ticket.serial and first["state"] == "valid"
    assert first["seat"] == f"Row 1, seat {ticket.seat.number_label}"  # type: ignore[union-attr]
    assert first["section"] == "池座" and first["entrance"] == "A口"
    assert first["tier"] == "std" and first["tier_name"] == "标准票"
    assert first["session"]["id"] == session.public_id
    assert first["session"]["event_title"] == "Teahouse"  # the English title for an English reader
    assert first["qr"] == ticket_qr_text(ticket)
    assert codec.parse(first["qr"]).claims.token == ticket.token
    assert first["rotating"] is None
    assert first["valid_from"].endswith("Z") and first["valid_until"].endswith("Z")


def test_reading_tickets_costs_the_same_queries_for_one_or_many(
    client: Client, organizer: Organizer
) -> None:
    session = general(organizer, capacity=10)
    one = bought_and_paid(client, session, {"tier": "ga", "quantity": 1})
    five = bought_and_paid(client, session, {"tier": "ga", "quantity": 5})
    counts = []
    for order, n in ((one, 1), (five, 5)):
        with CaptureQueriesContext(connection) as queries:
            response = tickets_of(client, order)
        assert response.status_code == 200 and len(response.json()) == n
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_an_unpaid_order_has_no_tickets_yet(client: Client, organizer: Organizer) -> None:
    order = buy(client, general(organizer), {"tier": "ga", "quantity": 2})
    response = tickets_of(client, order)
    assert response.status_code == 200 and response.json() == []


def test_ga_tickets_have_no_seat(client: Client, organizer: Organizer) -> None:
    order = bought_and_paid(client, general(organizer), {"tier": "ga", "quantity": 2})
    body = tickets_of(client, order).json()
    assert len(body) == 2
    assert all(t["seat"] is None and t["section"] is None and t["entrance"] is None for t in body)


def test_someone_elses_order_is_404(client: Client, organizer: Organizer) -> None:
    order = bought_and_paid(client, general(organizer), {"tier": "ga", "quantity": 1})
    stranger = Client()
    assert_error(tickets_of(stranger, order), 404, "order_not_found")
    assert_error(
        stranger.get("/api/v1/orders/01JNOSUCHORDER0000000000000/tickets"), 404, "order_not_found"
    )


def test_one_ticket_for_its_buyer_only(client: Client, organizer: Organizer) -> None:
    order = bought_and_paid(client, general(organizer), {"tier": "ga", "quantity": 1})
    ticket = Ticket.objects.get(order=order)

    mine = client.get(f"/api/v1/tickets/{ticket.public_id}")
    assert mine.status_code == 200 and mine.json()["serial"] == ticket.serial

    assert_error(Client().get(f"/api/v1/tickets/{ticket.public_id}"), 404, "ticket_not_found")
    assert_error(client.get("/api/v1/tickets/nope"), 404, "ticket_not_found")


def test_a_guest_who_looked_the_order_up_sees_its_tickets(
    client: Client, organizer: Organizer
) -> None:
    order = bought_and_paid(client, general(organizer), {"tier": "ga", "quantity": 1})
    other_browser = Client()
    found = other_browser.post(
        "/api/v1/orders/lookup",
        {"code": order.code, "phone": PHONE},
        content_type="application/json",
    )
    assert found.status_code == 200, found.content
    assert len(tickets_of(other_browser, order).json()) == 1


def test_a_signed_in_buyer_sees_the_tickets_from_another_device(
    organizer: Organizer, make_user: Any
) -> None:
    user: User = make_user()
    phone = Client()
    phone.force_login(user)
    order = bought_and_paid(phone, general(organizer), {"tier": "ga", "quantity": 1})
    laptop = Client()
    laptop.force_login(user)
    assert len(tickets_of(laptop, order).json()) == 1
    other: User = make_user()
    snoop = Client()
    snoop.force_login(other)
    assert_error(tickets_of(snoop, order), 404, "order_not_found")


def test_a_void_ticket_has_no_qr(client: Client, organizer: Organizer) -> None:
    order = bought_and_paid(client, general(organizer), {"tier": "ga", "quantity": 2})
    voided, kept = Ticket.objects.filter(order=order).order_by("id")
    ticket_void(ticket=voided, actor=None, reason="refund")

    body = {t["id"]: t for t in tickets_of(client, order).json()}

    assert body[voided.public_id]["state"] == "void" and body[voided.public_id]["qr"] is None
    assert body[kept.public_id]["qr"] is not None
    single = client.get(f"/api/v1/tickets/{voided.public_id}").json()
    assert single["qr"] is None and single["rotating"] is None


def test_a_reissued_ticket_shows_its_new_qr(client: Client, organizer: Organizer) -> None:
    order = bought_and_paid(client, general(organizer), {"tier": "ga", "quantity": 1})
    ticket = Ticket.objects.get(order=order)
    before = client.get(f"/api/v1/tickets/{ticket.public_id}").json()["qr"]
    ticket_reissue(ticket=ticket, actor=None, reason="lost phone")
    after = client.get(f"/api/v1/tickets/{ticket.public_id}").json()["qr"]
    assert after != before and codec.parse(after).claims.secret_version == 2


def test_a_rotating_ticket_carries_its_secret(client: Client, organizer: Organizer) -> None:
    event = make_event(organizer, title="热门演唱会")
    session = make_session(
        event,
        venue=make_venue(organizer, name="体育场"),
        capacity_mode=CapacityMode.GENERAL,
        capacity=10,
        tiers=[TierSpec(code="ga", name="看台", price=Decimal("480"))],
        rotating_qr=True,
    )
    order = bought_and_paid(client, session, {"tier": "ga", "quantity": 1})
    ticket = Ticket.objects.select_related("signing_key").get(order=order)

    body = client.get(f"/api/v1/tickets/{ticket.public_id}").json()

    assert body["rotating"]["step_seconds"] == 15
    secret = body["rotating"]["secret"]
    assert "=" not in secret
    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    assert raw == ticket_rotation_secret(ticket)
    # What the page shows verifies at a gate holding the session's rotation key.
    now = 1_800_000_000
    shown = body["qr"] + ":" + codec.rotating_code(raw, now // 15)
    parsed = codec.parse(shown)
    assert parsed.claims.rotating
    assert parsed.rotating_code is not None
    assert codec.rotating_code_valid(raw, parsed.rotating_code, now, 15, 2)


# --- Redemption codes --------------------------------------------------------------------------


def batch_for(session: Session, *, tier: str = "ga", size: int = 2, **kw: Any) -> list[str]:
    kw.setdefault("valid_until", timezone.now() + dt.timedelta(days=10))
    batch: RedemptionBatch = redemption_batch_create(
        organizer=session.event.organizer,
        event=session.event,
        tier_code=tier,
        name="员工福利",
        size=size,
        actor=None,
        **kw,
    )
    return list(batch.codes.order_by("id").values_list("code", flat=True))


def redeem(client: Client, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        "/api/v1/redemptions", body, content_type="application/json", headers=headers
    )


def test_sessions_for_a_code(client: Client, organizer: Organizer) -> None:
    session = general(organizer)
    code = batch_for(session)[0]
    response = client.get(f"/api/v1/redemptions/{code.lower().replace('-', '')}/sessions")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["code"] == code and body["tier"] == "ga"
    assert body["event"] == session.event.public_id
    assert [s["id"] for s in body["sessions"]] == [session.public_id]


@pytest.mark.parametrize("code", ["nonsense", "ABCD-EFGH-JKMN", "0000-0000-0000"])
def test_sessions_for_a_bad_code(client: Client, organizer: Organizer, code: str) -> None:
    batch_for(general(organizer))
    assert_error(client.get(f"/api/v1/redemptions/{code}/sessions"), 400, "redemption_code_invalid")


def test_redeeming_answers_the_paid_order_and_its_ticket(
    client: Client, organizer: Organizer
) -> None:
    session = general(organizer)
    code = batch_for(session)[0]

    response = redeem(client, {"code": code, "session": session.public_id, "contact_phone": PHONE})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["order"]["state"] == "paid"
    assert body["order"]["total"] == {"amount": "0.00", "currency": "CNY"}
    assert len(body["tickets"]) == 1 and body["tickets"][0]["qr"].startswith("PW1")
    order = Order.objects.get(public_id=body["order"]["id"])
    assert RedemptionCode.objects.get(code=code).order == order
    # the browser that redeemed reads it like an order it bought
    assert len(tickets_of(client, order).json()) == 1
    assert_error(client.get(f"/api/v1/redemptions/{code}/sessions"), 400, "redemption_code_used")


def test_redeeming_a_chosen_seat(client: Client, organizer: Organizer) -> None:
    session = reserved_with_entrance(organizer)
    code = batch_for(session, tier="std")[0]
    response = redeem(
        client,
        {"code": code, "session": session.public_id, "contact_phone": PHONE, "seats": ["M-2-1"]},
    )
    assert response.status_code == 201, response.content
    assert response.json()["tickets"][0]["seat"] == "Row 2, seat 1"


def test_a_code_redeemed_twice(client: Client, organizer: Organizer) -> None:
    session = general(organizer)
    code = batch_for(session)[0]
    body = {"code": code, "session": session.public_id, "contact_phone": PHONE}
    assert redeem(client, body).status_code == 201
    assert_error(redeem(Client(), body), 400, "redemption_code_used")
    assert Order.objects.filter(session=session).count() == 1


def test_a_retry_with_the_same_idempotency_key_gets_the_same_answer(
    client: Client, organizer: Organizer
) -> None:
    session = general(organizer)
    code = batch_for(session)[0]
    body = {"code": code, "session": session.public_id, "contact_phone": PHONE}
    key = "5b0d3f7e-0d7c-4f7e-9a55-3f1d2c9b8a11"
    first = redeem(client, body, **{"Idempotency-Key": key})
    again = redeem(client, body, **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert Order.objects.filter(session=session).count() == 1
    other = redeem(client, {**body, "contact_phone": "13900139000"}, **{"Idempotency-Key": key})
    assert_error(other, 422, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"code": "nonsense"}, 400, "redemption_code_invalid"),
        ({"session": "nope"}, 404, "session_not_found"),
        ({"contact_phone": ""}, 400, "contact_required"),
        ({"contact_phone": "call me"}, 400, "invalid_phone"),
        ({"contact_email": "not-an-email"}, 400, "invalid_email"),
        ({"seats": ["M-1-1"]}, 400, "not_reserved_seating"),
        ({"seats": ["A", "B"]}, 400, "redemption_one_ticket"),
        ({"code": ""}, 400, "invalid_input"),
        ({"seats": "M-1-1"}, 400, "invalid_input"),
    ],
)
def test_refused_redemptions_write_nothing(
    client: Client, organizer: Organizer, change: dict[str, Any], status: int, code: str
) -> None:
    session = general(organizer)
    real = batch_for(session)[0]
    body = {"code": real, "session": session.public_id, "contact_phone": PHONE, **change}
    assert_error(redeem(client, body), status, code)
    assert not Order.objects.exists() and not Hold.objects.exists()
    assert RedemptionCode.objects.get(code=real).redeemed_at is None


def test_a_code_for_another_event_or_tier(client: Client, organizer: Organizer) -> None:
    session = general(organizer)
    elsewhere = general(organizer)
    code = batch_for(session)[0]
    assert_error(
        redeem(client, {"code": code, "session": elsewhere.public_id, "contact_phone": PHONE}),
        400,
        "redemption_wrong_event",
    )


def test_an_expired_code(client: Client, organizer: Organizer, clock: Any) -> None:
    session = general(organizer)
    code = batch_for(session, valid_until=timezone.now() + dt.timedelta(hours=1))[0]
    clock.shift(dt.timedelta(hours=2))
    body = {"code": code, "session": session.public_id, "contact_phone": PHONE}
    assert_error(redeem(client, body), 400, "redemption_code_expired")
    assert_error(client.get(f"/api/v1/redemptions/{code}/sessions"), 400, "redemption_code_expired")


def test_a_browser_redemption_needs_the_csrf_token(organizer: Organizer) -> None:
    session = general(organizer)
    code = batch_for(session)[0]
    browser = Client(enforce_csrf_checks=True)
    browser.get(f"/sessions/{session.public_id}/")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    first = browser.post(
        f"/api/v1/sessions/{session.public_id}/holds",
        {"tier": "ga", "quantity": 1},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert first.status_code == 201, first.content
    body = {"code": code, "session": session.public_id, "contact_phone": PHONE}
    assert_error(redeem(browser, body), 403, "forbidden")
    assert RedemptionCode.objects.get(code=code).redeemed_at is None
    assert redeem(browser, body, **{"X-CSRFToken": token}).status_code == 201


# --- Documentation -----------------------------------------------------------------------------


def test_openapi_documents_the_error_codes(client: Client) -> None:
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    redeem_doc = paths["/api/v1/redemptions"]["post"]
    assert "redemption_code_used" in redeem_doc["description"]
    assert any(p["name"] == "Idempotency-Key" for p in redeem_doc["parameters"])
    assert "ticket_not_found" in paths["/api/v1/tickets/{ticket_id}"]["get"]["description"]
    assert "order_not_found" in paths["/api/v1/orders/{order_id}/tickets"]["get"]["description"]
    sessions = paths["/api/v1/redemptions/{code}/sessions"]["get"]["description"]
    assert "redemption_code_expired" in sessions
