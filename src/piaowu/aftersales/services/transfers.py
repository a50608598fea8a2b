"""Ticket transfers (TKT-8): a holder hands a ticket to someone else by phone or e-mail; it
moves when the receiver, signed in, accepts with the code sent to them.

* **Offer** (`transfer_offer`): only the ticket's current holder (its `holder`, or the order's
  buyer while that is empty), for a valid ticket of a paid order that has not been admitted at a
  gate and is in no live refund or exchange, of a session that allows transfers, before the
  session's cut-off (`starts_at − transfer_cutoff_hours`). The offer expires at the cut-off or
  48 hours later, whichever comes first. One pending transfer per ticket: the partial unique
  index refuses a second, also when two offers race.
* **Cancel** (`transfer_cancel`): the sender, while it is pending.
* **Accept** (`transfer_accept`): a signed-in customer other than the sender, with the code,
  while it is pending and unexpired. One conditional UPDATE (`… WHERE state = 'pending' AND
  expires_at > now`) moves it to accepted, so of two receivers accepting at once exactly one
  wins; in the same transaction `tickets.services.ticket_transfer_to` gives the ticket a new
  secret version (every QR and paper made before stops verifying), the receiver as holder and
  the receiver's name as attendee.
* **Expire** (`transfers_expire_overdue`, a job): pending transfers past `expires_at` become
  expired. Until it runs they already count as expired (`selectors.transfers.transfer_state`).

The receiver is told by SMS or e-mail (the contact given), the sender when it is accepted or
expired — through the `notices` outbox, in the same transaction, sent by a job.

`PIAOWU_AFTERSALES_UNSAFE_TRANSFERS` (tests only) swaps the accept's conditional UPDATE for a
read-then-write with a pause, so the race test's control run shows two receivers both winning.

Error codes: `invalid_contact`, `invalid_receiver_name`, `transfer_to_self`, `ticket_not_yours`
(403), `ticket_void` (409), `order_not_paid` (409), `ticket_used` (409), `ticket_in_refund`
(409), `ticket_in_exchange` (409), `transfers_not_allowed`, `transfer_cutoff_passed`,
`transfer_pending` (409), `transfer_code_invalid` (404), `transfer_expired` (409),
`transfer_cancelled` (409), `transfer_code_used` (409), `transfer_already_accepted` (409),
`transfer_not_found` (404), `transfer_not_pending` (409).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from piaowu.accounts.models import User
from piaowu.aftersales.models import ExchangeItem, RefundItem, Transfer
from piaowu.aftersales.selectors.transfers import (
    ticket_holder_id,
    transfer_get_by_code,
    transfer_state,
)
from piaowu.aftersales.services.notices import (
    Recipients,
    notice_language,
    notice_queue,
    user_recipients,
)
from piaowu.catalog.models import Session
from piaowu.checkin.models import Admission
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.orders.services import normalize_phone
from piaowu.orders.states import OrderState
from piaowu.tickets.delivery import public_url, ticket_place_label
from piaowu.tickets.models import Ticket
from piaowu.tickets.services import ticket_transfer_to

#: An offer lapses after this long (or at the session's cut-off, if that comes first).
OFFER_VALID_FOR = timedelta(hours=48)
#: Where the receiver accepts (the web page `web:transfer_accept`).
ACCEPT_PATH = "/transfers/{code}/"
#: Orders whose valid tickets may be transferred (a partly refunded order keeps the others).
TRANSFERABLE_ORDER_STATES = frozenset(
    {OrderState.PAID, OrderState.FULFILLED, OrderState.PARTIALLY_REFUNDED}
)
MAX_NAME_LENGTH = 80
MAX_CONTACT_LENGTH = 254
EXPIRE_BATCH = 500
UNSAFE_PAUSE_SECONDS = 0.3

_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-]{4,30}$")


def _error(
    code: str, message: str, details: Mapping[str, object] | None = None, *, status: int = 400
) -> DomainError:
    error = DomainError(code, message, dict(details or {}))
    error.status = status
    return error


# --- Checks ------------------------------------------------------------------------------------


def _clean_contact(raw: str) -> tuple[str, str]:
    """("email", address in lower case) or ("phone", digits with an optional leading +)."""
    text = str(raw or "").strip()
    bad = _error(
        "invalid_contact",
        _("Enter the receiver's mobile phone number or e-mail address."),
        {"field": "receiver_contact"},
    )
    if not text or len(text) > MAX_CONTACT_LENGTH:
        raise bad
    if "@" in text:
        try:
            validate_email(text)
        except ValidationError:
            raise bad from None
        return "email", text.lower()
    if not _PHONE_RE.match(text):
        raise bad
    phone = normalize_phone(text)
    if not 5 <= len(phone.lstrip("+")) <= 20:
        raise bad
    return "phone", phone


def _clean_name(raw: str) -> str:
    name = " ".join(str(raw or "").split())
    if not name or len(name) > MAX_NAME_LENGTH:
        raise _error(
            "invalid_receiver_name",
            _("Enter the receiver's name (at most %(max)d characters).") % {"max": MAX_NAME_LENGTH},
            {"field": "receiver_name"},
        )
    return name


def transfer_cutoff(session: Session) -> datetime:
    """Transfers of the session's tickets close at this moment."""
    return session.starts_at - timedelta(hours=session.transfer_cutoff_hours)


