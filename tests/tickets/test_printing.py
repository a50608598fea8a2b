"""Paper prints: the first print keeps the code, a reprint voids the earlier paper."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from piaowu.accounts.models import Organizer, Role, User
from piaowu.core.errors import DomainError, NotFound
from piaowu.tickets import codec
from piaowu.tickets.models import PrintLog, Ticket, TicketHistory
from piaowu.tickets.printing import (
    order_find_for_printing,
    order_get_for_printing,
    ticket_get_for_printing,
    ticket_print,
    ticket_print_record,
)
from piaowu.tickets.selectors import ticket_qr_text
from piaowu.tickets.services import ticket_void
from tests.races import race
from tests.tickets.conftest import MakePaidOrder

MakeStaff = Callable[..., User]


def first_ticket(order_maker: MakePaidOrder) -> Ticket:
    return Ticket.objects.filter(order=order_maker()).order_by("id").first()  # type: ignore[return-value]


def verifies(text: str, ticket: Ticket) -> bool:
    """Whether `text` is a currently valid code of `ticket`: signed by its current key and of
    its current secret version (what the gate checks besides the admission window)."""
    parsed = codec.parse(text)
    ticket.refresh_from_db()
    key = Ed25519PublicKey.from_public_bytes(bytes(ticket.signing_key.public_key))
    return (
        parsed.verify(key)
        and parsed.claims.token == ticket.token
        and parsed.claims.secret_version == ticket.secret_version
    )


def test_the_first_print_keeps_the_code_and_a_reprint_voids_the_earlier_paper(
    paid_order: MakePaidOrder, organizer: Organizer, make_staff: MakeStaff
) -> None:
    seller = make_staff(organizer, role=Role.SELLER)
    ticket = first_ticket(paid_order)
    before = ticket_qr_text(ticket)

    printed = ticket_print(ticket=ticket, layout="thermal80", device="Box 1", actor=seller)

    assert printed.secret_version == 1
    first_paper = ticket_qr_text(printed)
    assert first_paper == before
    log = PrintLog.objects.get(ticket=ticket)
    assert (log.reprint, log.secret_version, log.layout, log.device, log.actor) == (
        False,
        1,
        "thermal80",
        "Box 1",
        seller,
    )

    reprinted = ticket_print(ticket=ticket, layout="a4", device="Box 2", actor=seller)

    assert reprinted.secret_version == 2
    second_paper = ticket_qr_text(reprinted)
    assert second_paper != first_paper
    assert verifies(second_paper, ticket)
    assert not verifies(first_paper, ticket)  # the earlier paper no longer admits
    logs = list(PrintLog.objects.filter(ticket=ticket).order_by("id"))
    assert [(p.reprint, p.secret_version) for p in logs] == [(False, 1), (True, 2)]
    actions = list(
        TicketHistory.objects.filter(ticket=ticket).order_by("id").values_list("action", flat=True)
    )
    assert actions == ["issued", "printed", "reissued", "reprinted"]


def test_every_further_print_is_a_reprint(paid_order: MakePaidOrder) -> None:
    ticket = first_ticket(paid_order)
    for _ in range(3):
        ticket_print(ticket=ticket, layout="a4", device="office", actor=None)

    assert [
        (p.reprint, p.secret_version) for p in PrintLog.objects.filter(ticket=ticket).order_by("id")
    ] == [(False, 1), (True, 2), (True, 3)]


def test_prints_of_different_tickets_are_independent(paid_order: MakePaidOrder) -> None:
    one, two = list(Ticket.objects.filter(order=paid_order()).order_by("id"))
    log_one = ticket_print_record(ticket=one, layout="a4", device="office", actor=None)
    log_two = ticket_print_record(ticket=two, layout="a4", device="office", actor=None)
    assert not log_one.reprint and not log_two.reprint


def test_a_void_ticket_cannot_be_printed(paid_order: MakePaidOrder) -> None:
    ticket = first_ticket(paid_order)
    ticket_void(ticket=ticket, actor=None, reason="refund")

    with pytest.raises(DomainError) as error:
        ticket_print(ticket=ticket, layout="thermal80", device="Box 1", actor=None)

    assert error.value.code == "ticket_void"
    assert not PrintLog.objects.filter(ticket=ticket).exists()


def test_a_void_ticket_cannot_be_reprinted_either(paid_order: MakePaidOrder) -> None:
    ticket = first_ticket(paid_order)
    ticket_print(ticket=ticket, layout="thermal80", device="Box 1", actor=None)
    ticket_void(ticket=ticket, actor=None, reason="refund")

    with pytest.raises(DomainError) as error:
        ticket_print(ticket=ticket, layout="thermal80", device="Box 1", actor=None)

    assert error.value.code == "ticket_void"
    assert PrintLog.objects.filter(ticket=ticket).count() == 1


@pytest.mark.parametrize(
    ("layout", "device", "code"),
    [
        ("receipt", "Box 1", "invalid_layout"),
        ("", "Box 1", "invalid_layout"),
        ("a4", "", "invalid_device"),
        ("a4", "   ", "invalid_device"),
        ("a4", "x" * 81, "invalid_device"),
        ("a4", "Box\n1", "invalid_device"),
    ],
)
def test_bad_layout_or_device_is_refused_and_nothing_is_logged(
    paid_order: MakePaidOrder, layout: str, device: str, code: str
) -> None:
    ticket = first_ticket(paid_order)

    with pytest.raises(DomainError) as error:
        ticket_print(ticket=ticket, layout=layout, device=device, actor=None)

    assert error.value.code == code
    assert not PrintLog.objects.exists()
    ticket.refresh_from_db()
    assert ticket.secret_version == 1


def test_staff_lookups_are_scoped_to_sellers_of_the_organizer(
    paid_order: MakePaidOrder,
    organizer: Organizer,
    other_organizer: Organizer,
    make_staff: MakeStaff,
    make_user: Callable[..., User],
) -> None:
    order = paid_order()
    ticket = Ticket.objects.filter(order=order).first()
    assert ticket is not None
    seller = make_staff(organizer, role=Role.SELLER)
    assert order_get_for_printing(user=seller, public_id=order.public_id) == order
    assert order_find_for_printing(user=seller, code=order.code.lower()) == order
    assert ticket_get_for_printing(user=seller, public_id=ticket.public_id) == ticket

    outsiders = [
        make_staff(organizer, role=Role.CHECKER),  # no orders.sell
        make_staff(other_organizer, role=Role.ADMIN),  # another organizer
        make_user(),  # a customer
        None,
    ]
    for user in outsiders:
        with pytest.raises(NotFound):
            order_get_for_printing(user=user, public_id=order.public_id)
        with pytest.raises(NotFound):
            order_find_for_printing(user=user, code=order.code)
        with pytest.raises(NotFound):
            ticket_get_for_printing(user=user, public_id=ticket.public_id)


# --- Two prints of one ticket at the same instant (PostgreSQL) ---------------------------------


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("unsafe", [False, True], ids=["protected", "control"])
def test_racing_prints_of_one_ticket_make_exactly_one_first_print(
    paid_order: MakePaidOrder, settings: Any, unsafe: bool
) -> None:
    ticket = first_ticket(paid_order)
    settings.PIAOWU_TICKETS_UNSAFE_PRINTS = unsafe
    settings.PIAOWU_TICKETS_PRINT_RACE_PAUSE = 0.2  # both runs: the window is wide open
    n = 3

    def work(i: int) -> PrintLog:
        own = Ticket.objects.select_related("signing_key").get(pk=ticket.pk)
        return ticket_print_record(ticket=own, layout="a4", device=f"Box {i}", actor=None)

    results = race([functools.partial(work, i) for i in range(n)])

    assert all(isinstance(r, PrintLog) for r in results), results
    logs = list(PrintLog.objects.filter(ticket=ticket).order_by("id"))
    firsts = [log for log in logs if not log.reprint]
    if unsafe:
        # The control: without the lock several prints each believe they are the first, and
        # all their papers carry the same code.
        assert len(firsts) > 1
        return
    assert len(logs) == n and len(firsts) == 1
    ticket.refresh_from_db()
    # Every reprint made a new version, so only the last paper admits.
    assert ticket.secret_version == n
    assert sorted(log.secret_version for log in logs) == list(range(1, n + 1))
