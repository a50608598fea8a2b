"""Help pages: the FAQ, my cases, a new case (with an order preselected from the order page),
the conversation with its reply box, closing and rating — and who may see what."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import User
from piaowu.aftersales.models import Case, CaseMessage, FaqEntry
from piaowu.aftersales.services.cases import case_close, case_reply
from piaowu.orders.models import Order
from tests.aftersales.cases.conftest import signed_in

pytestmark = pytest.mark.django_db


def text(response: Any) -> str:
    return str(response.content.decode())


def case_url(case: Case, name: str = "case") -> str:
    return reverse(f"web:{name}", kwargs={"public_id": case.public_id})


# --- Help / FAQ ------------------------------------------------------------------------------


def test_help_page_shows_the_published_faq_to_anyone(db: None) -> None:
    FaqEntry.objects.create(
        question="怎么退票？",
        answer="在订单页申请退票。",
        question_en="How do I get a refund?",
        answer_en="Ask from your order's page.",
        position=1,
    )
    FaqEntry.objects.create(question="草稿问题", answer="未发布", published=False)

    response = Client(headers={"accept-language": "en"}).get(reverse("web:help"))

    assert response.status_code == 200
    page = text(response)
    assert "How do I get a refund?" in page
    assert "Ask from your order&#x27;s page." in page
    assert "草稿问题" not in page
    assert reverse("web:case_new") in page
    chinese = text(Client(headers={"accept-language": "zh-hans"}).get(reverse("web:help")))
    assert "怎么退票？" in chinese


def test_site_links_to_help_and_my_cases(customer: User) -> None:
    page = text(signed_in(customer).get(reverse("web:home")))
    assert f'href="{reverse("web:help")}"' in page
    assert f'href="{reverse("web:cases")}"' in page


# --- My cases --------------------------------------------------------------------------------


def test_my_cases_needs_login(db: None) -> None:
    response = Client().get(reverse("web:cases"))
    assert response.status_code == 302
    assert reverse("web:login") in response["Location"]
    assert Client().get(reverse("web:case_new")).status_code == 302


def test_my_cases_lists_only_mine(case: Case, customer: User, other_customer: User) -> None:
    assert case.number in text(signed_in(customer).get(reverse("web:cases")))
    theirs = signed_in(other_customer).get(reverse("web:cases"))
    assert theirs.status_code == 200
    assert case.number not in text(theirs)
    assert "No cases yet." in text(theirs)


# --- A new case ------------------------------------------------------------------------------


def test_order_page_links_to_customer_service_with_the_order(customer: User, order: Order) -> None:
    page = text(signed_in(customer).get(reverse("web:order", args=[order.public_id])))
    assert f"{reverse('web:case_new')}?order={order.public_id}" in page


def test_new_case_form_preselects_my_order_only(
    customer: User, order: Order, other_order: Order
) -> None:
    client = signed_in(customer)
    mine = text(client.get(reverse("web:case_new"), {"order": order.public_id}))
    assert f'<option value="{order.public_id}" selected>' in mine
    theirs = text(client.get(reverse("web:case_new"), {"order": other_order.public_id}))
    assert f'<option value="{other_order.public_id}"' not in theirs
    assert other_order.code not in theirs
    assert f'<option value="{order.public_id}">' in theirs  # offered, not chosen


def test_posting_a_case_opens_it_and_shows_it(customer: User, order: Order) -> None:
    client = signed_in(customer)
    response = client.post(
        reverse("web:case_new"),
        {
            "kind": "refund_dispute",
            "order": order.public_id,
            "subject": "退款金额不对",
            "message": "少退了 20 元。",
        },
    )

    case = Case.objects.get()
    assert response.status_code == 302
    assert response["Location"] == case_url(case)
    assert (case.order_id, case.kind, case.customer_id) == (order.pk, "refund_dispute", customer.pk)
    page = text(client.get(case_url(case)))
    assert "退款金额不对" in page
    assert "少退了 20 元。" in page
    assert case.number in page


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"kind": "question", "subject": "s", "message": "  "}, "This field is required."),
        ({"kind": "praise", "subject": "s", "message": "m"}, "Select a valid choice."),
        ({"kind": "question", "subject": "", "message": "m"}, "This field is required."),
    ],
)
def test_bad_case_form_shows_the_error_and_opens_nothing(
    customer: User, data: dict[str, str], error: str
) -> None:
    response = signed_in(customer).post(reverse("web:case_new"), data)
    assert response.status_code == 400
    assert error in text(response)
    assert not Case.objects.exists()


def test_posting_someone_elses_order_is_refused(customer: User, other_order: Order) -> None:
    response = signed_in(customer).post(
        reverse("web:case_new"),
        {"kind": "question", "order": other_order.public_id, "subject": "s", "message": "m"},
    )
    assert response.status_code == 400
    assert not Case.objects.exists()


def test_too_many_open_cases_shows_the_services_message(customer: User, settings: Any) -> None:
    settings.PIAOWU_CASE_MAX_OPEN_PER_CUSTOMER = 0
    response = signed_in(customer).post(
        reverse("web:case_new"), {"kind": "question", "subject": "s", "message": "m"}
    )
    assert response.status_code == 400
    assert "please wait for an answer" in text(response)


# --- The conversation ------------------------------------------------------------------------


def test_case_page_shows_replies_but_never_internal_notes(
    case: Case, customer: User, service_a: User
) -> None:
    case_reply(case=case, actor=service_a, body="内部备注：VIP 顾客", internal=True)
    case_reply(case=case, actor=service_a, body="已为您加急处理。")

    page = text(signed_in(customer).get(case_url(case)))
    assert "已为您加急处理。" in page
    assert "内部备注" not in page
    assert "Customer service" in page
    assert service_a.email not in page
    assert "Waiting for your answer" in page


def test_someone_elses_case_page_is_404(case: Case, other_customer: User) -> None:
    client = signed_in(other_customer)
    assert client.get(case_url(case)).status_code == 404
    assert client.post(case_url(case, "case_write"), {"message": "hi"}).status_code == 404
    assert client.post(case_url(case, "case_close")).status_code == 404
    assert client.post(case_url(case, "case_rate"), {"rating": "5"}).status_code == 404
    assert CaseMessage.objects.filter(case=case).count() == 1


def test_customer_replies_on_the_case_page(case: Case, customer: User, service_a: User) -> None:
    case_reply(case=case, actor=service_a, body="请提供付款截图。")
    client = signed_in(customer)

    response = client.post(case_url(case, "case_write"), {"message": "截图已发邮箱。"})

    assert response.status_code == 302
    case.refresh_from_db()
    assert case.state == Case.State.IN_PROGRESS
    assert "截图已发邮箱。" in text(client.get(case_url(case)))


def test_empty_reply_is_refused_on_the_page(case: Case, customer: User) -> None:
    response = signed_in(customer).post(case_url(case, "case_write"), {"message": "   "})
    assert response.status_code == 400
    assert "This field is required." in text(response)
    assert CaseMessage.objects.filter(case=case).count() == 1


def test_close_and_rate_on_the_page(case: Case, customer: User) -> None:
    client = signed_in(customer)
    assert 'name="rating"' not in text(client.get(case_url(case)))

    assert client.post(case_url(case, "case_close")).status_code == 302
    page = text(client.get(case_url(case)))
    assert 'name="rating"' in page

    response = client.post(case_url(case, "case_rate"), {"rating": "5", "comment": "谢谢"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.state, case.rating, case.rating_comment) == ("closed", 5, "谢谢")
    page = text(client.get(case_url(case)))
    assert "Your rating" in page
    assert 'name="rating"' not in page
    assert 'name="message"' not in page  # rated: closed for good


@pytest.mark.parametrize("rating", ["0", "6", "abc", ""])
def test_bad_rating_is_refused_on_the_page(
    case: Case, customer: User, service_a: User, rating: str
) -> None:
    case_close(case=case, actor=service_a)
    response = signed_in(customer).post(case_url(case, "case_rate"), {"rating": rating})
    assert response.status_code == 400
    case.refresh_from_db()
    assert case.rating is None


def test_rating_twice_shows_the_services_message(case: Case, customer: User) -> None:
    client = signed_in(customer)
    client.post(case_url(case, "case_close"))
    client.post(case_url(case, "case_rate"), {"rating": "2"})
    response = client.post(case_url(case, "case_rate"), {"rating": "5"})
    assert response.status_code == 400
    assert "You have already rated this case." in text(response)
    case.refresh_from_db()
    assert case.rating == 2
