"""Case services: opening (web and staff entry), SLA due times, assignment, replies and internal
notes, the customer's follow-up and reopening, closing, rating — and every refusal, with
nothing written when refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import translation

from piaowu.accounts.models import Organizer, User
from piaowu.aftersales.models import Case, CaseHistory, CaseMessage, Notice
from piaowu.aftersales.selectors.cases import case_messages_for_customer
from piaowu.aftersales.services.cases import (
    MAX_MESSAGE_LENGTH,
    case_assign,
    case_close,
    case_close_by_customer,
    case_message,
    case_open,
    case_open_by_staff,
    case_rate,
    case_reopen,
    case_reply,
)
from piaowu.core.errors import DomainError
from piaowu.orders.models import Order
from tests.inventory.conftest import Clock

pytestmark = pytest.mark.django_db


def refused(code: str, call: Callable[[], Any]) -> DomainError:
    with pytest.raises(DomainError) as info:
        call()
    assert info.value.code == code, (info.value.code, info.value.details)
    return info.value


def actions(case: Case) -> list[str]:
    return list(CaseHistory.objects.filter(case=case).values_list("action", flat=True))


def fresh(case: Case) -> Case:
    return Case.objects.get(pk=case.pk)


# --- Opening -------------------------------------------------------------------------------


def test_open_about_own_order_belongs_to_the_orders_organizer(
    customer: User, order: Order, organizer: Organizer, clock: Clock
) -> None:
    case = case_open(
        customer=customer,
        kind="complaint",
        subject="  座位被占  ",
        message="到场发现座位上有人。",
        order_id=order.public_id,
    )

    case = fresh(case)
    assert case.organizer_id == organizer.pk
    assert case.order_id == order.pk
    assert case.customer_id == customer.pk
    assert case.channel == Case.Channel.WEB
    assert case.state == Case.State.OPEN
    assert case.subject == "座位被占"
    assert case.number.startswith("C")
    [message] = CaseMessage.objects.filter(case=case)
    assert (message.body, message.from_staff, message.internal) == (
        "到场发现座位上有人。",
        False,
        False,
    )
    assert actions(case) == ["opened"]


def test_open_without_order_has_no_organizer(general_case: Case) -> None:
    assert general_case.organizer_id is None
    assert general_case.order_id is None


def test_complaints_and_refund_disputes_are_due_sooner_than_questions(
    customer: User, clock: Clock
) -> None:
    now = clock()
    urgent = case_open(customer=customer, kind="refund_dispute", subject="s", message="m")
    normal = case_open(customer=customer, kind="question", subject="s", message="m")

    def hours(delta: dt.timedelta) -> float:
        return round(delta.total_seconds() / 3600, 1)

    assert hours(urgent.first_response_due - now) == 8
    assert hours(urgent.resolution_due - now) == 48
    assert hours(normal.first_response_due - now) == 24
    assert hours(normal.resolution_due - now) == 72


def test_due_times_follow_the_settings(customer: User, settings: Any, clock: Clock) -> None:
    settings.PIAOWU_CASE_FIRST_RESPONSE_HOURS = 2
    settings.PIAOWU_CASE_RESOLUTION_HOURS = 10
    now = clock()
    case = case_open(customer=customer, kind="feedback", subject="s", message="m")
    assert round((case.first_response_due - now).total_seconds() / 3600, 1) == 2
    assert round((case.resolution_due - now).total_seconds() / 3600, 1) == 10


def test_due_times_can_come_from_the_environment(
    customer: User, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setenv("PIAOWU_CASE_URGENT_FIRST_RESPONSE_HOURS", "1.5")
    now = clock()
    case = case_open(customer=customer, kind="complaint", subject="s", message="m")
    assert round((case.first_response_due - now).total_seconds() / 3600, 1) == 1.5


def test_open_needs_a_signed_in_customer() -> None:
    refused(
        "unauthorized", lambda: case_open(customer=None, kind="question", subject="s", message="m")
    )
    assert not Case.objects.exists()


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"kind": "praise"}, "invalid_kind", "kind"),
        ({"kind": ""}, "invalid_kind", "kind"),
        ({"subject": "   "}, "subject_required", "subject"),
        ({"subject": "x" * 201}, "text_too_long", "subject"),
        ({"message": ""}, "message_required", "message"),
        ({"message": " \n\t "}, "message_required", "message"),
        ({"message": "x" * (MAX_MESSAGE_LENGTH + 1)}, "text_too_long", "message"),
    ],
)
def test_open_refuses_bad_input_and_writes_nothing(
    customer: User, fields: dict[str, str], code: str, field: str
) -> None:
    values = {"kind": "question", "subject": "subject", "message": "message", **fields}
    error = refused(code, lambda: case_open(customer=customer, **values))
    assert error.details["field"] == field
    assert not Case.objects.exists()
    assert not CaseMessage.objects.exists()


def test_open_about_someone_elses_order_is_order_not_found(
    customer: User, other_order: Order
) -> None:
    error = refused(
        "order_not_found",
        lambda: case_open(
            customer=customer,
            kind="complaint",
            subject="s",
            message="m",
            order_id=other_order.public_id,
        ),
    )
    assert error.status == 404
    assert not Case.objects.exists()


def test_open_about_an_unknown_order_is_order_not_found(customer: User) -> None:
    refused(
        "order_not_found",
        lambda: case_open(
            customer=customer, kind="complaint", subject="s", message="m", order_id="01NOPE"
        ),
    )


def test_too_many_open_cases_are_refused_until_one_closes(
    customer: User, settings: Any, service_a: User, order: Order
) -> None:
    settings.PIAOWU_CASE_MAX_OPEN_PER_CUSTOMER = 2
    first = case_open(
        customer=customer, kind="question", subject="1", message="m", order_id=order.public_id
    )
    case_open(customer=customer, kind="question", subject="2", message="m")

    error = refused(
        "too_many_open_cases",
        lambda: case_open(customer=customer, kind="question", subject="3", message="m"),
    )
    assert error.details == {"limit": 2}

    case_close(case=first, actor=service_a)
    case_open(customer=customer, kind="question", subject="3", message="m")
    assert Case.objects.count() == 3


# --- Staff entry ---------------------------------------------------------------------------


def test_staff_entry_about_an_order_answers_its_buyer(
    service_a: User, order: Order, customer: User
) -> None:
    case = case_open_by_staff(
        actor=service_a, kind="feedback", subject="电话反馈", message="顾客来电表扬。", order=order
    )
    assert case.channel == Case.Channel.STAFF
    assert case.organizer_id == order.session.event.organizer_id
    assert case.customer_id == customer.pk
    assert case.contact == order.contact_phone
    assert CaseHistory.objects.get(case=case).actor == service_a


def test_staff_entry_without_order_for_their_organizer(
    service_a: User, organizer: Organizer
) -> None:
    case = case_open_by_staff(
        actor=service_a,
        kind="question",
        subject="s",
        message="m",
        organizer=organizer,
        contact="139 0000 1111",
    )
    assert case.organizer_id == organizer.pk
    assert case.customer_id is None
    assert case.contact == "13900001111"


def test_staff_entry_without_order_or_organizer(service_a: User, operator: User) -> None:
    refused(
        "organizer_required",
        lambda: case_open_by_staff(
            actor=service_a, kind="question", subject="s", message="m", contact="a@example.com"
        ),
    )
    case = case_open_by_staff(
        actor=operator, kind="question", subject="s", message="m", contact="A@Example.com"
    )
    assert case.organizer_id is None
    assert case.contact == "a@example.com"


@pytest.mark.parametrize("who", ["service_b", "seller_a", "customer"])
def test_staff_entry_needs_the_service_role_at_the_organizer(
    request: pytest.FixtureRequest, who: str, order: Order
) -> None:
    actor = request.getfixturevalue(who)
    refused(
        "forbidden",
        lambda: case_open_by_staff(
            actor=actor, kind="question", subject="s", message="m", order=order
        ),
    )
    assert not Case.objects.exists()


def test_staff_entry_refuses_an_order_of_another_organizer(
    service_a: User, order: Order, other_organizer: Organizer
) -> None:
    refused(
        "order_wrong_organizer",
        lambda: case_open_by_staff(
            actor=service_a,
            kind="question",
            subject="s",
            message="m",
            order=order,
            organizer=other_organizer,
        ),
    )


@pytest.mark.parametrize(
    ("contact", "code"),
    [
        ("", "contact_required"),
        ("12", "invalid_contact"),
        ("a@b", "invalid_contact"),
        ("call me", "invalid_contact"),
    ],
)
def test_staff_entry_needs_a_valid_contact(
    admin_a: User, organizer: Organizer, contact: str, code: str
) -> None:
    error = refused(
        code,
        lambda: case_open_by_staff(
            actor=admin_a,
            kind="question",
            subject="s",
            message="m",
            organizer=organizer,
            contact=contact,
        ),
    )
    assert error.details["field"] == "contact"
    assert not Case.objects.exists()


# --- Assignment ----------------------------------------------------------------------------


def test_assigning_an_open_case_starts_it(case: Case, admin_a: User, service_a: User) -> None:
    case_assign(case=case, assignee=service_a, actor=admin_a)

    case = fresh(case)
    assert case.assignee_id == service_a.pk
    assert case.state == Case.State.IN_PROGRESS
    assert actions(case) == ["opened", "assigned", "in_progress"]


def test_assigning_the_same_person_again_changes_nothing(case: Case, service_a: User) -> None:
    case_assign(case=case, assignee=service_a, actor=service_a)
    case_assign(case=case, assignee=service_a, actor=service_a)
    assert actions(case) == ["opened", "assigned", "in_progress"]


def test_unassigning(case: Case, service_a: User) -> None:
    case_assign(case=case, assignee=service_a, actor=service_a)
    case_assign(case=case, assignee=None, actor=service_a)
    assert fresh(case).assignee_id is None
    assert actions(case)[-1] == "unassigned"


@pytest.mark.parametrize("who", ["seller_a", "service_b", "customer"])
def test_assignee_must_handle_the_organizers_cases(
    request: pytest.FixtureRequest, case: Case, admin_a: User, who: str
) -> None:
    assignee = request.getfixturevalue(who)
    refused(
        "assignee_not_allowed", lambda: case_assign(case=case, assignee=assignee, actor=admin_a)
    )
    assert fresh(case).assignee_id is None
    assert actions(case) == ["opened"]


@pytest.mark.parametrize("who", ["seller_a", "service_b", "customer"])
def test_only_the_organizers_service_staff_assign(
    request: pytest.FixtureRequest, case: Case, service_a: User, who: str
) -> None:
    actor = request.getfixturevalue(who)
    refused("forbidden", lambda: case_assign(case=case, assignee=service_a, actor=actor))
    assert actions(case) == ["opened"]


def test_case_without_organizer_is_for_operators_only(
    general_case: Case, service_a: User, operator: User
) -> None:
    refused("forbidden", lambda: case_assign(case=general_case, assignee=operator, actor=service_a))
    refused(
        "assignee_not_allowed",
        lambda: case_assign(case=general_case, assignee=service_a, actor=operator),
    )
    case_assign(case=general_case, assignee=operator, actor=operator)
    assert fresh(general_case).assignee_id == operator.pk


def test_a_closed_case_cannot_be_assigned(case: Case, service_a: User) -> None:
    case_close(case=case, actor=service_a)
    refused("case_closed", lambda: case_assign(case=case, assignee=service_a, actor=service_a))


# --- Replies and notes ---------------------------------------------------------------------


def test_reply_answers_the_customer_and_tells_them(
    case: Case, service_a: User, customer: User, clock: Clock
) -> None:
    message = case_reply(case=case, actor=service_a, body="您好，退款已在处理中。")

    case = fresh(case)
    assert message.from_staff and not message.internal
    assert case.first_responded_at == message.at
    assert case.state == Case.State.WAITING_CUSTOMER
    assert case.assignee_id == service_a.pk  # the first to answer takes it
    assert actions(case) == ["opened", "replied", "assigned", "waiting_customer"]
    [notice] = Notice.objects.filter(topic=f"case:{case.number}:reply:{message.pk}")
    assert notice.kind == "email"
    assert notice.recipient == customer.email
    assert case.number in notice.subject
    assert "您好，退款已在处理中。" in notice.body
    assert f"/help/cases/{case.public_id}/" in notice.body


def test_first_response_time_is_set_once(case: Case, service_a: User, clock: Clock) -> None:
    case_reply(case=case, actor=service_a, body="第一次回复")
    first = fresh(case).first_responded_at
    clock.shift(dt.timedelta(hours=3))
    case_reply(case=case, actor=service_a, body="补充说明")
    assert fresh(case).first_responded_at == first
    assert Notice.objects.filter(topic__startswith=f"case:{case.number}:reply:").count() == 2


def test_notice_is_in_the_customers_language(case: Case, service_a: User, customer: User) -> None:
    customer.preferred_language = "en"
    customer.save(update_fields=["preferred_language"])
    with translation.override("zh-hans"):
        case_reply(case=case, actor=service_a, body="Refund is on its way.")
    notice = Notice.objects.get(topic__startswith=f"case:{case.number}:reply:")
    assert notice.subject == f"Customer service replied to your case {case.number}"


def test_reply_to_a_phone_only_customer_goes_by_sms(service_a: User, organizer: Organizer) -> None:
    case = case_open_by_staff(
        actor=service_a,
        kind="question",
        subject="s",
        message="m",
        organizer=organizer,
        contact="13900001111",
    )
    case_reply(case=case, actor=service_a, body="已为您查询。")
    [notice] = Notice.objects.filter(topic__startswith=f"case:{case.number}:")
    assert (notice.kind, notice.recipient) == ("sms", "13900001111")
    assert f"/help/cases/{case.public_id}/" in notice.body


def test_internal_note_is_hidden_from_the_customer_and_changes_nothing(
    case: Case, service_a: User
) -> None:
    case_reply(case=case, actor=service_a, body="顾客上次也投诉过", internal=True)

    case = fresh(case)
    assert case.state == Case.State.OPEN
    assert case.first_responded_at is None
    assert case.assignee_id is None
    assert not Notice.objects.exists()
    assert [m.body for m in case_messages_for_customer(case)] == [
        "我上周申请了退款，钱还没有退回来。"
    ]
    assert actions(case) == ["opened", "note"]


@pytest.mark.parametrize("body", ["", "   "])
def test_empty_reply_is_refused(case: Case, service_a: User, body: str) -> None:
    refused("message_required", lambda: case_reply(case=case, actor=service_a, body=body))
    assert CaseMessage.objects.filter(case=case).count() == 1


def test_replying_to_a_closed_case_is_refused(case: Case, service_a: User) -> None:
    case_close(case=case, actor=service_a)
    refused("case_closed", lambda: case_reply(case=case, actor=service_a, body="还有问题吗？"))
    refused(
        "case_closed",
        lambda: case_reply(case=case, actor=service_a, body="note", internal=True),
    )
    assert CaseMessage.objects.filter(case=case).count() == 1


@pytest.mark.parametrize("who", ["service_b", "seller_a", "customer"])
def test_only_the_organizers_service_staff_reply(
    request: pytest.FixtureRequest, case: Case, who: str
) -> None:
    actor = request.getfixturevalue(who)
    refused("forbidden", lambda: case_reply(case=case, actor=actor, body="hi"))
    assert not Notice.objects.exists()


def test_operators_reply_to_any_case(case: Case, general_case: Case, operator: User) -> None:
    case_reply(case=case, actor=operator, body="a")
    case_reply(case=general_case, actor=operator, body="b")
    assert fresh(general_case).state == Case.State.WAITING_CUSTOMER


# --- The customer's side -------------------------------------------------------------------


def test_customer_answer_puts_a_waiting_case_back_in_progress(
    case: Case, service_a: User, customer: User
) -> None:
    case_reply(case=case, actor=service_a, body="请提供退款单号。")
    case_message(case=case, customer=customer, body="R12345")

    assert fresh(case).state == Case.State.IN_PROGRESS
    assert [m.body for m in case_messages_for_customer(case)][-1] == "R12345"
    assert actions(case)[-2:] == ["in_progress", "message"]


def test_customer_writes_on_an_open_case_without_changing_state(case: Case, customer: User) -> None:
    case_message(case=case, customer=customer, body="补充：是两张票。")
    assert fresh(case).state == Case.State.OPEN


def test_someone_else_cannot_write_on_a_case(case: Case, other_customer: User) -> None:
    error = refused(
        "case_not_found", lambda: case_message(case=case, customer=other_customer, body="hi")
    )
    assert error.status == 404
    refused("unauthorized", lambda: case_message(case=case, customer=None, body="hi"))
    assert CaseMessage.objects.filter(case=case).count() == 1


def test_customer_empty_message_is_refused(case: Case, customer: User) -> None:
    refused("message_required", lambda: case_message(case=case, customer=customer, body=" "))


def test_customer_message_reopens_a_recently_closed_case(
    case: Case, service_a: User, customer: User, clock: Clock
) -> None:
    case_close(case=case, actor=service_a)
    clock.shift(dt.timedelta(days=6))
    case_message(case=case, customer=customer, body="钱还是没到。")

    case = fresh(case)
    assert case.state == Case.State.IN_PROGRESS
    assert case.closed_at is None
    assert case.resolution_due > clock() + dt.timedelta(hours=47)  # a fresh clock (dispute: 48 h)
    assert actions(case)[-2:] == ["reopened", "message"]


def test_customer_message_after_the_reopen_window_is_refused(
    case: Case, service_a: User, customer: User, clock: Clock
) -> None:
    case_close(case=case, actor=service_a)
    clock.shift(dt.timedelta(days=8))
    error = refused("case_closed", lambda: case_message(case=case, customer=customer, body="?"))
    assert error.details["reopen_days"] == 7
    assert fresh(case).state == Case.State.CLOSED


def test_customer_message_on_a_rated_case_is_refused(
    case: Case, service_a: User, customer: User
) -> None:
    case_close(case=case, actor=service_a)
    case_rate(case=case, customer=customer, rating=4)
    refused("case_closed", lambda: case_message(case=case, customer=customer, body="again"))


# --- Closing and reopening -----------------------------------------------------------------


def test_staff_close_tells_the_customer(case: Case, service_a: User, customer: User) -> None:
    case_close(case=case, actor=service_a, note="已退款")

    case = fresh(case)
    assert case.state == Case.State.CLOSED
    assert case.closed_at is not None
    history = CaseHistory.objects.filter(case=case).last()
    assert history is not None and (history.action, history.note) == ("closed", "已退款")
    [notice] = Notice.objects.filter(topic__startswith=f"case:{case.number}:closed:")
    assert notice.recipient == customer.email
    assert "tell us how we did" in notice.body


def test_closing_twice_changes_nothing(case: Case, service_a: User) -> None:
    case_close(case=case, actor=service_a)
    case_close(case=case, actor=service_a)
    assert actions(case).count("closed") == 1
    assert Notice.objects.count() == 1


def test_customer_closes_own_case_without_a_notice(case: Case, customer: User) -> None:
    case_close_by_customer(case=case, customer=customer)
    assert fresh(case).state == Case.State.CLOSED
    assert not Notice.objects.exists()


def test_others_cannot_close(case: Case, other_customer: User, service_b: User) -> None:
    refused("case_not_found", lambda: case_close_by_customer(case=case, customer=other_customer))
    refused("forbidden", lambda: case_close(case=case, actor=service_b))
    refused("forbidden", lambda: case_close(case=case, actor=other_customer))
    assert fresh(case).state == Case.State.OPEN


def test_staff_reopen(case: Case, service_a: User, service_b: User) -> None:
    case_close(case=case, actor=service_a)
    refused("forbidden", lambda: case_reopen(case=case, actor=service_b))
    case_reopen(case=case, actor=service_a, note="顾客来电")
    assert fresh(case).state == Case.State.IN_PROGRESS
    assert actions(case)[-1] == "reopened"
    case_reopen(case=case, actor=service_a)  # not closed: nothing to do
    assert actions(case).count("reopened") == 1


def test_a_reopened_case_closed_again_tells_the_customer_again(case: Case, service_a: User) -> None:
    case_close(case=case, actor=service_a)
    case_reopen(case=case, actor=service_a)
    case_close(case=case, actor=service_a)
    assert Notice.objects.filter(topic__startswith=f"case:{case.number}:closed:").count() == 2


# --- Rating --------------------------------------------------------------------------------


def test_customer_rates_a_closed_case_once(case: Case, service_a: User, customer: User) -> None:
    case_close(case=case, actor=service_a)
    case_rate(case=case, customer=customer, rating=5, comment=" 很快 ")

    case = fresh(case)
    assert (case.rating, case.rating_comment) == (5, "很快")
    assert actions(case)[-1] == "rated"
    error = refused("case_already_rated", lambda: case_rate(case=case, customer=customer, rating=1))
    assert error.status == 409
    assert fresh(case).rating == 5


@pytest.mark.parametrize("rating", [0, 6, -1, 100, True])
def test_rating_out_of_range_is_refused(
    case: Case, service_a: User, customer: User, rating: int
) -> None:
    case_close(case=case, actor=service_a)
    error = refused(
        "invalid_rating", lambda: case_rate(case=case, customer=customer, rating=rating)
    )
    assert (error.details["min"], error.details["max"]) == (1, 5)
    assert fresh(case).rating is None


def test_rating_an_open_case_is_refused(case: Case, customer: User) -> None:
    error = refused("case_not_closed", lambda: case_rate(case=case, customer=customer, rating=3))
    assert error.details["state"] == "open"


def test_rating_someone_elses_case_is_not_found(
    case: Case, service_a: User, other_customer: User
) -> None:
    case_close(case=case, actor=service_a)
    refused("case_not_found", lambda: case_rate(case=case, customer=other_customer, rating=5))
    refused("case_not_found", lambda: case_rate(case=case, customer=service_a, rating=5))
    assert fresh(case).rating is None


def test_rating_comment_too_long_is_refused(case: Case, service_a: User, customer: User) -> None:
    case_close(case=case, actor=service_a)
    error = refused(
        "text_too_long",
        lambda: case_rate(case=case, customer=customer, rating=3, comment="x" * 501),
    )
    assert error.details["field"] == "comment"


# --- A whole case --------------------------------------------------------------------------


def test_every_change_appends_history_with_its_actor(
    case: Case, customer: User, service_a: User, admin_a: User
) -> None:
    case_assign(case=case, assignee=service_a, actor=admin_a)
    case_reply(case=case, actor=service_a, body="请稍候")
    case_reply(case=case, actor=service_a, body="note", internal=True)
    case_message(case=case, customer=customer, body="好的")
    case_close(case=case, actor=service_a)
    case_rate(case=case, customer=customer, rating=4)

    rows = list(CaseHistory.objects.filter(case=case).values_list("action", "actor__email"))
    assert rows == [
        ("opened", customer.email),
        ("assigned", admin_a.email),
        ("in_progress", admin_a.email),
        ("replied", service_a.email),
        ("waiting_customer", service_a.email),
        ("note", service_a.email),
        ("in_progress", customer.email),
        ("message", customer.email),
        ("closed", service_a.email),
        ("rated", customer.email),
    ]