def _check_session(session: Session, now: datetime) -> None:
    if not session.transfers_allowed or session.status != Session.Status.SCHEDULED:
        raise _error("transfers_not_allowed", _("Tickets of this session cannot be transferred."))
    cutoff = transfer_cutoff(session)
    if now >= cutoff:
        raise _error(
            "transfer_cutoff_passed",
            _("Transfers for this session closed %(hours)d hours before the start.")
            % {"hours": session.transfer_cutoff_hours},
            {"cutoff": cutoff.isoformat()},
        )


def _check_ticket(ticket: Ticket) -> None:
    """What a ticket must be to change hands: valid, of a paid order, not admitted, and in no
    live refund or exchange."""
    details = {"ticket": ticket.public_id}
    if ticket.state != Ticket.State.VALID:
        raise _error(
            "ticket_void",
            _("This ticket is void (refunded or exchanged) and cannot be transferred."),
            details,
            status=409,
        )
    if ticket.order.state not in TRANSFERABLE_ORDER_STATES:
        raise _error(
            "order_not_paid",
            _("Only tickets of a paid order can be transferred."),
            {**details, "state": ticket.order.state},
            status=409,
        )
    if Admission.objects.filter(ticket_id=ticket.pk).exists():
        raise _error(
            "ticket_used",
            _("This ticket was already used at the gate and cannot be transferred."),
            details,
            status=409,
        )
    if RefundItem.objects.filter(ticket_id=ticket.pk, live=True).exists():
        raise _error(
            "ticket_in_refund",
            _("This ticket is being refunded and cannot be transferred."),
            details,
            status=409,
        )
    if ExchangeItem.objects.filter(ticket_id=ticket.pk, live=True).exists():
        raise _error(
            "ticket_in_exchange",
            _("This ticket is being exchanged and cannot be transferred."),
            details,
            status=409,
        )


def _locked_ticket(ticket: Ticket) -> Ticket:
    """The ticket row, locked for the caller's transaction (a refund or another transfer of
    the same ticket that locks it waits), with what the checks read."""
    return (
        Ticket.objects.select_for_update(of=("self",))
        .select_related("order", "session__event", "session__venue", "seat__section", "tier")
        .get(pk=ticket.pk)
    )


# --- Offer -------------------------------------------------------------------------------------


