"""Real concurrency on PostgreSQL (threads with their own connections, released together by
`tests.races.race`): two receivers accepting the same code, and two offers of the same ticket.

The control run switches the accept's conditional UPDATE off
(`PIAOWU_AFTERSALES_UNSAFE_TRANSFERS`) and must let both receivers win — otherwise a green race
test would prove nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from piaowu.accounts.models import User
from piaowu.aftersales.models import Transfer
from piaowu.aftersales.services.transfers import transfer_accept, transfer_offer
from piaowu.tickets.models import Ticket, TicketHistory
from tests.aftersales.transfers.conftest import RECEIVER_PHONE, Bought, MakeBought
from tests.races import race

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def _accept(code: str, receiver: User) -> Callable[[], Any]:
    def run() -> str:
        transfer_accept(code=code, receiver=receiver)
        return f"won:{receiver.pk}"

    return run


def _offer(bought: Bought, contact: str) -> Callable[[], Any]:
    def run() -> str:
        ticket = Ticket.objects.get(pk=bought.ticket.pk)
        transfer_offer(
            ticket=ticket, sender=bought.buyer, receiver_contact=contact, receiver_name="李雷"
        )
        return "offered"

    return run


def _transferred(ticket: Ticket) -> int:
    return TicketHistory.objects.filter(ticket=ticket, action="transferred").count()


def test_two_receivers_accepting_one_code_make_one_winner(
    make_bought: MakeBought, make_user: Callable[..., User]
) -> None:
    for _ in range(3):
        bought = make_bought()
        transfer = transfer_offer(
            ticket=bought.ticket,
            sender=bought.buyer,
            receiver_contact=RECEIVER_PHONE,
            receiver_name="王小明",
        )
        first, second = make_user(), make_user()

        results = race([_accept(transfer.code, first), _accept(transfer.code, second)])

        winners = [r for r in results if str(r).startswith("won:")]
        assert len(winners) == 1, results
        assert set(results) - set(winners) == {"transfer_code_used"}, results
        ticket = bought.fresh()
        transfer.refresh_from_db()
        assert winners[0] == f"won:{ticket.holder_id}"
        assert transfer.state == Transfer.State.ACCEPTED
        assert transfer.receiver_id == ticket.holder_id
        assert ticket.secret_version == 2
        assert _transferred(ticket) == 1


def test_control_without_the_conditional_update_lets_both_receivers_win(
    make_bought: MakeBought, make_user: Callable[..., User], settings: Any
) -> None:
    # Thread scheduling may line the two up harmlessly once; allow a few attempts.
    for _ in range(5):
        settings.PIAOWU_AFTERSALES_UNSAFE_TRANSFERS = False
        bought = make_bought()
        transfer = transfer_offer(
            ticket=bought.ticket,
            sender=bought.buyer,
            receiver_contact=RECEIVER_PHONE,
            receiver_name="王小明",
        )
        settings.PIAOWU_AFTERSALES_UNSAFE_TRANSFERS = True
        results = race([_accept(transfer.code, make_user()), _accept(transfer.code, make_user())])
        if _transferred(bought.ticket) == 2:
            break
    assert all(str(r).startswith("won:") for r in results), results
    # The ticket changed hands twice on one code: the bug the guard stops.
    assert _transferred(bought.ticket) == 2
    assert bought.fresh().secret_version == 3


def test_two_offers_of_one_ticket_at_once_leave_one_pending(make_bought: MakeBought) -> None:
    for _ in range(3):
        bought = make_bought()

        results = race(
            [_offer(bought, "friend-a@example.com"), _offer(bought, "friend-b@example.com")]
        )

        assert sorted(results) == ["offered", "transfer_pending"], results
        pending = Transfer.objects.filter(ticket=bought.ticket, state=Transfer.State.PENDING)
        assert pending.count() == 1
