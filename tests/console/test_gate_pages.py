"""The gate console pages: who may open them, what the picker lists, the scanner's setup and the
check-in dashboard (counts, refusals, offline conflicts)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from piaowu.accounts.models import Organizer, Role, User
from piaowu.catalog.models import Session
from piaowu.checkin.models import Admission
from piaowu.checkin.services import SyncScan, checkin_sync, gate_create
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
    session_flags,
)
from tests.factories import make_event, make_session, make_venue

__all__ = [
    "_fresh_keys",
    "clock",
    "door",
    "ga_session",
    "make_door",
    "paid_order",
    "reserved_session",
]

PICKER = reverse("gate:picker")
SCANNER = reverse("gate:scanner")


@pytest.fixture
def client() -> Client:
    """A client that reads answers in English (the site's default language is Chinese)."""
    return Client(headers={"accept-language": "en"})


def dashboard_url(session: Session) -> str:
    return reverse("gate:dashboard", args=[session.public_id])


def scanner_url(door: Door) -> str:
    return f"{SCANNER}?gate={door.gate.public_id}&session={door.session.public_id}"


def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def config_of(html: str) -> dict[str, Any]:
    start = html.index('<script id="gate-config" type="application/json">')
    start = html.index(">", start) + 1
    end = html.index("</script>", start)
    data: dict[str, Any] = json.loads(html[start:end])
    return data


# --- Who may open the pages -------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client: Client, door: Door) -> None:
    for url in (PICKER, scanner_url(door), dashboard_url(door.session)):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("web:login") + "?next=")


def test_a_customer_is_refused(client: Client, door: Door, make_user: Callable[..., User]) -> None:
    signed_in(client, make_user())
    for url in (PICKER, scanner_url(door), dashboard_url(door.session)):
        assert client.get(url).status_code == 403, url


def test_another_organizers_checker_sees_nothing_of_this_venue(
    client: Client,
    door: Door,
    other_organizer: Organizer,
    make_staff: Callable[..., User],
) -> None:
    rival_venue = make_venue(other_organizer, name="对手剧场")
    signed_in(client, make_staff(other_organizer, role=Role.CHECKER))

    page = client.get(PICKER)
    assert page.status_code == 200
    assert rival_venue.name in page.content.decode()  # their own venue (the only one: chosen)
    assert door.session.venue.name not in page.content.decode()

    assert client.get(PICKER, {"venue": door.session.venue.public_id}).status_code == 404
    assert client.get(scanner_url(door)).status_code == 404
    assert client.get(dashboard_url(door.session)).status_code == 404
    counts = reverse("gate:dashboard_counts", args=[door.session.public_id])
    assert client.get(counts).status_code == 404


# --- The picker -------------------------------------------------------------------------------


def test_the_picker_lists_the_venues_gates_and_its_current_sessions(
    client: Client,
    door: Door,
    organizer: Organizer,
    make_staff: Callable[..., User],
    make_door: MakeDoor,
) -> None:
    venue = door.session.venue
    make_door(door.session, entrances="A口, B口")
    gate_create(venue=make_venue(organizer, name="别的场馆"), name="不相干的门")
    past = make_session(
        make_event(organizer, title="上周的演出"),
        venue=venue,
        hall=door.session.hall,
        starts_in=dt.timedelta(days=-7),
        sales_open_at=timezone.now() - dt.timedelta(days=30),
    )
    signed_in(client, make_staff(organizer, role=Role.CHECKER))

    # two venues: the checker chooses one first
    first = client.get(PICKER).content.decode()
    assert venue.name in first and "别的场馆" in first
    assert door.gate.name not in first

    html = client.get(PICKER, {"venue": venue.public_id}).content.decode()
    assert door.gate.name in html
    assert "A口,B口" in html  # the second gate's entrances
    assert "不相干的门" not in html  # a gate of another venue
    assert door.session.event.title in html
    assert f'value="{door.session.public_id}"' in html
    assert past.event.title not in html  # over a week ago
    assert client.get(PICKER, {"venue": "01NOSUCHVENUE0000000000000"}).status_code == 404


