"""The console pages: "Cancel session" and "Reschedule" on a session's page, the cancellation
progress page (reloads itself, "Resume now"), the read-only cancellation and reschedule lists —
all scoped to the staff member's organizer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Refund, SessionCancellation, SessionReschedule
from piaowu.aftersales.services.cancellations import session_cancel, session_reschedule
from piaowu.catalog.models import Session
from piaowu.orders.states import OrderState
from tests.aftersales.cancellations.conftest import Buy, reserved_session, seats

__all__ = ["reserved_session"]

pytestmark = pytest.mark.django_db


def console(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def cancel_url(session: Session) -> str:
    return reverse("admin:aftersales_sessioncancellation_new", args=[session.pk])


def reschedule_url(session: Session) -> str:
    return reverse("admin:aftersales_sessionreschedule_new", args=[session.pk])


def progress_url(cancellation: SessionCancellation) -> str:
    return reverse("admin:aftersales_sessioncancellation_change", args=[cancellation.pk])


def test_the_session_page_links_to_cancel_and_reschedule(session: Session, manager: User) -> None:
    page = console(manager).get(reverse("admin:catalog_session_change", args=[session.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert cancel_url(session) in html and reschedule_url(session) in html


def test_a_cancelled_session_links_to_its_progress_and_its_status_is_read_only(
    session: Session, manager: User
) -> None:
    cancellation = session_cancel(session=session, actor=manager, reason="Storm")

    page = console(manager).get(reverse("admin:catalog_session_change", args=[session.pk]))

    html = page.content.decode()
    assert progress_url(cancellation) in html
    assert cancel_url(session) not in html
    assert 'name="status"' not in html  # cancelled only through "Cancel session"


def test_the_cancel_page_shows_what_will_be_refunded(
    session: Session, manager: User, buy: Buy
) -> None:
    buy(session, seats=["M-1-1", "M-1-2"])
    buy(session, seats=["M-1-3"], paid=False)

    page = console(manager).get(cancel_url(session))

    assert page.status_code == 200
    preview = page.context["preview"]
    assert (preview.orders, preview.tickets, preview.unpaid_orders) == (1, 2, 1)
    html = page.content.decode()
    assert "1 paid order is refunded in full, without a fee" in html
    assert "¥360.00" in html
    assert "1 order awaiting payment is cancelled" in html


def test_cancelling_needs_the_confirmation(session: Session, manager: User) -> None:
    page = console(manager).post(cancel_url(session), {"reason": "Storm"})

    assert page.status_code == 400
    assert "confirm" in page.context["form"].errors
    session.refresh_from_db()
    assert session.status == Session.Status.SCHEDULED


def test_cancelling_opens_the_progress_page_which_reloads_while_running(
    session: Session, manager: User, buy: Buy
) -> None:
    orders = [buy(session, seats=pair) for pair in seats(2)]
    client = console(manager)

    response = client.post(cancel_url(session), {"reason": "Storm", "confirm": "on"})

    cancellation = SessionCancellation.objects.get(session=session)
    assert response.status_code == 302 and response["Location"] == progress_url(cancellation)
    page = client.get(progress_url(cancellation))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "0 of 2 orders refunded" in html
    assert all(order.code in html for order in orders)  # still to refund
    assert "Resume now" in html

    resumed = client.post(
        reverse("admin:aftersales_sessioncancellation_resume", args=[cancellation.pk])
    )

    assert resumed.status_code == 302
    page = client.get(progress_url(cancellation))
    html = page.content.decode()
    assert "2 of 2 orders refunded" in html
    assert 'http-equiv="refresh"' not in html  # done: no more reloading
    assert "Resume now" not in html
    assert Refund.objects.filter(kind=Refund.Kind.CANCELLATION).count() == 2
    for order in orders:
        order.refresh_from_db()
        assert order.state == OrderState.PAID  # the provider is asked by the refunds job


def test_the_cancel_page_of_a_cancelled_session_goes_to_its_progress(
    session: Session, manager: User
) -> None:
    cancellation = session_cancel(session=session, actor=manager, reason="Storm")

    response = console(manager).get(cancel_url(session))

    assert response.status_code == 302 and response["Location"] == progress_url(cancellation)


def test_rescheduling_takes_venue_local_times(session: Session, manager: User) -> None:
    local = session.local_starts_at + dt.timedelta(days=4)

    response = console(manager).post(
        reschedule_url(session),
        {
            "start_date": local.date().isoformat(),
            "start_time": "20:15",
            "end_date": local.date().isoformat(),
            "end_time": "22:45",
            "free_refund_days": "5",
            "reason": "Venue repairs",
        },
    )

    assert response.status_code == 302, response.content
    session.refresh_from_db()
    assert (session.local_starts_at.date(), f"{session.local_starts_at:%H:%M}") == (
        local.date(),
        "20:15",
    )
    assert f"{session.local_ends_at:%H:%M}" == "22:45"
    assert SessionReschedule.objects.get(session=session).reason == "Venue repairs"


def test_a_bad_reschedule_shows_the_problem_on_its_field(session: Session, manager: User) -> None:
    day = session.local_starts_at.date().isoformat()

    page = console(manager).post(
        reschedule_url(session),
        {
            "start_date": day,
            "start_time": "20:00",
            "end_date": day,
            "end_time": "19:00",
            "free_refund_days": "7",
            "reason": "Venue repairs",
        },
    )

    assert page.status_code == 400
    assert page.context["form"].errors["end_date"] == ["The session must end after it starts."]
    assert not SessionReschedule.objects.exists()


def test_staff_of_another_organizer_find_nothing(
    session: Session, manager: User, rival: User
) -> None:
    cancellation = session_cancel(session=session, actor=manager, reason="Storm")
    client = console(rival)

    assert client.get(cancel_url(session)).status_code == 404
    assert client.get(reschedule_url(session)).status_code == 404
    assert client.get(progress_url(cancellation)).status_code == 404
    assert (
        client.post(
            reverse("admin:aftersales_sessioncancellation_resume", args=[cancellation.pk])
        ).status_code
        == 404
    )
    listing = client.get(reverse("admin:aftersales_sessioncancellation_changelist"))
    assert listing.status_code == 200 and list(listing.context["cl"].result_list) == []


def test_sellers_see_progress_but_cannot_act_and_gate_staff_see_nothing(
    session: Session,
    manager: User,
    make_staff: Callable[..., User],
    organizer: Organizer,
) -> None:
    cancellation = session_cancel(session=session, actor=manager, reason="Storm")
    other = reserved_session_of(session)
    seller = console(make_staff(organizer, role=Role.SELLER))

    page = seller.get(progress_url(cancellation))
    assert page.status_code == 200 and "Resume now" not in page.content.decode()
    assert seller.get(cancel_url(other)).status_code == 403
    assert seller.get(reschedule_url(other)).status_code == 403
    assert (
        seller.post(
            reverse("admin:aftersales_sessioncancellation_resume", args=[cancellation.pk])
        ).status_code
        == 403
    )
    checker = console(make_staff(organizer, role=Role.CHECKER))
    assert checker.get(progress_url(cancellation)).status_code == 404
    assert checker.get(cancel_url(other)).status_code == 403


def reserved_session_of(session: Session) -> Session:
    """Another scheduled session of the same organizer (a copy of `session`)."""
    from piaowu.catalog.services import session_copy

    return session_copy(session=session, starts_at=session.starts_at + dt.timedelta(days=1))


def test_the_lists_are_read_only_and_scoped(session: Session, manager: User, rival: User) -> None:
    session_reschedule(
        session=session,
        new_starts_at=session.starts_at + dt.timedelta(days=1),
        new_ends_at=session.ends_at + dt.timedelta(days=1),
        actor=manager,
        reason="Venue repairs",
    )
    mine = console(manager).get(reverse("admin:aftersales_sessionreschedule_changelist"))
    theirs = console(rival).get(reverse("admin:aftersales_sessionreschedule_changelist"))

    assert len(mine.context["cl"].result_list) == 1
    assert list(theirs.context["cl"].result_list) == []
    assert (
        console(manager).get(reverse("admin:aftersales_sessionreschedule_add")).status_code == 403
    )
