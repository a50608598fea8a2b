"""Customer-service cases (AFT-6): feedback, complaints, refund disputes and questions, with
SLA due times, assignment, a conversation, and a satisfaction rating once closed.

States and what moves a case between them:

    open → in_progress                    assigned
    open, in_progress → waiting_customer  staff replied
    waiting_customer → in_progress        the customer answered
    (any but closed) → closed             staff, or the customer, closed it
    closed → in_progress                  reopened: a customer message within
                                          PIAOWU_CASE_REOPEN_DAYS of closing (unrated), or staff

* `case_open` (a signed-in customer, web form) and `case_open_by_staff` (staff entry on a
  customer's behalf) create the case and its first message. The organizer is the organizer
  of the order's event when there is an order; a customer's case without an order has no
  organizer and is handled by the platform operators (superusers).
* Due times are set at opening: first answer within `PIAOWU_CASE_FIRST_RESPONSE_HOURS`
  (default 24), resolution within `PIAOWU_CASE_RESOLUTION_HOURS` (72). Complaints and refund
  disputes are stricter: `PIAOWU_CASE_URGENT_FIRST_RESPONSE_HOURS` (8) and
  `PIAOWU_CASE_URGENT_RESOLUTION_HOURS` (48). Hours are calendar hours. Reopening a closed case
  sets a fresh resolution due time.
* Staff (role `service` or `admin` of the case's organizer — `Perm.SERVICE_CASES` —, or a
  superuser) assign, reply and close. A reply is visible to the customer, sets
  `first_responded_at` once, moves the case to `waiting_customer`, makes the replier the
  assignee if nobody was, and queues a notice to the customer. An internal note is never
  shown to the customer and changes no state.
* The customer's follow-up message moves a waiting case back to `in_progress`, and reopens a
  closed, unrated case within `PIAOWU_CASE_REOPEN_DAYS` (default 7) of its closing.
* The customer rates a closed case of their own once, 1–5.

Every change appends a `CaseHistory` row in the same transaction. Each service locks the case
row (`SELECT … FOR UPDATE` on PostgreSQL), re-checks its state and writes with conditional
UPDATEs, so concurrent calls on one case are serialised and a rating is written at most once.

Error codes: `unauthorized` (401), `forbidden` (403), `case_not_found` (404), `order_not_found`
(404), `invalid_kind`, `subject_required`, `message_required`, `text_too_long`,
`contact_required`, `invalid_contact`, `organizer_required`, `order_wrong_organizer`,
`too_many_open_cases`, `assignee_not_allowed`, `case_closed`, `case_not_closed`,
`invalid_rating` (400), `case_already_rated`, `case_state_changed` (409).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from piaowu.accounts.models import Organizer, User
from piaowu.accounts.permissions import Perm, has_perm, require_perm
from piaowu.aftersales.models import Case, CaseHistory, CaseMessage
from piaowu.aftersales.services.notices import Recipients, notice_language, notice_queue
from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound, PermissionDenied
from piaowu.orders.models import Order
from piaowu.orders.services import normalize_phone
from piaowu.tickets.delivery import public_url

State = Case.State
Kind = Case.Kind

DEFAULT_FIRST_RESPONSE_HOURS = 24.0
DEFAULT_RESOLUTION_HOURS = 72.0
DEFAULT_URGENT_FIRST_RESPONSE_HOURS = 8.0
DEFAULT_URGENT_RESOLUTION_HOURS = 48.0
DEFAULT_REOPEN_DAYS = 7.0
DEFAULT_MAX_OPEN_PER_CUSTOMER = 10
#: Kinds answered on the stricter clock.
URGENT_KINDS = frozenset({Kind.COMPLAINT, Kind.REFUND_DISPUTE})
MAX_SUBJECT_LENGTH = 200
MAX_MESSAGE_LENGTH = 5000
MAX_RATING_COMMENT_LENGTH = 500
RATING_MIN, RATING_MAX = 1, 5
#: The customer's page of a case (served by the web app), for links in notices.
CASE_PATH = "/help/cases/{public_id}/"

_PHONE_RE = re.compile(r"^\+?[0-9]{5,20}$")

#: Which state may follow which (closed → in_progress is a reopening).
TRANSITIONS: dict[str, frozenset[str]] = {
    State.OPEN: frozenset({State.IN_PROGRESS, State.WAITING_CUSTOMER, State.CLOSED}),
    State.IN_PROGRESS: frozenset({State.WAITING_CUSTOMER, State.CLOSED}),
    State.WAITING_CUSTOMER: frozenset({State.IN_PROGRESS, State.CLOSED}),
    State.CLOSED: frozenset({State.IN_PROGRESS}),
}
#: States in which staff are expected to act next (the SLA clock runs).
STAFF_TURN_STATES = frozenset({State.OPEN, State.IN_PROGRESS})


# --- Settings ------------------------------------------------------------------------------------


def case_setting(name: str, default: float) -> float:
    """A number from the Django settings, else the environment (`PIAOWU_CASE_…`), else
    `default`: the settings module need not list them to make them configurable."""
    value = getattr(settings, name, None)
    if value is None or value == "":
        value = os.environ.get(name, "")
    return float(value) if value != "" else default


@dataclass(frozen=True, slots=True)
class SlaHours:
    first_response: float
    resolution: float


def sla_hours(kind: str) -> SlaHours:
    """The SLA of a case of `kind`, in hours (complaints and refund disputes are stricter)."""
    if kind in URGENT_KINDS:
        return SlaHours(
            first_response=case_setting(
                "PIAOWU_CASE_URGENT_FIRST_RESPONSE_HOURS", DEFAULT_URGENT_FIRST_RESPONSE_HOURS
            ),
            resolution=case_setting(
                "PIAOWU_CASE_URGENT_RESOLUTION_HOURS", DEFAULT_URGENT_RESOLUTION_HOURS
            ),
        )
    return SlaHours(
        first_response=case_setting(
            "PIAOWU_CASE_FIRST_RESPONSE_HOURS", DEFAULT_FIRST_RESPONSE_HOURS
        ),
        resolution=case_setting("PIAOWU_CASE_RESOLUTION_HOURS", DEFAULT_RESOLUTION_HOURS),
    )


def reopen_days() -> float:
    return case_setting("PIAOWU_CASE_REOPEN_DAYS", DEFAULT_REOPEN_DAYS)


def max_open_per_customer() -> int:
    return int(case_setting("PIAOWU_CASE_MAX_OPEN_PER_CUSTOMER", DEFAULT_MAX_OPEN_PER_CUSTOMER))


def case_url(case: Case) -> str:
    return public_url() + CASE_PATH.format(public_id=case.public_id)


# --- Errors ----------------------------------------------------------------------------------


def _error(
    code: str, message: str, details: dict[str, Any] | None = None, status: int = 400
) -> DomainError:
    error = DomainError(code, message, details)
    error.status = status
    return error


def case_not_found() -> NotFound:
    return NotFound("case", _("No such case."))


def _unauthorized() -> DomainError:
    return _error("unauthorized", _("Sign in first."), status=401)


def _case_closed() -> DomainError:
    return _error("case_closed", _("This case is closed."), {"state": State.CLOSED})


def _state_changed(case_id: int, expected: str) -> DomainError:
    current = Case.objects.filter(pk=case_id).values_list("state", flat=True).first()
    return _error(
        "case_state_changed",
        _("This case was just changed by someone else; please reload it."),
        {"expected": expected, "state": current},
        status=409,
    )


# --- Checks ----------------------------------------------------------------------------------


def _signed_in(user: User | None) -> User:
    if user is None or not user.is_authenticated or not user.is_active:
        raise _unauthorized()
    return user


def _check_kind(kind: str) -> str:
    if kind not in Kind.values:
        raise _error(
            "invalid_kind",
            _("Choose what the case is about."),
            {"field": "kind", "allowed": list(Kind.values)},
        )
    return kind


def _text(value: str, *, field: str, limit: int, required_code: str, required: str) -> str:
    text = (value or "").strip()
    if not text:
        raise _error(required_code, required, {"field": field})
    if len(text) > limit:
        raise _error(
            "text_too_long",
            _("At most %(n)s characters.") % {"n": limit},
            {"field": field, "max": limit},
        )
    return text


def _subject(value: str) -> str:
    return _text(
        value,
        field="subject",
        limit=MAX_SUBJECT_LENGTH,
        required_code="subject_required",
        required=_("Give the case a subject."),
    )


def _message(value: str) -> str:
    return _text(
        value,
        field="message",
        limit=MAX_MESSAGE_LENGTH,
        required_code="message_required",
        required=_("Write a message."),
    )


def _contact(value: str) -> str:
    """A phone number or an e-mail address ("" stays "")."""
    contact = (value or "").strip()
    if not contact:
        return ""
    if "@" in contact:
        try:
            validate_email(contact)
        except ValidationError:
            raise _error(
                "invalid_contact",
                _("Enter a phone number or an e-mail address."),
                {"field": "contact"},
            ) from None
        return contact.lower()
    phone = normalize_phone(contact)
    if not _PHONE_RE.match(phone):
        raise _error(
            "invalid_contact",
            _("Enter a phone number or an e-mail address."),
            {"field": "contact"},
        )
    return phone


def is_case_staff(user: User | None, organizer_id: int | None) -> bool:
    """May `user` handle cases of this organizer (None: a case without organizer)?"""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if organizer_id is None:
        return bool(user.is_superuser)
    return has_perm(user, organizer_id, Perm.SERVICE_CASES)


def _require_staff(user: User | None, organizer_id: int | None) -> User:
    if organizer_id is None:
        if not is_case_staff(user, None):
            raise PermissionDenied(
                _("Only platform operators handle cases without an organizer."),
                {"permission": str(Perm.SERVICE_CASES)},
            )
    else:
        require_perm(user, organizer_id, Perm.SERVICE_CASES)
    assert user is not None
    return user


def _own(case: Case, customer: User | None) -> User:
    """The customer of `case`; anyone else gets `case_not_found`, like an unknown id."""
    customer = _signed_in(customer)
    if case.customer_id is None or case.customer_id != customer.pk:
        raise case_not_found()
    return customer


def _locked(case: Case) -> Case:
    """The case row, locked for this transaction (call inside `transaction.atomic`)."""
    locked = Case.objects.select_for_update().filter(pk=case.pk).first()
    if locked is None:
        raise case_not_found()
    return locked


def _refresh(case: Case, source: Case) -> Case:
    """Copy the written row's values onto the caller's instance and return it."""
    for field in Case._meta.concrete_fields:
        setattr(case, field.attname, getattr(source, field.attname))
    return case


# --- Writes shared by the services ---------------------------------------------------------------


def _history(
    case: Case, action: str, *, actor: User | None, note: str = "", at: datetime
) -> CaseHistory:
    return CaseHistory.objects.create(case=case, action=action, actor=actor, note=note[:200], at=at)


def _transition(
    case: Case,
    to: str,
    *,
    actor: User | None,
    now: datetime,
    action: str = "",
    note: str = "",
    fields: dict[str, Any] | None = None,
) -> None:
    """Move the (locked) `case` to `to` with one conditional UPDATE and a history row."""
    from_state = case.state
    if to not in TRANSITIONS[from_state]:
        raise _error(
            "illegal_case_transition",
            _("A case in state %(from)s cannot become %(to)s.") % {"from": from_state, "to": to},
            {"from": from_state, "to": to},
        )
    values: dict[str, Any] = {"state": to, "updated_at": now, **(fields or {})}
    if Case.objects.filter(pk=case.pk, state=from_state).update(**values) != 1:
        raise _state_changed(case.pk, from_state)
    for name, value in values.items():
        setattr(case, name, value)
    _history(case, action or to, actor=actor, note=note or f"{from_state} → {to}", at=now)


def _touch(case: Case, now: datetime) -> None:
    Case.objects.filter(pk=case.pk).update(updated_at=now)
    case.updated_at = now


def _add_message(
    case: Case, *, author: User | None, body: str, from_staff: bool, internal: bool, now: datetime
) -> CaseMessage:
    return CaseMessage.objects.create(
        case=case, author=author, from_staff=from_staff, internal=internal, body=body, at=now
    )


def case_recipients(case: Case) -> Recipients:
    """Where the customer of a case hears from us: one channel, e-mail when we have an address
    (the case's contact, the customer's account, the order's contact), else SMS (the case's
    contact, the order's phone)."""
    contact = case.contact
    email = contact if "@" in contact else ""
    phone = contact if contact and "@" not in contact else ""
    language = ""
    customer = case.customer
    if customer is not None:
        email = email or customer.email
        language = customer.preferred_language
    order = case.order
    if order is not None:
        email = email or order.contact_email
        phone = phone or order.contact_phone
        if not language and order.customer is not None:
            language = order.customer.preferred_language
    return Recipients(email=email, phone="" if email else phone, language=language)


def _notify(case: Case, *, topic: str, what: str, text: str = "") -> int:
    """Queue a notice to the customer: `what` is "reply" or "closed"."""
    recipients = case_recipients(case)
    with notice_language(recipients):
        values = {"number": case.number, "subject": case.subject, "url": case_url(case)}
        if what == "reply":
            subject = _("Customer service replied to your case %(number)s") % values
            body = (
                _("Your case %(number)s: %(subject)s") % values
                + "\n\n"
                + text
                + "\n\n"
                + _("See the whole conversation and answer here: %(url)s") % values
            )
            sms = _("Customer service replied to your case %(number)s: %(url)s") % values
        else:
            subject = _("Your case %(number)s is closed") % values
            body = (
                _("Your case %(number)s: %(subject)s") % values
                + "\n\n"
                + _(
                    "We have closed this case. If something is still not right, answer within "
                    "%(days)s days and it opens again. Please tell us how we did: %(url)s"
                )
                % {**values, "days": f"{reopen_days():g}"}
            )
            sms = _("Your case %(number)s is closed; rate our service: %(url)s") % values
    return notice_queue(topic=topic, recipients=recipients, subject=subject, body=body, sms=sms)


def _new_case(
    *,
    organizer_id: int | None,
    order: Order | None,
    customer: User | None,
    contact: str,
    kind: str,
    channel: str,
    subject: str,
    message: str,
    author: User,
    now: datetime,
) -> Case:
    hours = sla_hours(kind)
    with transaction.atomic():
        case = Case.objects.create(
            organizer_id=organizer_id,
            order=order,
            customer=customer,
            contact=contact,
            kind=kind,
            channel=channel,
            subject=subject,
            state=State.OPEN,
            first_response_due=now + timedelta(hours=hours.first_response),
            resolution_due=now + timedelta(hours=hours.resolution),
        )
        _add_message(case, author=author, body=message, from_staff=False, internal=False, now=now)
        _history(case, "opened", actor=author, note=channel, at=now)
    return case


# --- Opening -------------------------------------------------------------------------------------


def case_open(
    *, customer: User | None, kind: str, subject: str, message: str, order_id: str = ""
) -> Case:
    """A signed-in customer opens a case (web form / API), optionally about one of their own
    orders (`order_id`: its public id). Someone else's order is `order_not_found`, like an
    unknown id. Errors: `unauthorized`, `invalid_kind`, `subject_required`,
    `message_required`, `text_too_long`, `order_not_found`, `too_many_open_cases`."""
    customer = _signed_in(customer)
    kind = _check_kind(kind)
    subject = _subject(subject)
    message = _message(message)
    order: Order | None = None
    if order_id:
        order = (
            Order.objects.select_related("session__event")
            .filter(public_id=order_id, customer=customer)
            .first()
        )
        if order is None:
            raise NotFound("order", _("No such order."), {"field": "order"})
    limit = max_open_per_customer()
    # A soft limit against floods (two simultaneous requests may both pass it).
    if Case.objects.filter(customer=customer).exclude(state=State.CLOSED).count() >= limit:
        raise _error(
            "too_many_open_cases",
            _("You have %(n)s open cases; please wait for an answer before opening more.")
            % {"n": limit},
            {"limit": limit},
        )
    return _new_case(
        organizer_id=order.session.event.organizer_id if order is not None else None,
        order=order,
        customer=customer,
        contact="",
        kind=kind,
        channel=Case.Channel.WEB,
        subject=subject,
        message=message,
        author=customer,
        now=clock.now(),
    )


def case_open_by_staff(
    *,
    actor: User | None,
    kind: str,
    subject: str,
    message: str,
    order: Order | None = None,
    organizer: Organizer | None = None,
    customer: User | None = None,
    contact: str = "",
) -> Case:
    """Staff enter a case on a customer's behalf (a phone call, a visit). The organizer is the
    order's when there is one; otherwise `organizer` (required unless the actor is a platform
    operator, whose case without either has no organizer). The actor needs
    `Perm.SERVICE_CASES` there. Who to answer: `contact` (phone or e-mail), else the order's
    buyer, else `customer`; one of them is required. `message` is what the customer asked.
    Errors: `forbidden`, `invalid_kind`, `subject_required`, `message_required`,
    `text_too_long`, `invalid_contact`, `contact_required`, `organizer_required`,
    `order_wrong_organizer`."""
    actor = _signed_in(actor)
    kind = _check_kind(kind)
    subject = _subject(subject)
    message = _message(message)
    contact = _contact(contact)
    organizer_id: int | None
    if order is not None:
        organizer_id = order.session.event.organizer_id
        if organizer is not None and organizer.pk != organizer_id:
            raise _error(
                "order_wrong_organizer",
                _("This order is not one of this organizer's."),
                {"field": "order"},
            )
        customer = order.customer or customer
        contact = contact or order.contact_phone or order.contact_email
    else:
        organizer_id = organizer.pk if organizer is not None else None
        if organizer_id is None and not actor.is_superuser:
            raise _error("organizer_required", _("Choose the organizer."), {"field": "organizer"})
    _require_staff(actor, organizer_id)
    if not contact and (customer is None or not customer.email):
        raise _error(
            "contact_required",
            _("Give a phone number or an e-mail address to answer the customer."),
            {"field": "contact"},
        )
    return _new_case(
        organizer_id=organizer_id,
        order=order,
        customer=customer,
        contact=contact,
        kind=kind,
        channel=Case.Channel.STAFF,
        subject=subject,
        message=message,
        author=actor,
        now=clock.now(),
    )


# --- Staff -------------------------------------------------------------------------------------


def case_assign(*, case: Case, assignee: User | None, actor: User | None) -> Case:
    """Give the case to `assignee` (None: to nobody): someone who may handle the case's
    organizer's cases (role service or admin there, or a platform operator). Assigning an open
    case starts it (`open → in_progress`). Assigning the current assignee again changes
    nothing. Errors: `forbidden`, `assignee_not_allowed`, `case_closed`."""
    actor = _require_staff(actor, case.organizer_id)
    if assignee is not None and not is_case_staff(assignee, case.organizer_id):
        raise _error(
            "assignee_not_allowed",
            _("This person does not handle this organizer's cases."),
            {"field": "assignee"},
        )
    with transaction.atomic():
        locked = _locked(case)
        now = clock.now()  # after the lock: times follow the order of the changes
        if locked.state == State.CLOSED:
            raise _case_closed()
        new_id = assignee.pk if assignee is not None else None
        if locked.assignee_id == new_id:
            return _refresh(case, locked)
        Case.objects.filter(pk=locked.pk).update(assignee_id=new_id, updated_at=now)
        locked.assignee_id = new_id
        locked.updated_at = now
        if assignee is not None:
            _history(locked, "assigned", actor=actor, note=assignee.email, at=now)
        else:
            _history(locked, "unassigned", actor=actor, at=now)
        if assignee is not None and locked.state == State.OPEN:
            _transition(locked, State.IN_PROGRESS, actor=actor, now=now)
    return _refresh(case, locked)


def case_reply(*, case: Case, actor: User | None, body: str, internal: bool = False) -> CaseMessage:
    """Staff answer the customer (`internal=False`) or leave a note for colleagues
    (`internal=True`, never shown to the customer, no state change).

    A reply sets `first_responded_at` if it is the first, moves an open / in-progress case to
    `waiting_customer`, makes the replier the assignee when there was none, and queues a
    notice to the customer. Errors: `forbidden`, `message_required`, `text_too_long`,
    `case_closed`."""
    actor = _require_staff(actor, case.organizer_id)
    text = _message(body)
    with transaction.atomic():
        locked = _locked(case)
        now = clock.now()  # after the lock: times follow the order of the changes
        if locked.state == State.CLOSED:
            raise _case_closed()
        message = _add_message(
            locked, author=actor, body=text, from_staff=True, internal=internal, now=now
        )
        if internal:
            _history(locked, "note", actor=actor, at=now)
            _touch(locked, now)
            return message
        _history(locked, "replied", actor=actor, at=now)
        if Case.objects.filter(pk=locked.pk, first_responded_at__isnull=True).update(
            first_responded_at=now
        ):
            locked.first_responded_at = now
        if Case.objects.filter(pk=locked.pk, assignee__isnull=True).update(assignee=actor):
            locked.assignee = actor
            _history(locked, "assigned", actor=actor, note=actor.email, at=now)
        if locked.state in STAFF_TURN_STATES:
            _transition(locked, State.WAITING_CUSTOMER, actor=actor, now=now)
        else:
            _touch(locked, now)
        _notify(locked, topic=f"case:{locked.number}:reply:{message.pk}", what="reply", text=text)
    _refresh(case, locked)
    return message


def case_reopen(*, case: Case, actor: User | None, note: str = "") -> Case:
    """Staff reopen a closed case (`closed → in_progress`) with a fresh resolution due time.
    Reopening a case that is not closed changes nothing. Errors: `forbidden`."""
    actor = _require_staff(actor, case.organizer_id)
    with transaction.atomic():
        locked = _locked(case)
        now = clock.now()  # after the lock: times follow the order of the changes
        if locked.state != State.CLOSED:
            return _refresh(case, locked)
        _reopen(locked, actor=actor, now=now, note=note)
    return _refresh(case, locked)


def _reopen(case: Case, *, actor: User | None, now: datetime, note: str = "") -> None:
    resolution = timedelta(hours=sla_hours(case.kind).resolution)
    _transition(
        case,
        State.IN_PROGRESS,
        actor=actor,
        now=now,
        action="reopened",
        note=note,
        fields={"closed_at": None, "resolution_due": now + resolution},
    )


# --- Both sides --------------------------------------------------------------------------------


def case_close(*, case: Case, actor: User | None, note: str = "") -> Case:
    """Staff close the case; the customer is told and asked to rate it. Closing a closed case
    changes nothing. Errors: `forbidden`."""
    actor = _require_staff(actor, case.organizer_id)
    return _close(case, actor=actor, note=note, notify=True)


def case_close_by_customer(*, case: Case, customer: User | None) -> Case:
    """The customer closes their own case ("solved, thank you"); they may rate it next.
    Closing a closed case changes nothing. Errors: `unauthorized`, `case_not_found`."""
    customer = _own(case, customer)
    return _close(case, actor=customer, note="closed by the customer", notify=False)


def _close(case: Case, *, actor: User, note: str, notify: bool) -> Case:
    with transaction.atomic():
        locked = _locked(case)
        now = clock.now()  # after the lock: times follow the order of the changes
        if locked.state == State.CLOSED:
            return _refresh(case, locked)
        _transition(
            locked, State.CLOSED, actor=actor, now=now, note=note, fields={"closed_at": now}
        )
        if notify:
            # Each closing is its own notice (a reopened case may be closed again).
            closing = (
                CaseHistory.objects.filter(case=locked)
                .order_by("-id")
                .values_list("id", flat=True)[0]
            )
            _notify(locked, topic=f"case:{locked.number}:closed:{closing}", what="closed")
    return _refresh(case, locked)


# --- Customer ----------------------------------------------------------------------------------


def case_message(*, case: Case, customer: User | None, body: str) -> CaseMessage:
    """The customer writes on their own case. A case waiting for them goes back to
    `in_progress`; a closed case opens again (`closed → in_progress`, fresh resolution due
    time) if it was closed less than `PIAOWU_CASE_REOPEN_DAYS` ago and not rated — otherwise
    `case_closed` (open a new case instead). Errors: `unauthorized`, `case_not_found`,
    `message_required`, `text_too_long`, `case_closed` (details `reopen_days`)."""
    customer = _own(case, customer)
    text = _message(body)
    with transaction.atomic():
        locked = _locked(case)
        now = clock.now()  # after the lock: times follow the order of the changes
        if locked.state == State.CLOSED:
            window = timedelta(days=reopen_days())
            closed_at = locked.closed_at or now
            if locked.rating is not None or now - closed_at > window:
                raise _error(
                    "case_closed",
                    _("This case is closed; please open a new case."),
                    {"state": State.CLOSED, "reopen_days": reopen_days()},
                )
            _reopen(locked, actor=customer, now=now, note="customer wrote again")
        elif locked.state == State.WAITING_CUSTOMER:
            _transition(locked, State.IN_PROGRESS, actor=customer, now=now)
        else:
            _touch(locked, now)
        message = _add_message(
            locked, author=customer, body=text, from_staff=False, internal=False, now=now
        )
        _history(locked, "message", actor=customer, at=now)
    _refresh(case, locked)
    return message


def case_rate(*, case: Case, customer: User | None, rating: int, comment: str = "") -> Case:
    """The customer rates their own closed case, once, from 1 to 5. Errors: `unauthorized`,
    `case_not_found`, `invalid_rating` (details `min`, `max`), `text_too_long`,
    `case_not_closed`, `case_already_rated` (409)."""
    customer = _own(case, customer)
    if (
        isinstance(rating, bool)
        or not isinstance(rating, int)
        or not (RATING_MIN <= rating <= RATING_MAX)
    ):
        raise _error(
            "invalid_rating",
            _("Rate from %(min)s to %(max)s.") % {"min": RATING_MIN, "max": RATING_MAX},
            {"field": "rating", "min": RATING_MIN, "max": RATING_MAX},
        )
    comment = (comment or "").strip()
    if len(comment) > MAX_RATING_COMMENT_LENGTH:
        raise _error(
            "text_too_long",
            _("At most %(n)s characters.") % {"n": MAX_RATING_COMMENT_LENGTH},
            {"field": "comment", "max": MAX_RATING_COMMENT_LENGTH},
        )
    with transaction.atomic():
        locked = _locked(case)
        now = clock.now()  # after the lock: times follow the order of the changes
        if locked.state != State.CLOSED:
            raise _error(
                "case_not_closed",
                _("You can rate a case once it is closed."),
                {"state": locked.state},
            )
        # The condition keeps a rating written once even without the row lock.
        rated = Case.objects.filter(pk=locked.pk, state=State.CLOSED, rating__isnull=True).update(
            rating=rating, rating_comment=comment, updated_at=now
        )
        if rated != 1:
            raise _error(
                "case_already_rated",
                _("You have already rated this case."),
                {"rating": locked.rating},
                status=409,
            )
        locked.rating, locked.rating_comment, locked.updated_at = rating, comment, now
        _history(locked, "rated", actor=customer, note=f"{rating}/{RATING_MAX}", at=now)
    return _refresh(case, locked)
