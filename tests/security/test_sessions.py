"""Session hardening: a new session key at login, none left after logout, and a password
change keeps the changer signed in while every other session of the account ends."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore

from piaowu.accounts.models import User
from tests.security.conftest import PASSWORD, english, password_login

pytestmark = pytest.mark.django_db


def test_login_gives_a_new_session_key(customer: User) -> None:
    client = english()
    client.get("/")  # an anonymous session with data (the city choice) …
    session = client.session
    session["piaowu_city"] = "北京"
    session.save()
    before = client.cookies["sessionid"].value
    assert password_login(client, customer.email).status_code == 302
    after = client.cookies["sessionid"].value
    assert after != before
    assert not SessionStore(session_key=before).exists(before)


def test_logout_ends_the_session_on_the_server(customer: User) -> None:
    client = english()
    password_login(client, customer.email)
    key = client.cookies["sessionid"].value
    assert client.post("/accounts/logout/").status_code == 302
    assert not SessionStore(session_key=key).exists(key)
    # replaying the old cookie is anonymous
    replay = english()
    replay.cookies["sessionid"] = key
    assert replay.get("/orders/").status_code == 302


def test_a_password_change_keeps_this_session_and_ends_the_others(customer: User) -> None:
    here, elsewhere = english(), english()
    password_login(here, customer.email)
    password_login(elsewhere, customer.email)
    assert elsewhere.get("/orders/").status_code == 200
    response = here.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a brand new passphrase 7",
            "new_password2": "a brand new passphrase 7",
        },
    )
    assert response.status_code == 302
    assert here.get("/orders/").status_code == 200
    assert elsewhere.get("/orders/").status_code == 302  # sent to the login page


def test_a_password_change_with_a_wrong_old_password_changes_nothing(customer: User) -> None:
    client = english()
    password_login(client, customer.email)
    response = client.post(
        "/accounts/password/",
        {
            "old_password": "not it",
            "new_password1": "a brand new passphrase 7",
            "new_password2": "a brand new passphrase 7",
        },
    )
    assert response.status_code == 200
    assert "incorrectly" in response.content.decode()
    customer.refresh_from_db()
    assert customer.check_password(PASSWORD)


def test_a_tampered_session_cookie_is_anonymous(customer: User) -> None:
    client = english()
    password_login(client, customer.email)
    client.cookies["sessionid"] = client.cookies["sessionid"].value[:-2] + "xx"
    assert client.get("/orders/").status_code == 302


def test_the_password_page_needs_a_login() -> None:
    response = english().get("/accounts/password/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
