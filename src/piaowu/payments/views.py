"""The sandbox gateway's hosted pay page (what a buyer sees at an outside gateway).

`GET /payments/sandbox/<id>/` shows the payment; the Pay / Fail / Abandon buttons POST to
`…/pay/`, `…/fail/`, `…/abandon/`, which call the sandbox services and redirect back to the
page (post/redirect/get). `<id>` is the transaction's public id (what
`PIAOWU_SANDBOX_PAY_URL` puts in the URL) or, for convenience, the merchant's reference.
The page exists only while the `sandbox` provider is enabled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.core.money import Money
from piaowu.payments.models import SandboxTransaction
from piaowu.payments.providers import enabled_providers
from piaowu.payments.services import sandbox_abandon, sandbox_fail, sandbox_pay

Action = Callable[..., SandboxTransaction]

ACTIONS: dict[str, Action] = {
    "pay": sandbox_pay,
    "fail": sandbox_fail,
    "abandon": sandbox_abandon,
}


def _transaction(transaction_id: str) -> SandboxTransaction:
    if "sandbox" not in enabled_providers():
        raise Http404(_("This payment does not exist."))
    txn = (
        SandboxTransaction.objects.filter(Q(public_id=transaction_id) | Q(reference=transaction_id))
        .order_by("pk")
        .first()
    )
    if txn is None:
        raise Http404(_("This payment does not exist."))
    return txn


def _is_expired(txn: SandboxTransaction, now: datetime) -> bool:
    return (
        txn.status == SandboxTransaction.Status.PENDING
        and txn.expires_at is not None
        and txn.expires_at <= now
    )


def _is_safe_return_url(url: str) -> bool:
    """Only web addresses become a link (never `javascript:` and the like)."""
    return url.startswith(("https://", "http://")) or (url.startswith("/") and "//" not in url)


@require_GET
def sandbox_page(request: HttpRequest, transaction_id: str) -> HttpResponse:
    txn = _transaction(transaction_id)
    now = clock.now()
    expired = _is_expired(txn, now)
    pending = txn.status == SandboxTransaction.Status.PENDING and not expired
    seconds_left = (
        max(int((txn.expires_at - now).total_seconds()), 0)
        if pending and txn.expires_at is not None
        else None
    )
    context = {
        "txn": txn,
        "amount": str(Money(txn.amount, txn.currency)),
        "pending": pending,
        "expired": expired,
        "seconds_left": seconds_left,
        "minutes_left": (seconds_left + 59) // 60 if seconds_left is not None else None,
        "countdown_label": _("Time left to pay: %(time)s"),
        "return_url": txn.return_url if _is_safe_return_url(txn.return_url) else "",
    }
    return render(request, "payments/sandbox_page.html", context)


@require_POST
def sandbox_action(request: HttpRequest, transaction_id: str, action: str) -> HttpResponse:
    service = ACTIONS.get(action)
    if service is None:
        raise Http404(_("This payment does not exist."))
    txn = _transaction(transaction_id)
    try:
        service(transaction=txn)
    except DomainError as exc:
        messages.error(request, str(exc.message))
    return redirect("payments:sandbox", transaction_id=txn.public_id)
