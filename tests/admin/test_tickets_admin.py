"""Tickets in the operator console: signing keys (rotate, revoke + reissue after a
confirmation; the private key never shown), read-only tickets with search, history and the
reissue action, redemption batches (create, codes, CSV) and the desk that redeems a code —
each scoped by organizer and role."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from piaowu.accounts.models import Organizer, Role, User
from piaowu.catalog.models import SalesChannel, Session
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout, order_mark_paid
from piaowu.orders.states import OrderState
from piaowu.tickets.models import RedemptionBatch, RedemptionCode, SigningKey, Ticket
from piaowu.tickets.services import redemption_batch_create, ticket_void
from tests.admin.conftest import Catalog

pytestmark = pytest.mark.django_db

KEYS = "admin:tickets_signingkey_changelist"
TICKETS = "admin:tickets_ticket_changelist"
BATCHES = "admin:tickets_redemptionbatch_changelist"


@pytest.fixture(autouse=True)
def _no_stranded_rule(settings: Any) -> None:
    settings.PIAOWU_INVENTORY_STRANDED_RULE = False  # the halls here are 2 × 3 seats


def _client(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def _paid(session: Session, seats: list[str]) -> Order:
    hold = hold_seats(session=session, seat_codes=seats, holder_key=f"buyer-{seats[0]}")
    channel = SalesChannel.objects.get(
        organizer_id=session.event.organizer_id, kind=SalesChannel.Kind.WEB
    )
    order = order_checkout(
        hold=hold, channel=channel, holder_key=hold.holder_key, contact_phone="13800138000"
    )
    return order_mark_paid(order=order)


@pytest.fixture
def order_a(cat_a: Catalog) -> Order:
    return _paid(cat_a.session, ["M-1-1", "M-1-2"])


@pytest.fixture
def order_b(cat_b: Catalog) -> Order:
    return _paid(cat_b.session, ["M-1-1"])


@pytest.fixture
def finance_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.FINANCE, email="finance-a@example.com")


def _key(order: Order) -> SigningKey:
    return SigningKey.objects.get(organizer_id=order.session.event.organizer_id, status="active")


# --- Signing keys ------------------------------------------------------------------------------


def test_managers_see_their_organizers_keys_only(
    admin_a: User, superuser: User, order_a: Order, order_b: Order
) -> None:
    response = _client(admin_a).get(reverse(KEYS))
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [_key(order_a)]
    assert len(_client(superuser).get(reverse(KEYS)).context["cl"].result_list) == 2
    other = reverse("admin:tickets_signingkey_change", args=[_key(order_b).pk])
    assert _client(admin_a).get(other).status_code == 404


def test_sellers_and_checkers_have_no_key_admin(
    seller_a: User, checker_a: User, order_a: Order
) -> None:
    for user in (seller_a, checker_a):
        assert _client(user).get(reverse(KEYS)).status_code == 403


def test_the_private_key_is_never_shown(admin_a: User, order_a: Order) -> None:
    key = _key(order_a)
    page = _client(admin_a).get(reverse("admin:tickets_signingkey_change", args=[key.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert bytes(key.public_key).hex() in content
    assert bytes(key.private_key).hex() not in content
    assert "private" not in content.lower()


def test_rotating_a_key(admin_a: User, order_a: Order) -> None:
    old = _key(order_a)
    response = _client(admin_a).post(
        reverse(KEYS), {"action": "rotate_keys", "_selected_action": [old.pk]}
    )
    assert response.status_code == 302
    old.refresh_from_db()
    assert old.status == SigningKey.Status.RETIRED
    assert _key(order_a) != old
    assert set(order_a.tickets.values_list("secret_version", flat=True)) == {1}


def test_revoking_asks_first_then_reissues(admin_a: User, order_a: Order, order_b: Order) -> None:
    key, other = _key(order_a), _key(order_b)
    client = _client(admin_a)
    body = {"action": "revoke_keys", "_selected_action": [key.pk, other.pk]}

    asked = client.post(reverse(KEYS), body)

    assert asked.status_code == 200
    assert "I understand" in asked.content.decode()
    key.refresh_from_db()
    assert key.status == SigningKey.Status.ACTIVE  # nothing done yet

    done = client.post(reverse(KEYS), {**body, "confirm": "on"})

    assert done.status_code == 302
    key.refresh_from_db()
    other.refresh_from_db()
    assert key.status == SigningKey.Status.REVOKED
    assert other.status == SigningKey.Status.ACTIVE  # another organizer's key is out of reach
    tickets = list(order_a.tickets.select_related("signing_key"))
    assert all(t.secret_version == 2 and t.signing_key.status == "active" for t in tickets)
    assert set(order_b.tickets.values_list("secret_version", flat=True)) == {1}


# --- Tickets -----------------------------------------------------------------------------------


def _tickets(client: Client, **params: str) -> list[Ticket]:
    response = client.get(reverse(TICKETS), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_ticket_lists_are_scoped(
    finance_a: User, superuser: User, checker_a: User, order_a: Order, order_b: Order
) -> None:
    assert set(_tickets(_client(finance_a))) == set(order_a.tickets.all())
    assert len(_tickets(_client(superuser))) == 3
    assert _client(checker_a).get(reverse(TICKETS)).status_code == 403
    other = order_b.tickets.get()
    url = reverse("admin:tickets_ticket_change", args=[other.pk])
    assert _client(finance_a).get(url).status_code == 404


def test_search_by_typed_serial_or_order_code(
    finance_a: User, order_a: Order, order_b: Order
) -> None:
    client = _client(finance_a)
    ticket = order_a.tickets.order_by("id").first()
    assert ticket is not None
    typed = ticket.serial.replace("-", "").lower()
    assert _tickets(client, q=typed) == [ticket]
    assert set(_tickets(client, q=order_a.code.lower())) == set(order_a.tickets.all())
    assert _tickets(client, q=order_b.code) == []  # another organizer's order
    assert _tickets(client, q=order_b.tickets.get().serial) == []


def test_the_ticket_page_shows_history(finance_a: User, order_a: Order) -> None:
    ticket = order_a.tickets.order_by("id").first()
    assert ticket is not None
    ticket_void(ticket=ticket, actor=None, reason="refund")
    page = _client(finance_a).get(reverse("admin:tickets_ticket_change", args=[ticket.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert "voided" in content and "issued" in content and order_a.code in content


def test_a_seller_reissues_tickets(seller_a: User, order_a: Order, order_b: Order) -> None:
    mine = list(order_a.tickets.order_by("id"))
    ticket_void(ticket=mine[1], actor=None, reason="refund")
    theirs = order_b.tickets.get()
    response = _client(seller_a).post(
        reverse(TICKETS),
        {"action": "reissue", "_selected_action": [mine[0].pk, mine[1].pk, theirs.pk]},
        follow=True,
    )
    assert response.status_code == 200
    for ticket in (*mine, theirs):
        ticket.refresh_from_db()
    assert mine[0].secret_version == 2
    assert mine[0].history.filter(action="reissued", actor=seller_a).exists()
    assert mine[1].secret_version == 1  # void: refused, with a message
    assert "void" in response.content.decode()
    assert theirs.secret_version == 1


def test_staff_who_only_view_cannot_reissue(finance_a: User, order_a: Order) -> None:
    ticket = order_a.tickets.order_by("id").first()
    assert ticket is not None
    _client(finance_a).post(
        reverse(TICKETS), {"action": "reissue", "_selected_action": [ticket.pk]}
    )
    ticket.refresh_from_db()
    assert ticket.secret_version == 1


# --- Redemption batches ------------------------------------------------------------------------


def _batch(cat: Catalog, size: int = 3) -> RedemptionBatch:
    return redemption_batch_create(
        organizer=cat.organizer,
        event=cat.event,
        tier_code="std",
        name="企业团购",
        size=size,
        valid_until=timezone.now() + dt.timedelta(days=30),
        actor=None,
    )


def test_a_manager_creates_a_batch(admin_a: User, cat_a: Catalog, cat_b: Catalog) -> None:
    client = _client(admin_a)
    url = reverse("admin:tickets_redemptionbatch_create")
    assert client.get(url).status_code == 200
    until = (timezone.now() + dt.timedelta(days=10)).strftime("%Y-%m-%d %H:%M")
    body = {
        "event": cat_a.event.pk,
        "tier_code": "std",
        "name": "腾讯员工福利",
        "size": 25,
        "valid_until": until,
    }

    response = client.post(url, body)

    assert response.status_code == 302, response.content
    batch = RedemptionBatch.objects.get()
    assert batch.organizer == cat_a.organizer and batch.created_by == admin_a
    assert batch.codes.count() == 25

    refused = client.post(url, {**body, "tier_code": "vip"})
    assert refused.status_code == 400
    assert "No session of this event has this ticket type" in refused.content.decode()
    foreign = client.post(url, {**body, "event": cat_b.event.pk})
    assert foreign.status_code == 400  # not one of the choices
    assert RedemptionBatch.objects.count() == 1


def test_sellers_cannot_create_batches_or_read_codes(seller_a: User, cat_a: Catalog) -> None:
    batch = _batch(cat_a)
    client = _client(seller_a)
    assert client.get(reverse("admin:tickets_redemptionbatch_create")).status_code == 403
    csv_url = reverse("admin:tickets_redemptionbatch_csv", args=[batch.pk])
    assert client.get(csv_url).status_code == 403
    assert client.get(reverse("admin:tickets_redemptioncode_changelist")).status_code == 403
    listed = client.get(reverse(BATCHES))  # the batch itself (no codes) is visible
    assert list(listed.context["cl"].result_list) == [batch]


def test_codes_download_as_csv(admin_a: User, cat_a: Catalog, cat_b: Catalog) -> None:
    batch = _batch(cat_a, size=4)
    response = _client(admin_a).get(reverse("admin:tickets_redemptionbatch_csv", args=[batch.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["code", "event", "tier", "redeem_by", "redeemed_at", "order"]
    assert sorted(r[0] for r in rows[1:]) == sorted(batch.codes.values_list("code", flat=True))
    foreign = _batch(cat_b)
    url = reverse("admin:tickets_redemptionbatch_csv", args=[foreign.pk])
    assert _client(admin_a).get(url).status_code == 404


def test_the_codes_list_is_scoped_and_searchable(
    admin_a: User, cat_a: Catalog, cat_b: Catalog
) -> None:
    mine = _batch(cat_a)
    _batch(cat_b)
    client = _client(admin_a)
    listed = client.get(reverse("admin:tickets_redemptioncode_changelist"))
    assert {c.batch_id for c in listed.context["cl"].result_list} == {mine.pk}
    code = mine.codes.first()
    assert code is not None
    found = client.get(reverse("admin:tickets_redemptioncode_changelist"), {"q": code.code.lower()})
    assert list(found.context["cl"].result_list) == [code]


def test_the_desk_redeems_a_code(seller_a: User, cat_a: Catalog) -> None:
    batch = _batch(cat_a)
    code = batch.codes.order_by("id").first()
    assert code is not None
    client = _client(seller_a)
    url = reverse("admin:tickets_redemptionbatch_redeem")
    assert client.get(url).status_code == 200
    body = {"code": code.code, "session": cat_a.session.pk, "contact_phone": "13800138000"}

    response = client.post(url, {**body, "seat": "M-2-2"})

    assert response.status_code == 302, response.content
    code.refresh_from_db()
    assert code.order is not None and code.order.state == OrderState.PAID
    assert code.order.channel.kind == SalesChannel.Kind.BOX_OFFICE
    assert code.order.tickets.get().seat.code == "M-2-2"  # type: ignore[union-attr]

    again = client.post(url, body)
    assert again.status_code == 400
    assert "already been redeemed" in again.content.decode()
    bad = client.post(url, {**body, "code": "nonsense"})
    assert bad.status_code == 400
    assert RedemptionCode.objects.filter(redeemed_at__isnull=False).count() == 1


def test_the_desk_offers_only_the_staffs_sessions(
    seller_a: User, checker_a: User, cat_a: Catalog, cat_b: Catalog
) -> None:
    code = _batch(cat_b).codes.first()
    assert code is not None
    url = reverse("admin:tickets_redemptionbatch_redeem")
    client = _client(seller_a)
    refused = client.post(
        url, {"code": code.code, "session": cat_b.session.pk, "contact_phone": "13800138000"}
    )
    assert refused.status_code == 400
    code.refresh_from_db()
    assert code.redeemed_at is None
    assert _client(checker_a).get(url).status_code == 403
