"""Orders and payments in the operator console: scoped by organizer and role, read-only, with
one action that cancels unpaid orders through the service."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Organizer, Role, User
from piaowu.catalog.models import SalesChannel, Session
from piaowu.inventory.models import SeatState
from piaowu.inventory.services import hold_seats
from piaowu.orders.models import Order, OrderHistory
from piaowu.orders.services import order_checkout, order_mark_paid
from piaowu.orders.states import OrderState
from piaowu.payments.models import Payment
from piaowu.payments.services import payment_start
from tests.admin.conftest import Catalog

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:orders_order_changelist"


def _client(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def _order(session: Session, seat: str, phone: str, email: str = "") -> Order:
    hold = hold_seats(session=session, seat_codes=[seat], holder_key=f"buyer-{seat}-{phone}")
    channel = SalesChannel.objects.get(
        organizer_id=session.event.organizer_id, kind=SalesChannel.Kind.WEB
    )
    return order_checkout(
        hold=hold,
        channel=channel,
        holder_key=hold.holder_key,
        contact_phone=phone,
        contact_email=email,
    )


@pytest.fixture
def order_a(cat_a: Catalog) -> Order:
    order = _order(cat_a.session, "M-1-1", "13800138000", "mei@example.com")
    payment_start(order=order, provider_name="sandbox", notify_url="http://127.0.0.1:9/n")
    return order


@pytest.fixture
def order_b(cat_b: Catalog) -> Order:
    return _order(cat_b.session, "M-1-1", "139 0000 1111", "bo@example.com")


@pytest.fixture
def finance_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.FINANCE, email="finance-a@example.com")


def _listed(client: Client, **params: str) -> list[Order]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_organizer_staff_see_only_their_organizers_orders(
    admin_a: User, superuser: User, order_a: Order, order_b: Order
) -> None:
    assert _listed(_client(admin_a)) == [order_a]
    assert set(_listed(_client(superuser))) == {order_a, order_b}


def test_another_organizers_order_and_payment_pages_are_not_found(
    admin_a: User, order_a: Order, order_b: Order
) -> None:
    client = _client(admin_a)
    payment_b = payment_start(order=order_b, provider_name="sandbox", notify_url="http://x/n")
    assert client.get(reverse("admin:orders_order_change", args=[order_a.pk])).status_code == 200
    assert client.get(reverse("admin:orders_order_change", args=[order_b.pk])).status_code == 404
    assert (
        client.get(reverse("admin:payments_payment_change", args=[payment_b.pk])).status_code == 404
    )
    payments = client.get(reverse("admin:payments_payment_changelist"))
    assert list(payments.context["cl"].result_list) == list(Payment.objects.filter(order=order_a))


def test_staff_without_the_orders_permission_are_refused(checker_a: User, order_a: Order) -> None:
    client = _client(checker_a)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(reverse("admin:orders_order_change", args=[order_a.pk])).status_code in (
        403,
        404,
    )
    assert client.get(reverse("admin:payments_payment_changelist")).status_code == 403


def test_search_by_code_phone_digits_and_email_follows_the_staff_search(
    seller_a: User, cat_a: Catalog, order_a: Order, order_b: Order
) -> None:
    other_a = _order(cat_a.session, "M-2-1", "186 1234 5678")
    client = _client(seller_a)
    assert _listed(client, q=order_a.code.lower()) == [order_a]
    assert _listed(client, q="0013-8000") == [order_a]
    assert _listed(client, q="MEI@example.com") == [order_a]
    assert _listed(client, q="5678") == [other_a]
    # another organizer's order never matches, even by its own code
    assert _listed(client, q=order_b.code) == []


def test_search_by_phone_ignores_spaces_in_the_stored_phone(seller_a: User, cat_a: Catalog) -> None:
    spaced = _order(cat_a.session, "M-2-1", "186 1234 5678")
    assert _listed(_client(seller_a), q="18612345678") == [spaced]


def test_the_order_page_is_read_only_with_lines_payments_and_history(
    admin_a: User, order_a: Order
) -> None:
    client = _client(admin_a)
    url = reverse("admin:orders_order_change", args=[order_a.pk])
    page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html
    assert "M-1-1" in html  # the line's seat
    assert "sandbox" in html  # the payment
    assert "checkout" in html  # the history row's reason
    assert page.context["inline_admin_formsets"]

    # posting a change does nothing
    client.post(url, {"state": "paid", "total_amount": "0", "contact_phone": "1"})
    order_a.refresh_from_db()
    assert order_a.state == OrderState.AWAITING_PAYMENT
    assert order_a.contact_phone == "13800138000"
    # nor can orders be added or deleted
    assert client.get(reverse("admin:orders_order_add")).status_code == 403
    delete = client.post(reverse("admin:orders_order_delete", args=[order_a.pk]), {"post": "yes"})
    assert delete.status_code == 403
    assert Order.objects.filter(pk=order_a.pk).exists()
    payment = Payment.objects.get(order=order_a)
    payment_page = client.get(reverse("admin:payments_payment_change", args=[payment.pk]))
    assert payment_page.status_code == 200
    assert 'name="_save"' not in payment_page.content.decode()


def test_a_seller_cancels_selected_unpaid_orders_through_the_service(
    seller_a: User, order_a: Order, order_b: Order
) -> None:
    response = _client(seller_a).post(
        reverse(CHANGELIST),
        {"action": "cancel_unpaid", "_selected_action": [order_a.pk, order_b.pk]},
        follow=True,
    )
    order_a.refresh_from_db()
    order_b.refresh_from_db()
    assert response.status_code == 200
    assert order_a.state == OrderState.CANCELLED
    assert order_b.state == OrderState.AWAITING_PAYMENT  # not visible to the seller: untouched
    assert not SeatState.objects.filter(hold=order_a.hold, state="held").exists()
    history = OrderHistory.objects.filter(order=order_a).last()
    assert history is not None
    assert history.actor == seller_a
    assert history.to_state == OrderState.CANCELLED
    assert "1 order cancelled" in response.content.decode()


def test_staff_who_may_only_view_orders_do_not_get_the_cancel_action(
    finance_a: User, order_a: Order
) -> None:
    client = _client(finance_a)
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert "cancel_unpaid" not in page.content.decode()
    client.post(reverse(CHANGELIST), {"action": "cancel_unpaid", "_selected_action": [order_a.pk]})
    order_a.refresh_from_db()
    assert order_a.state == OrderState.AWAITING_PAYMENT


def test_a_paid_orders_page_links_its_tickets_to_the_print_page(
    admin_a: User, cat_a: Catalog
) -> None:
    order = order_mark_paid(order=_order(cat_a.session, "M-1-1", "13800138000"))
    page = _client(admin_a).get(reverse("admin:orders_order_change", args=[order.pk]))
    html = page.content.decode()
    assert "2 tickets" not in html and "1 ticket" in html
    assert reverse("print:order", args=[order.public_id]) in html


def test_an_unpaid_order_has_no_tickets_to_print(admin_a: User, order_a: Order) -> None:
    page = _client(admin_a).get(reverse("admin:orders_order_change", args=[order_a.pk]))
    assert reverse("print:order", args=[order_a.public_id]) not in page.content.decode()
