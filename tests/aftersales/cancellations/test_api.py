"""The staff API: `POST /api/v1/sessions/{id}/cancellation`, `GET …/cancellation`,
`POST …/cancellation/resume`, `POST /api/v1/sessions/{id}/reschedules`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Refund, SessionCancellation, SessionReschedule
from piaowu.catalog.models import Session
from piaowu.core import clock as core_clock
from piaowu.orders.states import OrderState
from tests.aftersales.cancellations.conftest import Buy, reserved_session, seats

__all__ = ["reserved_session"]

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, url: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", **EN, **headers)


def cancel_url(session: Session) -> str:
    return f"/api/v1/sessions/{session.public_id}/cancellation"


def reschedule_url(session: Session) -> str:
    return f"/api/v1/sessions/{session.public_id}/reschedules"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def test_staff_cancel_a_session_and_follow_the_refunds(
    session: Session, manager: User, buy: Buy
) -> None:
    orders = [buy(session, seats=pair) for pair in seats(2)]
    client = signed_in(manager)

    created = post(client, cancel_url(session), {"reason": "Storm"})

    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["session"], body["state"], body["reason"]) == (
        session.public_id,
        "running",
        "Storm",
    )
    assert (body["orders_total"], body["orders_done"], body["orders_remaining"]) == (2, 0, 2)
    assert body["finished_at"] is None
    assert {o["code"] for o in body["stuck"]} == {o.code for o in orders}

    resumed = client.post(cancel_url(session) + "/resume", **EN)

    assert resumed.status_code == 200, resumed.content
    body = resumed.json()
    assert (body["state"], body["orders_done"], body["orders_remaining"], body["percent"]) == (
        "done",
        2,
        0,
        100,
    )
    assert body["refunds"] == [
        {
            "state": "approved",
            "label": "Approved",
            "count": 2,
            "amounts": [{"amount": "720.00", "currency": "CNY"}],
        }
    ]
    read = client.get(cancel_url(session), **EN)
    assert read.status_code == 200 and read.json() == body
    assert Refund.objects.filter(kind=Refund.Kind.CANCELLATION).count() == 2


def test_cancelling_twice_answers_409(session: Session, manager: User) -> None:
    client = signed_in(manager)
    assert post(client, cancel_url(session), {"reason": "Storm"}).status_code == 201

    again = post(client, cancel_url(session), {"reason": "Storm"})

    assert again.status_code == 409
    assert again.json()["code"] == "session_already_cancelled"


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer(
    session: Session, manager: User
) -> None:
    client = signed_in(manager)
    first = post(client, cancel_url(session), {"reason": "Storm"}, HTTP_IDEMPOTENCY_KEY="k-1")
    again = post(client, cancel_url(session), {"reason": "Storm"}, HTTP_IDEMPOTENCY_KEY="k-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert SessionCancellation.objects.count() == 1


def test_a_reason_is_required(session: Session, manager: User) -> None:
    response = post(signed_in(manager), cancel_url(session), {"reason": " "})

    assert response.status_code == 400
    assert response.json()["code"] == "reason_required"
    assert response.json()["message"] == "Say why (customers are told)."


def test_progress_of_a_session_that_is_not_cancelled_is_404(
    session: Session, manager: User
) -> None:
    response = signed_in(manager).get(cancel_url(session), **EN)

    assert response.status_code == 404
    assert response.json()["code"] == "cancellation_not_found"


def test_an_unknown_session_is_404(manager: User) -> None:
    response = post(
        signed_in(manager), "/api/v1/sessions/01NOSUCHSESSION/cancellation", {"reason": "x"}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"


def test_staff_of_another_organizer_get_403(session: Session, rival: User, manager: User) -> None:
    client = signed_in(rival)
    starts = session.starts_at + dt.timedelta(days=1)

    answers = [
        post(client, cancel_url(session), {"reason": "Storm"}),
        client.get(cancel_url(session), **EN),
        client.post(cancel_url(session) + "/resume", **EN),
        post(
            client,
            reschedule_url(session),
            {
                "starts_at": iso(starts),
                "ends_at": iso(starts + dt.timedelta(hours=2)),
                "reason": "x",
            },
        ),
    ]

    assert [a.status_code for a in answers] == [403] * 4
    assert {a.json()["code"] for a in answers} == {"forbidden"}
    session.refresh_from_db()
    assert session.status == Session.Status.SCHEDULED
    assert not SessionReschedule.objects.exists()


@pytest.mark.parametrize("role", [Role.SELLER, Role.SERVICE, Role.CHECKER])
def test_staff_without_catalog_manage_get_403(
    session: Session, make_staff: Callable[..., User], organizer: Organizer, role: str
) -> None:
    response = post(
        signed_in(make_staff(organizer, role=role)), cancel_url(session), {"reason": "x"}
    )

    assert response.status_code == 403
    assert SessionCancellation.objects.count() == 0


def test_anonymous_callers_get_401(session: Session) -> None:
    response = post(Client(), cancel_url(session), {"reason": "Storm"})

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_a_browser_needs_the_csrf_token(session: Session, manager: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = post(client, cancel_url(session), {"reason": "Storm"})

    assert response.status_code == 403
    session.refresh_from_db()
    assert session.status == Session.Status.SCHEDULED


def test_staff_reschedule_a_session(session: Session, manager: User, buy: Buy) -> None:
    order = buy(session, seats=["M-1-1"])
    starts = session.starts_at + dt.timedelta(days=5)

    response = post(
        signed_in(manager),
        reschedule_url(session),
        {
            "starts_at": iso(starts),
            "ends_at": iso(starts + dt.timedelta(hours=3)),
            "reason": "Venue repairs",
            "free_refund_days": 2,
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["starts_at"], body["old_starts_at"]) == (iso(starts), iso(session.starts_at))
    until = dt.datetime.fromisoformat(body["free_refund_until"])
    assert abs(until - (core_clock.now() + dt.timedelta(days=2))) < dt.timedelta(seconds=10)
    session.refresh_from_db()
    assert session.starts_at == starts
    order.refresh_from_db()
    assert order.state == OrderState.PAID


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"starts_at": "2020-01-01T10:00:00Z", "ends_at": "2020-01-01T12:00:00Z"},
            "reschedule_in_past",
        ),
        ({"ends_at": "+0"}, "reschedule_ends_before_start"),
        ({"free_refund_days": 365}, "invalid_free_refund_days"),
        ({"starts_at": "not a time"}, "invalid_input"),
        ({"reason": ""}, "reason_required"),
    ],
)
def test_bad_reschedules_answer_400_with_a_code(
    session: Session, manager: User, body: dict[str, Any], code: str
) -> None:
    starts = session.starts_at + dt.timedelta(days=1)
    payload: dict[str, Any] = {
        "starts_at": iso(starts),
        "ends_at": iso(starts + dt.timedelta(hours=2)),
        "reason": "Venue repairs",
        **body,
    }
    if payload["ends_at"] == "+0":
        payload["ends_at"] = payload["starts_at"]

    response = post(signed_in(manager), reschedule_url(session), payload)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not SessionReschedule.objects.exists()


def test_rescheduling_a_cancelled_session_answers_409(session: Session, manager: User) -> None:
    client = signed_in(manager)
    post(client, cancel_url(session), {"reason": "Storm"})
    starts = session.starts_at + dt.timedelta(days=1)

    response = post(
        client,
        reschedule_url(session),
        {"starts_at": iso(starts), "ends_at": iso(starts + dt.timedelta(hours=2)), "reason": "x"},
    )

    assert response.status_code == 409
    assert response.json()["code"] == "session_cancelled"


def test_the_endpoints_are_in_the_openapi_schema(client: Client) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]

    assert "/api/v1/sessions/{session_id}/cancellation" in paths
    assert "/api/v1/sessions/{session_id}/cancellation/resume" in paths
    assert (
        "session_already_cancelled"
        in paths["/api/v1/sessions/{session_id}/cancellation"]["post"]["description"]
    )
    assert "/api/v1/sessions/{session_id}/reschedules" in paths
