"""`order_purchase`: hold and check out in one request — either an order awaiting payment
exists afterwards or nothing was held (no `Hold`, no `Order` row)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum
from pytest_django.fixtures import Settings

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import SalesChannel, Session
from piaowu.catalog.services import TierSpec
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, QuotaAllocation, SeatState
from piaowu.inventory.selectors import session_seat_states
from piaowu.inventory.services import hold_seats, session_inventory_ensure
from piaowu.orders.models import Order
from piaowu.orders.services import normalize_phone, order_purchase
from piaowu.orders.states import OrderState
from tests.orders.conftest import PHONE, Clock, web_channel
from tests.races import race

MakeSession = Callable[..., Session]


def purchase(session: Session, holder_key: str = "buyer", **kw: Any) -> Order:
    kw.setdefault("contact_phone", PHONE)
    kw.setdefault("channel", web_channel(session.event.organizer))
    return order_purchase(session=session, holder_key=holder_key, **kw)


def seat_states(session: Session, *codes: str) -> list[str]:
    found = session_seat_states(session)
    return [found[code] for code in codes]


# --- What it buys ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_named_seats_become_an_order_awaiting_payment(
    reserved_session: MakeSession, clock: Clock
) -> None:
    session = reserved_session()

    order = purchase(session, seat_codes=["M-1-5", "M-1-6"])

    hold = Hold.objects.get(pk=order.hold_id)
    assert order.state == OrderState.AWAITING_PAYMENT
    assert (order.total_amount, order.currency) == (Decimal("360.00"), "CNY")
    assert sorted(order.lines.values_list("seat__code", flat=True)) == ["M-1-5", "M-1-6"]
    assert order.contact_phone == normalize_phone(PHONE)  # stored as digits: search finds it
    assert (hold.holder_key, hold.status) == ("buyer", Hold.Status.ACTIVE)
    assert hold.expires_at == order.payment_deadline
    assert seat_states(session, "M-1-5", "M-1-6") == ["held", "held"]
    assert order.history.get().to_state == OrderState.AWAITING_PAYMENT


@pytest.mark.django_db
def test_best_available_seats_are_adjacent(reserved_session: MakeSession) -> None:
    session = reserved_session()

    order = purchase(session, quantity=3)

    codes = sorted(order.lines.values_list("seat__code", flat=True))
    assert len(codes) == 3 and order.total_amount == Decimal("540.00")
    rows = {code.rsplit("-", 1)[0] for code in codes}
    numbers = sorted(int(code.rsplit("-", 1)[1]) for code in codes)
    assert len(rows) == 1 and numbers == list(range(numbers[0], numbers[0] + 3))
    assert seat_states(session, *codes) == ["held"] * 3


@pytest.mark.django_db
def test_general_admission_tier_and_quantity(ga_session: MakeSession) -> None:
    session = ga_session(capacity=20)

    order = purchase(session, tier_code="ga", quantity=3)

    line = order.lines.get()
    assert (line.tier.code, line.quantity, line.seat_id) == ("ga", 3, None)
    assert order.total_amount == Decimal("840.00")
    allocated = QuotaAllocation.objects.filter(hold_id=order.hold_id, state="active")
    assert allocated.aggregate(n=Sum("quantity"))["n"] == 3


@pytest.mark.django_db
def test_a_signed_in_customer_needs_no_phone(
    reserved_session: MakeSession, make_user: Callable[..., User]
) -> None:
    customer = make_user()
    order = purchase(reserved_session(), seat_codes=["M-2-1"], customer=customer, contact_phone="")
    assert order.customer == customer and order.contact_phone == ""


# --- Bad input leaves nothing behind -----------------------------------------------------------


def assert_nothing_left(session: Session, holds_before: int = 0) -> None:
    assert Hold.objects.filter(session=session).count() == holds_before
    assert not Order.objects.filter(session=session).exists()
    assert not SeatState.objects.filter(session=session, hold__holder_key="buyer").exists()
    assert not QuotaAllocation.objects.filter(hold__session=session, state="active").exists()


def refused(session: Session, **kw: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        purchase(session, **kw)
    return caught.value


@pytest.mark.django_db
def test_a_taken_seat_is_named_and_nothing_is_held(reserved_session: MakeSession) -> None:
    session = reserved_session()
    hold_seats(session=session, seat_codes=["M-1-6"], holder_key="someone-else")

    error = refused(session, seat_codes=["M-1-5", "M-1-6"])

    assert error.code == "seat_taken" and error.details["seats"] == ["M-1-6"]
    assert "M-1-6" in str(error.message)
    assert_nothing_left(session, holds_before=1)
    assert seat_states(session, "M-1-5") == ["available"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"contact_phone": ""}, "contact_required"),
        ({"contact_phone": "call me maybe"}, "invalid_phone"),
        ({"seat_codes": [f"M-1-{n}" for n in range(1, 8)]}, "over_limit"),
        ({"seat_codes": ["Z-9-9"]}, "seat_not_in_session"),
        ({"seat_codes": []}, "no_seats"),
        ({"quantity": None}, "invalid_quantity"),
    ],
    ids=["no-contact", "bad-phone", "over-limit", "no-such-seat", "no-seats", "no-quantity"],
)
def test_bad_input_for_reserved_seats_is_refused(
    reserved_session: MakeSession, kw: dict[str, Any], code: str
) -> None:
    session = reserved_session()
    if "quantity" not in kw:
        kw.setdefault("seat_codes", ["M-1-5", "M-1-6"])
    assert refused(session, **kw).code == code
    assert_nothing_left(session)


@pytest.mark.django_db
def test_sales_closed_is_refused(reserved_session: MakeSession) -> None:
    session = reserved_session(sales_open_in=dt.timedelta(days=1))
    error = refused(session, seat_codes=["M-1-5"])
    assert (error.code, error.details["sales_state"]) == ("sales_closed", "not_open")
    assert_nothing_left(session)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"tier_code": "ga", "quantity": 7}, "over_limit"),
        ({"tier_code": "ga", "quantity": 21}, "over_limit"),
        ({"tier_code": "vip", "quantity": 1}, "tier_not_found"),
        ({"tier_code": None, "quantity": 1}, "tier_required"),
    ],
)
def test_bad_input_for_general_admission_is_refused(
    ga_session: MakeSession, kw: dict[str, Any], code: str
) -> None:
    session = ga_session(capacity=20)
    assert refused(session, **kw).code == code
    assert_nothing_left(session)


@pytest.mark.django_db
def test_sold_out_says_how_many_are_left(ga_session: MakeSession) -> None:
    session = ga_session(capacity=5)
    purchase(session, holder_key="first", tier_code="ga", quantity=4)

    error = refused(session, tier_code="ga", quantity=2)

    assert (error.code, error.details["available"]) == ("sold_out", 1)
    assert Hold.objects.filter(session=session).count() == 1
    assert Order.objects.filter(session=session).count() == 1


@pytest.mark.django_db
def test_a_refusal_after_the_seats_were_held_rolls_the_hold_back(
    reserved_session: MakeSession,
) -> None:
    # Mixed currencies are found only when the order is priced, after the seats are already
    # held: the one transaction must take the hold back too.
    session = reserved_session(
        vip_rows=(1,),
        tiers=[
            TierSpec(code="std", name="标准票", price=Decimal("180")),
            TierSpec(
                code="vip", name="贵宾票", price=Decimal("480"), currency="HKD", seat_type="vip"
            ),
        ],
    )

    error = refused(session, seat_codes=["M-1-5", "M-2-5"])

    assert error.code == "mixed_currency"
    assert_nothing_left(session)
    assert seat_states(session, "M-1-5", "M-2-5") == ["available", "available"]


@pytest.mark.django_db
def test_a_foreign_channel_is_refused(
    reserved_session: MakeSession, other_organizer: Organizer
) -> None:
    session = reserved_session()
    foreign = SalesChannel.objects.get(organizer=other_organizer, kind=SalesChannel.Kind.WEB)

    error = refused(session, seat_codes=["M-1-5", "M-1-6"], channel=foreign)

    assert error.code == "channel_mismatch"
    assert_nothing_left(session)


@pytest.mark.django_db
def test_an_inactive_channel_is_refused(organizer: Organizer, ga_session: MakeSession) -> None:
    session = ga_session(capacity=20)
    channel = web_channel(organizer)
    SalesChannel.objects.filter(pk=channel.pk).update(is_active=False)
    channel.refresh_from_db()

    error = refused(session, tier_code="ga", quantity=2, channel=channel)

    assert error.code == "channel_inactive"
    assert_nothing_left(session)


# --- Real races on PostgreSQL ----------------------------------------------------------------


def no_orphan_holds(session: Session) -> bool:
    """Every hold that still claims inventory belongs to an order."""
    live = Hold.objects.filter(
        session=session, status__in=[Hold.Status.ACTIVE, Hold.Status.CONVERTED]
    )
    return not live.filter(order__isnull=True).exists()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("unsafe", [False, True], ids=["protected", "control"])
def test_thirty_two_buyers_purchasing_from_twenty_admissions(
    transactional_db: None, ga_session: MakeSession, settings: Settings, unsafe: bool
) -> None:
    settings.PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE = unsafe
    session = ga_session(capacity=20)
    # Created up front, so the buyers race for admissions, not to create the quota rows.
    session_inventory_ensure(session)

    def buy(i: int) -> Any:
        own = Session.objects.select_related("event").get(pk=session.pk)
        return purchase(own, holder_key=f"buyer-{i}", tier_code="ga", quantity=1)

    results = race([lambda i=i: buy(i) for i in range(32)])  # type: ignore[misc]

    orders = Order.objects.filter(session=session).count()
    claimed = (
        QuotaAllocation.objects.filter(
            hold__session=session, state__in=["active", "converted"]
        ).aggregate(n=Sum("quantity"))["n"]
        or 0
    )
    if unsafe:
        # The control: a read-then-write quota lets more buyers in than there are admissions.
        assert orders > 20 and claimed > 20, results
        return
    assert sum(isinstance(r, Order) for r in results) == 20, results
    assert results.count("sold_out") == 12, results
    assert orders == claimed == 20
    assert Hold.objects.filter(session=session).count() == 20  # the refused left no hold
    assert no_orphan_holds(session)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("unsafe", [False, True], ids=["protected", "control"])
def test_buyers_purchasing_the_same_two_seats(
    transactional_db: None, reserved_session: MakeSession, settings: Settings, unsafe: bool
) -> None:
    settings.PIAOWU_INVENTORY_UNSAFE_READ_THEN_WRITE = unsafe
    session = reserved_session()
    # Created up front: otherwise the first buyer's uncommitted seat rows queue the others.
    session_inventory_ensure(session)

    def buy(i: int) -> Any:
        own = Session.objects.select_related("event").get(pk=session.pk)
        return purchase(own, holder_key=f"buyer-{i}", seat_codes=["M-1-5", "M-1-6"])

    results = race([lambda i=i: buy(i) for i in range(8)])  # type: ignore[misc]

    orders = Order.objects.filter(session=session).count()
    if unsafe:
        assert orders > 1, results  # the control: two orders for the same seats
        return
    assert orders == 1
    assert (
        sorted(r if isinstance(r, str) else "order" for r in results)
        == ["order"] + ["seat_taken"] * 7
    ), results
    assert Hold.objects.filter(session=session).count() == 1
    assert no_orphan_holds(session)
    assert seat_states(session, "M-1-5", "M-1-6") == ["held", "held"]
