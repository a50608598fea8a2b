"""Every write about tickets: issuing, signing keys, revocation and reissue, redemption codes.

Issuing runs inside the transaction that makes an order paid (registered with
`orders.services.on_order_paid`), so a paid order without tickets cannot be committed. The
ticket e-mail / SMS are written to the `Delivery` outbox in the same transaction and sent by a
job, so nothing on the payment path waits for a mail server.

A ticket's QR names its `secret_version`: reissuing bumps the version with one conditional
UPDATE (`… WHERE state = 'valid'`), which revokes every QR and paper made before; voiding sets
the state with `… WHERE state = 'valid'`. Every change appends a `TicketHistory` row in the same
transaction.

A redemption code is consumed by one conditional UPDATE (`… WHERE redeemed_at IS NULL`) in the
transaction that holds the seat, creates the zero-price order and issues its ticket: two
redemptions of one code race on that row, the second finds it redeemed and rolls back its hold
and order with it. `PIAOWU_TICKETS_UNSAFE_REDEMPTION` (tests only) swaps that UPDATE for a
read-then-write with a pause, so the race test's control run shows the double redemption.

Error codes: `key_already_revoked`, `key_active`, `order_not_paid`, `ticket_void`,
`ticket_reissue_limit`, `redemption_code_invalid`, `redemption_code_used`,
`redemption_code_expired`, `redemption_wrong_event`, `redemption_tier_missing`,
`redemption_one_ticket`, `redemption_seat_wrong_tier`, `redemption_batch_size`,
`redemption_batch_expired`, `redemption_batch_name`, `redemption_wrong_organizer`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from piaowu.accounts.models import Organizer, User
from piaowu.catalog.models import Event, PriceTier, SalesChannel, Session
from piaowu.core import clock
from piaowu.core.errors import DomainError
from piaowu.inventory.models import Hold
from piaowu.inventory.services import hold_best_available, hold_seats
from piaowu.orders.models import Order
from piaowu.orders.services import order_checkout
from piaowu.orders.states import PAID_STATES
from piaowu.tickets import codec
from piaowu.tickets.models import (
    Delivery,
    RedemptionBatch,
    RedemptionCode,
    SigningKey,
    Ticket,
    TicketHistory,
)
from piaowu.tickets.selectors import redemption_code_get

#: The QR carries the secret version in 2 bytes.
MAX_SECRET_VERSION = 0xFFFF
REISSUE_CHUNK = 500
MAX_BATCH_SIZE = 10_000
UNSAFE_PAUSE_SECONDS = 0.3

# --- Signing keys ----------------------------------------------------------------------------


def signing_key_active(organizer: Organizer) -> SigningKey:
    """The organizer's active key, created on first use. Two first uses at once: the partial
    unique index lets one insert win; the other reads the winner."""
    key = SigningKey.objects.filter(organizer=organizer, status=SigningKey.Status.ACTIVE).first()
    if key is not None:
        return key
    private, public = codec.new_key_pair()
    try:
        with transaction.atomic():
            return SigningKey.objects.create(
                organizer=organizer,
                kid=codec.new_kid(),
                public_key=public,
                private_key=private,
                created_at=clock.now(),
            )
    except IntegrityError:
        return SigningKey.objects.get(organizer=organizer, status=SigningKey.Status.ACTIVE)


def signing_key_rotate(*, organizer: Organizer) -> SigningKey:
    """A new active key signs tickets from now on; the old one is retired and keeps verifying
    the tickets issued under it until revoked."""
    now = clock.now()
    private, public = codec.new_key_pair()
    with transaction.atomic():
        SigningKey.objects.filter(organizer=organizer, status=SigningKey.Status.ACTIVE).update(
            status=SigningKey.Status.RETIRED, retired_at=now
        )
        return SigningKey.objects.create(
            organizer=organizer,
            kid=codec.new_kid(),
            public_key=public,
            private_key=private,
            created_at=now,
        )


def signing_key_revoke(*, key: SigningKey) -> SigningKey:
    """No ticket signed by this key verifies any more (a leaked key). Revoking the active key
    makes a fresh one active so selling goes on; tickets under the revoked key need reissuing."""
    now = clock.now()
    with transaction.atomic():
        keys = SigningKey.objects.filter(pk=key.pk)
        was_active = keys.filter(status=SigningKey.Status.ACTIVE).update(
            status=SigningKey.Status.REVOKED, revoked_at=now
        )
        if was_active:
            private, public = codec.new_key_pair()
            SigningKey.objects.create(
                organizer_id=key.organizer_id,
                kid=codec.new_kid(),
                public_key=public,
                private_key=private,
                created_at=now,
            )
        elif not keys.filter(status=SigningKey.Status.RETIRED).update(
            status=SigningKey.Status.REVOKED, revoked_at=now
        ):
            raise DomainError("key_already_revoked", _("This key is already revoked."))
    key.refresh_from_db()
    return key


# --- Issuing ---------------------------------------------------------------------------------


def admission_window(session: Session) -> tuple[datetime, datetime]:
    """When a ticket of `session` admits: doors open before the start, close after the end."""
    return (
        session.starts_at - timedelta(minutes=settings.PIAOWU_DOORS_OPEN_MINUTES),
        session.ends_at + timedelta(minutes=settings.PIAOWU_ADMIT_AFTER_END_MINUTES),
    )


def tickets_issue_for_order(order: Order) -> list[Ticket]:
    """One ticket per seat / admission of a paid order, in the caller's transaction, and the
    order's e-mail / SMS deliveries queued. Idempotent: an order that has its tickets keeps them
    (the unique (line, index) constraint backs this up)."""
    if order.state not in PAID_STATES:
        raise DomainError("order_not_paid", _("Tickets are issued once the order is paid."))
    existing = list(order.tickets.all())
    if existing:
        return existing
    session = order.session
    organizer = session.event.organizer
    key = signing_key_active(organizer)
    valid_from, valid_until = admission_window(session)
    now = clock.now()
    rotating = session.rotating_qr
    tickets = [
        Ticket(
            serial=codec.new_serial(),
            token=codec.new_token(),
            order=order,
            order_line=line,
            index=index,
            session=session,
            organizer=organizer,
            tier=line.tier,
            seat=line.seat,
            signing_key=key,
            rotating=rotating,
            valid_from=valid_from,
            valid_until=valid_until,
            issued_at=now,
        )
        for line in order.lines.select_related("tier", "seat").order_by("id")
        for index in range(line.quantity)
    ]
    if not tickets:
        return []  # an order without lines (a prepaid waitlist deposit) sells no admissions
    with transaction.atomic():
        Ticket.objects.bulk_create(tickets)
        tickets = list(order.tickets.all())
        TicketHistory.objects.bulk_create(
            TicketHistory(ticket=t, action="issued", secret_version=1, reason="paid", at=now)
            for t in tickets
        )
        _deliveries_queue(order, now)
    return tickets


def _deliveries_queue(order: Order, now: datetime) -> None:
    email = order.contact_email or (order.customer.email if order.customer else "")
    rows = []
    if email:
        rows.append(Delivery(order=order, kind=Delivery.Kind.EMAIL, recipient=email))
    if order.contact_phone:
        rows.append(Delivery(order=order, kind=Delivery.Kind.SMS, recipient=order.contact_phone))
    for row in rows:
        row.next_attempt_at = now
        row.created_at = now
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)


# --- Reissue and void ------------------------------------------------------------------------


def _history(ticket: Ticket, action: str, actor: User | None, reason: str, at: datetime) -> None:
    TicketHistory.objects.create(
        ticket=ticket,
        action=action,
        secret_version=ticket.secret_version,
        actor=actor,
        reason=reason[:200],
        at=at,
    )


def ticket_reissue(*, ticket: Ticket, actor: User | None, reason: str) -> Ticket:
    """A new secret version of a valid ticket, signed with the organizer's active key: every
    QR and paper made before stops verifying (a reprint, a leaked screenshot, a revoked key).
    One conditional UPDATE bumps the version, so two reissues at once make two versions and
    neither is lost. Errors: `ticket_void`, `ticket_reissue_limit` (65 535 versions)."""
    return _new_secret_version(ticket, actor=actor, action="reissued", reason=reason)


def _new_secret_version(
    ticket: Ticket, *, actor: User | None, action: str, reason: str, **changes: object
) -> Ticket:
    """`ticket_reissue`'s one conditional UPDATE (plus `changes` to other fields in the same
    statement) and its history row `action`."""
    now = clock.now()
    with transaction.atomic():
        key = signing_key_active(Organizer.objects.get(pk=ticket.organizer_id))
        changed = Ticket.objects.filter(
            pk=ticket.pk, state=Ticket.State.VALID, secret_version__lt=MAX_SECRET_VERSION
        ).update(secret_version=F("secret_version") + 1, signing_key=key, **changes)
        fresh = Ticket.objects.select_related("signing_key").get(pk=ticket.pk)
        if not changed:
            if fresh.state != Ticket.State.VALID:
                error = DomainError(
                    "ticket_void",
                    _("This ticket is void and cannot be reissued."),
                    {"serial": fresh.serial},
                )
                error.status = 409  # as when printing it: the ticket's state is the conflict
                raise error
            raise DomainError(
                "ticket_reissue_limit",
                _("This ticket was reissued too many times."),
                {"serial": fresh.serial},
            )
        _history(fresh, action, actor, reason, now)
    _copy_state(fresh, ticket)
    return fresh


def ticket_transfer_to(*, ticket: Ticket, holder: User, attendee_name: str, actor: User) -> Ticket:
    """Hand a valid ticket to `holder` in the name of `attendee_name`: a new secret version
    (exactly as `ticket_reissue`: every QR and paper made before stops verifying, the new
    holder's QR is fresh), the holder and the attendee set in the same conditional UPDATE, and
    a `transferred` history row. The previous attendee's ID no longer applies and is cleared.
    Call it inside the transaction that accepts the transfer (`aftersales.services.transfers`),
    which checks who may transfer. Errors: `ticket_void`, `ticket_reissue_limit`."""
    attendee_name = attendee_name.strip()[:80]
    fresh = _new_secret_version(
        ticket,
        actor=actor,
        action="transferred",
        reason=f"to {attendee_name} <{holder.email}>",
        holder=holder,
        attendee_name=attendee_name,
        attendee_id_masked="",
    )
    for target in (fresh, ticket):
        target.holder = holder
        target.attendee_name = attendee_name
        target.attendee_id_masked = ""
    return fresh


def ticket_void(*, ticket: Ticket, actor: User | None, reason: str) -> Ticket:
    """Void a ticket (refunded, exchanged away, order reversed): it admits nobody any more.
    Voiding a void ticket changes nothing and writes no history."""
    now = clock.now()
    with transaction.atomic():
        changed = Ticket.objects.filter(pk=ticket.pk, state=Ticket.State.VALID).update(
            state=Ticket.State.VOID, void_reason=reason[:40]
        )
        fresh = Ticket.objects.select_related("signing_key").get(pk=ticket.pk)
        if changed:
            _history(fresh, "voided", actor, reason, now)
    _copy_state(fresh, ticket)
    return fresh


def tickets_rewindow_for_session(*, session: Session, actor: User | None, reason: str) -> int:
    """Give every valid ticket of `session` the admission window of the session's current
    times (`admission_window`), after the session moved; a `rewindowed` history row each. Only
    tickets whose window differs are touched, so calling it again changes nothing. The QR
    claims carry the window, so the codes shown from now on change with it (same secret
    version: a holder's old code does not admit in the new window, the gate can look the
    ticket up by serial). Call inside the transaction that moves the session. Returns how many
    tickets changed."""
    valid_from, valid_until = admission_window(session)
    now = clock.now()
    stale = Ticket.objects.filter(session=session, state=Ticket.State.VALID).exclude(
        valid_from=valid_from, valid_until=valid_until
    )
    with transaction.atomic():
        rows = list(stale.values_list("pk", "secret_version"))
        if not rows:
            return 0
        changed = stale.update(valid_from=valid_from, valid_until=valid_until)
        TicketHistory.objects.bulk_create(
            (
                TicketHistory(
                    ticket_id=pk,
                    action="rewindowed",
                    secret_version=version,
                    actor=actor,
                    reason=reason[:200],
                    at=now,
                )
                for pk, version in rows
            ),
            batch_size=1000,
        )
    return changed


def _copy_state(source: Ticket, target: Ticket) -> None:
    if target is not source:
        target.state = source.state
        target.void_reason = source.void_reason
        target.secret_version = source.secret_version
        target.signing_key = source.signing_key


def tickets_reissue_for_key(*, key: SigningKey, actor: User | None) -> int:
    """After `key` is revoked (or retired), give every valid ticket it signed a new secret
    version under the organizer's active key, so their holders' e-tickets work again while the
    old codes read as forged. Works in chunks of locked rows, each its own transaction; running
    it again picks up what is left. Returns how many tickets this call reissued.
    Errors: `key_active` (reissuing under the same key would change nothing)."""
    key.refresh_from_db()
    if key.status == SigningKey.Status.ACTIVE:
        raise DomainError(
            "key_active", _("Rotate or revoke this key before reissuing its tickets.")
        )
    organizer = Organizer.objects.get(pk=key.organizer_id)
    reason = f"key {key.kid} {key.status}"
    total = 0
    while True:
        now = clock.now()
        with transaction.atomic():
            active = signing_key_active(organizer)
            # Lock the chunk: a concurrent `ticket_reissue` / `ticket_void` of one of these
            # tickets waits, then finds it moved (and bumps again, or voids the new version).
            ids = list(
                Ticket.objects.select_for_update()
                .filter(signing_key=key, state=Ticket.State.VALID)
                .order_by("id")
                .values_list("id", flat=True)[:REISSUE_CHUNK]
            )
            if not ids:
                return total
            Ticket.objects.filter(
                id__in=ids,
                signing_key=key,
                state=Ticket.State.VALID,
                secret_version__lt=MAX_SECRET_VERSION,
            ).update(secret_version=F("secret_version") + 1, signing_key=active)
            moved = list(
                Ticket.objects.filter(id__in=ids, signing_key=active).values_list(
                    "id", "secret_version"
                )
            )
            if not moved:
                return total  # only tickets at the version limit are left
            TicketHistory.objects.bulk_create(
                TicketHistory(
                    ticket_id=ticket_id,
                    action="reissued",
                    secret_version=version,
                    actor=actor,
                    reason=reason,
                    at=now,
                )
                for ticket_id, version in moved
            )
            total += len(moved)


# --- Redemption codes ------------------------------------------------------------------------


def redemption_batch_create(
    *,
    organizer: Organizer,
    event: Event,
    tier_code: str,
    name: str,
    size: int,
    valid_until: datetime,
    actor: User | None,
) -> RedemptionBatch:
    """`size` codes (1–10 000), each worth one ticket of tier `tier_code` in any session of
    `event` that has that tier, redeemable until `valid_until`. Codes look like serials
    (`XXXX-XXXX-XXXX`, Crockford base32 with a check character, 55 random bits).
    Errors: `redemption_wrong_organizer`, `redemption_batch_size`, `redemption_batch_expired`,
    `redemption_batch_name`, `redemption_tier_missing`."""
    name = name.strip()
    tier_code = tier_code.strip()
    if event.organizer_id != organizer.pk:
        raise DomainError(
            "redemption_wrong_organizer", _("This event belongs to another organizer.")
        )
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise DomainError(
            "redemption_batch_size",
            _("A batch has between 1 and %(max)d codes.") % {"max": MAX_BATCH_SIZE},
            {"fields": {"size": _("Between 1 and %(max)d.") % {"max": MAX_BATCH_SIZE}}},
        )
    now = clock.now()
    if valid_until <= now:
        raise DomainError(
            "redemption_batch_expired",
            _("The redeem-by date must be in the future."),
            {"fields": {"valid_until": _("Must be in the future.")}},
        )
    if not name or len(name) > 120:
        raise DomainError(
            "redemption_batch_name",
            _("Give the batch a name of at most 120 characters."),
            {"fields": {"name": _("Required, at most 120 characters.")}},
        )
    if not PriceTier.objects.filter(session__event=event, code=tier_code).exists():
        raise DomainError(
            "redemption_tier_missing",
            _("No session of this event has a ticket type with code %(code)s.")
            % {"code": tier_code},
            {"fields": {"tier_code": _("No session of this event has this ticket type.")}},
        )
    for attempt in range(3):
        try:
            with transaction.atomic():
                batch = RedemptionBatch.objects.create(
                    organizer=organizer,
                    event=event,
                    tier_code=tier_code,
                    name=name,
                    size=size,
                    valid_until=valid_until,
                    created_by=actor,
                    created_at=now,
                )
                codes: set[str] = set()
                while len(codes) < size:
                    codes.add(codec.new_serial())
                RedemptionCode.objects.bulk_create(
                    (RedemptionCode(batch=batch, code=code) for code in sorted(codes)),
                    batch_size=1000,
                )
                return batch
        except IntegrityError:
            # A code collided with another batch's (about 2⁻⁵⁵ per pair): draw them again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _redemption_unsafe() -> bool:
    return bool(getattr(settings, "PIAOWU_TICKETS_UNSAFE_REDEMPTION", False))


def _code_used(code: str) -> DomainError:
    return DomainError(
        "redemption_code_used", _("This code has already been redeemed."), {"code": code}
    )


def _redemption_hold(
    *,
    session: Session,
    tier_code: str,
    seat_codes: list[str] | None,
    holder_key: str,
    customer: User | None,
) -> Hold:
    """One seat (the chosen one, or the best available of the tier) or one GA admission."""
    if seat_codes is None:
        return hold_best_available(
            session=session,
            quantity=1,
            tier_code=tier_code,
            holder_key=holder_key,
            customer=customer,
        )
    hold = hold_seats(
        session=session, seat_codes=seat_codes, holder_key=holder_key, customer=customer
    )
    wrong = [
        item.seat.code
        for item in hold.items.select_related("seat", "tier")
        if item.seat and item.tier.code != tier_code
    ]
    if wrong:
        raise DomainError(
            "redemption_seat_wrong_tier",
            _("This code is not valid for seat %(seats)s; choose a seat of its ticket type.")
            % {"seats": ", ".join(wrong)},
            {"seats": wrong, "tier": tier_code},
        )
    return hold


def redemption_redeem(
    *,
    code: str,
    session: Session,
    channel: SalesChannel,
    holder_key: str,
    customer: User | None = None,
    contact_phone: str = "",
    contact_email: str = "",
    seat_codes: list[str] | None = None,
) -> Order:
    """Turn a redemption code into a paid order of one ticket (the chosen seat, the best
    available seat of the code's tier, or one GA admission) at price 0, in one transaction with
    the code's consumption: a second redemption of the code — later or at the same instant —
    gets `redemption_code_used` and leaves no hold or order behind.

    Errors: `redemption_code_invalid`, `redemption_code_used`, `redemption_code_expired`,
    `redemption_wrong_event`, `redemption_tier_missing`, `redemption_one_ticket`,
    `redemption_seat_wrong_tier`, and those of the hold services and `order_checkout`
    (`sales_closed`, `seat_taken`, `sold_out`, `contact_required`, `invalid_phone`, …)."""
    row = redemption_code_get(code)
    batch = row.batch
    if session.event_id != batch.event_id:
        raise DomainError(
            "redemption_wrong_event",
            _("This code is for another event."),
            {"event": batch.event.public_id},
        )
    if not session.price_tiers.filter(code=batch.tier_code, is_active=True).exists():
        raise DomainError(
            "redemption_tier_missing",
            _("This session has no tickets of the code's type; choose another session."),
            {"tier": batch.tier_code},
        )
    if seat_codes is not None and len(seat_codes) != 1:
        raise DomainError(
            "redemption_one_ticket",
            _("A code is worth one ticket: choose one seat."),
            {"seats": list(seat_codes)},
        )
    unsafe = _redemption_unsafe()
    with transaction.atomic():
        if unsafe:
            # TEST-ONLY control: check first, write later without a condition.
            redeemed = RedemptionCode.objects.values_list("redeemed_at", flat=True).get(pk=row.pk)
            time.sleep(UNSAFE_PAUSE_SECONDS)
            if redeemed is not None:
                raise _code_used(row.code)
        hold = _redemption_hold(
            session=session,
            tier_code=batch.tier_code,
            seat_codes=seat_codes,
            holder_key=holder_key,
            customer=customer,
        )
        order = order_checkout(
            hold=hold,
            channel=channel,
            holder_key=holder_key,
            customer=customer,
            contact_phone=contact_phone,
            contact_email=contact_email,
            price_override=Decimal(0),
        )
        if order.state not in PAID_STATES:  # a zero total pays at checkout; never otherwise
            raise DomainError("order_not_paid", _("The redeemed order could not be completed."))
        now = clock.now()
        codes = RedemptionCode.objects.filter(pk=row.pk)
        if not unsafe:
            codes = codes.filter(redeemed_at__isnull=True)
        if codes.update(redeemed_at=now, order=order) != 1:
            raise _code_used(row.code)  # rolls back the hold, the order and its ticket
        TicketHistory.objects.bulk_create(
            TicketHistory(
                ticket=ticket,
                action="redeemed",
                secret_version=ticket.secret_version,
                actor=customer,
                reason=f"redemption code {row.code}",
                at=now,
            )
            for ticket in order.tickets.all()
        )
    return order
