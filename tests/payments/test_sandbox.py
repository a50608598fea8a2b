from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta

import pytest

from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.payments import services
from piaowu.payments.models import SandboxDelivery, SandboxTransaction
from piaowu.payments.providers import get_provider
from piaowu.payments.providers.base import NOTIFICATION_MAX_SKEW_SECONDS, PaymentRequest
from piaowu.payments.providers.sandbox import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SandboxProvider,
    sign,
    signed_notification,
)
from tests.payments.helpers import Recorded, Reply, local_server

pytestmark = pytest.mark.django_db


def start(
    reference: str = "ORD-1", amount: str = "120.00", notify_url: str = "http://127.0.0.1:9/n"
) -> SandboxTransaction:
    SandboxProvider().start(
        PaymentRequest(
            reference=reference,
            amount=Money.of(amount, "CNY"),
            subject="Concert",
            notify_url=notify_url,
        )
    )
    return SandboxTransaction.objects.get(reference=reference)


def paid_notification(now: datetime | None = None) -> tuple[dict[str, str], bytes]:
    txn = services.sandbox_pay(transaction=start())
    return signed_notification(txn, now=now)


def error_code(headers: Mapping[str, str], body: bytes, now: datetime | None = None) -> str:
    with pytest.raises(DomainError) as caught:
        SandboxProvider().parse_notification(headers=headers, body=body, now=now)
    return caught.value.code


def test_start_opens_a_pending_transaction_with_a_hosted_page() -> None:
    result = SandboxProvider().start(
        PaymentRequest(
            reference="ORD-1", amount=Money.of("9.9", "CNY"), subject="S", notify_url="http://x/n"
        )
    )
    txn = SandboxTransaction.objects.get(reference="ORD-1")
    assert txn.status == "pending"
    assert str(txn.amount) == "9.90"
    assert result.provider == "sandbox"
    assert result.provider_reference == txn.public_id
    assert result.redirect_url == f"/payments/sandbox/{txn.public_id}/"


def test_start_again_returns_the_same_transaction_but_refuses_another_amount() -> None:
    first = start()
    assert start().pk == first.pk
    with pytest.raises(DomainError) as caught:
        start(amount="1.00")
    assert caught.value.code == "payment_reference_used"


def test_start_refuses_a_zero_amount() -> None:
    with pytest.raises(DomainError) as caught:
        start(amount="0")
    assert caught.value.code == "payment_amount_invalid"


def test_good_notification_is_accepted_and_parsed() -> None:
    headers, body = paid_notification()
    txn = SandboxTransaction.objects.get(reference="ORD-1")

    note = SandboxProvider().parse_notification(headers=headers, body=body)

    assert note.reference == "ORD-1"
    assert note.provider_transaction_id == txn.public_id
    assert note.amount == Money.of("120.00", "CNY")
    assert note.status == "paid"
    assert note.paid_at == txn.paid_at


def test_django_meta_style_headers_are_understood() -> None:
    headers, body = paid_notification()
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    assert SandboxProvider().parse_notification(headers=meta, body=body).status == "paid"


def test_signature_with_another_key_is_rejected() -> None:
    headers, body = paid_notification()
    headers[HEADER_SIGNATURE] = sign(
        timestamp=headers[HEADER_TIMESTAMP], nonce=headers[HEADER_NONCE], body=body, key=b"x"
    )
    assert error_code(headers, body) == "notification_invalid_signature"


def test_tampered_amount_is_rejected() -> None:
    headers, body = paid_notification()
    tampered = body.replace(b'"120.00"', b'"0.01"')
    assert tampered != body
    assert error_code(headers, tampered) == "notification_invalid_signature"


def test_missing_signature_is_rejected() -> None:
    headers, body = paid_notification()
    del headers[HEADER_SIGNATURE]
    assert error_code(headers, body) == "notification_invalid_signature"


def test_replayed_nonce_is_rejected() -> None:
    headers, body = paid_notification()
    SandboxProvider().parse_notification(headers=headers, body=body)
    assert error_code(headers, body) == "notification_replayed"


def test_stale_timestamp_is_rejected() -> None:
    headers, body = paid_notification(now=clock.now() - timedelta(minutes=6))
    assert error_code(headers, body) == "notification_stale"


