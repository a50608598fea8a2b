"""Reads of customer-service cases and the FAQ: a customer's own cases (anyone else's is
`case_not_found`, like an unknown id), the staff queue of an organizer with each case's SLA
state, and the published FAQ in the current language.

SLA state of a case (`case_sla`, and the `due_at` annotation of the staff queue):

* `due_at` is the next deadline: the first-answer due time until staff first replied, then the
  resolution due time.
* While it is staff's turn (`open`, `in_progress`): `overdue` once `due_at` has passed,
  `due_soon` within `PIAOWU_CASE_DUE_SOON_HOURS` (default 4) of it, else `on_time`.
* `waiting` while the case waits for the customer (the clock is not flagged, nor extended);
  `closed` once closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case as Conditional
from django.db.models import DateTimeField, F, Q, QuerySet, When
from django.utils import translation

from piaowu.accounts.models import Membership, Role, User
from piaowu.accounts.permissions import Perm, organizer_ids_with
from piaowu.aftersales.models import Case, CaseHistory, CaseMessage, FaqEntry
from piaowu.aftersales.services.cases import (
    STAFF_TURN_STATES,
    case_not_found,
    case_setting,
    reopen_days,
)
from piaowu.core import clock
from piaowu.orders.models import Order
from piaowu.orders.selectors import orders_for_customer

DEFAULT_DUE_SOON_HOURS = 4.0
#: Orders offered in the "which order is it about?" list of a new case.
CASE_ORDER_CHOICES = 50

SLA_OVERDUE = "overdue"
SLA_DUE_SOON = "due_soon"
SLA_ON_TIME = "on_time"
SLA_WAITING = "waiting"
SLA_CLOSED = "closed"
SLA_STATES = (SLA_OVERDUE, SLA_DUE_SOON, SLA_ON_TIME, SLA_WAITING, SLA_CLOSED)


def due_soon_window() -> timedelta:
    return timedelta(hours=case_setting("PIAOWU_CASE_DUE_SOON_HOURS", DEFAULT_DUE_SOON_HOURS))


@dataclass(frozen=True, slots=True)
class Sla:
    state: str  # one of SLA_STATES
    due_at: datetime | None  # the next deadline (None once closed)

    @property
    def overdue(self) -> bool:
        return self.state == SLA_OVERDUE


def case_due_at(case: Case) -> datetime:
    """The next deadline: the first answer until there was one, then the resolution."""
    if case.first_responded_at is None:
        return case.first_response_due
    return case.resolution_due


def case_sla(case: Case, *, now: datetime | None = None) -> Sla:
    """The SLA state of one case (see the module docstring)."""
    if case.state == Case.State.CLOSED:
        return Sla(SLA_CLOSED, None)
    due = case_due_at(case)
    if case.state not in STAFF_TURN_STATES:
        return Sla(SLA_WAITING, due)
    now = now or clock.now()
    if due < now:
        return Sla(SLA_OVERDUE, due)
    if due < now + due_soon_window():
        return Sla(SLA_DUE_SOON, due)
    return Sla(SLA_ON_TIME, due)


def due_at_expression() -> Conditional:
    """The next deadline of a case, as a database expression."""
    return Conditional(
        When(first_responded_at__isnull=True, then=F("first_response_due")),
        default=F("resolution_due"),
        output_field=DateTimeField(),
    )


def with_due_at(cases: QuerySet[Case]) -> QuerySet[Case]:
    """`cases` annotated with `due_at` (the next deadline), for ordering and filtering."""
    return cases.annotate(due_at=due_at_expression())


def sla_filter(cases: QuerySet[Case], sla: str, *, now: datetime | None = None) -> QuerySet[Case]:
    """`cases` (annotated by `with_due_at`) in SLA state `sla`; an unknown state matches all."""
    now = now or clock.now()
    staff_turn = Q(state__in=list(STAFF_TURN_STATES))
    soon = now + due_soon_window()
    if sla == SLA_OVERDUE:
        return cases.filter(staff_turn, Q(due_at__lt=now))
    if sla == SLA_DUE_SOON:
        return cases.filter(staff_turn, Q(due_at__gte=now) & Q(due_at__lt=soon))
    if sla == SLA_ON_TIME:
        return cases.filter(staff_turn, Q(due_at__gte=soon))
    if sla == SLA_WAITING:
        return cases.filter(state=Case.State.WAITING_CUSTOMER)
    if sla == SLA_CLOSED:
        return cases.filter(state=Case.State.CLOSED)
    return cases


def case_zone(case: Case) -> str:
    """The time zone to show a case's times in: its order's venue's, else the site's."""
    if case.order is not None:
        return case.order.session.venue.timezone
    return str(settings.TIME_ZONE)


# --- Customers ---------------------------------------------------------------------------------


def _customer_cases() -> QuerySet[Case]:
    return Case.objects.select_related("order__session__event", "order__session__venue")


def cases_for_customer(customer: User) -> QuerySet[Case]:
    """The customer's cases, newest first."""
    if not customer.is_authenticated:
        return Case.objects.none()
    return _customer_cases().filter(customer=customer).order_by("-created_at", "-id")


