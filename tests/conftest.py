"""Shared test setup.

Tests that need a real PostgreSQL, Redis or Chromium carry a marker and are skipped — with the
reason printed in the summary (`-ra`) — when that part is absent, never passed silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from piaowu.accounts.models import Organizer, Role, User
from piaowu.accounts.services import membership_grant

CHROMIUM = os.environ.get("PIAOWU_CHROMIUM") or shutil.which("chromium") or ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    skips = {
        "postgres": None
        if on_postgres
        else pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://…"),
        "redis": None
        if settings.REDIS_URL
        else pytest.mark.skip(reason="needs Redis: run with REDIS_URL=redis://…"),
        "browser": None
        if CHROMIUM
        else pytest.mark.skip(reason="needs Debian's chromium (apt-get install chromium)"),
    }
    for item in items:
        for marker, skip in skips.items():
            if skip is not None and marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """On PostgreSQL the psycopg pool keeps idle connections to the test database open, and a
    connection a server or worker thread still has checked out is not closed with the pool;
    pytest-django cannot drop the database while any is open. Close them all first."""
    yield
    from django.db import connection, connections

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    for each in connections.all(initialized_only=True):
        close_pool = getattr(each, "close_pool", None)
        if close_pool is not None:
            close_pool()


@pytest.fixture(autouse=True)
def _english_by_default(settings: pytest.FixtureRequest) -> None:
    """Most tests read messages in English; i18n tests switch language explicitly."""
    from django.utils import translation

    translation.activate("en")


@pytest.fixture
def organizer(db: None) -> Organizer:
    from piaowu.catalog.services import organizer_create

    return organizer_create(slug="acme", name="艾克米演艺", name_en="Acme Live")


@pytest.fixture
def other_organizer(db: None) -> Organizer:
    from piaowu.catalog.services import organizer_create

    return organizer_create(slug="rival", name="对手票务", name_en="Rival Tickets")


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(email: str = "", password: str = "correct horse 42", **extra: object) -> User:
        email = email or f"user{next(counter)}@example.com"
        return User.objects.create_user(email=email, password=password, **extra)

    return make


@pytest.fixture
def make_staff(make_user: Callable[..., User]) -> Callable[..., User]:
    def make(organizer: Organizer, role: str = Role.ADMIN, email: str = "") -> User:
        user = make_user(email=email)
        membership_grant(user=user, organizer=organizer, role=role)
        return user

    return make


@pytest.fixture(autouse=True)
def _force_login_passes_second_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    """`client.force_login(staff)` signs staff in fully, password and second factor, as a real
    staff session is once it reaches the console (tests/two_factor.py). The second factor is
    still enforced everywhere; tests/accounts/test_two_factor.py tests it through the pages."""
    from django.test import Client

    from tests.two_factor import force_login_with_second_factor

    monkeypatch.setattr(Client, "force_login", force_login_with_second_factor)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache (CI's Redis database is reserved for tests)."""
    from django.core.cache import cache

    cache.clear()
