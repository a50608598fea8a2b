"""Transfers in the operator console: read-only, scoped to the staff member's organizer, the
receiver's code never shown."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Transfer
from piaowu.aftersales.services.transfers import transfer_offer
from tests.aftersales.transfers.conftest import RECEIVER_EMAIL, Bought

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:aftersales_transfer_changelist"


def console(user: User) -> Client:
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    return client


@pytest.fixture
def transfer(bought: Bought) -> Transfer:
    return transfer_offer(
        ticket=bought.ticket,
        sender=bought.buyer,
        receiver_contact=RECEIVER_EMAIL,
        receiver_name="王小明",
    )


def test_staff_of_the_organizer_see_the_transfer_without_its_code(
    transfer: Transfer, organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    client = console(make_staff(organizer, Role.SERVICE))

    listing = client.get(reverse(CHANGELIST))
    detail = client.get(reverse("admin:aftersales_transfer_change", args=[transfer.pk]))

    assert listing.status_code == 200
    assert transfer.ticket.serial in listing.content.decode()
    assert RECEIVER_EMAIL in listing.content.decode()
    assert detail.status_code == 200
    assert "Waiting for the receiver" in detail.content.decode()
    for page in (listing, detail):
        assert transfer.code not in page.content.decode()


def test_staff_of_another_organizer_do_not(
    transfer: Transfer, other_organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    client = console(make_staff(other_organizer, Role.ADMIN))

    listing = client.get(reverse(CHANGELIST))

    assert listing.status_code == 200
    assert transfer.ticket.serial not in listing.content.decode()
    change = reverse("admin:aftersales_transfer_change", args=[transfer.pk])
    assert client.get(change).status_code == 404


def test_transfers_are_read_only_in_the_console(
    transfer: Transfer, organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    client = console(make_staff(organizer, Role.ADMIN))

    assert client.get(reverse("admin:aftersales_transfer_add")).status_code == 403
    change = reverse("admin:aftersales_transfer_change", args=[transfer.pk])
    client.post(change, {"state": "accepted"})
    delete = reverse("admin:aftersales_transfer_delete", args=[transfer.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    transfer.refresh_from_db()
    assert transfer.state == "pending"


def test_a_checker_without_order_rights_cannot_list_transfers(
    transfer: Transfer, organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    client = console(make_staff(organizer, Role.CHECKER))
    assert client.get(reverse(CHANGELIST)).status_code == 403