def test_a_venue_without_gates_says_so(
    client: Client, organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    venue = make_venue(organizer, name="空场馆")
    signed_in(client, make_staff(organizer, role=Role.CHECKER))
    html = client.get(PICKER, {"venue": venue.public_id}).content.decode()
    assert "This venue has no gates yet." in html
    assert "Open scanner" not in html


# --- The scanner ------------------------------------------------------------------------------


def test_the_scanner_is_set_up_for_the_gate_and_session(
    client: Client, door: Door, organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    signed_in(client, make_staff(organizer, role=Role.CHECKER))
    response = client.get(scanner_url(door))
    assert response.status_code == 200
    config = config_of(response.content.decode())
    assert config["gate"] == {"id": door.gate.public_id, "name": door.gate.name, "entrances": []}
    assert config["session"]["id"] == door.session.public_id
    assert config["session"]["reentry_allowed"] is False
    assert config["venue"]["timezone"] == door.session.venue.timezone
    base = f"/api/v1/checkin/sessions/{door.session.public_id}/"
    assert config["urls"]["scan"] == "/api/v1/checkin/scans"
    assert config["urls"]["sync"] == "/api/v1/checkin/sync"
    assert config["urls"]["pack"] == base + "pack"
    assert config["urls"]["counts"] == base + "counts"
    assert config["csrf"]
    assert config["labels"]["titles"]["already_used"] == "Already used"
    # no entry/exit toggle without re-entry
    assert 'name="direction"' not in response.content.decode()

    session_flags(door.session, reentry_allowed=True)
    html = client.get(scanner_url(door)).content.decode()
    assert 'name="direction" value="exit"' in html
    assert config_of(html)["session"]["reentry_allowed"] is True


def test_the_scanner_refuses_a_session_of_another_venue_or_missing_choices(
    client: Client,
    door: Door,
    organizer: Organizer,
    make_staff: Callable[..., User],
    reserved_session: Callable[..., Session],
) -> None:
    elsewhere = reserved_session()  # its own venue
    signed_in(client, make_staff(organizer, role=Role.CHECKER))
    url = f"{SCANNER}?gate={door.gate.public_id}&session={elsewhere.public_id}"
    assert client.get(url).status_code == 404
    assert client.get(f"{SCANNER}?gate=nope&session={door.session.public_id}").status_code == 404
    response = client.get(SCANNER)
    assert response.status_code == 302 and response["Location"] == PICKER


# --- The dashboard ----------------------------------------------------------------------------


def test_the_dashboard_shows_counts_refusals_and_an_offline_conflict(
    client: Client,
    door: Door,
    organizer: Organizer,
    make_staff: Callable[..., User],
    make_door: MakeDoor,
) -> None:
    # given: gate 1 admits the first ticket online …
    assert door.scan(door.qr()).outcome == "valid"
    # … a junk code is refused there …
    assert door.scan("hello world").outcome == "unreadable"
    # … and an offline scanner at gate 2 admitted the same ticket, then synced
    offline = make_door(door.session)
    [result] = checkin_sync(
        device=offline.device,
        scans=[
            SyncScan(
                nonce="offline-1",
                gate=offline.gate,
                session=door.session,
                code=door.qr(),
                direction="entry",
                scanned_at=door.clock(),
                device_accepted=True,
            )
        ],
    )
    assert result.conflict
    assert Admission.objects.filter(ticket=door.tickets[0]).count() == 1

    signed_in(client, make_staff(organizer, role=Role.CHECKER))
    response = client.get(dashboard_url(door.session))
    assert response.status_code == 200
    html = response.content.decode()
    conflicts = html[html.index('data-part="conflicts"') : html.index("refusals-heading")]
    serial = door.tickets[0].serial
    assert serial in conflicts
    assert door.gate.name in conflicts and offline.gate.name in conflicts
    assert offline.device.name in conflicts
    refusals = html[html.index('data-part="refusals"') :]
    assert "Unreadable" in refusals
    assert "Already used" in refusals  # the synced double admission was refused online
    assert 'data-count="conflicts">1<' in html
    assert 'data-count="admitted">1<' in html
    assert 'data-count="tickets">2<' in html

    counts = client.get(reverse("gate:dashboard_counts", args=[door.session.public_id])).json()
    assert counts["admitted"] == 1 and counts["inside"] == 1 and counts["conflicts"] == 1
    per_gate = {row["name"]: row["admitted"] for row in counts["gates"]}
    assert per_gate == {door.gate.name: 1, offline.gate.name: 0}


def test_the_dashboard_without_conflicts_says_so_and_opens_for_sellers(
    client: Client, door: Door, organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    signed_in(client, make_staff(organizer, role=Role.SELLER))  # orders.view, no gate.scan
    response = client.get(dashboard_url(door.session))
    assert response.status_code == 200
    html = response.content.decode()
    assert "No offline conflicts." in html and "No refused scans." in html
    assert ">Scanner<" not in html  # a seller cannot scan
    assert client.get(PICKER).status_code == 403  # nor open the scanner