def transfer_offer(
    *, ticket: Ticket, sender: User, receiver_contact: str, receiver_name: str
) -> Transfer:
    """Offer `ticket` to the person at `receiver_contact` (a mobile phone number or an e-mail
    address), to be admitted as `receiver_name`; the code goes to them by SMS or e-mail.
    Preconditions and errors: see the module docstring. Nothing is written when refused."""
    kind, contact = _clean_contact(receiver_contact)
    name = _clean_name(receiver_name)
    now = clock.now()
    with transaction.atomic():
        ticket = _locked_ticket(ticket)
        if ticket_holder_id(ticket) != sender.pk:
            raise _error(
                "ticket_not_yours",
                _("Only the person who holds this ticket can transfer it."),
                {"ticket": ticket.public_id},
                status=403,
            )
        _check_ticket(ticket)
        session = ticket.session
        _check_session(session, now)
        order = ticket.order
        own_phone = normalize_phone(order.contact_phone) if order.customer_id == sender.pk else ""
        if (kind == "email" and contact == sender.email.lower()) or (
            kind == "phone" and own_phone and contact == own_phone
        ):
            raise _error(
                "transfer_to_self",
                _("You cannot transfer a ticket to yourself."),
                {"field": "receiver_contact"},
            )
        # An offer past its expiry no longer blocks a new one (time is data).
        Transfer.objects.filter(
            ticket=ticket, state=Transfer.State.PENDING, expires_at__lte=now
        ).update(state=Transfer.State.EXPIRED, updated_at=now)
        try:
            with transaction.atomic():
                transfer = Transfer.objects.create(
                    ticket=ticket,
                    sender=sender,
                    receiver_contact=contact,
                    receiver_name=name,
                    expires_at=min(transfer_cutoff(session), now + OFFER_VALID_FOR),
                )
        except IntegrityError:
            raise _error(
                "transfer_pending",
                _("This ticket already has a transfer waiting for its receiver."),
                {"ticket": ticket.public_id},
                status=409,
            ) from None
        transfer.ticket = ticket
        _notify_offered(transfer, kind)
    return transfer


# --- Cancel ------------------------------------------------------------------------------------


def transfer_cancel(*, transfer: Transfer, actor: User) -> Transfer:
    """The sender withdraws a pending transfer; the ticket stays theirs and its QR unchanged.
    Errors: `transfer_not_found` (404: not the sender), `transfer_not_pending` (409)."""
    if transfer.sender_id != actor.pk:
        raise _error("transfer_not_found", _("No such transfer."), status=404)
    now = clock.now()
    with transaction.atomic():
        changed = Transfer.objects.filter(
            pk=transfer.pk, state=Transfer.State.PENDING, expires_at__gt=now
        ).update(state=Transfer.State.CANCELLED, updated_at=now)
        transfer.refresh_from_db()
        if not changed:
            state = transfer_state(transfer, now)
            raise _error(
                "transfer_not_pending",
                _("This transfer can no longer be cancelled: it is %(state)s.")
                % {"state": str(Transfer.State(state).label).lower()},
                {"state": state},
                status=409,
            )
        _notify_cancelled(transfer)
    return transfer


# --- Accept ------------------------------------------------------------------------------------


def _unsafe() -> bool:
    return bool(getattr(settings, "PIAOWU_AFTERSALES_UNSAFE_TRANSFERS", False))


def _not_acceptable(transfer: Transfer, receiver: User, now: datetime) -> DomainError:
    """Why a transfer that is no longer pending (or has expired) cannot be accepted."""
    state = transfer_state(transfer, now)
    details = {"state": state}
    if state == Transfer.State.ACCEPTED:
        if transfer.receiver_id == receiver.pk:
            return _error(
                "transfer_already_accepted",
                _("You already accepted this ticket."),
                {**details, "ticket": transfer.ticket.public_id},
                status=409,
            )
        return _error(
            "transfer_code_used",
            _("This transfer code was already used."),
            details,
            status=409,
        )
    if state == Transfer.State.CANCELLED:
        return _error(
            "transfer_cancelled",
            _("The sender cancelled this transfer."),
            details,
            status=409,
        )
    return _error(
        "transfer_expired",
        _("This transfer expired; ask the sender to transfer the ticket again."),
        {**details, "expires_at": transfer.expires_at.isoformat()},
        status=409,
    )


