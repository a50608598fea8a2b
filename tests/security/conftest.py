"""Staff and customers with real passwords, signed in through the real pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from piaowu.accounts.models import Organizer, Role, User

PASSWORD = "correct horse 42"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: pytest.FixtureRequest) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture
def staff(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.ADMIN, email="staff@example.com")


@pytest.fixture
def customer(make_user: Callable[..., User]) -> User:
    return make_user(email="buyer@example.com")


def english(**extra: str) -> Client:
    return Client(headers={"accept-language": "en"}, **extra)  # type: ignore[arg-type]


def password_login(client: Client, email: str, password: str = PASSWORD, next_url: str = "") -> Any:
    data = {"username": email, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post("/accounts/login/", data)
