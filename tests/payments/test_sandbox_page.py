"""The sandbox gateway's hosted pay page, through the Django test client."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings

from piaowu.accounts.models import User
from piaowu.console.admin_payments import SandboxDeliveryAdmin
from piaowu.core.money import Money
from piaowu.payments.models import SandboxDelivery, SandboxTransaction
from piaowu.payments.providers.base import PaymentRequest
from piaowu.payments.providers.sandbox import SandboxProvider

pytestmark = pytest.mark.django_db


def start(
    reference: str = "ORD-1", *, return_url: str = "", expires_in: timedelta | None = None
) -> SandboxTransaction:
    SandboxProvider().start(
        PaymentRequest(
            reference=reference,
            amount=Money.of("1280.5", "CNY"),
            subject="Swan Lake · 2 tickets",
            notify_url="http://127.0.0.1:9/notify",
            return_url=return_url,
            expires_at=timezone.now() + expires_in if expires_in is not None else None,
        )
    )
    return SandboxTransaction.objects.get(reference=reference)


def english() -> Client:
    return Client(headers={"accept-language": "en"})


def page_url(txn: SandboxTransaction) -> str:
    return f"/payments/sandbox/{txn.public_id}/"


def action_url(txn: SandboxTransaction, action: str) -> str:
    return f"/payments/sandbox/{txn.public_id}/{action}/"


def test_the_redirect_url_of_the_provider_is_the_page() -> None:
    result = SandboxProvider().start(
        PaymentRequest(
            reference="ORD-9", amount=Money.of("5", "CNY"), subject="S", notify_url="http://x/n"
        )
    )
    txn = SandboxTransaction.objects.get(reference="ORD-9")
    assert result.redirect_url == page_url(txn)
    assert reverse("payments:sandbox", args=[txn.public_id]) == result.redirect_url
    assert english().get(result.redirect_url).status_code == 200


def test_a_pending_payment_shows_amount_subject_reference_countdown_and_buttons() -> None:
    txn = start(expires_in=timedelta(minutes=15))
    response = english().get(page_url(txn))
    html = response.content.decode()
    assert response.status_code == 200
    assert "¥1,280.50" in html
    assert "Swan Lake · 2 tickets" in html
    assert "ORD-1" in html
    assert 'role="timer"' in html
    assert "minutes left to pay" in html
    for action in ("pay", "fail", "abandon"):
        assert f'action="{action_url(txn, action)}"' in html
    form = html.split(f'action="{action_url(txn, "pay")}"')[1].split("</form>")[0]
    assert 'name="csrfmiddlewaretoken"' in form


def test_the_page_can_also_be_reached_by_reference() -> None:
    start(reference="ORD-REF")
    response = english().get("/payments/sandbox/ORD-REF/")
    assert response.status_code == 200
    assert "ORD-REF" in response.content.decode()


def test_paying_marks_paid_queues_one_notification_and_links_back() -> None:
    txn = start(return_url="https://shop.example.com/orders/ORD-1")
    client = english()
    response = client.post(action_url(txn, "pay"))
    assert response.status_code == 302
    assert response["Location"] == page_url(txn)
    txn.refresh_from_db()
    assert txn.status == SandboxTransaction.Status.PAID
    deliveries = SandboxDelivery.objects.filter(transaction=txn)
    assert [d.event for d in deliveries] == ["paid"]
    assert deliveries[0].next_attempt_at is not None

    html = client.get(page_url(txn)).content.decode()
    assert "This payment is paid." in html
    assert 'href="https://shop.example.com/orders/ORD-1"' in html
    assert "Back to the merchant" in html
    assert 'action="' + action_url(txn, "pay") not in html


def test_a_second_pay_does_nothing_and_says_it_is_already_settled() -> None:
    txn = start()
    client = english()
    client.post(action_url(txn, "pay"))
    paid_at = SandboxTransaction.objects.get(pk=txn.pk).paid_at
    response = client.post(action_url(txn, "pay"), follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert "This payment is already settled." in html
    assert "This payment is paid." in html
    assert SandboxDelivery.objects.filter(transaction=txn).count() == 1
    assert SandboxTransaction.objects.get(pk=txn.pk).paid_at == paid_at


@pytest.mark.parametrize(
    ("action", "status", "event", "text"),
    [
        ("fail", "failed", "failed", "This payment failed."),
        ("abandon", "abandoned", "abandoned", "This payment was abandoned."),
    ],
)
def test_fail_and_abandon_settle_and_queue_their_notification(
    action: str, status: str, event: str, text: str
) -> None:
    txn = start()
    response = english().post(action_url(txn, action), follow=True)
    txn.refresh_from_db()
    assert txn.status == status
    assert list(SandboxDelivery.objects.values_list("event", flat=True)) == [event]
    assert text in response.content.decode()


def test_an_expired_payment_shows_expired_without_buttons_and_cannot_be_paid() -> None:
    txn = start(expires_in=timedelta(minutes=-1))
    html = english().get(page_url(txn)).content.decode()
    assert "This payment has expired." in html
    for action in ("pay", "fail", "abandon"):
        assert action_url(txn, action) not in html
    response = english().post(action_url(txn, "pay"), follow=True)
    assert "This payment has expired." in response.content.decode()
    txn.refresh_from_db()
    assert txn.status == SandboxTransaction.Status.PENDING
    assert not SandboxDelivery.objects.exists()


def test_an_unknown_transaction_is_the_sites_404() -> None:
    response = english().get("/payments/sandbox/01NOSUCHTRANSACTION0000000/")
    assert response.status_code == 404
    assert english().post("/payments/sandbox/01NOSUCHTRANSACTION0000000/pay/").status_code == 404


def test_an_unknown_action_is_404_and_changes_nothing() -> None:
    txn = start()
    assert english().post(action_url(txn, "refund")).status_code == 404
    txn.refresh_from_db()
    assert txn.status == SandboxTransaction.Status.PENDING


def test_get_of_an_action_url_is_405() -> None:
    txn = start()
    assert english().get(action_url(txn, "pay")).status_code == 405
    txn.refresh_from_db()
    assert txn.status == SandboxTransaction.Status.PENDING


def test_actions_need_the_csrf_token() -> None:
    txn = start()
    client = Client(enforce_csrf_checks=True)
    assert client.post(action_url(txn, "pay")).status_code == 403
    txn.refresh_from_db()
    assert txn.status == SandboxTransaction.Status.PENDING


def test_an_unsafe_return_url_is_not_linked() -> None:
    txn = start(return_url="javascript:alert(1)")
    html = english().post(action_url(txn, "pay"), follow=True).content.decode()
    assert "javascript:alert" not in html
    assert "Back to the merchant" not in html


def test_the_page_is_gone_when_the_sandbox_provider_is_disabled(
    settings: Settings,
) -> None:
    txn = start()
    settings.PIAOWU_PAYMENT_PROVIDERS = ["alipay"]
    assert english().get(page_url(txn)).status_code == 404
    assert english().post(action_url(txn, "pay")).status_code == 404


def test_the_page_uses_the_site_layout_in_the_chosen_language() -> None:
    txn = start()
    html = Client(headers={"accept-language": "zh-hans"}).get(page_url(txn)).content.decode()
    assert '<html lang="zh-hans">' in html
    assert "site-header" in html


# --- Console ----------------------------------------------------------------------------------


def test_operators_see_the_deliveries_read_only(make_user: Callable[..., User]) -> None:
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    staff = make_user(email="staff@example.com", is_staff=True)
    txn = start()
    english().post(action_url(txn, "pay"))
    delivery = SandboxDelivery.objects.get()
    client = english()
    client.force_login(root)
    listing = client.get("/admin/payments/sandboxdelivery/")
    assert listing.status_code == 200
    assert "ORD-1" in listing.content.decode()
    assert client.get("/admin/payments/sandboxtransaction/").status_code == 200
    assert client.get("/admin/payments/sandboxdelivery/add/").status_code == 403
    detail = client.get(f"/admin/payments/sandboxdelivery/{delivery.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()

    client.force_login(staff)
    assert client.get("/admin/payments/sandboxdelivery/").status_code == 403


def test_redeliver_now_makes_pending_deliveries_due_and_leaves_delivered_ones(
    make_user: Callable[..., User],
) -> None:
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    pending_txn, done_txn = start("ORD-A"), start("ORD-B")
    client = english()
    client.post(action_url(pending_txn, "pay"))
    client.post(action_url(done_txn, "pay"))
    later = timezone.now() + timedelta(hours=1)
    delivered_at = timezone.now()
    SandboxDelivery.objects.filter(transaction=pending_txn).update(next_attempt_at=later, attempt=8)
    SandboxDelivery.objects.filter(transaction=done_txn).update(
        next_attempt_at=None, delivered_at=delivered_at
    )
    client.force_login(root)
    before = timezone.now()
    response = client.post(
        "/admin/payments/sandboxdelivery/",
        {
            "action": "redeliver_now",
            "_selected_action": [
                str(pk) for pk in SandboxDelivery.objects.values_list("pk", flat=True)
            ],
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "1 notification will be sent again shortly." in response.content.decode()
    pending = SandboxDelivery.objects.get(transaction=pending_txn)
    assert pending.next_attempt_at is not None
    assert before <= pending.next_attempt_at <= timezone.now()
    done = SandboxDelivery.objects.get(transaction=done_txn)
    assert done.next_attempt_at is None
    assert done.delivered_at == delivered_at


def test_redeliver_action_does_nothing_for_a_non_operator(
    make_user: Callable[..., User],
) -> None:
    staff = make_user(email="staff@example.com", is_staff=True)
    txn = start()
    english().post(action_url(txn, "pay"))
    later = timezone.now() + timedelta(hours=1)
    SandboxDelivery.objects.update(next_attempt_at=later)
    request = RequestFactory().post("/admin/payments/sandboxdelivery/")
    request.user = staff
    request.session = {}  # type: ignore[assignment]
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    from django.contrib import admin

    model_admin = SandboxDeliveryAdmin(SandboxDelivery, admin.site)
    model_admin.redeliver_now(request, SandboxDelivery.objects.all())
    assert SandboxDelivery.objects.get().next_attempt_at == later
    request.user = AnonymousUser()
    assert not model_admin.has_view_permission(request)