def case_get_for_customer(*, public_id: str, customer: User | None) -> Case:
    """The customer's own case; someone else's is `case_not_found`, like an unknown id."""
    if customer is None or not customer.is_authenticated:
        raise case_not_found()
    case = _customer_cases().filter(public_id=public_id, customer=customer).first()
    if case is None:
        raise case_not_found()
    return case


def case_messages_for_customer(case: Case) -> list[CaseMessage]:
    """The conversation as the customer sees it: internal notes left out."""
    return list(case.messages.filter(internal=False).order_by("at", "id"))


def case_can_reopen(case: Case, *, now: datetime | None = None) -> bool:
    """Would a message of the customer open this closed case again (`case_message`)?"""
    if case.state != Case.State.CLOSED:
        return False
    if case.rating is not None or case.closed_at is None:
        return False
    return (now or clock.now()) - case.closed_at <= timedelta(days=reopen_days())


def case_order_choices(customer: User) -> list[Order]:
    """The customer's recent orders, to say which one a new case is about."""
    return list(orders_for_customer(customer)[:CASE_ORDER_CHOICES])


# --- Staff -------------------------------------------------------------------------------------


def _staff_cases(user: User | None) -> QuerySet[Case]:
    allowed = organizer_ids_with(user, Perm.SERVICE_CASES)
    cases = Case.objects.select_related(
        "organizer", "order__session__event", "order__session__venue", "customer", "assignee"
    )
    if allowed is None:
        return cases  # platform operators: every case, with or without an organizer
    return cases.filter(organizer_id__in=allowed)


def case_queue_for_staff(
    *,
    user: User | None,
    organizer_id: int | None = None,
    sla: str = "",
    include_closed: bool = False,
    now: datetime | None = None,
) -> QuerySet[Case]:
    """The cases `user` may handle (role service or admin at their organizer; every case for a
    platform operator), annotated with `due_at`, most urgent first. `organizer_id` narrows to
    one organizer, `sla` to one SLA state; closed cases only when asked for."""
    cases = with_due_at(_staff_cases(user))
    if organizer_id is not None:
        cases = cases.filter(organizer_id=organizer_id)
    if not include_closed and sla != SLA_CLOSED:
        cases = cases.exclude(state=Case.State.CLOSED)
    if sla:
        cases = sla_filter(cases, sla, now=now)
    return cases.order_by("due_at", "id")


def case_get_for_staff(*, public_id: str, user: User | None) -> Case:
    """A case `user` may handle; any other is `case_not_found`."""
    case = _staff_cases(user).filter(public_id=public_id).first()
    if case is None:
        raise case_not_found()
    return case


def case_history(case: Case) -> QuerySet[CaseHistory]:
    return case.history.select_related("actor").order_by("at", "id")


def case_assignee_choices(
    case: Case | None = None, *, organizer_id: int | None = None
) -> QuerySet[User]:
    """People who may be given a case of this organizer: active members with role service or
    admin there, and platform operators (for a case without organizer: operators only)."""
    if case is not None:
        organizer_id = case.organizer_id
    operators = Q(is_superuser=True)
    if organizer_id is None:
        return User.objects.filter(operators, is_active=True).order_by("email")
    members = Membership.objects.filter(
        organizer_id=organizer_id,
        organizer__is_active=True,
        is_active=True,
        role__in=[Role.SERVICE, Role.ADMIN],
    ).values("user_id")
    return User.objects.filter(operators | Q(pk__in=members), is_active=True).order_by("email")


# --- FAQ ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaqItem:
    id: int
    question: str
    answer: str


def faq_entries(*, language: str | None = None) -> list[FaqItem]:
    """The published FAQ in page order, in `language` (default: the active one): the English
    question and answer when English is asked for and both are filled in, else the Chinese."""
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    english = language.startswith("en")
    items = []
    for entry in FaqEntry.objects.filter(published=True).order_by("position", "id"):
        if english and entry.question_en and entry.answer_en:
            items.append(FaqItem(entry.pk, entry.question_en, entry.answer_en))
        else:
            items.append(FaqItem(entry.pk, entry.question, entry.answer))
    return items
