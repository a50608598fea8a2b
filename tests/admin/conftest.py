"""Two organizers with a venue, a hall, an event and a session each, and people with roles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from piaowu.accounts.models import Organizer, Role, User
from piaowu.catalog.models import Event, Hall, Session, Venue
from tests.factories import make_event, make_hall, make_session, make_venue


@dataclass
class Catalog:
    organizer: Organizer
    venue: Venue
    hall: Hall
    event: Event
    session: Session


def _catalog(organizer: Organizer, label: str) -> Catalog:
    venue = make_venue(organizer, name=f"{label} 大剧院")
    hall = make_hall(venue, name=f"{label} 1号厅", rows=2, seats=3)
    event = make_event(organizer, title=f"{label} 音乐会")
    session = make_session(event, venue=venue, hall=hall)
    return Catalog(organizer, venue, hall, event, session)


@pytest.fixture
def cat_a(organizer: Organizer) -> Catalog:
    return _catalog(organizer, "Acme")


@pytest.fixture
def cat_b(other_organizer: Organizer) -> Catalog:
    return _catalog(other_organizer, "Rival")


@pytest.fixture
def superuser(make_user: Callable[..., User]) -> User:
    return make_user(email="root@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.ADMIN, email="admin-a@example.com")


@pytest.fixture
def seller_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.SELLER, email="seller-a@example.com")


@pytest.fixture
def checker_a(make_staff: Callable[..., User], organizer: Organizer) -> User:
    return make_staff(organizer, Role.CHECKER, email="checker-a@example.com")


@pytest.fixture
def customer(make_user: Callable[..., User]) -> User:
    return make_user(email="customer@example.com")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: pytest.FixtureRequest) -> None:
    """Argon2 is deliberately slow; these tests sign in with force_login and never hash twice."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