def test_timestamp_from_the_future_is_rejected() -> None:
    headers, body = paid_notification(now=clock.now() + timedelta(minutes=6))
    assert error_code(headers, body) == "notification_stale"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b'{"reference": "ORD-1"}',
        b'{"reference":"R","transaction_id":"T",'
        b'"amount":"abc","currency":"CNY","status":"paid","paid_at":"2026-01-01T00:00:00+00:00"}',
    ],
)
def test_malformed_but_correctly_signed_body_is_rejected(body: bytes) -> None:
    timestamp, nonce = str(int(clock.now().timestamp())), "n-1"
    headers = {
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(timestamp=timestamp, nonce=nonce, body=body),
    }
    assert error_code(headers, body) == "notification_malformed"


def test_fail_and_abandon_notify_failed_and_closed() -> None:
    provider = SandboxProvider()
    headers, body = signed_notification(services.sandbox_fail(transaction=start("ORD-F")))
    assert provider.parse_notification(headers=headers, body=body).status == "failed"
    headers, body = signed_notification(services.sandbox_abandon(transaction=start("ORD-A")))
    note = provider.parse_notification(headers=headers, body=body)
    assert note.status == "closed"
    assert note.paid_at is None


def test_a_settled_transaction_cannot_be_paid_again() -> None:
    txn = services.sandbox_pay(transaction=start())
    with pytest.raises(DomainError) as caught:
        services.sandbox_fail(transaction=txn)
    assert caught.value.code == "payment_not_pending"
    assert SandboxDelivery.objects.filter(transaction=txn).count() == 1


def test_an_expired_transaction_cannot_be_paid() -> None:
    txn = start()
    txn.expires_at = clock.now() - timedelta(seconds=1)
    txn.save()
    with pytest.raises(DomainError) as caught:
        services.sandbox_pay(transaction=txn)
    assert caught.value.code == "payment_expired"


def test_query_reports_the_transaction_state() -> None:
    provider = SandboxProvider()
    assert provider.query(reference="nope").status == "not_found"
    txn = start()
    assert provider.query(reference="ORD-1").status == "pending"
    services.sandbox_pay(transaction=txn)
    status = provider.query(reference="ORD-1")
    assert status.status == "paid"
    assert status.amount == Money.of("120", "CNY")


def test_delivery_retries_with_backoff_until_acknowledged() -> None:
    def responder(request: Recorded) -> Reply:
        return Reply(500) if len(seen) <= 2 else Reply(200, b'{"code":"SUCCESS"}')

    with local_server(responder) as (url, seen):
        txn = services.sandbox_pay(transaction=start(notify_url=url + "/notify"))
        delivery = SandboxDelivery.objects.get(transaction=txn)
        t0 = clock.now()

        assert services.sandbox_deliver_due(now=t0) == 1
        delivery.refresh_from_db()
        assert (delivery.attempt, delivery.last_status) == (1, 500)
        assert delivery.next_attempt_at == t0 + timedelta(seconds=5)

        assert services.sandbox_deliver_due(now=t0 + timedelta(seconds=4)) == 0  # not yet due
        assert services.sandbox_deliver_due(now=t0 + timedelta(seconds=5)) == 1
        delivery.refresh_from_db()
        assert delivery.next_attempt_at == t0 + timedelta(seconds=20)  # 5 s + 15 s

        t3 = t0 + timedelta(seconds=20)
        assert services.sandbox_deliver_due(now=t3) == 1
        delivery.refresh_from_db()
        assert (delivery.attempt, delivery.last_status, delivery.delivered_at) == (3, 200, t3)
        assert services.sandbox_deliver_due(now=t3 + timedelta(days=1)) == 0

    assert [r.path for r in seen] == ["/notify"] * 3
    assert len({r.headers[HEADER_NONCE] for r in seen}) == 3  # a fresh nonce per attempt
    last = seen[-1]
    note = SandboxProvider().parse_notification(headers=last.headers, body=last.body, now=t3)
    assert (note.reference, note.status) == ("ORD-1", "paid")
    assert json.loads(last.body)["amount"] == "120.00"


