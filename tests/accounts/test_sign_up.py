import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory

from piaowu.accounts.models import User
from piaowu.accounts.services import user_sign_up
from piaowu.core.errors import DomainError

pytestmark = pytest.mark.django_db


def test_sign_up_normalises_the_email_and_hashes_with_argon2() -> None:
    user = user_sign_up(email="  Li.Lei@Example.COM ", password="ticket-lover-2026")
    assert user.email == "li.lei@example.com"
    assert user.password.startswith("argon2")
    request = RequestFactory().post("/")  # sign-in is tracked per request (django-axes)
    assert authenticate(request, email="li.lei@example.com", password="ticket-lover-2026") == user
    assert not user.is_staff


@pytest.mark.parametrize(
    ("email", "password", "code"),
    [
        ("not-an-email", "ticket-lover-2026", "invalid_email"),
        ("a@example.com", "12345678", "weak_password"),
        ("a@example.com", "short", "weak_password"),
        ("a@example.com", "password", "weak_password"),
    ],
)
def test_bad_sign_ups_are_refused_and_nothing_is_created(email, password, code) -> None:
    with pytest.raises(DomainError) as caught:
        user_sign_up(email=email, password=password)
    assert caught.value.code == code
    assert User.objects.count() == 0


def test_an_email_can_sign_up_once_whatever_its_case() -> None:
    user_sign_up(email="wang@example.com", password="ticket-lover-2026")
    with pytest.raises(DomainError) as caught:
        user_sign_up(email="WANG@example.com", password="ticket-lover-2026")
    assert caught.value.code == "email_taken"
    assert User.objects.count() == 1
