"""Real concurrency on PostgreSQL: the same case changed from two threads at once.

A rating is written once (two tabs rating together: one wins, the other gets
`case_already_rated`); two staff replies together set `first_responded_at` once and keep both
messages; a customer's answer racing a staff close ends in one consistent state whose history
tells the same story. The control run rates with a naive read-then-write (no row lock, no
condition) and must let both ratings through — otherwise the race test would prove nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from piaowu.accounts.models import User
from piaowu.aftersales.models import Case, CaseHistory, CaseMessage
from piaowu.aftersales.services.cases import (
    case_close,
    case_message,
    case_rate,
    case_reply,
)
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_ratings_at_once_write_one(case: Case, customer: User, service_a: User) -> None:
    case_close(case=case, actor=service_a)

    def rate(stars: int) -> Callable[[], object]:
        return lambda: (
            case_rate(case=Case.objects.get(pk=case.pk), customer=customer, rating=stars).rating
        )

    results = race([rate(5), rate(1)])

    winners = [r for r in results if r in {5, 1}]
    assert len(winners) == 1, results
    assert results.count("case_already_rated") == 1, results
    case.refresh_from_db()
    assert case.rating == winners[0]
    assert CaseHistory.objects.filter(case=case, action="rated").count() == 1


def test_control_naive_rating_lets_both_through(
    case: Case, customer: User, service_a: User
) -> None:
    case_close(case=case, actor=service_a)

    def naive(stars: int) -> Callable[[], object]:
        def rate() -> object:
            seen = Case.objects.get(pk=case.pk)
            if seen.rating is not None:
                return "case_already_rated"
            time.sleep(0.05)
            Case.objects.filter(pk=case.pk).update(rating=stars)
            CaseHistory.objects.create(case=seen, action="rated", at=seen.updated_at)
            return stars

        return rate

    results = race([naive(5), naive(1)])

    assert sorted(results) == [1, 5], results  # both "won": the race is real
    assert CaseHistory.objects.filter(case=case, action="rated").count() == 2


def test_two_replies_at_once_answer_first_once(case: Case, service_a: User, admin_a: User) -> None:
    def reply(actor: User, text: str) -> Callable[[], object]:
        return lambda: case_reply(case=Case.objects.get(pk=case.pk), actor=actor, body=text).pk

    results = race([reply(service_a, "甲"), reply(admin_a, "乙")])

    assert all(isinstance(r, int) for r in results), results
    case.refresh_from_db()
    first = CaseMessage.objects.filter(case=case, from_staff=True).order_by("at", "id").first()
    assert first is not None and case.first_responded_at == first.at
    assert case.state == Case.State.WAITING_CUSTOMER
    assert CaseMessage.objects.filter(case=case, from_staff=True).count() == 2
    assert CaseHistory.objects.filter(case=case, action="waiting_customer").count() == 1
    assert CaseHistory.objects.filter(case=case, action="assigned").count() == 1


def test_customer_answer_racing_a_close_ends_consistently(
    case: Case, customer: User, service_a: User
) -> None:
    case_reply(case=case, actor=service_a, body="问题解决了吗？")

    def answer() -> object:
        case_message(case=Case.objects.get(pk=case.pk), customer=customer, body="还没有")
        return "answered"

    def close() -> object:
        case_close(case=Case.objects.get(pk=case.pk), actor=service_a)
        return "closed"

    results = race([answer, close])

    assert sorted(results) == ["answered", "closed"], results
    case.refresh_from_db()
    states = list(
        CaseHistory.objects.filter(case=case)
        .exclude(action__in=["opened", "replied", "assigned", "message"])
        .values_list("action", flat=True)
    )
    # Either the answer came first (in progress, then closed) or the close did (then the answer
    # reopened it): the last state change is the case's state.
    assert states in (
        ["waiting_customer", "in_progress", "closed"],
        ["waiting_customer", "closed", "reopened"],
    ), states
    assert case.state == (Case.State.CLOSED if states[-1] == "closed" else Case.State.IN_PROGRESS)