def test_a_long_delivery_run_signs_each_notification_when_it_sends_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run working through a backlog takes minutes; a notification signed when the run began
    would arrive stale and be refused (found at a hot on-sale: orders never marked paid)."""
    moment = [clock.now()]
    monkeypatch.setattr("piaowu.core.clock.now", lambda: moment[0])
    for number in range(3):
        services.sandbox_pay(transaction=start(reference=f"ORD-{number}"))
    answers: list[str] = []

    def slow_receiver(url: str, headers: Mapping[str, str], body: bytes) -> int:
        try:
            SandboxProvider().parse_notification(headers=dict(headers), body=body, now=moment[0])
            answers.append("ok")
        except DomainError as refused:
            answers.append(refused.code)
        moment[0] += timedelta(seconds=NOTIFICATION_MAX_SKEW_SECONDS + 1)  # a slow send
        return 200

    assert services.sandbox_deliver_due(send=slow_receiver) == 3
    assert answers == ["ok", "ok", "ok"]
    delivered = sorted(SandboxDelivery.objects.values_list("delivered_at", flat=True))
    assert len(set(delivered)) == 3  # each stamped when it was sent


def test_delivery_gives_up_after_max_attempts() -> None:
    calls: list[str] = []

    def refuse(url: str, headers: Mapping[str, str], body: bytes) -> int:
        calls.append(url)
        return 503

    txn = services.sandbox_pay(transaction=start())
    now = clock.now()
    for _ in range(services.DELIVERY_MAX_ATTEMPTS + 3):
        services.sandbox_deliver_due(now=now, send=refuse)
        now += timedelta(hours=2)

    delivery = SandboxDelivery.objects.get(transaction=txn)
    assert len(calls) == services.DELIVERY_MAX_ATTEMPTS
    assert delivery.attempt == services.DELIVERY_MAX_ATTEMPTS
    assert delivery.next_attempt_at is None
    assert delivery.delivered_at is None


def test_delivery_to_an_unreachable_url_counts_as_a_failed_attempt() -> None:
    with local_server(lambda r: Reply(200)) as (url, _seen):
        pass  # server closed: the port now refuses connections
    txn = services.sandbox_pay(transaction=start(notify_url=url + "/gone"))
    assert services.sandbox_deliver_due() == 1
    delivery = SandboxDelivery.objects.get(transaction=txn)
    assert (delivery.attempt, delivery.last_status, delivery.delivered_at) == (1, 0, None)


def test_backoff_grows_and_is_capped() -> None:
    delays = [services.delivery_backoff(n).total_seconds() for n in range(1, 10)]
    assert delays[:4] == [5, 15, 45, 135]
    assert max(delays) == services.DELIVERY_MAX_DELAY_SECONDS


def test_refund_is_idempotent_on_refund_reference() -> None:
    services.sandbox_pay(transaction=start())
    provider = SandboxProvider()
    first = provider.refund(
        reference="ORD-1", refund_reference="RF-1", amount=Money.of("20", "CNY")
    )
    again = provider.refund(
        reference="ORD-1", refund_reference="RF-1", amount=Money.of("20", "CNY")
    )
    assert first == again
    assert first.status == "succeeded"
    txn = SandboxTransaction.objects.get(reference="ORD-1")
    assert txn.refunds.count() == 1

    with pytest.raises(DomainError) as caught:
        provider.refund(reference="ORD-1", refund_reference="RF-1", amount=Money.of("5", "CNY"))
    assert caught.value.code == "refund_reference_conflict"


def test_refunds_cannot_exceed_the_payment() -> None:
    services.sandbox_pay(transaction=start())
    provider = SandboxProvider()
    provider.refund(reference="ORD-1", refund_reference="RF-1", amount=Money.of("100", "CNY"))
    with pytest.raises(DomainError) as caught:
        provider.refund(reference="ORD-1", refund_reference="RF-2", amount=Money.of("20.01", "CNY"))
    assert caught.value.code == "refund_exceeds_payment"
    provider.refund(reference="ORD-1", refund_reference="RF-3", amount=Money.of("20", "CNY"))


def test_refund_of_an_unpaid_or_unknown_payment_is_refused() -> None:
    start()
    provider = SandboxProvider()
    with pytest.raises(DomainError) as caught:
        provider.refund(reference="ORD-1", refund_reference="RF-1", amount=Money.of("1", "CNY"))
    assert caught.value.code == "payment_not_paid"
    with pytest.raises(DomainError) as caught:
        provider.refund(reference="nope", refund_reference="RF-2", amount=Money.of("1", "CNY"))
    assert caught.value.code == "payment_not_found"


def test_registry_returns_enabled_providers_only() -> None:
    assert get_provider("sandbox").name == "sandbox"
    for name in ("alipay", "paypal"):
        with pytest.raises(DomainError) as caught:
            get_provider(name)
        assert caught.value.code == "payment_provider_unavailable"


def test_acknowledgement_tells_the_gateway_to_stop_or_retry() -> None:
    assert SandboxProvider().acknowledgement(True).status == 200
    assert SandboxProvider().acknowledgement(False).status == 400
