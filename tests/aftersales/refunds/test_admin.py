"""Refunds and refund rules in the operator console: organizer scoping, the approve / reject
(with a reason) / retry actions, refunding an order on the customer's behalf, the refund rule
admin with its tiers, and the notice outbox for platform operators."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import Organizer, Role, User
from piaowu.aftersales.models import Notice, Refund, RefundHistory, RefundPolicy
from piaowu.aftersales.services.notices import Recipients, notice_queue
from piaowu.aftersales.services.refunds import refund_request
from piaowu.catalog.models import CatalogChange, SalesChannel
from piaowu.payments.models import SandboxRefund
from tests.aftersales.refunds.conftest import Bought, Clock, MakeBought, hours_before, refund_rule

pytestmark = pytest.mark.django_db

REFUNDS = reverse("admin:aftersales_refund_changelist")
RULES = reverse("admin:aftersales_refundpolicy_changelist")
ORDERS = reverse("admin:orders_order_changelist")


def console(user: User) -> Client:
    client = Client(headers={"accept-language": "en"})
    client.force_login(user)
    return client


def text(response: Any) -> str:
    return str(response.content.decode())


def requested(bought: MakeBought, buyer: User) -> tuple[Bought, Refund]:
    purchase = bought()
    refund_rule(purchase.session.event, needs_approval=True)
    refund = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)
    return purchase, refund


def act(client: Client, action: str, refunds: list[Refund], **extra: str) -> Any:
    return client.post(
        REFUNDS, {"action": action, "_selected_action": [r.pk for r in refunds], **extra}
    )


@pytest.fixture
def rival(make_staff: Callable[..., User], other_organizer: Organizer) -> User:
    return make_staff(other_organizer, role=Role.ADMIN, email="rival@example.com")


# --- The refund list ------------------------------------------------------------------------------


def test_staff_see_their_organizers_refunds_only(
    bought: MakeBought, buyer: User, staff: User, finance: User, rival: User
) -> None:
    _purchase, refund = requested(bought, buyer)
    change = reverse("admin:aftersales_refund_change", args=[refund.pk])

    for user in (staff, finance):
        assert refund.number in text(console(user).get(REFUNDS))
        page = console(user).get(change)
        assert page.status_code == 200 and "¥180" in text(page)
    assert refund.number not in text(console(rival).get(REFUNDS))
    assert console(rival).get(change).status_code == 404


def test_staff_approve_a_requested_refund_from_the_list(
    bought: MakeBought, buyer: User, staff: User
) -> None:
    _purchase, refund = requested(bought, buyer)

    response = act(console(staff), "approve_selected", [refund])

    assert response.status_code == 302
    refund.refresh_from_db()
    assert refund.state == Refund.State.SUCCEEDED
    assert RefundHistory.objects.get(refund=refund, to_state="approved").actor == staff


def test_staff_reject_with_a_reason_asked_on_a_second_page(
    bought: MakeBought, buyer: User, staff: User
) -> None:
    _purchase, refund = requested(bought, buyer)
    client = console(staff)

    form = act(client, "reject_selected", [refund])
    assert form.status_code == 200 and 'name="reason"' in text(form)
    assert Refund.objects.get(pk=refund.pk).state == Refund.State.REQUESTED
    empty = act(client, "reject_selected", [refund], reason="")
    assert empty.status_code == 200 and Refund.objects.get(pk=refund.pk).state == "requested"

    done = act(client, "reject_selected", [refund], reason="超过退票时限")

    assert done.status_code == 302
    refund.refresh_from_db()
    assert refund.state == Refund.State.REJECTED
    assert RefundHistory.objects.get(refund=refund, to_state="rejected").note == "超过退票时限"


def test_those_who_may_not_refund_have_no_refund_actions(
    bought: MakeBought, buyer: User, finance: User
) -> None:
    _purchase, refund = requested(bought, buyer)
    client = console(finance)

    assert "approve_selected" not in text(client.get(REFUNDS))
    act(client, "approve_selected", [refund])

    assert Refund.objects.get(pk=refund.pk).state == Refund.State.REQUESTED


def test_staff_retry_a_failed_refund_from_the_list(
    bought: MakeBought, buyer: User, staff: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    refund = refund_request(
        order=purchase.order, tickets=purchase.tickets[:1], actor=buyer, process=False
    )
    Refund.objects.filter(pk=refund.pk).update(state=Refund.State.FAILED)  # gave up earlier

    act(console(staff), "retry_selected", [refund])

    refund.refresh_from_db()
    assert refund.state == Refund.State.SUCCEEDED
    assert SandboxRefund.objects.filter(refund_reference=refund.number).count() == 1


# --- On the customer's behalf ---------------------------------------------------------------------


def on_behalf_url(purchase: Bought) -> str:
    return reverse("admin:aftersales_refund_on_behalf", args=[purchase.order.public_id])


def test_staff_refund_an_order_on_the_customers_behalf_with_a_reason(
    bought: MakeBought, staff: User, clock: Clock
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    hours_before(clock, purchase.session, 1)  # past the cut-off: only staff can
    client = console(staff)

    page = client.get(on_behalf_url(purchase))
    assert page.status_code == 200
    assert purchase.tickets[0].serial in text(page) and "(fee ¥36.00)" in text(page)
    missing = client.post(on_behalf_url(purchase), {"tickets": [purchase.tickets[0].public_id]})
    assert missing.status_code == 200 and not Refund.objects.exists()

    response = client.post(
        on_behalf_url(purchase),
        {"tickets": [purchase.tickets[0].public_id], "reason": "演出延误", "waive_fee": "on"},
    )

    refund = Refund.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:aftersales_refund_change", args=[refund.pk])
    assert (refund.kind, refund.reason, refund.amount) == ("staff", "演出延误", Decimal("180"))
    assert refund.requested_by == staff and refund.state == Refund.State.SUCCEEDED


def test_the_on_behalf_tool_is_for_refund_staff_of_the_organizer(
    bought: MakeBought, finance: User, rival: User
) -> None:
    purchase = bought()

    assert console(finance).get(on_behalf_url(purchase)).status_code == 403
    assert console(rival).get(on_behalf_url(purchase)).status_code == 404
    assert (
        console(rival)
        .post(on_behalf_url(purchase), {"tickets": [purchase.tickets[0].public_id], "reason": "x"})
        .status_code
        == 404
    )
    assert not Refund.objects.exists()


def test_staff_find_an_order_by_code_for_the_tool(
    bought: MakeBought, staff: User, rival: User
) -> None:
    purchase = bought()
    find = reverse("admin:aftersales_refund_find")

    found = console(staff).post(find, {"code": purchase.order.code.lower()})
    unknown = console(rival).post(find, {"code": purchase.order.code})

    assert found.status_code == 302 and found["Location"] == on_behalf_url(purchase)
    assert unknown.status_code == 200 and "No order with this code" in text(unknown)


def test_the_order_list_action_opens_the_tool_for_one_order(
    bought: MakeBought, staff: User
) -> None:
    first, second = bought(), bought()
    client = console(staff)

    one = client.post(ORDERS, {"action": "refund_on_behalf", "_selected_action": [first.order.pk]})
    two = client.post(
        ORDERS,
        {"action": "refund_on_behalf", "_selected_action": [first.order.pk, second.order.pk]},
        follow=True,
    )

    assert one.status_code == 302 and one["Location"] == on_behalf_url(first)
    assert "Select exactly one order to refund." in text(two)


# --- Refund rules ---------------------------------------------------------------------------------


def rule_form(event_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "event": event_id,
        "session": "",
        "minimum_fee": "2",
        "exchange_fee_percent": "0",
        "exchanges_allowed": "on",
        "tiers-TOTAL_FORMS": "2",
        "tiers-INITIAL_FORMS": "0",
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
        "tiers-0-hours_before": "48",
        "tiers-0-fee_percent": "0",
        "tiers-1-hours_before": "24",
        "tiers-1-fee_percent": "10",
        **extra,
    }


def test_an_organizer_admin_writes_a_refund_rule_with_tiers_and_it_is_logged(
    bought: MakeBought, admin_user: User, organizer: Organizer
) -> None:
    purchase = bought()
    event = purchase.session.event
    web = SalesChannel.objects.get(organizer=organizer, kind=SalesChannel.Kind.WEB)
    client = console(admin_user)

    response = client.post(
        reverse("admin:aftersales_refundpolicy_add"), rule_form(event.pk, channels=[web.pk])
    )

    assert response.status_code == 302, text(response)
    policy = RefundPolicy.objects.get(event=event)
    assert list(policy.tiers.values_list("hours_before", "fee_percent")) == [
        (48, Decimal("0")),
        (24, Decimal("10")),
    ]
    assert list(policy.channels.all()) == [web]
    assert CatalogChange.objects.filter(action="piaowu.catalog.refund_rule.created").exists()
    assert CatalogChange.objects.filter(action="piaowu.catalog.refundtier.created").count() == 2
    listing = text(client.get(RULES))
    assert "≥ 48 h: 0.00 %" in listing
    # and the rule applies at once
    assert client.get(RULES).status_code == 200


def test_a_rule_with_a_session_of_another_event_or_a_bad_tier_is_refused(
    bought: MakeBought, admin_user: User
) -> None:
    first, second = bought(), bought()
    client = console(admin_user)
    add = reverse("admin:aftersales_refundpolicy_add")

    wrong_session = client.post(add, rule_form(first.session.event_id, session=second.session.pk))
    bad_percent = client.post(
        add, rule_form(first.session.event_id, **{"tiers-1-fee_percent": "120"})
    )

    assert wrong_session.status_code == 200
    assert "This session is not of the chosen event." in text(wrong_session)
    assert bad_percent.status_code == 200
    assert not RefundPolicy.objects.exists()


def test_staff_of_another_organizer_cannot_write_rules_for_this_one(
    bought: MakeBought, rival: User
) -> None:
    purchase = bought()
    policy = refund_rule(purchase.session.event)
    client = console(rival)

    response = client.post(
        reverse("admin:aftersales_refundpolicy_add"), rule_form(purchase.session.event_id)
    )

    assert response.status_code == 200 and "Select a valid choice" in text(response)
    assert RefundPolicy.objects.count() == 1
    change = reverse("admin:aftersales_refundpolicy_change", args=[policy.pk])
    assert client.get(change).status_code == 404


@pytest.fixture
def admin_user(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, role=Role.ADMIN, email="boss@example.com")


# --- Notices --------------------------------------------------------------------------------------


def test_platform_operators_read_the_notice_outbox_and_send_failed_ones_again(
    make_user: Callable[..., User], staff: User
) -> None:
    operator = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    notice_queue(
        topic="refund:R1:approved", recipients=Recipients(email="a@x.com"), subject="s", body="b"
    )
    Notice.objects.update(status=Notice.Status.FAILED, attempts=8, last_error="boom")
    notices = reverse("admin:aftersales_notice_changelist")

    assert console(staff).get(notices).status_code == 403
    assert "refund:R1:approved" in text(console(operator).get(notices))
    console(operator).post(
        notices, {"action": "send_again", "_selected_action": [Notice.objects.get().pk]}
    )

    notice = Notice.objects.get()
    assert (notice.status, notice.attempts, notice.last_error) == ("pending", 0, "")
