"""The waitlist pages: the "Join the waitlist" panel on a sold-out session's page, joining in
both modes, "My waitlist" with position and state, leaving, the offer's checkout link, and the
console's read-only queue scoped to the organizer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import WaitlistEntry
from piaowu.aftersales.services.waitlist import waitlist_offer_due
from piaowu.catalog.models import Session, WaitlistMode
from tests.aftersales.waitlist.conftest import Join, MakeSoldOut, give_back, set_waitlist

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    return client


def session_page(client: Client, session: Session) -> str:
    response = client.get(reverse("web:session", args=[session.public_id]))
    assert response.status_code == 200
    return response.content.decode()


# --- The panel on the session page ----------------------------------------------------------


def test_a_sold_out_session_shows_the_join_form_to_a_signed_in_customer(
    sold_out: MakeSoldOut, customers: list[User]
) -> None:
    s = sold_out()

    html = session_page(signed_in(customers[0]), s.session)

    assert 'data-part="waitlist"' in html
    assert reverse("web:waitlist_join", args=[s.session.public_id]) in html
    assert 'name="csrfmiddlewaretoken" value="' in html
    assert 'name="csrfmiddlewaretoken" value=""' not in html
    assert "Join the waitlist" in html
    assert "we hold them for the next in line for 15 minutes" in html
    assert "sold out" in html


def test_the_prepaid_panel_explains_the_deposit(
    sold_out: MakeSoldOut, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)

    html = session_page(signed_in(customers[0]), s.session)

    assert "Join and pay the deposit" in html
    assert "your payment is refunded in full" in html
    assert 'name="phone"' in html


def test_anonymous_visitors_are_asked_to_log_in(sold_out: MakeSoldOut) -> None:
    s = sold_out()

    html = session_page(Client(headers={"accept-language": "en"}), s.session)

    assert "Log in to join the waitlist" in html
    assert reverse("web:waitlist_join", args=[s.session.public_id]) not in html


def test_no_panel_while_on_sale_or_without_a_waitlist(
    sold_out: MakeSoldOut, ga_session: Callable[..., Session], customers: list[User]
) -> None:
    on_sale = set_waitlist(ga_session(capacity=10), WaitlistMode.OFFER)
    off = sold_out(mode=WaitlistMode.OFF)
    client = signed_in(customers[0])

    assert 'data-part="waitlist"' not in session_page(client, on_sale)
    assert 'data-part="waitlist"' not in session_page(client, off.session)


def test_a_customer_already_waiting_sees_their_place_instead_of_the_form(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out()
    join(s.session, customers[0])
    join(s.session, customers[1])

    html = session_page(signed_in(customers[1]), s.session)

    assert "You are number 2 on the waitlist." in html
    assert "Join the waitlist" not in html


# --- Joining ------------------------------------------------------------------------------------


def test_joining_from_the_page_lands_on_my_waitlist_with_the_position(
    sold_out: MakeSoldOut, customers: list[User]
) -> None:
    s = sold_out()
    client = signed_in(customers[0])

    response = client.post(
        reverse("web:waitlist_join", args=[s.session.public_id]), {"tier": "ga", "quantity": "2"}
    )

    assert response.status_code == 302 and response["Location"] == reverse("web:waitlist")
    entry = WaitlistEntry.objects.get(customer=customers[0])
    assert entry.quantity == 2
    page = client.get(reverse("web:waitlist")).content.decode()
    assert "You are number 1 on the waitlist." in page
    assert "Number 1 in line" in page
    assert f'data-entry="{entry.public_id}" data-state="waiting"' in page


def test_a_prepaid_join_goes_on_to_pay_the_deposit(
    sold_out: MakeSoldOut, customers: list[User]
) -> None:
    s = sold_out(mode=WaitlistMode.PREPAID)
    client = signed_in(customers[0])

    response = client.post(
        reverse("web:waitlist_join", args=[s.session.public_id]),
        {"tier": "ga", "quantity": "1", "phone": "13800138000", "email": ""},
    )

    entry = WaitlistEntry.objects.get(customer=customers[0])
    assert entry.deposit_order is not None
    assert response["Location"] == reverse("web:order", args=[entry.deposit_order.public_id])
    order_page = client.get(response["Location"])
    assert order_page.status_code == 200
    assert "Pay the deposit now" in order_page.content.decode()
    waitlist_page = client.get(reverse("web:waitlist")).content.decode()
    assert "Pay the deposit of ¥280" in waitlist_page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tier": "ga", "quantity": "0"}, "Choose between 1 and 6 tickets."),
        ({"tier": "ga", "quantity": "9"}, "Choose between 1 and 6 tickets."),
        ({"tier": "nope", "quantity": "1"}, "This ticket type is not sold for this session."),
        ({"tier": "ga"}, "Choose a ticket type and how many tickets you want."),
    ],
)
def test_a_refused_join_goes_back_to_the_session_with_the_reason(
    sold_out: MakeSoldOut, customers: list[User], data: dict[str, str], message: str
) -> None:
    s = sold_out()
    client = signed_in(customers[0])

    response = client.post(
        reverse("web:waitlist_join", args=[s.session.public_id]), data, follow=True
    )

    assert response.redirect_chain[-1][0].endswith("#waitlist")
    assert message in response.content.decode()
    assert not WaitlistEntry.objects.exists()


def test_joining_an_on_sale_session_from_the_page_is_refused(
    ga_session: Callable[..., Session], customers: list[User]
) -> None:
    session = set_waitlist(ga_session(capacity=10), WaitlistMode.OFFER)

    response = signed_in(customers[0]).post(
        reverse("web:waitlist_join", args=[session.public_id]),
        {"tier": "ga", "quantity": "1"},
        follow=True,
    )

    assert "These tickets are still on sale; buy them directly." in response.content.decode()
    assert not WaitlistEntry.objects.exists()


def test_the_waitlist_pages_need_a_signed_in_customer(sold_out: MakeSoldOut) -> None:
    s = sold_out()
    anonymous = Client()

    for response in (
        anonymous.get(reverse("web:waitlist")),
        anonymous.post(reverse("web:waitlist_join", args=[s.session.public_id]), {}),
    ):
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not WaitlistEntry.objects.exists()


# --- Leaving, offers ----------------------------------------------------------------------------


def test_leaving_from_my_waitlist(sold_out: MakeSoldOut, join: Join, customers: list[User]) -> None:
    s = sold_out()
    entry = join(s.session, customers[0])
    client = signed_in(customers[0])

    response = client.post(reverse("web:waitlist_cancel", args=[entry.public_id]), follow=True)

    entry.refresh_from_db()
    assert entry.state == "cancelled"
    assert "You left the waitlist." in response.content.decode()


def test_someone_elses_entry_is_404_to_leave_or_check_out(
    sold_out: MakeSoldOut, join: Join, customers: list[User]
) -> None:
    s = sold_out()
    theirs = join(s.session, customers[1])
    client = signed_in(customers[0])

    assert client.post(reverse("web:waitlist_cancel", args=[theirs.public_id])).status_code == 404
    assert client.get(reverse("web:waitlist_checkout", args=[theirs.public_id])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == "waiting"


def test_the_offer_link_opens_the_checkout_of_the_held_tickets(
    sold_out: MakeSoldOut, join: Join, customers: list[User], staff: User
) -> None:
    s = sold_out()
    entry = join(s.session, customers[0], quantity=2)
    client = signed_in(customers[0])
    assert client.get(reverse("web:waitlist_checkout", args=[entry.public_id])).status_code == 302
    give_back(staff, s.orders[0])
    waitlist_offer_due()
    entry.refresh_from_db()
    assert entry.offer_hold is not None

    response = client.get(reverse("web:waitlist_checkout", args=[entry.public_id]))

    assert response["Location"] == reverse("web:checkout", args=[entry.offer_hold.public_id])
    checkout = client.get(response["Location"])
    assert checkout.status_code == 200
    assert "Held for you until" in checkout.content.decode()
    page = client.get(reverse("web:waitlist")).content.decode()
    assert reverse("web:waitlist_checkout", args=[entry.public_id]) in page


# --- Console ------------------------------------------------------------------------------------


def test_staff_see_their_organizers_queue_in_order_with_positions(
    sold_out: MakeSoldOut,
    join: Join,
    customers: list[User],
    make_staff: Callable[..., User],
    organizer: Organizer,
) -> None:
    s = sold_out()
    join(s.session, customers[0])
    second = join(s.session, customers[1], quantity=2)
    desk = make_staff(organizer, Role.SERVICE)
    client = signed_in(desk)

    changelist = client.get(reverse("admin:aftersales_waitlistentry_changelist"))
    detail = client.get(reverse("admin:aftersales_waitlistentry_change", args=[second.pk]))

    assert changelist.status_code == 200
    html = changelist.content.decode()
    assert html.index(customers[0].email) < html.index(customers[1].email)
    assert 'class="field-position">1<' in html and 'class="field-position">2<' in html
    assert detail.status_code == 200
    assert not changelist.context["has_add_permission"]


def test_staff_of_another_organizer_see_nothing_of_it(
    sold_out: MakeSoldOut,
    join: Join,
    customers: list[User],
    make_staff: Callable[..., User],
    other_organizer: Organizer,
) -> None:
    s = sold_out()
    entry = join(s.session, customers[0])
    rival = signed_in(make_staff(other_organizer, Role.ADMIN))

    changelist = rival.get(reverse("admin:aftersales_waitlistentry_changelist"))
    detail = rival.get(reverse("admin:aftersales_waitlistentry_change", args=[entry.pk]))

    assert changelist.status_code == 200
    assert customers[0].email not in changelist.content.decode()
    assert detail.status_code == 404
