"""Exchanges in the operator console: read-only, scoped to the staff member's organizer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Exchange
from piaowu.aftersales.services.exchanges import exchange_start
from tests.aftersales.exchanges.conftest import AddSession, Bought

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:aftersales_exchange_changelist"


def console(user: User) -> Client:
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    return client


@pytest.fixture
def exchange(old: Bought, add_session: AddSession) -> Exchange:
    target = add_session(old.session.event, price="100")
    return exchange_start(
        order=old.order, session=target, tier_code="std", actor=None, process=False
    )


def test_staff_of_the_organizer_see_the_exchange_and_its_refund(
    exchange: Exchange, organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    client = console(make_staff(organizer, Role.SERVICE))

    listing = client.get(reverse(CHANGELIST))
    detail = client.get(reverse("admin:aftersales_exchange_change", args=[exchange.pk]))

    assert listing.status_code == 200
    assert exchange.from_order.code in listing.content.decode()
    assert detail.status_code == 200
    html = detail.content.decode()
    assert exchange.refund is not None and exchange.refund.number in html
    assert "¥124.00" in html and "Completed" in html


def test_nothing_can_be_added_changed_or_deleted(
    exchange: Exchange, organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    client = console(make_staff(organizer, Role.ADMIN))

    assert client.get(reverse("admin:aftersales_exchange_add")).status_code == 403
    assert (
        client.post(reverse("admin:aftersales_exchange_delete", args=[exchange.pk])).status_code
        == 403
    )
    assert Exchange.objects.filter(pk=exchange.pk).exists()


def test_staff_of_another_organizer_do_not_see_it(
    exchange: Exchange, other_organizer: Organizer, make_staff: Callable[..., User]
) -> None:
    client = console(make_staff(other_organizer, Role.ADMIN))

    listing = client.get(reverse(CHANGELIST))
    detail = client.get(reverse("admin:aftersales_exchange_change", args=[exchange.pk]))

    assert exchange.from_order.code not in listing.content.decode()
    assert detail.status_code == 404
