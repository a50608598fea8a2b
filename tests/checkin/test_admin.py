"""Check-in in the operator console: gates and devices through the services, the token shown
once, scoping by organizer, and the read-only scan log with its filters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Organizer, Role, User
from piaowu.checkin.models import Device, Gate, Scan
from piaowu.checkin.services import device_register, gate_create, token_hash
from tests.checkin.conftest import Door, MakeDoor
from tests.checkin.test_scan import _rival_ticket


def _client(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


@pytest.fixture
def admin_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.ADMIN, email="admin-a@example.com")


@pytest.fixture
def checker_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.CHECKER, email="checker-a@example.com")


@pytest.fixture
def rival_gate(other_organizer: Organizer) -> Gate:
    ticket = _rival_ticket(other_organizer)
    return gate_create(venue=ticket.session.venue, name="对手门")


def test_adding_a_device_shows_its_token_once(door: Door, admin_a: User) -> None:
    client = _client(admin_a)
    response = client.post(
        reverse("admin:checkin_device_add"),
        {"venue": door.session.venue_id, "name": "北门 2 号机"},
        follow=True,
    )
    assert response.status_code == 200
    device = Device.objects.get(name="北门 2 号机")
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    token_texts = [t for t in texts if "token" in t]
    assert len(token_texts) == 1
    token = token_texts[0].rsplit(": ", 1)[1]
    assert token_hash(token) == device.token_hash
    assert device.created_by == admin_a
    page = client.get(reverse("admin:checkin_device_change", args=[device.pk]))
    assert token not in page.content.decode()


def test_switching_off_devices(door: Door, admin_a: User) -> None:
    client = _client(admin_a)
    response = client.post(
        reverse("admin:checkin_device_changelist"),
        {"action": "deactivate", "_selected_action": [door.device.pk]},
        follow=True,
    )
    assert response.status_code == 200
    door.device.refresh_from_db()
    assert not door.device.is_active


def test_a_checker_sees_but_cannot_add_gates_or_devices(door: Door, checker_a: User) -> None:
    client = _client(checker_a)
    assert client.get(reverse("admin:checkin_gate_changelist")).status_code == 200
    assert client.get(reverse("admin:checkin_gate_add")).status_code == 403
    assert client.get(reverse("admin:checkin_device_add")).status_code == 403


def test_gates_through_the_service(door: Door, admin_a: User) -> None:
    client = _client(admin_a)
    url = reverse("admin:checkin_gate_add")
    response = client.post(
        url,
        {
            "venue": door.session.venue_id,
            "name": "东门",
            "entrances": "B口, A口",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content
    assert Gate.objects.get(name="东门").entrances == "A口,B口"
    taken = client.post(url, {"venue": door.session.venue_id, "name": "东门", "is_active": "on"})
    assert taken.status_code == 200
    assert "already has a gate" in taken.content.decode()


def test_another_organizers_gates_and_scans_are_hidden(
    door: Door, admin_a: User, rival_gate: Gate
) -> None:
    door.scan(door.qr())
    client = _client(admin_a)
    gates = client.get(reverse("admin:checkin_gate_changelist"))
    assert list(gates.context["cl"].result_list) == [door.gate]
    assert "对手门" not in gates.content.decode()
    assert client.get(reverse("admin:checkin_gate_change", args=[rival_gate.pk])).status_code == 404
    scans = client.get(reverse("admin:checkin_scan_changelist"))
    assert "对手门" not in scans.content.decode()  # not even in the gate filter
    device, _token = device_register(venue=rival_gate.venue, name="对手机", actor=None)
    assert client.get(reverse("admin:checkin_device_change", args=[device.pk])).status_code == 404


def test_scan_log_is_read_only_and_filters(door: Door, make_door: MakeDoor, admin_a: User) -> None:
    other = make_door(door.session)
    door.scan(door.qr())
    other.scan(door.qr())
    door.scan("junk")
    client = _client(admin_a)
    url = reverse("admin:checkin_scan_changelist")

    def listed(**params: str) -> list[str]:
        response = client.get(url, params)
        assert response.status_code == 200
        return sorted(scan.outcome for scan in response.context["cl"].result_list)

    assert listed() == ["already_used", "unreadable", "valid"]
    assert listed(outcome="valid") == ["valid"]
    assert listed(gate=other.gate.public_id) == ["already_used"]
    assert listed(conflict__exact="1") == []
    scan = Scan.objects.get(outcome="valid")
    assert client.get(reverse("admin:checkin_scan_change", args=[scan.pk])).status_code == 200
    assert client.get(reverse("admin:checkin_scan_add")).status_code == 403
    assert client.get(reverse("admin:checkin_admission_changelist")).status_code == 200
