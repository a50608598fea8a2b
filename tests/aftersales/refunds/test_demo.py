"""The demo seeds a refund rule for every event (so the demo can refund), once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from piaowu.accounts.models import Organizer
from piaowu.aftersales.models import RefundPolicy
from piaowu.aftersales.services.refunds import refund_quote
from piaowu.cli.demo_data import seed_refund_rules
from tests.aftersales.refunds.conftest import Clock, MakeBought, hours_before
from tests.factories import make_event

pytestmark = pytest.mark.django_db


def test_every_event_gets_the_demo_rule_once(
    bought: MakeBought, organizer: Organizer, clock: Clock
) -> None:
    purchase = bought()
    make_event(organizer, title="另一场演出")

    assert seed_refund_rules() == 2
    assert seed_refund_rules() == 0

    assert RefundPolicy.objects.count() == 2
    policy = RefundPolicy.objects.get(event=purchase.session.event)
    assert policy.minimum_fee == Decimal("2") and not policy.needs_approval
    assert list(policy.tiers.values_list("hours_before", "fee_percent")) == [
        (48, Decimal("0")),
        (24, Decimal("10")),
        (2, Decimal("20")),
    ]
    hours_before(clock, purchase.session, 30)
    assert refund_quote(order=purchase.order).fee.amount == Decimal("36.00")
