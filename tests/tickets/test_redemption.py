"""Redemption codes: a batch of codes, each worth one ticket of a tier in any session of an
event; redeeming makes a paid zero-price order with its ticket and uses the code, all or
nothing, exactly once — also when two redemptions race (PostgreSQL, real threads)."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import CapacityMode, Event, Session
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import TierSpec, hall_create, seat_map_create
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold, SeatState
from piaowu.orders.models import Order
from piaowu.orders.states import OrderState
from piaowu.tickets import codec
from piaowu.tickets.models import Delivery, RedemptionBatch, RedemptionCode, Ticket, TicketHistory
from piaowu.tickets.selectors import redeemable_sessions
from piaowu.tickets.services import (
    MAX_BATCH_SIZE,
    redemption_batch_create,
    redemption_redeem,
    signing_key_active,
)
from tests.factories import make_event, make_session, make_venue
from tests.orders.conftest import PHONE, web_channel
from tests.races import race

SERIAL = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


class Festival:
    """One event: two GA sessions with tier `ga` (and `vip` on the first), one session with
    only `vip`, one reserved session whose front section sells `vip` and the rest `std`."""

    def __init__(self, organizer: Organizer) -> None:
        self.organizer = organizer
        self.event: Event = make_event(organizer, title="草莓音乐节")
        venue = make_venue(organizer, name="草地")
        ga = TierSpec(code="ga", name="通票", price=Decimal("280"))
        vip = TierSpec(code="vip", name="贵宾", price=Decimal("880"))
        self.day1 = make_session(
            self.event,
            venue=venue,
            capacity_mode=CapacityMode.GENERAL,
            capacity=20,
            tiers=[ga, vip],
            code="day1",
        )
        self.day2 = make_session(
            self.event,
            venue=venue,
            capacity_mode=CapacityMode.GENERAL,
            capacity=1,
            tiers=[ga],
            starts_in=dt.timedelta(days=4),
            code="day2",
        )
        self.vip_only = make_session(
            self.event,
            venue=venue,
            capacity_mode=CapacityMode.GENERAL,
            capacity=5,
            tiers=[vip],
            starts_in=dt.timedelta(days=5),
            code="vip",
        )
        hall = hall_create(venue=make_venue(organizer, name="大剧院"), name="主厅")
        spec = generate_rectangular(
            [
                RectBlock(section="V", name="贵宾区", rows=1, seats_per_row=4, entrance="A口"),
                RectBlock(
                    section="M", name="池座", rows=2, seats_per_row=6, origin_y=40, entrance="B口"
                ),
            ]
        )
        seat_map_create(hall=hall, spec=spec, source="generator")
        self.reserved = make_session(
            self.event,
            venue=hall.venue,
            hall=hall,
            tiers=[
                TierSpec(code="vip", name="贵宾", price=Decimal("880"), section_codes="V"),
                TierSpec(code="std", name="标准", price=Decimal("380"), section_codes="M"),
            ],
            starts_in=dt.timedelta(days=6),
            code="theatre",
        )

    def batch(self, tier_code: str = "ga", size: int = 3, **kw: Any) -> RedemptionBatch:
        kw.setdefault("valid_until", timezone.now() + dt.timedelta(days=30))
        return redemption_batch_create(
            organizer=self.organizer,
            event=self.event,
            tier_code=tier_code,
            name=kw.pop("name", "腾讯员工福利"),
            size=size,
            actor=None,
            **kw,
        )


@pytest.fixture
def festival(organizer: Organizer) -> Festival:
    return Festival(organizer)


def codes_of(batch: RedemptionBatch) -> list[str]:
    return list(batch.codes.order_by("id").values_list("code", flat=True))


def redeem(code: str, session: Session, **kw: Any) -> Order:
    kw.setdefault("holder_key", "redeemer")
    kw.setdefault("contact_phone", PHONE)
    return redemption_redeem(
        code=code,
        session=session,
        channel=web_channel(session.event.organizer),
        **kw,
    )


def refused(code: str, session: Session, **kw: Any) -> str:
    with pytest.raises(DomainError) as exc:
        redeem(code, session, **kw)
    return exc.value.code


# --- Batches -----------------------------------------------------------------------------------


def test_a_batch_has_size_unique_readable_codes(festival: Festival, make_user: Any) -> None:
    staff: User = make_user()
    batch = redemption_batch_create(
        organizer=festival.organizer,
        event=festival.event,
        tier_code="ga",
        name="  腾讯员工福利 ",
        size=250,
        valid_until=timezone.now() + dt.timedelta(days=30),
        actor=staff,
    )
    codes = codes_of(batch)
    assert batch.name == "腾讯员工福利" and batch.size == 250 and batch.created_by == staff
    assert len(codes) == len(set(codes)) == 250
    assert all(SERIAL.match(code) and codec.normalize_serial(code) == code for code in codes)
    assert not RedemptionCode.objects.filter(batch=batch, redeemed_at__isnull=False).exists()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"size": 0}, "redemption_batch_size"),
        ({"size": MAX_BATCH_SIZE + 1}, "redemption_batch_size"),
        ({"valid_until": timezone.now() - dt.timedelta(minutes=1)}, "redemption_batch_expired"),
        ({"name": "   "}, "redemption_batch_name"),
        ({"name": "x" * 121}, "redemption_batch_name"),
        ({"tier_code": "nope"}, "redemption_tier_missing"),
    ],
)
def test_bad_batches_are_refused_and_write_nothing(
    festival: Festival, change: dict[str, Any], code: str
) -> None:
    with pytest.raises(DomainError) as exc:
        festival.batch(**change)
    assert exc.value.code == code
    assert not RedemptionBatch.objects.exists() and not RedemptionCode.objects.exists()


def test_a_batch_for_another_organizers_event_is_refused(
    festival: Festival, other_organizer: Organizer
) -> None:
    with pytest.raises(DomainError) as exc:
        redemption_batch_create(
            organizer=other_organizer,
            event=festival.event,
            tier_code="ga",
            name="x",
            size=1,
            valid_until=timezone.now() + dt.timedelta(days=1),
            actor=None,
        )
    assert exc.value.code == "redemption_wrong_organizer"


def test_a_code_colliding_with_another_batch_is_drawn_again(
    festival: Festival, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = codes_of(festival.batch(size=1))[0]
    draws = iter([first, codec.new_serial()])
    monkeypatch.setattr("piaowu.tickets.services.codec.new_serial", lambda: next(draws))
    second = festival.batch(size=1)
    assert codes_of(second) != [first]
    assert RedemptionBatch.objects.count() == 2  # the collided attempt left nothing behind


# --- Redeeming ---------------------------------------------------------------------------------


def test_redeeming_makes_a_paid_free_order_with_one_ticket(festival: Festival) -> None:
    code = codes_of(festival.batch())[0]

    order = redeem(code, festival.day1, contact_email="hr@example.com")

    assert order.state == OrderState.PAID and order.total_amount == Decimal("0")
    line = order.lines.get()
    assert line.tier.code == "ga" and line.quantity == 1 and line.unit_price == Decimal("0")
    ticket = Ticket.objects.get(order=order)
    assert ticket.tier.code == "ga" and ticket.seat is None and ticket.state == "valid"
    row = RedemptionCode.objects.get(code=code)
    assert row.order == order and row.redeemed_at is not None
    assert list(TicketHistory.objects.filter(ticket=ticket).values_list("action", flat=True)) == [
        "issued",
        "redeemed",
    ]
    assert set(Delivery.objects.filter(order=order).values_list("kind", flat=True)) == {
        "email",
        "sms",
    }
    assert Hold.objects.get(pk=order.hold_id).status == Hold.Status.CONVERTED


def test_a_typed_code_is_normalised(festival: Festival) -> None:
    code = codes_of(festival.batch())[0]
    typed = code.replace("-", " ").lower().replace("0", "o").replace("1", "l")
    order = redeem(typed, festival.day1)
    assert RedemptionCode.objects.get(code=code).order == order


def test_a_code_is_redeemed_once(festival: Festival) -> None:
    code = codes_of(festival.batch())[0]
    first = redeem(code, festival.day1)

    assert refused(code, festival.day1, holder_key="someone-else") == "redemption_code_used"

    assert Order.objects.count() == 1 and Hold.objects.count() == 1
    assert RedemptionCode.objects.get(code=code).order == first


def test_best_available_seat_of_the_codes_tier(festival: Festival) -> None:
    code = codes_of(festival.batch(tier_code="vip"))[0]
    order = redeem(code, festival.reserved)
    ticket = Ticket.objects.select_related("seat__section").get(order=order)
    assert ticket.seat is not None and ticket.seat.section.code == "V"
    assert SeatState.objects.get(session=festival.reserved, seat=ticket.seat).state == "sold"


def test_the_chosen_seat(festival: Festival) -> None:
    code = codes_of(festival.batch(tier_code="std"))[0]
    order = redeem(code, festival.reserved, seat_codes=["M-2-3"])
    assert Ticket.objects.get(order=order).seat.code == "M-2-3"  # type: ignore[union-attr]


def test_a_seat_of_another_tier_is_refused_and_not_held(festival: Festival) -> None:
    code = codes_of(festival.batch(tier_code="std"))[0]
    assert refused(code, festival.reserved, seat_codes=["V-1-1"]) == "redemption_seat_wrong_tier"
    assert not Hold.objects.exists()
    assert not SeatState.objects.filter(session=festival.reserved).exclude(state="available")
    assert RedemptionCode.objects.get(code=code).redeemed_at is None


def test_one_code_one_seat(festival: Festival) -> None:
    code = codes_of(festival.batch(tier_code="std"))[0]
    assert refused(code, festival.reserved, seat_codes=["M-2-3", "M-2-4"]) == (
        "redemption_one_ticket"
    )
    assert refused(code, festival.reserved, seat_codes=[]) == "redemption_one_ticket"


@pytest.mark.parametrize("text", ["", "nonsense", "ABCD-EFGH-JKMN", "x" * 500, "PW1AAAA"])
def test_an_unknown_code_is_invalid(festival: Festival, text: str) -> None:
    festival.batch()
    assert refused(text, festival.day1) == "redemption_code_invalid"


def test_a_code_with_one_wrong_character_is_invalid(festival: Festival) -> None:
    code = codes_of(festival.batch())[0]
    wrong = ("1" if code[0] != "1" else "2") + code[1:]
    assert refused(wrong, festival.day1) == "redemption_code_invalid"


def test_an_expired_code(festival: Festival, clock: Any) -> None:
    code = codes_of(festival.batch(valid_until=timezone.now() + dt.timedelta(hours=1)))[0]
    clock.shift(dt.timedelta(hours=2))
    assert refused(code, festival.day1) == "redemption_code_expired"
    assert not Order.objects.exists()


def test_another_events_session(festival: Festival, ga_session: Callable[..., Session]) -> None:
    code = codes_of(festival.batch())[0]
    assert refused(code, ga_session()) == "redemption_wrong_event"


def test_a_session_without_the_tier(festival: Festival) -> None:
    code = codes_of(festival.batch())[0]
    assert refused(code, festival.vip_only) == "redemption_tier_missing"


def test_a_sold_out_session_leaves_the_code_unused(festival: Festival) -> None:
    first, second = codes_of(festival.batch())[:2]
    redeem(first, festival.day2)  # capacity 1
    assert refused(second, festival.day2) == "sold_out"
    assert RedemptionCode.objects.get(code=second).redeemed_at is None
    assert redeem(second, festival.day1).state == OrderState.PAID  # still good elsewhere


def test_a_guest_without_a_phone_writes_nothing(festival: Festival) -> None:
    code = codes_of(festival.batch())[0]
    assert refused(code, festival.day1, contact_phone="") == "contact_required"
    assert not Hold.objects.exists() and not Order.objects.exists()
    assert RedemptionCode.objects.get(code=code).redeemed_at is None


def test_a_signed_in_customer_needs_no_phone(festival: Festival, make_user: Any) -> None:
    customer: User = make_user(email="li@example.com")
    code = codes_of(festival.batch())[0]
    order = redeem(code, festival.day1, customer=customer, contact_phone="")
    assert order.customer == customer
    assert list(Delivery.objects.filter(order=order).values_list("recipient", flat=True)) == [
        "li@example.com"
    ]


def test_a_closed_session_is_refused(festival: Festival, clock: Any) -> None:
    code = codes_of(festival.batch(valid_until=timezone.now() + dt.timedelta(days=60)))[0]
    clock.shift(dt.timedelta(days=3, hours=1))  # day1 started: sales closed
    assert refused(code, festival.day1) == "sales_closed"


# --- Which sessions a code is good for ---------------------------------------------------------


def test_redeemable_sessions(festival: Festival) -> None:
    ga_code = codes_of(festival.batch())[0]
    vip_code = codes_of(festival.batch(tier_code="vip"))[0]
    assert list(redeemable_sessions(ga_code)) == [festival.day1, festival.day2]
    assert list(redeemable_sessions(vip_code.lower())) == [
        festival.day1,
        festival.vip_only,
        festival.reserved,
    ]


def test_no_sessions_for_a_bad_used_or_expired_code(festival: Festival, clock: Any) -> None:
    used, spare = codes_of(festival.batch())[:2]
    redeem(used, festival.day1)
    assert list(redeemable_sessions(used)) == []
    assert list(redeemable_sessions("nonsense")) == []
    clock.shift(dt.timedelta(days=31))
    assert list(redeemable_sessions(spare)) == []


def test_sessions_not_on_sale_are_not_offered(festival: Festival, clock: Any) -> None:
    code = codes_of(
        festival.batch(tier_code="vip", valid_until=timezone.now() + dt.timedelta(days=60))
    )[0]
    clock.shift(dt.timedelta(days=4, hours=12))  # day1 and day2 have started
    assert list(redeemable_sessions(code)) == [festival.vip_only, festival.reserved]


# --- Two redemptions of one code at the same instant (PostgreSQL) ------------------------------


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("unsafe", [False, True], ids=["protected", "control"])
@pytest.mark.parametrize("where", ["ga", "reserved"])
def test_racing_redemptions_of_one_code(
    organizer: Organizer, settings: Any, unsafe: bool, where: str
) -> None:
    settings.PIAOWU_TICKETS_UNSAFE_REDEMPTION = unsafe
    settings.PIAOWU_INVENTORY_STRANDED_RULE = False
    festival = Festival(organizer)
    signing_key_active(organizer)  # not part of this race
    session = festival.day1 if where == "ga" else festival.reserved
    code = codes_of(festival.batch(tier_code="vip"))[0]
    n = 4

    def work(i: int) -> Order:
        own = Session.objects.select_related("event").get(pk=session.pk)
        return redeem(code, own, holder_key=f"redeemer-{i}")

    results = race([functools.partial(work, i) for i in range(n)])

    orders = [r for r in results if isinstance(r, Order)]
    paid = Order.objects.filter(session=session, state=OrderState.PAID)
    if unsafe:
        # The control: check-then-write lets several redemptions of one code through.
        assert len(orders) > 1, results
        assert paid.count() > 1
        return
    assert len(orders) == 1, results
    assert sorted(r for r in results if not isinstance(r, Order)) == ["redemption_code_used"] * (
        n - 1
    )
    # Nothing half-written: one order, one hold, one ticket, one seat or admission taken.
    assert list(paid) == orders and Order.objects.filter(session=session).count() == 1
    assert Hold.objects.filter(session=session).count() == 1
    assert Ticket.objects.filter(session=session).count() == 1
    assert RedemptionCode.objects.get(code=code).order == orders[0]
    if where == "reserved":
        assert SeatState.objects.filter(session=session).exclude(state="available").count() == 1