def transfer_accept(*, code: str, receiver: User) -> Transfer:
    """`receiver` (signed in) takes the ticket the code offers: see the module docstring.
    Returns the accepted transfer; its ticket is the receiver's, with a fresh QR."""
    transfer = transfer_get_by_code(code)
    now = clock.now()
    if transfer.sender_id == receiver.pk:
        raise _error(
            "transfer_to_self",
            _("You cannot accept a ticket you are transferring yourself."),
        )
    if transfer_state(transfer, now) != Transfer.State.PENDING:
        raise _not_acceptable(transfer, receiver, now)
    unsafe = _unsafe()
    with transaction.atomic():
        # The unsafe control run takes no lock either: nothing but the check protects it.
        ticket = transfer.ticket if unsafe else _locked_ticket(transfer.ticket)
        _check_ticket(ticket)
        _check_session(ticket.session, now)
        rows = Transfer.objects.filter(pk=transfer.pk)
        if unsafe:
            # TEST-ONLY control: check first, write later without a condition.
            state = rows.values_list("state", flat=True).get()
            time.sleep(UNSAFE_PAUSE_SECONDS)
            if state != Transfer.State.PENDING:
                transfer.refresh_from_db()
                raise _not_acceptable(transfer, receiver, now)
        else:
            rows = rows.filter(state=Transfer.State.PENDING, expires_at__gt=now)
        if (
            rows.update(
                state=Transfer.State.ACCEPTED, receiver=receiver, accepted_at=now, updated_at=now
            )
            != 1
        ):
            transfer.refresh_from_db()
            raise _not_acceptable(transfer, receiver, now)
        ticket = ticket_transfer_to(
            ticket=ticket, holder=receiver, attendee_name=transfer.receiver_name, actor=receiver
        )
        transfer.refresh_from_db()
        transfer.ticket = Ticket.objects.select_related(
            "order", "session__event", "session__venue", "seat__section", "tier", "signing_key"
        ).get(pk=ticket.pk)
        _notify_accepted(transfer, receiver)
    return transfer


# --- Expire ------------------------------------------------------------------------------------


