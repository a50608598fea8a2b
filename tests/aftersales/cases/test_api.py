"""The customer-service API: a customer's own cases only (anyone else gets 404, anonymous
callers 401), opening with and without an order, writing, closing, rating and every refusal,
Idempotency-Key, CSRF, and the FAQ."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import User
from piaowu.aftersales.models import Case, CaseMessage, FaqEntry
from piaowu.aftersales.services.cases import case_close, case_reply
from piaowu.orders.models import Order
from tests.aftersales.cases.conftest import signed_in

pytestmark = pytest.mark.django_db


def post(client: Client, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
    return client.post(
        f"/api/v1{path}", body or {}, content_type="application/json", headers=headers
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert set(body) == {"code", "message", "details"}
    return body


OPEN = {"kind": "complaint", "subject": "座位有问题", "message": "我的座位被别人占了。"}


# --- Anonymous -----------------------------------------------------------------------------


def test_anonymous_callers_get_401_everywhere(case: Case) -> None:
    anonymous = Client(headers={"accept-language": "en"})
    assert_error(anonymous.get("/api/v1/cases"), 401, "unauthorized")
    assert_error(post(anonymous, "/cases", OPEN), 401, "unauthorized")
    assert_error(anonymous.get(f"/api/v1/cases/{case.public_id}"), 401, "unauthorized")
    assert_error(
        post(anonymous, f"/cases/{case.public_id}/messages", {"message": "hi"}), 401, "unauthorized"
    )
    assert_error(post(anonymous, f"/cases/{case.public_id}/close"), 401, "unauthorized")
    assert_error(
        post(anonymous, f"/cases/{case.public_id}/rating", {"rating": 5}), 401, "unauthorized"
    )
    assert Case.objects.count() == 1


# --- Opening -------------------------------------------------------------------------------


def test_open_a_case_about_my_order(customer: User, order: Order) -> None:
    client = signed_in(customer)
    response = post(client, "/cases", {**OPEN, "order": order.public_id})

    assert response.status_code == 201, response.content
    body = response.json()
    case = Case.objects.get(public_id=body["id"])
    assert body["number"] == case.number
    assert body["state"] == "open"
    assert body["kind"] == "complaint"
    assert body["kind_label"] == "Complaint"
    assert body["order"] == {"id": order.public_id, "code": order.code}
    assert body["can_rate"] is False and body["can_write"] is True
    assert body["first_response_due"].endswith("Z")
    assert [(m["sender"], m["body"]) for m in body["messages"]] == [
        ("customer", "我的座位被别人占了。")
    ]
    assert body["messages"][0]["at"].endswith("Z")


def test_open_about_someone_elses_order_is_404(customer: User, other_order: Order) -> None:
    response = post(signed_in(customer), "/cases", {**OPEN, "order": other_order.public_id})
    body = assert_error(response, 404, "order_not_found")
    assert body["details"] == {"field": "order"}
    assert not Case.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({**OPEN, "kind": "praise"}, 400, "invalid_kind"),
        ({**OPEN, "subject": "  "}, 400, "subject_required"),
        ({**OPEN, "message": ""}, 400, "message_required"),
        ({**OPEN, "message": "x" * 5001}, 400, "invalid_input"),
        ({"kind": "question", "subject": "s"}, 400, "invalid_input"),
    ],
)
def test_open_refuses_bad_input(
    customer: User, body: dict[str, Any], status: int, code: str
) -> None:
    assert_error(post(signed_in(customer), "/cases", body), status, code)
    assert not Case.objects.exists()


def test_open_with_the_same_idempotency_key_opens_once(customer: User) -> None:
    client = signed_in(customer)
    first = post(client, "/cases", OPEN, **{"Idempotency-Key": "k-1"})
    again = post(client, "/cases", OPEN, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert Case.objects.count() == 1


def test_a_browser_without_the_csrf_token_is_refused(customer: User) -> None:
    client = Client(enforce_csrf_checks=True, headers={"accept-language": "en"})
    client.force_login(customer)
    assert_error(post(client, "/cases", OPEN), 403, "forbidden")
    assert not Case.objects.exists()


# --- Reading -------------------------------------------------------------------------------


def test_list_shows_only_my_cases(case: Case, customer: User, other_customer: User) -> None:
    mine = signed_in(customer).get("/api/v1/cases").json()
    assert [item["id"] for item in mine["items"]] == [case.public_id]
    assert mine["count"] == 1
    theirs = signed_in(other_customer).get("/api/v1/cases").json()
    assert theirs["items"] == [] and theirs["count"] == 0


def test_someone_elses_case_is_404_like_an_unknown_one(
    case: Case, other_customer: User, service_a: User
) -> None:
    for user in (other_customer, service_a):  # staff use the console, not the customer API
        client = signed_in(user)
        assert_error(client.get(f"/api/v1/cases/{case.public_id}"), 404, "case_not_found")
        assert_error(
            post(client, f"/cases/{case.public_id}/messages", {"message": "hi"}),
            404,
            "case_not_found",
        )
        assert_error(post(client, f"/cases/{case.public_id}/close"), 404, "case_not_found")
        assert_error(
            post(client, f"/cases/{case.public_id}/rating", {"rating": 1}), 404, "case_not_found"
        )
    assert_error(signed_in(other_customer).get("/api/v1/cases/01UNKNOWN"), 404, "case_not_found")
    case.refresh_from_db()
    assert case.state == Case.State.OPEN
    assert CaseMessage.objects.filter(case=case).count() == 1


def test_detail_shows_replies_but_not_internal_notes(
    case: Case, customer: User, service_a: User
) -> None:
    case_reply(case=case, actor=service_a, body="内部：已联系财务", internal=True)
    case_reply(case=case, actor=service_a, body="退款将在 3 个工作日内到账。")

    body = signed_in(customer).get(f"/api/v1/cases/{case.public_id}").json()
    assert [(m["sender"], m["body"]) for m in body["messages"]] == [
        ("customer", "我上周申请了退款，钱还没有退回来。"),
        ("staff", "退款将在 3 个工作日内到账。"),
    ]
    assert body["state"] == "waiting_customer"
    assert body["first_responded_at"] is not None
    assert service_a.email not in str(body)


# --- Writing, closing, rating --------------------------------------------------------------


def test_answering_a_waiting_case_hands_it_back(
    case: Case, customer: User, service_a: User
) -> None:
    case_reply(case=case, actor=service_a, body="请提供支付截图。")
    response = post(signed_in(customer), f"/cases/{case.public_id}/messages", {"message": "已上传"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "in_progress"
    assert body["messages"][-1] == {
        "sender": "customer",
        "body": "已上传",
        "at": body["updated_at"],
    }


def test_empty_message_is_refused(case: Case, customer: User) -> None:
    response = post(signed_in(customer), f"/cases/{case.public_id}/messages", {"message": " "})
    assert_error(response, 400, "message_required")


def test_close_then_rate_once(case: Case, customer: User) -> None:
    client = signed_in(customer)
    assert_error(
        post(client, f"/cases/{case.public_id}/rating", {"rating": 5}), 400, "case_not_closed"
    )

    closed = post(client, f"/cases/{case.public_id}/close")
    assert closed.status_code == 200, closed.content
    assert closed.json()["state"] == "closed" and closed.json()["can_rate"] is True

    rated = post(client, f"/cases/{case.public_id}/rating", {"rating": 4, "comment": "还行"})
    assert rated.status_code == 200, rated.content
    body = rated.json()
    assert (body["rating"], body["rating_comment"], body["can_rate"]) == (4, "还行", False)
    assert body["can_write"] is False  # rated: a new message does not reopen it

    again = post(client, f"/cases/{case.public_id}/rating", {"rating": 1})
    assert_error(again, 409, "case_already_rated")
    case.refresh_from_db()
    assert case.rating == 4


@pytest.mark.parametrize(
    ("rating", "code"),
    [
        (0, "invalid_rating"),
        (6, "invalid_rating"),
        ("five", "invalid_input"),
        (4.5, "invalid_input"),
    ],
)
def test_rating_out_of_range_is_refused(
    case: Case, customer: User, service_a: User, rating: Any, code: str
) -> None:
    case_close(case=case, actor=service_a)
    response = post(signed_in(customer), f"/cases/{case.public_id}/rating", {"rating": rating})
    assert_error(response, 400, code)
    case.refresh_from_db()
    assert case.rating is None


def test_writing_on_a_recently_closed_case_reopens_it(
    case: Case, customer: User, service_a: User
) -> None:
    case_close(case=case, actor=service_a)
    response = post(
        signed_in(customer), f"/cases/{case.public_id}/messages", {"message": "还没到账"}
    )
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "in_progress"


# --- FAQ and the schema --------------------------------------------------------------------


def test_faq_follows_accept_language(db: None) -> None:
    FaqEntry.objects.create(
        question="怎么退票？",
        answer="在订单页申请。",
        question_en="Refunds?",
        answer_en="Order page.",
    )
    FaqEntry.objects.create(question="隐藏", answer="x", published=False)

    english = Client(headers={"accept-language": "en"}).get("/api/v1/faq")
    chinese = Client(headers={"accept-language": "zh-hans"}).get("/api/v1/faq")

    assert [(e["question"], e["answer"]) for e in english.json()] == [("Refunds?", "Order page.")]
    assert [(e["question"], e["answer"]) for e in chinese.json()] == [
        ("怎么退票？", "在订单页申请。")
    ]


def test_openapi_documents_the_case_endpoints_and_their_errors(db: None) -> None:
    schema = Client().get("/api/openapi.json").json()
    assert {
        "/api/v1/cases",
        "/api/v1/cases/{case_id}",
        "/api/v1/cases/{case_id}/messages",
        "/api/v1/cases/{case_id}/close",
        "/api/v1/cases/{case_id}/rating",
        "/api/v1/faq",
    } <= set(schema["paths"])
    rating = schema["paths"]["/api/v1/cases/{case_id}/rating"]["post"]
    assert "case_already_rated" in rating["description"]
    assert "409" in rating["responses"]
