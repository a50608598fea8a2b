"""Cases in the operator console: scoped to the organizer's service staff (a staff member of
another organizer, or a seller, does not see the case), SLA columns and filter, the reply /
note / assign / close / reopen tools and staff entry through the services, and the FAQ admin
for platform operators only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import User
from piaowu.aftersales.models import Case, CaseMessage, FaqEntry, Notice
from piaowu.aftersales.services.cases import case_close
from piaowu.orders.models import Order
from tests.inventory.conftest import Clock

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:aftersales_case_changelist")


def console(user: User) -> Client:
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    return client


def change_url(case: Case) -> str:
    return reverse("admin:aftersales_case_change", args=[case.pk])


def tool_url(case: Case, name: str) -> str:
    return reverse(f"admin:aftersales_case_{name}", args=[case.pk])


def text(response: Any) -> str:
    return str(response.content.decode())


# --- Scoping -------------------------------------------------------------------------------


def test_service_staff_see_their_organizers_cases(
    case: Case, service_a: User, admin_a: User
) -> None:
    for user in (service_a, admin_a):
        client = console(user)
        assert case.number in text(client.get(CHANGELIST))
        assert client.get(change_url(case)).status_code == 200


def test_staff_of_another_organizer_do_not_see_the_case(case: Case, service_b: User) -> None:
    client = console(service_b)
    listing = client.get(CHANGELIST)
    assert listing.status_code == 200
    assert case.number not in text(listing)
    assert client.get(change_url(case)).status_code == 404
    assert client.get(tool_url(case, "reply")).status_code == 404
    assert client.post(tool_url(case, "reply"), {"message": "hi"}).status_code == 404
    assert client.post(tool_url(case, "close"), {}).status_code == 404
    assert CaseMessage.objects.filter(case=case).count() == 1
    case.refresh_from_db()
    assert case.state == Case.State.OPEN


def test_sellers_have_no_case_admin(case: Case, seller_a: User) -> None:
    client = console(seller_a)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(case)).status_code in {403, 404}


def test_cases_without_organizer_are_for_operators_only(
    general_case: Case, service_a: User, operator: User
) -> None:
    assert general_case.number not in text(console(service_a).get(CHANGELIST))
    assert console(service_a).get(change_url(general_case)).status_code == 404
    assert general_case.number in text(console(operator).get(CHANGELIST))


# --- SLA columns ---------------------------------------------------------------------------


def test_list_flags_overdue_cases_and_filters_by_sla(
    case: Case, customer: User, order: Order, service_a: User, clock: Clock
) -> None:
    client = console(service_a)
    page = text(client.get(CHANGELIST))
    assert "On time" in page

    clock.shift(dt.timedelta(hours=9))  # a refund dispute's first answer was due after 8 h
    page = text(client.get(CHANGELIST))
    assert "Overdue" in page
    assert case.number in text(client.get(CHANGELIST, {"sla": "overdue"}))
    assert case.number not in text(client.get(CHANGELIST, {"sla": "on_time"}))


# --- Tools ---------------------------------------------------------------------------------


def test_change_page_offers_the_tools(case: Case, service_a: User) -> None:
    page = text(console(service_a).get(change_url(case)))
    for name in ("reply", "note", "assign", "close"):
        assert tool_url(case, name) in page


def test_reply_tool_answers_and_notifies_the_customer(
    case: Case, service_a: User, customer: User
) -> None:
    client = console(service_a)
    form = client.get(tool_url(case, "reply"))
    assert "我上周申请了退款" in text(form)  # the customer's last words, to answer them

    response = client.post(tool_url(case, "reply"), {"message": "退款已原路退回。"})

    assert response.status_code == 302
    assert response["Location"] == change_url(case)
    message = CaseMessage.objects.filter(case=case).last()
    assert message is not None
    assert (message.body, message.from_staff, message.internal) == ("退款已原路退回。", True, False)
    assert Notice.objects.filter(recipient=customer.email).count() == 1
    case.refresh_from_db()
    assert case.state == Case.State.WAITING_CUSTOMER
    assert "退款已原路退回。" in text(client.get(change_url(case)))


def test_note_tool_writes_an_internal_note_without_telling_anyone(
    case: Case, service_a: User
) -> None:
    response = console(service_a).post(tool_url(case, "note"), {"message": "财务已确认"})
    assert response.status_code == 302
    assert CaseMessage.objects.filter(case=case, internal=True).count() == 1
    assert not Notice.objects.exists()


def test_empty_reply_shows_the_error(case: Case, service_a: User) -> None:
    response = console(service_a).post(tool_url(case, "reply"), {"message": ""})
    assert response.status_code == 400
    assert CaseMessage.objects.filter(case=case).count() == 1


def test_assign_tool_offers_only_people_who_handle_cases(
    case: Case, admin_a: User, service_a: User, seller_a: User, service_b: User
) -> None:
    client = console(admin_a)
    page = text(client.get(tool_url(case, "assign")))
    assert service_a.email in page
    assert seller_a.email not in page
    assert service_b.email not in page

    assert client.post(tool_url(case, "assign"), {"assignee": seller_a.pk}).status_code == 400
    response = client.post(tool_url(case, "assign"), {"assignee": service_a.pk})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.assignee_id, case.state) == (service_a.pk, Case.State.IN_PROGRESS)


def test_close_and_reopen_tools(case: Case, service_a: User) -> None:
    client = console(service_a)
    assert client.post(tool_url(case, "close"), {"note": "已解决"}).status_code == 302
    case.refresh_from_db()
    assert case.state == Case.State.CLOSED
    page = text(client.get(change_url(case)))
    assert tool_url(case, "reopen") in page
    assert tool_url(case, "reply") not in page

    response = client.post(tool_url(case, "reply"), {"message": "还在吗"})
    assert response.status_code == 400
    assert "This case is closed." in text(response)

    assert client.post(tool_url(case, "reopen"), {"note": ""}).status_code == 302
    case.refresh_from_db()
    assert case.state == Case.State.IN_PROGRESS


def test_assign_to_me_action(case: Case, service_a: User, service_b: User) -> None:
    response = console(service_a).post(
        CHANGELIST, {"action": "assign_to_me", "_selected_action": [case.pk]}
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.assignee_id == service_a.pk


def test_actions_report_refusals(case: Case, general_case: Case, operator: User) -> None:
    case_close(case=general_case, actor=operator)
    response = console(operator).post(
        CHANGELIST,
        {"action": "assign_to_me", "_selected_action": [case.pk, general_case.pk]},
        follow=True,
    )
    page = text(response)
    assert "1 case assigned to you." in page
    assert f"{general_case.number}: This case is closed." in page
    case.refresh_from_db()
    general_case.refresh_from_db()
    assert (case.assignee_id, general_case.assignee_id) == (operator.pk, None)


def test_close_action(case: Case, service_a: User) -> None:
    response = console(service_a).post(
        CHANGELIST, {"action": "close_selected", "_selected_action": [case.pk]}, follow=True
    )
    assert "1 case closed." in text(response)
    case.refresh_from_db()
    assert case.state == Case.State.CLOSED


# --- Staff entry ---------------------------------------------------------------------------


def test_staff_enter_a_case_about_an_order_by_its_code(
    service_a: User, order: Order, customer: User
) -> None:
    client = console(service_a)
    assert client.get(reverse("admin:aftersales_case_enter")).status_code == 200
    response = client.post(
        reverse("admin:aftersales_case_enter"),
        {
            "order_code": order.code.lower(),
            "kind": "complaint",
            "subject": "电话投诉",
            "message": "顾客来电投诉入场排队太久。",
        },
    )
    assert response.status_code == 302, text(response)
    case = Case.objects.get()
    assert (case.channel, case.order_id, case.customer_id) == ("staff", order.pk, customer.pk)


def test_staff_entry_with_another_organizers_order_is_refused(
    service_b: User, order: Order
) -> None:
    response = console(service_b).post(
        reverse("admin:aftersales_case_enter"),
        {"order_code": order.code, "kind": "question", "subject": "s", "message": "m"},
    )
    assert response.status_code == 400
    assert "No such order." in text(response)
    assert not Case.objects.exists()


def test_staff_entry_needs_a_contact_without_order(service_a: User, organizer: Any) -> None:
    response = console(service_a).post(
        reverse("admin:aftersales_case_enter"),
        {"organizer": organizer.pk, "kind": "question", "subject": "s", "message": "m"},
    )
    assert response.status_code == 400
    assert "Give a phone number or an e-mail address" in text(response)
    assert not Case.objects.exists()


def test_sellers_cannot_enter_cases(seller_a: User) -> None:
    assert console(seller_a).get(reverse("admin:aftersales_case_enter")).status_code == 403


# --- FAQ -----------------------------------------------------------------------------------


def test_operators_edit_the_faq_and_nobody_else_sees_it(operator: User, admin_a: User) -> None:
    changelist = reverse("admin:aftersales_faqentry_changelist")
    add = reverse("admin:aftersales_faqentry_add")
    assert console(admin_a).get(changelist).status_code == 403
    assert console(admin_a).post(add, {"question": "q", "answer": "a"}).status_code == 403

    response = console(operator).post(
        add,
        {
            "question": "怎么退票？",
            "answer": "在订单页申请。",
            "question_en": "Refunds?",
            "answer_en": "Order page.",
            "position": "3",
            "published": "on",
        },
    )
    assert response.status_code == 302
    entry = FaqEntry.objects.get()
    assert (entry.question_en, entry.position, entry.published) == ("Refunds?", 3, True)
    assert "怎么退票？" in text(console(operator).get(changelist))
