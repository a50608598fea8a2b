"""Signing keys: one active key per organizer, rotation keeps old tickets verifying, revoking
a key makes its tickets read as forged until they are reissued."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection

from piaowu.accounts.models import Organizer
from piaowu.core.errors import DomainError
from piaowu.tickets import codec
from piaowu.tickets.models import SigningKey, Ticket
from piaowu.tickets.selectors import ticket_qr_text
from piaowu.tickets.services import (
    signing_key_active,
    signing_key_revoke,
    signing_key_rotate,
    tickets_reissue_for_key,
)
from tests.tickets.conftest import MakePaidOrder


def gate_accepts(text: str, organizer: Organizer) -> bool:
    """A gate's signature check: a non-revoked key of this organizer signed the code."""
    parsed = codec.parse(text)
    key = SigningKey.objects.filter(kid=parsed.claims.kid, organizer=organizer).first()
    if key is None or key.status == SigningKey.Status.REVOKED:
        return False
    return parsed.verify(Ed25519PublicKey.from_public_bytes(bytes(key.public_key)))


def test_the_active_key_is_created_once(organizer: Organizer) -> None:
    key = signing_key_active(organizer)
    assert signing_key_active(organizer) == key
    assert key.status == SigningKey.Status.ACTIVE
    assert len(bytes(key.public_key)) == len(bytes(key.private_key)) == 32
    assert len(key.kid) == 8 and int(key.kid, 16) >= 0


def test_each_organizer_has_its_own_key(organizer: Organizer, other_organizer: Organizer) -> None:
    assert signing_key_active(organizer) != signing_key_active(other_organizer)


def test_rotation_keeps_old_tickets_verifying(
    organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    old_ticket = paid_order().tickets.first()
    assert old_ticket is not None
    old_key = old_ticket.signing_key

    new_key = signing_key_rotate(organizer=organizer)

    old_key.refresh_from_db()
    assert old_key.status == SigningKey.Status.RETIRED and old_key.retired_at is not None
    assert signing_key_active(organizer) == new_key
    assert gate_accepts(ticket_qr_text(old_ticket), organizer)
    new_ticket = paid_order(seats=["M-3-1"]).tickets.get()
    assert new_ticket.signing_key == new_key
    assert gate_accepts(ticket_qr_text(new_ticket), organizer)


def test_revoking_makes_its_tickets_fail(organizer: Organizer, paid_order: MakePaidOrder) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    text = ticket_qr_text(ticket)
    assert gate_accepts(text, organizer)

    revoked = signing_key_revoke(key=ticket.signing_key)

    assert revoked.status == SigningKey.Status.REVOKED and revoked.revoked_at is not None
    assert not gate_accepts(text, organizer)
    # Selling goes on: a fresh key became active in the same step.
    fresh = SigningKey.objects.get(organizer=organizer, status=SigningKey.Status.ACTIVE)
    assert fresh != revoked and signing_key_active(organizer) == fresh


def test_revoking_a_retired_key_leaves_the_active_one(organizer: Organizer) -> None:
    old = signing_key_active(organizer)
    active = signing_key_rotate(organizer=organizer)
    signing_key_revoke(key=old)
    old.refresh_from_db()
    assert old.status == SigningKey.Status.REVOKED
    assert list(SigningKey.objects.filter(organizer=organizer, status="active")) == [active]


def test_revoking_twice_is_refused(organizer: Organizer) -> None:
    key = signing_key_active(organizer)
    signing_key_revoke(key=key)
    with pytest.raises(DomainError) as exc:
        signing_key_revoke(key=key)
    assert exc.value.code == "key_already_revoked"


def test_reissue_after_revoke_restores_admission(
    organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    tickets = list(paid_order().tickets.all())
    key = tickets[0].signing_key
    signing_key_revoke(key=key)

    assert tickets_reissue_for_key(key=key, actor=None) == len(tickets)

    for ticket in tickets:
        ticket = Ticket.objects.select_related("signing_key").get(pk=ticket.pk)
        assert gate_accepts(ticket_qr_text(ticket), organizer)


def test_another_organizers_key_does_not_verify(
    organizer: Organizer, other_organizer: Organizer, paid_order: MakePaidOrder
) -> None:
    ticket = paid_order().tickets.first()
    assert ticket is not None
    signing_key_active(other_organizer)
    assert not gate_accepts(ticket_qr_text(ticket), other_organizer)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_uses_create_one_key(
    organizer: Organizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every thread finds no key and makes a key pair (the barrier inside `new_key_pair` holds
    them until all have looked, so the race surely happens — that is the control); the partial
    unique index lets one insert win and the others read the winner."""
    n = 6
    barrier = threading.Barrier(n)
    made: list[int] = []
    real = codec.new_key_pair

    def racing_key_pair() -> tuple[bytes, bytes]:
        made.append(1)
        barrier.wait(timeout=30)
        return real()

    monkeypatch.setattr("piaowu.tickets.services.codec.new_key_pair", racing_key_pair)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            results[i] = signing_key_active(Organizer.objects.get(pk=organizer.pk)).kid
        except Exception as exc:
            results[i] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(made) == n  # the race happened: nobody saw another's key before inserting
    keys = list(SigningKey.objects.filter(organizer=organizer))
    assert len(keys) == 1
    assert results == [keys[0].kid] * n
