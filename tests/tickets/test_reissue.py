"""Reissue and void: a new secret version revokes every QR made before; a void ticket has no
QR; revoking a key and reissuing its tickets moves them to the active key."""

from __future__ import annotations

from typing import Any

import pytest

from piaowu.accounts.models import User
from piaowu.core.errors import DomainError
from piaowu.tickets import codec
from piaowu.tickets.models import SigningKey, Ticket, TicketHistory
from piaowu.tickets.selectors import ticket_eticket, ticket_qr_text
from piaowu.tickets.services import (
    MAX_SECRET_VERSION,
    signing_key_revoke,
    signing_key_rotate,
    ticket_reissue,
    ticket_void,
    tickets_reissue_for_key,
)
from tests.tickets.conftest import MakePaidOrder


def _verifies(text: str, ticket: Ticket) -> bool:
    """What a gate checks of a static code: a live key of the ticket's organizer signed it and
    it names the ticket's current secret version."""
    parsed = codec.parse(text)
    key = SigningKey.objects.filter(kid=parsed.claims.kid, organizer_id=ticket.organizer_id).first()
    if key is None or key.status == SigningKey.Status.REVOKED:
        return False
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not parsed.verify(Ed25519PublicKey.from_public_bytes(bytes(key.public_key))):
        return False
    ticket.refresh_from_db()
    return ticket.state == "valid" and parsed.claims.secret_version == ticket.secret_version


def _actions(ticket: Ticket) -> list[tuple[str, int]]:
    return list(
        TicketHistory.objects.filter(ticket=ticket)
        .order_by("id")
        .values_list("action", "secret_version")
    )


def test_reissue_bumps_the_version_and_revokes_the_old_qr(
    paid_order: MakePaidOrder, make_user: Any
) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    staff: User = make_user()
    old = ticket_qr_text(ticket)

    fresh = ticket_reissue(ticket=ticket, actor=staff, reason="reprint")

    assert fresh.secret_version == ticket.secret_version == 2
    new = ticket_qr_text(fresh)
    assert new != old
    assert codec.parse(new).claims.secret_version == 2
    assert not _verifies(old, fresh)
    assert _verifies(new, fresh)
    assert _actions(fresh) == [("issued", 1), ("reissued", 2)]
    row = TicketHistory.objects.filter(ticket=fresh, action="reissued").get()
    assert row.actor == staff and row.reason == "reprint"


def test_reissue_signs_with_the_active_key(paid_order: MakePaidOrder) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    old_key = ticket.signing_key
    new_key = signing_key_rotate(organizer=ticket.organizer)

    fresh = ticket_reissue(ticket=ticket, actor=None, reason="reprint")

    assert fresh.signing_key == new_key != old_key
    assert codec.parse(ticket_qr_text(fresh)).claims.kid == new_key.kid


def test_reissuing_twice_makes_two_versions(paid_order: MakePaidOrder) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    stale = Ticket.objects.get(pk=ticket.pk)  # a copy read before the first reissue
    ticket_reissue(ticket=ticket, actor=None, reason="one")
    ticket_reissue(ticket=stale, actor=None, reason="two")
    ticket.refresh_from_db()
    assert ticket.secret_version == 3
    assert _actions(ticket)[-2:] == [("reissued", 2), ("reissued", 3)]


def test_a_void_ticket_cannot_be_reissued(paid_order: MakePaidOrder) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    ticket_void(ticket=ticket, actor=None, reason="refund")
    with pytest.raises(DomainError) as exc:
        ticket_reissue(ticket=ticket, actor=None, reason="reprint")
    assert exc.value.code == "ticket_void"
    ticket.refresh_from_db()
    assert ticket.secret_version == 1
    assert [a for a, _v in _actions(ticket)] == ["issued", "voided"]


def test_reissue_stops_at_the_last_version_the_qr_can_carry(paid_order: MakePaidOrder) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    # No service sets a version this high short of 65 534 reissues; only this test pokes it.
    Ticket.objects.filter(pk=ticket.pk).update(secret_version=MAX_SECRET_VERSION)
    with pytest.raises(DomainError) as exc:
        ticket_reissue(ticket=ticket, actor=None, reason="reprint")
    assert exc.value.code == "ticket_reissue_limit"


def test_void_is_harmless_twice_and_leaves_no_qr(paid_order: MakePaidOrder) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    old = ticket_qr_text(ticket)

    ticket_void(ticket=ticket, actor=None, reason="refunded")
    again = ticket_void(ticket=ticket, actor=None, reason="refunded again")

    assert again.state == ticket.state == Ticket.State.VOID
    assert again.void_reason == "refunded"
    assert [a for a, _v in _actions(ticket)] == ["issued", "voided"]
    assert not _verifies(old, ticket)
    assert ticket_eticket(ticket).qr is None


def test_void_does_not_touch_the_other_tickets(paid_order: MakePaidOrder) -> None:
    first, second = paid_order().tickets.order_by("id")
    ticket_void(ticket=first, actor=None, reason="partial refund")
    second.refresh_from_db()
    assert second.state == Ticket.State.VALID
    assert _verifies(ticket_qr_text(second), second)


def test_revoking_a_key_then_reissuing_its_tickets(paid_order: MakePaidOrder) -> None:
    order = paid_order()
    other = paid_order(seats=["M-2-1"])
    tickets = list(order.tickets.order_by("id")) + list(other.tickets.all())
    ticket_void(ticket=tickets[0], actor=None, reason="refund")
    key = tickets[1].signing_key
    old_codes = {t.pk: ticket_qr_text(t) for t in tickets[1:]}

    signing_key_revoke(key=key)
    assert all(not _verifies(text, Ticket.objects.get(pk=pk)) for pk, text in old_codes.items())

    count = tickets_reissue_for_key(key=key, actor=None)

    assert count == 2  # the void ticket stays void and keeps its version
    active = SigningKey.objects.get(organizer=order.session.event.organizer, status="active")
    assert active != key
    for ticket in tickets[1:]:
        ticket.refresh_from_db()
        assert ticket.signing_key == active and ticket.secret_version == 2
        assert _verifies(ticket_qr_text(ticket), ticket)
        assert not _verifies(old_codes[ticket.pk], ticket)
        assert _actions(ticket)[-1] == ("reissued", 2)
    tickets[0].refresh_from_db()
    assert tickets[0].signing_key == key and tickets[0].secret_version == 1
    assert tickets_reissue_for_key(key=key, actor=None) == 0  # nothing left: harmless again


def test_reissue_for_key_refuses_the_active_key(paid_order: MakePaidOrder) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    with pytest.raises(DomainError) as exc:
        tickets_reissue_for_key(key=ticket.signing_key, actor=None)
    assert exc.value.code == "key_active"


def test_reissue_for_key_moves_every_chunk(
    paid_order: MakePaidOrder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("piaowu.tickets.services.REISSUE_CHUNK", 2)
    order = paid_order(ga=5)
    key = order.tickets.first().signing_key  # type: ignore[union-attr]
    signing_key_rotate(organizer=order.session.event.organizer)
    assert tickets_reissue_for_key(key=key, actor=None) == 5
    assert not Ticket.objects.filter(signing_key=key).exists()
    assert set(order.tickets.values_list("secret_version", flat=True)) == {2}
