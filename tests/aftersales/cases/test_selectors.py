"""Case reads: the SLA state of a case and of the staff queue (overdue, due soon, …), who sees
which case, and the FAQ in the current language."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from piaowu.accounts.models import User
from piaowu.aftersales.models import Case, FaqEntry
from piaowu.aftersales.selectors.cases import (
    case_assignee_choices,
    case_get_for_customer,
    case_get_for_staff,
    case_queue_for_staff,
    case_sla,
    cases_for_customer,
    faq_entries,
)
from piaowu.aftersales.services.cases import case_close, case_message, case_open, case_reply
from piaowu.core.errors import DomainError
from piaowu.orders.models import Order
from tests.inventory.conftest import Clock

pytestmark = pytest.mark.django_db


def test_sla_of_a_new_case_is_on_time_then_due_soon_then_overdue(case: Case, clock: Clock) -> None:
    # A refund dispute: first answer due in 8 h; "due soon" is the last 4 h.
    assert case_sla(case, now=clock()).state == "on_time"
    assert case_sla(case, now=clock() + dt.timedelta(hours=5)).state == "due_soon"
    late = case_sla(case, now=clock() + dt.timedelta(hours=9))
    assert late.state == "overdue" and late.overdue
    assert late.due_at == case.first_response_due


def test_after_the_first_answer_the_resolution_time_counts(
    case: Case, service_a: User, customer: User, clock: Clock
) -> None:
    case_reply(case=case, actor=service_a, body="在查")
    case.refresh_from_db()
    assert case_sla(case).state == "waiting"  # the customer's turn: not flagged
    case_message(case=case, customer=customer, body="好")
    case.refresh_from_db()
    assert case_sla(case, now=clock() + dt.timedelta(hours=9)).state == "on_time"
    overdue = case_sla(case, now=clock() + dt.timedelta(hours=49))
    assert (overdue.state, overdue.due_at) == ("overdue", case.resolution_due)


def test_closed_case_has_no_due_time(case: Case, service_a: User) -> None:
    case_close(case=case, actor=service_a)
    case.refresh_from_db()
    assert (case_sla(case).state, case_sla(case).due_at) == ("closed", None)


def test_staff_queue_is_most_urgent_first_and_filters_by_sla(
    customer: User, service_a: User, order: Order, clock: Clock
) -> None:
    question = case_open(
        customer=customer, kind="question", subject="q", message="m", order_id=order.public_id
    )
    dispute = case_open(
        customer=customer, kind="refund_dispute", subject="d", message="m", order_id=order.public_id
    )
    queue = case_queue_for_staff(user=service_a)
    assert [c.pk for c in queue] == [dispute.pk, question.pk]  # due in 8 h before 24 h

    later = clock() + dt.timedelta(hours=10)
    overdue = case_queue_for_staff(user=service_a, sla="overdue", now=later)
    assert [c.pk for c in overdue] == [dispute.pk]
    soon = case_queue_for_staff(
        user=service_a, sla="due_soon", now=clock() + dt.timedelta(hours=21)
    )
    assert [c.pk for c in soon] == [question.pk]

    case_close(case=dispute, actor=service_a)
    assert [c.pk for c in case_queue_for_staff(user=service_a)] == [question.pk]
    assert [c.pk for c in case_queue_for_staff(user=service_a, sla="closed")] == [dispute.pk]


def test_staff_queue_is_scoped_to_the_organizer(
    case: Case, general_case: Case, service_a: User, service_b: User, seller_a: User, operator: User
) -> None:
    assert list(case_queue_for_staff(user=service_a)) == [case]
    assert list(case_queue_for_staff(user=service_b)) == []
    assert list(case_queue_for_staff(user=seller_a)) == []
    assert set(case_queue_for_staff(user=operator)) == {case, general_case}
    with pytest.raises(DomainError) as info:
        case_get_for_staff(public_id=case.public_id, user=service_b)
    assert info.value.code == "case_not_found"
    with pytest.raises(DomainError):
        case_get_for_staff(public_id=general_case.public_id, user=service_a)
    assert case_get_for_staff(public_id=general_case.public_id, user=operator) == general_case


def test_customer_sees_only_own_cases(case: Case, customer: User, other_customer: User) -> None:
    assert list(cases_for_customer(customer)) == [case]
    assert list(cases_for_customer(other_customer)) == []
    assert case_get_for_customer(public_id=case.public_id, customer=customer) == case
    for who in (other_customer, None):
        with pytest.raises(DomainError) as info:
            case_get_for_customer(public_id=case.public_id, customer=who)
        assert info.value.code == "case_not_found"


def test_assignee_choices_are_service_and_admin_staff_and_operators(
    case: Case,
    general_case: Case,
    service_a: User,
    admin_a: User,
    seller_a: User,
    service_b: User,
    operator: User,
) -> None:
    assert set(case_assignee_choices(case)) == {service_a, admin_a, operator}
    assert set(case_assignee_choices(general_case)) == {operator}


def test_faq_in_the_current_language(db: None) -> None:
    FaqEntry.objects.create(
        question="怎么退票？",
        answer="在订单页申请。",
        question_en="How do I refund?",
        answer_en="From the order page.",
        position=2,
    )
    FaqEntry.objects.create(question="电子票在哪？", answer="我的订单。", position=1)
    FaqEntry.objects.create(question="草稿", answer="未发布", published=False, position=0)

    with translation.override("en"):
        english = [(e.question, e.answer) for e in faq_entries()]
    with translation.override("zh-hans"):
        chinese = [(e.question, e.answer) for e in faq_entries()]

    assert english == [("电子票在哪？", "我的订单。"), ("How do I refund?", "From the order page.")]
    assert chinese == [("电子票在哪？", "我的订单。"), ("怎么退票？", "在订单页申请。")]