def transfers_expire_overdue(*, now: datetime | None = None, limit: int = EXPIRE_BATCH) -> int:
    """Mark up to `limit` pending transfers past their expiry as expired (each with one
    conditional UPDATE, so an accept that got there first keeps its win) and tell their
    senders. Returns how many expired. The `aftersales.transfers_expire_overdue` job."""
    now = now or clock.now()
    overdue = list(
        Transfer.objects.filter(state=Transfer.State.PENDING, expires_at__lte=now)
        .order_by("expires_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for pk in overdue:
        with transaction.atomic():
            if not Transfer.objects.filter(
                pk=pk, state=Transfer.State.PENDING, expires_at__lte=now
            ).update(state=Transfer.State.EXPIRED, updated_at=now):
                continue
            transfer = Transfer.objects.select_related(
                "sender",
                "ticket__session__event",
                "ticket__session__venue",
                "ticket__seat__section",
            ).get(pk=pk)
            _notify_expired(transfer)
            expired += 1
    return expired


# --- Notices -----------------------------------------------------------------------------------


def accept_url(transfer: Transfer) -> str:
    """The link the receiver gets."""
    return public_url() + ACCEPT_PATH.format(code=transfer.code)


def _local(moment: datetime, session: Session) -> str:
    return f"{moment.astimezone(session.venue.tzinfo):%Y-%m-%d %H:%M}"


def _facts(transfer: Transfer) -> dict[str, str]:
    ticket = transfer.ticket
    session = ticket.session
    return {
        "event": session.event.tr("title"),
        "time": _local(session.starts_at, session),
        "venue": session.venue.tr("name"),
        "seat": ticket_place_label(ticket),
        "serial": ticket.serial,
        "sender": str(transfer.sender),
        "name": transfer.receiver_name,
        "expires": _local(transfer.expires_at, session),
        "code": transfer.code,
        "url": accept_url(transfer),
    }


def _sender_recipients(transfer: Transfer) -> Recipients:
    return user_recipients(transfer.sender)


def _receiver_recipients(transfer: Transfer, kind: str) -> Recipients:
    # Nothing is known of the receiver's language: the sender's is the best guess.
    language = transfer.sender.preferred_language or translation.get_language() or ""
    contact = transfer.receiver_contact
    if kind == "email":
        return Recipients(email=contact, language=language)
    return Recipients(phone=contact, language=language)


def _contact_kind(transfer: Transfer) -> str:
    return "email" if "@" in transfer.receiver_contact else "phone"


def _notify_offered(transfer: Transfer, kind: str) -> None:
    recipients = _receiver_recipients(transfer, kind)
    with notice_language(recipients):
        facts = _facts(transfer)
        notice_queue(
            topic=f"transfer:{transfer.public_id}:offered",
            recipients=recipients,
            subject=_("%(sender)s sent you a ticket: %(event)s") % facts,
            body=_(
                "Hello %(name)s,\n\n"
                "%(sender)s wants to give you a ticket:\n"
                "%(event)s\n%(time)s, %(venue)s\n%(seat)s\n\n"
                "To accept it, open %(url)s and sign in (or create an account).\n"
                "Your transfer code: %(code)s\n\n"
                "The offer expires on %(expires)s. Once you accept, the ticket is yours and "
                "its code is shown in your account; the sender's copy stops working."
            )
            % facts,
            sms=_(
                "[Piaowu] %(sender)s sent you a ticket for %(event)s, %(time)s. "
                "Accept by %(expires)s: %(url)s"
            )
            % facts,
        )


def _notify_cancelled(transfer: Transfer) -> None:
    transfer = Transfer.objects.select_related(
        "sender", "ticket__session__event", "ticket__session__venue", "ticket__seat__section"
    ).get(pk=transfer.pk)
    recipients = _receiver_recipients(transfer, _contact_kind(transfer))
    with notice_language(recipients):
        facts = _facts(transfer)
        subject = _("The ticket offer for %(event)s was withdrawn") % facts
        notice_queue(
            topic=f"transfer:{transfer.public_id}:cancelled",
            recipients=recipients,
            subject=subject,
            body=_(
                "Hello %(name)s,\n\n%(sender)s withdrew the ticket offer for %(event)s, "
                "%(time)s. The transfer code %(code)s no longer works."
            )
            % facts,
            sms=_("[Piaowu] %(sender)s withdrew the ticket offer for %(event)s, %(time)s.") % facts,
        )


def _notify_accepted(transfer: Transfer, receiver: User) -> None:
    recipients = _sender_recipients(transfer)
    with notice_language(recipients):
        facts = {**_facts(transfer), "receiver": str(receiver)}
        notice_queue(
            topic=f"transfer:{transfer.public_id}:accepted",
            recipients=recipients,
            subject=_("%(name)s accepted your ticket for %(event)s") % facts,
            body=_(
                "%(name)s accepted ticket %(serial)s (%(event)s, %(time)s, %(seat)s).\n\n"
                "The ticket is theirs now: your copy of its code no longer works."
            )
            % facts,
        )


def _notify_expired(transfer: Transfer) -> None:
    recipients = _sender_recipients(transfer)
    with notice_language(recipients):
        facts = _facts(transfer)
        notice_queue(
            topic=f"transfer:{transfer.public_id}:expired",
            recipients=recipients,
            subject=_("Your ticket transfer for %(event)s expired") % facts,
            body=_(
                "%(name)s did not accept ticket %(serial)s (%(event)s, %(time)s) in time. "
                "The ticket is still yours and its code still works."
            )
            % facts,
        )
