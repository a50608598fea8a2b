"""Brute force on password sign-in: django-axes locks an account from one address after 5
failures for 30 minutes; over all addresses an account takes at most 100 failures an hour."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.test import Client

from piaowu.accounts.login_guard import failures_of
from piaowu.accounts.models import User
from tests.security.conftest import PASSWORD, password_login

pytestmark = pytest.mark.django_db


def from_ip(ip: str, language: str = "en") -> Client:
    return Client(REMOTE_ADDR=ip, headers={"accept-language": language})  # type: ignore[arg-type]


def fail(client: Client, email: str, times: int) -> list[int]:
    return [password_login(client, email, "wrong password").status_code for _ in range(times)]


def test_defaults_are_five_per_account_and_address_thirty_minutes_and_a_hundred_an_hour() -> None:
    assert django_settings.AXES_FAILURE_LIMIT == 5
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert dt.timedelta(minutes=30) == django_settings.AXES_COOLOFF_TIME
    assert django_settings.PIAOWU_LOGIN_FAILURES_PER_ACCOUNT == 100
    assert django_settings.PIAOWU_LOGIN_FAILURE_WINDOW_SECONDS == 3600


def test_five_wrong_passwords_lock_and_then_the_right_one_fails_too(customer: User) -> None:
    client = from_ip("203.0.113.5")
    # the first four are ordinary wrong-password answers
    assert fail(client, customer.email, 4) == [200] * 4
    # the fifth locks: a clear page, not a bare 403
    locked = password_login(client, customer.email, "wrong password")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Sign-in blocked for now" in page and "30 minutes" in page
    # the right password is refused while locked, and no session is opened
    right = password_login(client, customer.email, PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_page_speaks_chinese(customer: User) -> None:
    client = from_ip("203.0.113.6", language="zh-hans")
    fail(client, customer.email, 5)
    page = password_login(client, customer.email, PASSWORD).content.decode()
    assert '<html lang="zh-hans">' in page


def test_another_address_and_another_account_are_not_locked(
    customer: User, make_user: Callable[..., User]
) -> None:
    other = make_user(email="other@example.com")
    fail(from_ip("203.0.113.5"), customer.email, 5)
    # same account, other address
    elsewhere = password_login(from_ip("198.51.100.7"), customer.email, PASSWORD)
    assert elsewhere.status_code == 302
    # other account, same address
    neighbour = password_login(from_ip("203.0.113.5"), other.email, PASSWORD)
    assert neighbour.status_code == 302


def test_the_e_mail_case_does_not_dodge_the_lock(customer: User) -> None:
    client = from_ip("203.0.113.8")
    for variant in ("BUYER@example.com", "Buyer@Example.com", " buyer@example.com"):
        password_login(client, variant, "wrong password")
    fail(client, customer.email, 2)
    assert password_login(client, customer.email, PASSWORD).status_code == 429


def test_the_lock_ends_after_the_cool_off(customer: User) -> None:
    client = from_ip("203.0.113.9")
    fail(client, customer.email, 5)
    assert password_login(client, customer.email, PASSWORD).status_code == 429
    # when 31 minutes pass (the attempts are dated back: axes compares with now)
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31))
    # then the right password signs in again
    response = password_login(client, customer.email, PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(customer.pk)


def test_the_admin_login_counts_and_locks_too(staff: User) -> None:
    client = from_ip("203.0.113.10")
    for _ in range(4):
        response = client.post(
            "/admin/login/?next=/admin/", {"username": staff.email, "password": "nope"}
        )
        assert response.status_code == 200
    locked = client.post("/admin/login/", {"username": staff.email, "password": "nope"})
    assert locked.status_code == 429
    assert "Sign-in blocked for now" in locked.content.decode()
    # and the customer login page shares the lock of that account and address
    assert password_login(client, staff.email, PASSWORD).status_code == 429


def test_an_account_takes_at_most_the_hourly_cap_of_failures_from_all_addresses(
    customer: User, settings: pytest.FixtureRequest
) -> None:
    settings.PIAOWU_LOGIN_FAILURES_PER_ACCOUNT = 12  # type: ignore[attr-defined]
    # given failures from three addresses, four each (none locked by the per-address rule)
    for n in range(3):
        assert fail(from_ip(f"192.0.2.{n + 1}"), customer.email, 4) == [200] * 4
    assert failures_of(customer.email) == 12
    # then the account refuses even the right password from a fresh address, with the page
    capped = password_login(from_ip("192.0.2.200"), customer.email, PASSWORD)
    assert capped.status_code == 429
    assert "This account had too many failed sign-ins" in capped.content.decode()
    # while another account signs in from there as usual
    assert password_login(from_ip("192.0.2.200"), "nobody@example.com", "x").status_code == 200


def test_the_hourly_cap_ends_with_its_window(
    customer: User, settings: pytest.FixtureRequest
) -> None:
    from django.core.cache import cache

    settings.PIAOWU_LOGIN_FAILURES_PER_ACCOUNT = 3  # type: ignore[attr-defined]
    fail(from_ip("192.0.2.50"), customer.email, 3)
    assert password_login(from_ip("192.0.2.51"), customer.email, PASSWORD).status_code == 429
    cache.clear()  # the window's key expires after an hour
    assert password_login(from_ip("192.0.2.51"), customer.email, PASSWORD).status_code == 302


def test_the_failure_counter_keeps_no_e_mail_in_the_cache_key(customer: User) -> None:
    from piaowu.accounts.login_guard import _key

    assert "buyer" not in _key(customer.email)
    assert _key("Buyer@Example.com".lower()) == _key(customer.email)


def test_a_login_without_a_request_is_refused_by_the_tracker() -> None:
    from axes.exceptions import AxesBackendRequestParameterRequired
    from django.contrib.auth import authenticate

    with pytest.raises(AxesBackendRequestParameterRequired):
        authenticate(username="buyer@example.com", password=PASSWORD)
