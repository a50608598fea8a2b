"""Sign-up, log-in and log-out pages: the accounts service decides, the pages explain."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from piaowu.accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse 42"


@pytest.fixture
def en() -> Client:
    return Client(headers={"accept-language": "en"})


def _signup(client: Client, **overrides: str) -> object:
    data = {
        "email": "mei@example.com",
        "display_name": "小美",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    data.update(overrides)
    return client.post(reverse("web:signup"), data)


def test_sign_up_creates_the_account_and_logs_in(en: Client) -> None:
    response = _signup(en)
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert response["Location"] == reverse("web:home")  # type: ignore[index]
    user = User.objects.get(email="mei@example.com")
    assert user.display_name == "小美"
    assert user.check_password(PASSWORD)
    home = en.get(reverse("web:home")).content.decode()
    assert "mei@example.com" in home  # account menu
    assert 'action="/accounts/logout/"' in home


def test_sign_up_refuses_a_taken_email(en: Client, make_user: Callable[..., User]) -> None:
    make_user(email="mei@example.com")
    response = _signup(en, email="MEI@example.com")
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "An account with this e-mail already exists." in response.content.decode()  # type: ignore[attr-defined]
    assert User.objects.filter(email="mei@example.com").count() == 1


def test_sign_up_refuses_a_weak_password(en: Client) -> None:
    response = _signup(en, password1="12345678", password2="12345678")
    assert response.status_code == 400  # type: ignore[attr-defined]
    body = response.content.decode()  # type: ignore[attr-defined]
    assert "This password is entirely numeric." in body
    assert not User.objects.filter(email="mei@example.com").exists()


def test_sign_up_refuses_different_passwords(en: Client) -> None:
    response = _signup(en, password2="another horse 43")
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "The two passwords do not match." in response.content.decode()  # type: ignore[attr-defined]
    assert not User.objects.exists()


def test_sign_up_errors_are_translated(db: None) -> None:
    client = Client(headers={"accept-language": "zh-CN"})
    response = _signup(client, password2="another horse 43")
    assert "两次输入的密码不一致。" in response.content.decode()  # type: ignore[attr-defined]


def test_sign_up_enforces_csrf() -> None:
    client = Client(enforce_csrf_checks=True, headers={"accept-language": "en"})
    refused = _signup(client)
    assert refused.status_code == 403  # type: ignore[attr-defined]
    assert not User.objects.exists()
    token = client.get(reverse("web:signup")).cookies["csrftoken"].value
    accepted = _signup(client, csrfmiddlewaretoken=token)
    assert accepted.status_code == 302  # type: ignore[attr-defined]
    assert User.objects.filter(email="mei@example.com").exists()


def test_login_honours_a_safe_next(en: Client, make_user: Callable[..., User]) -> None:
    make_user(email="li@example.com", password=PASSWORD)
    response = en.post(
        reverse("web:login"),
        {"username": "li@example.com", "password": PASSWORD, "next": "/search/?q=ldh"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/search/?q=ldh"


def test_login_ignores_an_offsite_next(en: Client, make_user: Callable[..., User]) -> None:
    make_user(email="li@example.com", password=PASSWORD)
    response = en.post(
        reverse("web:login"),
        {"username": "li@example.com", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("web:home")


def test_login_with_a_wrong_password_explains(en: Client, make_user: Callable[..., User]) -> None:
    make_user(email="li@example.com", password=PASSWORD)
    response = en.post(reverse("web:login"), {"username": "li@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "The e-mail address or password is not correct." in response.content.decode()
    assert "_auth_user_id" not in en.session


def test_login_enforces_csrf(make_user: Callable[..., User]) -> None:
    make_user(email="li@example.com", password=PASSWORD)
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("web:login"), {"username": "li@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403


def test_logout_needs_post_and_logs_out(en: Client, make_user: Callable[..., User]) -> None:
    user = make_user(email="li@example.com")
    en.force_login(user)
    assert en.get(reverse("web:logout")).status_code == 405
    assert "_auth_user_id" in en.session
    response = en.post(reverse("web:logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("web:home")
    assert "_auth_user_id" not in en.session


def test_login_page_links_to_sign_up_keeping_next(en: Client, db: None) -> None:
    body = en.get(reverse("web:login"), {"next": "/events/X/"}).content.decode()
    assert 'name="next" value="/events/X/"' in body
    assert "/accounts/signup/?next=/events/X/" in body
