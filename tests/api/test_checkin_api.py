"""The check-in API: scans, packs, sync and counts, for devices and for gate staff."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer, Role, User
from piaowu.checkin.models import Admission, Device, Scan
from piaowu.checkin.offline import OfflineVerifier
from piaowu.checkin.services import device_deactivate, device_register, gate_create
from tests.checkin.conftest import (
    Door,
    MakeDoor,
    _fresh_keys,
    clock,
    door,
    ga_session,
    make_door,
    paid_order,
    reserved_session,
)
from tests.checkin.test_scan import _same_organizer_other_venue


@pytest.fixture
def client() -> Client:
    """A client that reads answers in English (the site's default language is Chinese)."""
    return Client(headers={"accept-language": "en"})


__all__ = [
    "_fresh_keys",
    "clock",
    "door",
    "ga_session",
    "make_door",
    "paid_order",
    "reserved_session",
]

pytestmark = pytest.mark.django_db

CSRF = "a" * 32


def auth(door: Door) -> dict[str, str]:
    return {"Authorization": f"Device {door.token}"}


def scan_body(door: Door, code: str, nonce: str = "api-1", **extra: Any) -> dict[str, Any]:
    return {
        "gate": door.gate.public_id,
        "session": door.session.public_id,
        "code": code,
        "nonce": nonce,
        **extra,
    }


def post_scan(client: Client, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.post(
        "/api/v1/checkin/scans", body, content_type="application/json", headers=headers
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert set(body) == {"code", "message", "details"}
    return body


def staff_client(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = CSRF
    return client


# --- Scans with a device ----------------------------------------------------------------------


def test_a_device_scans_a_ticket_in(client: Client, door: Door) -> None:
    response = post_scan(client, scan_body(door, door.qr()), auth(door))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["outcome"] == "valid" and body["accepted"] is True
    assert body["replayed"] is False and body["first_admission"] is None
    assert body["message"]
    ticket = door.tickets[0]
    assert body["ticket"] == {
        "serial": ticket.serial,
        "seat": "Row 1, seat 5",
        "section": "池座",
        "entrance": None,
        "tier": ticket.tier.name,
        "audience": "any",
        "attendee_name": None,
        "attendee_id_masked": None,
    }


def test_already_used_names_when_and_where(client: Client, door: Door) -> None:
    post_scan(client, scan_body(door, door.qr(), "n1"), auth(door))
    body = post_scan(client, scan_body(door, door.qr(), "n2"), auth(door)).json()
    assert (body["outcome"], body["accepted"]) == ("already_used", False)
    admission = Admission.objects.get(ticket=door.tickets[0])
    assert body["first_admission"]["gate"] == door.gate.name
    at = dt.datetime.fromisoformat(body["first_admission"]["at"].replace("Z", "+00:00"))
    assert at == admission.first_at
    assert body["first_admission"]["at"].endswith("Z")


def test_a_retried_nonce_answers_replayed(client: Client, door: Door) -> None:
    first = post_scan(client, scan_body(door, door.qr()), auth(door)).json()
    again = post_scan(client, scan_body(door, door.qr()), auth(door)).json()
    assert again == {**first, "replayed": True}
    assert Scan.objects.count() == 1


@pytest.mark.parametrize(
    "code",
    ["", "x" * 10_000, "\x00\x01binary\x7f", "'; DROP TABLE checkin_scan; --", "PW1!!!"],
    ids=["empty", "10kB", "binary", "sql", "bad-base32"],
)
def test_garbage_answers_unreadable(client: Client, door: Door, code: str) -> None:
    response = post_scan(client, scan_body(door, code), auth(door))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["outcome"], body["accepted"], body["ticket"]) == ("unreadable", False, None)


def test_exit_and_messages_in_chinese(client: Client, door: Door) -> None:
    headers = {**auth(door), "Accept-Language": "zh-hans"}
    body = post_scan(client, scan_body(door, door.qr(), direction="exit"), headers).json()
    assert body["outcome"] == "not_inside" and body["message"]


# --- Refused requests -------------------------------------------------------------------------


def test_no_credentials_or_a_bad_token_is_401(client: Client, door: Door) -> None:
    body = scan_body(door, door.qr())
    assert_error(post_scan(client, body, {}), 401, "device_unauthorized")
    assert_error(
        post_scan(client, body, {"Authorization": "Device nope"}), 401, "device_unauthorized"
    )
    assert_error(
        post_scan(client, body, {"Authorization": f"Bearer {door.token}"}),
        401,
        "device_unauthorized",
    )
    device_deactivate(device=door.device)
    assert_error(post_scan(client, body, auth(door)), 401, "device_unauthorized")
    assert not Scan.objects.exists()


def test_unknown_gate_and_session_are_404(client: Client, door: Door) -> None:
    body = scan_body(door, door.qr())
    assert_error(post_scan(client, {**body, "gate": "nope"}, auth(door)), 404, "gate_not_found")
    assert_error(
        post_scan(client, {**body, "session": "nope"}, auth(door)), 404, "session_not_found"
    )


def test_a_device_of_another_venue_is_403(client: Client, door: Door) -> None:
    elsewhere = _same_organizer_other_venue(door.session)
    _device, token = device_register(venue=elsewhere.venue, name="外场", actor=None)
    headers = {"Authorization": f"Device {token}"}
    assert_error(post_scan(client, scan_body(door, door.qr()), headers), 403, "device_wrong_venue")
    pack = client.get(f"/api/v1/checkin/sessions/{door.session.public_id}/pack", headers=headers)
    assert_error(pack, 403, "device_wrong_venue")


def test_a_gate_elsewhere_for_the_session_is_refused(client: Client, door: Door) -> None:
    elsewhere = _same_organizer_other_venue(door.session)
    far_gate = gate_create(venue=elsewhere.venue, name="远门")
    body = {**scan_body(door, door.qr()), "gate": far_gate.public_id}
    assert_error(post_scan(client, body, auth(door)), 403, "device_wrong_venue")


def test_a_session_at_another_venue_is_gate_wrong_venue(client: Client, door: Door) -> None:
    elsewhere = _same_organizer_other_venue(door.session)
    body = {**scan_body(door, door.qr()), "session": elsewhere.public_id}
    assert_error(post_scan(client, body, auth(door)), 400, "gate_wrong_venue")
    assert not Scan.objects.exists()


@pytest.mark.parametrize(
    "change",
    [{"nonce": ""}, {"nonce": "x" * 65}, {"direction": "sideways"}, {"code": None}],
    ids=["empty-nonce", "long-nonce", "direction", "no-code"],
)
def test_malformed_bodies_are_400(client: Client, door: Door, change: dict[str, Any]) -> None:
    body = {**scan_body(door, door.qr()), **change}
    assert_error(post_scan(client, body, auth(door)), 400, "invalid_input")


# --- Staff in a browser -----------------------------------------------------------------------


def test_gate_staff_scan_with_their_browser_and_need_the_csrf_token(
    door: Door, make_staff: Callable[..., User], organizer: Organizer
) -> None:
    checker = make_staff(organizer, Role.CHECKER)
    browser = staff_client(checker)
    body = scan_body(door, door.qr())
    assert_error(post_scan(browser, body, {}), 403, "forbidden")
    response = post_scan(browser, body, {"X-CSRFToken": CSRF})
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "valid"
    scan = Scan.objects.get()
    assert scan.operator == checker
    device = Device.objects.get(pk=scan.device_id)
    assert device.browser_user == checker and device.venue_id == door.session.venue_id
    again = post_scan(browser, {**body, "nonce": "api-2"}, {"X-CSRFToken": CSRF})
    assert again.json()["outcome"] == "already_used"
    assert Device.objects.filter(browser_user=checker).count() == 1


def test_staff_without_gate_scan_or_of_another_organizer_are_403(
    door: Door,
    make_staff: Callable[..., User],
    organizer: Organizer,
    other_organizer: Organizer,
) -> None:
    for user in (make_staff(organizer, Role.SELLER), make_staff(other_organizer, Role.CHECKER)):
        browser = staff_client(user)
        response = post_scan(browser, scan_body(door, door.qr()), {"X-CSRFToken": CSRF})
        assert_error(response, 403, "forbidden")
    assert not Scan.objects.exists()


def test_staff_read_pack_and_counts_without_csrf(
    door: Door, make_staff: Callable[..., User], organizer: Organizer
) -> None:
    browser = staff_client(make_staff(organizer, Role.CHECKER))
    pack = browser.get(f"/api/v1/checkin/sessions/{door.session.public_id}/pack")
    assert pack.status_code == 200 and pack.json()["format"] == "piaowu.checkin.pack/1"
    counts = browser.get(f"/api/v1/checkin/sessions/{door.session.public_id}/counts")
    assert counts.status_code == 200


# --- Pack, sync, counts -----------------------------------------------------------------------


def test_pack_then_offline_then_sync_then_counts(client: Client, door: Door) -> None:
    response = client.get(
        f"/api/v1/checkin/sessions/{door.session.public_id}/pack", headers=auth(door)
    )
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    door.device.refresh_from_db()
    assert door.device.last_pack_at is not None
    offline = OfflineVerifier(response.json())
    now = door.clock()
    outcome, _claims = offline.check(door.qr(0), gate_id=door.gate.public_id, now=now.timestamp())
    assert outcome == "valid"
    scans = [
        {
            **scan_body(door, door.qr(0), "off-1"),
            "scanned_at": now.isoformat(),
            "device_accepted": True,
        },
        {
            **scan_body(door, "junk", "off-2"),
            "scanned_at": now.isoformat(),
            "device_accepted": False,
        },
    ]
    sync = client.post(
        "/api/v1/checkin/sync",
        {"scans": scans},
        content_type="application/json",
        headers=auth(door),
    )
    assert sync.status_code == 200, sync.content
    assert sync.json() == {
        "results": [
            {
                "nonce": "off-1",
                "outcome": "valid",
                "accepted": True,
                "conflict": False,
                "replayed": False,
            },
            {
                "nonce": "off-2",
                "outcome": "unreadable",
                "accepted": False,
                "conflict": False,
                "replayed": False,
            },
        ]
    }
    again = client.post(
        "/api/v1/checkin/sync",
        {"scans": scans},
        content_type="application/json",
        headers=auth(door),
    )
    assert [r["replayed"] for r in again.json()["results"]] == [True, True]
    counts = client.get(
        f"/api/v1/checkin/sessions/{door.session.public_id}/counts", headers=auth(door)
    ).json()
    assert counts == {
        "tickets": 2,
        "admitted": 1,
        "inside": 1,
        "conflicts": 0,
        "gates": [{"id": door.gate.public_id, "name": door.gate.name, "admitted": 1}],
    }


def test_sync_conflict_shows_in_counts(client: Client, door: Door, make_door: MakeDoor) -> None:
    other = make_door(door.session)
    post_scan(client, scan_body(door, door.qr()), auth(door))
    item = {
        **scan_body(other, door.qr(), "off-1"),
        "scanned_at": door.clock().isoformat(),
        "device_accepted": True,
    }
    result = client.post(
        "/api/v1/checkin/sync",
        {"scans": [item]},
        content_type="application/json",
        headers=auth(other),
    ).json()["results"][0]
    assert (result["outcome"], result["conflict"]) == ("already_used", True)
    counts = client.get(
        f"/api/v1/checkin/sessions/{door.session.public_id}/counts", headers=auth(door)
    ).json()
    assert counts["conflicts"] == 1


def test_sync_refuses_oversized_and_unknown_gates(client: Client, door: Door) -> None:
    item = {
        **scan_body(door, door.qr(), "x"),
        "scanned_at": door.clock().isoformat(),
        "device_accepted": True,
    }
    big = [{**item, "nonce": f"n{i}"} for i in range(501)]
    response = client.post(
        "/api/v1/checkin/sync", {"scans": big}, content_type="application/json", headers=auth(door)
    )
    assert_error(response, 400, "invalid_input")
    response = client.post(
        "/api/v1/checkin/sync",
        {"scans": [{**item, "gate": "nope"}]},
        content_type="application/json",
        headers=auth(door),
    )
    assert_error(response, 404, "gate_not_found")
    assert not Scan.objects.exists()


def test_pack_and_counts_need_credentials(client: Client, door: Door) -> None:
    for what in ("pack", "counts"):
        url = f"/api/v1/checkin/sessions/{door.session.public_id}/{what}"
        assert_error(client.get(url), 401, "device_unauthorized")
        assert_error(
            client.get(f"/api/v1/checkin/sessions/nope/{what}", headers=auth(door)),
            404,
            "session_not_found",
        )


def test_the_openapi_documents_the_error_codes(client: Client) -> None:
    spec = client.get("/api/openapi.json").json()
    scan = spec["paths"]["/api/v1/checkin/scans"]["post"]
    for code in ("device_unauthorized", "device_wrong_venue", "gate_not_found", "gate_inactive"):
        assert f"`{code}`" in scan["description"]
