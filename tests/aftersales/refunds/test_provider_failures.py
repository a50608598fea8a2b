"""Provider refund failures: retried with backoff by `refunds_process_due`; after the last
attempt the refund is `failed` and the organizer's staff are alerted; a staff retry refunds
once, because the provider is asked with the same refund number (the sandbox's refund is
idempotent on it)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from piaowu.accounts.models import User
from piaowu.aftersales.models import Notice, Refund, RefundHistory
from piaowu.aftersales.services.refunds import (
    MAX_ATTEMPTS,
    refund_request,
    refund_retry,
    refunds_process_due,
    retry_delay,
)
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.orders.states import OrderState
from piaowu.payments.models import LedgerEntry, Payment, SandboxRefund
from piaowu.payments.providers.base import RefundResult, provider_error
from piaowu.payments.providers.sandbox import SandboxProvider
from tests.aftersales.refunds.conftest import MakeBought, refund_rule

pytestmark = pytest.mark.django_db

REAL_REFUND = SandboxProvider.refund


class Gateway:
    """Stands in for the sandbox's refund: fails `failures` times (raising, or answering
    `failed`), then refunds for real. Counts the calls."""

    def __init__(self, failures: int, *, answer_failed: bool = False, lose_answer: bool = False):
        self.failures = failures
        self.answer_failed = answer_failed
        self.lose_answer = lose_answer
        self.calls: list[str] = []

    def __call__(
        self, provider: SandboxProvider, *, reference: str, refund_reference: str, amount: Money
    ) -> RefundResult:
        self.calls.append(refund_reference)
        if len(self.calls) <= self.failures:
            if self.lose_answer:
                # The refund is made, but the answer never comes back (a timeout).
                REAL_REFUND(
                    provider, reference=reference, refund_reference=refund_reference, amount=amount
                )
                raise TimeoutError("read timed out")
            if self.answer_failed:
                return RefundResult(reference, refund_reference, amount, "failed")
            raise provider_error("sandbox", "gateway unavailable")
        return REAL_REFUND(
            provider, reference=reference, refund_reference=refund_reference, amount=amount
        )


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(failures: int, **kw: bool) -> Gateway:
        fake = Gateway(failures, **kw)

        def refund(self: SandboxProvider, **call: Any) -> RefundResult:
            return fake(self, **call)

        monkeypatch.setattr(SandboxProvider, "refund", refund)
        return fake

    return install


def failing_refund(bought: MakeBought, buyer: User) -> tuple[Any, Refund]:
    purchase = bought()
    refund_rule(purchase.session.event)
    refund = refund_request(order=purchase.order, tickets=purchase.tickets[:1], actor=buyer)
    return purchase, refund


def test_retry_delays_grow_and_are_capped() -> None:
    assert [retry_delay(n).total_seconds() for n in range(1, 8)] == [
        30,
        90,
        270,
        810,
        2430,
        3600,
        3600,
    ]


def test_a_failed_provider_call_is_retried_with_backoff_then_succeeds(
    gateway: Any, bought: MakeBought, buyer: User
) -> None:
    fake = gateway(2)
    purchase, refund = failing_refund(bought, buyer)

    # the inline attempt failed: processing, retried later
    refund.refresh_from_db()
    assert refund.state == Refund.State.PROCESSING and refund.attempts == 1
    assert "payment_provider_error" in refund.last_error
    assert refund.next_attempt_at is not None
    first_due = refund.next_attempt_at
    # the tickets are already given back and the money reserved, but not recorded as refunded
    assert Payment.objects.get(pk=purchase.payment.pk).refunded_amount == Decimal("180")
    assert not LedgerEntry.objects.filter(kind="refund").exists()

    # not before it is due
    assert refunds_process_due(now=first_due - dt.timedelta(seconds=1)) == 0
    assert len(fake.calls) == 1
    # then again, with a longer wait
    assert refunds_process_due(now=first_due) == 0
    refund.refresh_from_db()
    assert refund.attempts == 2 and refund.state == Refund.State.PROCESSING
    assert refund.next_attempt_at == first_due + retry_delay(2)
    # and the third time it goes through
    assert refunds_process_due(now=refund.next_attempt_at) == 1
    refund.refresh_from_db()
    assert refund.state == Refund.State.SUCCEEDED and refund.last_error == ""
    assert fake.calls == [refund.number] * 3  # always the same request number
    assert SandboxRefund.objects.filter(refund_reference=refund.number).count() == 1
    purchase.order.refresh_from_db()
    assert purchase.order.state == OrderState.PARTIALLY_REFUNDED


def test_a_provider_answering_failed_is_retried_like_an_error(
    gateway: Any, bought: MakeBought, buyer: User
) -> None:
    gateway(1, answer_failed=True)
    _purchase, refund = failing_refund(bought, buyer)

    refund.refresh_from_db()
    assert refund.state == Refund.State.PROCESSING
    assert refund.last_error == "provider answered: failed"
    assert refund.next_attempt_at is not None
    assert refunds_process_due(now=refund.next_attempt_at) == 1


def test_a_refund_made_whose_answer_was_lost_is_not_made_twice(
    gateway: Any, bought: MakeBought, buyer: User
) -> None:
    fake = gateway(1, lose_answer=True)
    purchase, refund = failing_refund(bought, buyer)
    refund.refresh_from_db()
    assert refund.state == Refund.State.PROCESSING and "TimeoutError" in refund.last_error
    assert refund.next_attempt_at is not None

    refunds_process_due(now=refund.next_attempt_at)

    refund.refresh_from_db()
    assert refund.state == Refund.State.SUCCEEDED and len(fake.calls) == 2
    assert SandboxRefund.objects.filter(refund_reference=refund.number).count() == 1
    assert LedgerEntry.objects.filter(order=purchase.order, kind="refund").count() == 1


def test_after_the_last_attempt_the_refund_fails_and_staff_are_alerted_then_a_retry_refunds_once(
    gateway: Any, bought: MakeBought, buyer: User, staff: User, finance: User
) -> None:
    fake = gateway(MAX_ATTEMPTS)
    purchase, refund = failing_refund(bought, buyer)
    refund.refresh_from_db()

    # the job keeps trying, each time when due
    while refund.state == Refund.State.PROCESSING:
        assert refund.next_attempt_at is not None
        refunds_process_due(now=refund.next_attempt_at)
        refund.refresh_from_db()

    assert refund.state == Refund.State.FAILED
    assert refund.attempts == MAX_ATTEMPTS == len(fake.calls)
    assert refund.next_attempt_at is None and "gateway unavailable" in refund.last_error
    assert RefundHistory.objects.filter(refund=refund, to_state="failed").count() == 1
    # the organizer's finance staff (and admins) are alerted; the service desk is not
    alerts = Notice.objects.filter(topic=f"refund:{refund.number}:failed:1")
    assert sorted(alerts.values_list("recipient", flat=True)) == ["finance@example.com"]
    alert = alerts.get()
    assert alert.kind == "email" and purchase.order.code in alert.body
    assert f"after {MAX_ATTEMPTS} attempts" in alert.body
    # a failed refund is left alone by the job
    assert refunds_process_due(now=refund.updated_at + dt.timedelta(days=1)) == 0
    assert len(fake.calls) == MAX_ATTEMPTS
    # the order is not refunded yet
    purchase.order.refresh_from_db()
    assert purchase.order.state == OrderState.PAID
    assert not LedgerEntry.objects.filter(kind="refund").exists()

    # staff retry: the gateway works again, the money goes back once
    refund_retry(refund=refund, actor=staff)

    refund.refresh_from_db()
    assert refund.state == Refund.State.SUCCEEDED and refund.attempts == 1
    retry = RefundHistory.objects.get(refund=refund, from_state="failed")
    assert (retry.to_state, retry.actor, retry.note) == ("approved", staff, "retry")
    assert SandboxRefund.objects.filter(refund_reference=refund.number).count() == 1
    assert LedgerEntry.objects.filter(kind="refund").count() == 1
    purchase.order.refresh_from_db()
    assert purchase.order.state == OrderState.PARTIALLY_REFUNDED
    # retrying a refund that is not failed is refused
    with pytest.raises(DomainError) as caught:
        refund_retry(refund=refund, actor=staff)
    assert caught.value.code == "refund_state_changed"


def test_a_retry_that_fails_again_alerts_staff_again(
    gateway: Any, bought: MakeBought, buyer: User, staff: User, finance: User
) -> None:
    gateway(10 * MAX_ATTEMPTS)
    _purchase, refund = failing_refund(bought, buyer)
    for _round in (1, 2):
        refund.refresh_from_db()
        while refund.state != Refund.State.FAILED:
            assert refund.next_attempt_at is not None
            refunds_process_due(now=refund.next_attempt_at)
            refund.refresh_from_db()
        if _round == 1:
            refund_retry(refund=refund, actor=staff)

    assert Notice.objects.filter(topic__startswith=f"refund:{refund.number}:failed:").count() == 2


def test_only_staff_who_may_refund_retry(
    gateway: Any, bought: MakeBought, buyer: User, finance: User
) -> None:
    gateway(MAX_ATTEMPTS)
    _purchase, refund = failing_refund(bought, buyer)
    refund.refresh_from_db()
    while refund.state == Refund.State.PROCESSING:
        assert refund.next_attempt_at is not None
        refunds_process_due(now=refund.next_attempt_at)
        refund.refresh_from_db()

    for actor in (buyer, finance):  # finance may see orders but not refund them
        with pytest.raises(DomainError) as caught:
            refund_retry(refund=refund, actor=actor)
        assert caught.value.code == "forbidden"
    assert Refund.objects.get(pk=refund.pk).state == Refund.State.FAILED


def test_one_broken_refund_does_not_stop_the_job_for_the_others(
    monkeypatch: pytest.MonkeyPatch, bought: MakeBought, buyer: User
) -> None:
    purchase = bought()
    refund_rule(purchase.session.event)
    refunds = [
        refund_request(order=purchase.order, tickets=[t], actor=buyer, process=False)
        for t in purchase.tickets
    ]

    def picky(
        provider: SandboxProvider, *, reference: str, refund_reference: str, amount: Money
    ) -> RefundResult:
        if refund_reference == refunds[0].number:
            raise RuntimeError("adapter bug")
        return REAL_REFUND(
            provider, reference=reference, refund_reference=refund_reference, amount=amount
        )

    monkeypatch.setattr(SandboxProvider, "refund", picky)

    assert refunds_process_due() == 1

    states = dict(Refund.objects.values_list("number", "state"))
    assert states == {refunds[0].number: "processing", refunds[1].number: "succeeded"}
    # the order is not fully refunded while one refund still owes money
    purchase.order.refresh_from_db()
    assert purchase.order.state == OrderState.PARTIALLY_REFUNDED
