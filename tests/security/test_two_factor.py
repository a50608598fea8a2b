"""Staff two-factor authentication: enrolment, codes, recovery codes, and what an unverified
staff session may not do (console pages, admin, staff API)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from piaowu.accounts.models import Organizer, User
from piaowu.accounts.two_factor import RECOVERY_CODE_COUNT, two_factor_verify
from piaowu.catalog.models import Session
from piaowu.core.errors import DomainError
from tests.factories import make_event, make_hall, make_session, make_venue
from tests.security.conftest import english, password_login
from tests.two_factor import confirmed_totp, password_only_login, totp_code

pytestmark = pytest.mark.django_db

TWO_FACTOR = "/accounts/two-factor/"


@pytest.fixture(autouse=True)
def _no_code_throttling(settings: pytest.FixtureRequest) -> None:
    """django-otp slows a device down after a wrong code (tested below on its own); most tests
    enter a right code right after a wrong one."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # type: ignore[attr-defined]
    settings.OTP_STATIC_THROTTLE_FACTOR = 0  # type: ignore[attr-defined]


def enrolled(user: User) -> TOTPDevice:
    return confirmed_totp(user)


def a_session(organizer: Organizer) -> Session:
    venue = make_venue(organizer, name="大剧院")
    hall = make_hall(venue, name="1号厅", rows=1, seats=2)
    return make_session(make_event(organizer, title="音乐会"), venue=venue, hall=hall)


# --- Sign-in sends staff to the second factor -------------------------------------------------


def test_staff_password_login_continues_to_the_second_factor_with_the_next_page(
    staff: User,
) -> None:
    client = english()
    response = password_login(client, staff.email, next_url="/admin/")
    assert response.status_code == 302
    target = urlparse(response["Location"])
    assert target.path == TWO_FACTOR
    assert parse_qs(target.query)["next"] == ["/admin/"]


def test_a_customer_login_does_not_ask_for_a_second_factor(customer: User) -> None:
    response = password_login(english(), customer.email, next_url="/orders/")
    assert response.status_code == 302
    assert response["Location"] == "/orders/"


def test_enrolment_shows_the_qr_code_and_the_otpauth_uri_of_one_pending_device(
    staff: User,
) -> None:
    client = english()
    password_login(client, staff.email)
    first = client.get(TWO_FACTOR)
    second = client.get(TWO_FACTOR)  # a reload keeps the same secret
    assert first.status_code == 200
    page = first.content.decode()
    assert "<svg" in page and 'class="segno"' in page
    device = TOTPDevice.objects.get(user=staff)
    assert not device.confirmed
    assert f'data-otpauth-uri="{device.config_url}"'.replace("&", "&amp;") in page
    assert device.config_url.startswith("otpauth://totp/Piaowu")
    assert second.content.decode().count(device.config_url.replace("&", "&amp;")) == 1
    assert TOTPDevice.objects.filter(user=staff).count() == 1


def test_enrolment_with_a_wrong_code_is_refused_and_confirms_nothing(staff: User) -> None:
    client = english()
    password_login(client, staff.email)
    client.get(TWO_FACTOR)
    device = TOTPDevice.objects.get(user=staff)
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"
    response = client.post(TWO_FACTOR, {"code": wrong, "next": "/admin/"})
    assert response.status_code == 400
    assert "The code is not correct" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert not StaticToken.objects.filter(device__user=staff).exists()
    assert client.get("/admin/").status_code == 302  # still not verified


def test_enrolment_with_the_current_code_verifies_and_shows_ten_recovery_codes_once(
    staff: User,
) -> None:
    # given a staff member on the enrolment page
    client = english()
    password_login(client, staff.email)
    client.get(TWO_FACTOR)
    device = TOTPDevice.objects.get(user=staff)
    # when they confirm with the code their app shows
    response = client.post(TWO_FACTOR, {"code": totp_code(device), "next": "/admin/"})
    # then the device is confirmed, ten recovery codes are shown, and the console opens
    assert response.status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    shown = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())
    assert len(set(shown)) == RECOVERY_CODE_COUNT
    stored = set(StaticToken.objects.filter(device__user=staff).values_list("token", flat=True))
    assert stored == set(shown)
    assert response["Cache-Control"].startswith("max-age=0")  # never cached
    assert client.get("/admin/").status_code == 200
    # and the codes are not shown again
    assert "<li><code>" not in client.get(TWO_FACTOR).content.decode()


def test_verifying_rotates_the_session_key(staff: User) -> None:
    device = enrolled(staff)
    client = english()
    password_login(client, staff.email)
    before = client.cookies["sessionid"].value
    client.post(TWO_FACTOR, {"code": totp_code(device)})
    assert client.cookies["sessionid"].value != before


# --- Verification on later sign-ins ---------------------------------------------------------------


def test_an_enrolled_staff_member_is_asked_for_a_code_and_a_wrong_one_is_refused(
    staff: User,
) -> None:
    device = enrolled(staff)
    client = english()
    password_login(client, staff.email)
    page = client.get(TWO_FACTOR)
    assert "Enter the 6-digit code" in page.content.decode()
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"
    for bad in (wrong, "abc", "12345", ""):
        response = client.post(TWO_FACTOR, {"code": bad, "next": "/admin/"})
        assert response.status_code == 400, bad
    assert client.get("/admin/").status_code == 302


def test_the_current_code_opens_the_console_and_cannot_be_used_twice(staff: User) -> None:
    device = enrolled(staff)
    code = totp_code(device)
    client = english()
    password_login(client, staff.email)
    response = client.post(TWO_FACTOR, {"code": code, "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # the same code again, from another sign-in (a replay), is refused
    other = english()
    password_login(other, staff.email)
    assert other.post(TWO_FACTOR, {"code": code}).status_code == 400


def test_a_recovery_code_works_once(staff: User) -> None:
    enrolled(staff)
    from piaowu.accounts.two_factor import recovery_codes_regenerate

    codes = recovery_codes_regenerate(user=staff)
    client = english()
    password_login(client, staff.email)
    response = client.post(TWO_FACTOR, {"code": codes[0].upper(), "next": "/admin/"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert not StaticToken.objects.filter(device__user=staff, token=codes[0]).exists()
    # used again on another sign-in: refused
    again = english()
    password_login(again, staff.email)
    refused = again.post(TWO_FACTOR, {"code": codes[0]})
    assert refused.status_code == 400
    assert again.get("/admin/").status_code == 302
    # another unused code still works
    assert again.post(TWO_FACTOR, {"code": codes[1]}).status_code == 302


def test_wrong_codes_in_a_row_are_throttled(staff: User, settings: pytest.FixtureRequest) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 10  # type: ignore[attr-defined]
    device = enrolled(staff)
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"
    with pytest.raises(DomainError) as first:
        two_factor_verify(user=staff, code=wrong)
    assert first.value.code == "invalid_code"
    # right after a wrong code even the right one waits (no fast guessing)
    with pytest.raises(DomainError) as second:
        two_factor_verify(user=staff, code=totp_code(device))
    assert second.value.code == "too_many_attempts"


def test_a_customer_visiting_the_two_factor_page_is_sent_on(customer: User) -> None:
    client = english()
    client.force_login(customer)
    response = client.get(TWO_FACTOR)
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=customer).exists()


def test_anonymous_visitors_must_log_in_first() -> None:
    response = english().get(TWO_FACTOR)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- Nothing staff-only before the second factor --------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/accounts/membership/", "/console/gate/"])
def test_staff_pages_send_an_unverified_session_to_the_second_factor(
    staff: User, path: str
) -> None:
    client = english()
    password_only_login(client, staff)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(TWO_FACTOR)


def test_the_admin_site_itself_refuses_an_unverified_session(staff: User) -> None:
    # (behind the middleware: the admin's own permission check also wants the second factor)
    from django.contrib import admin
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    staff.is_verified = lambda: False  # type: ignore[attr-defined]
    request.user = staff
    assert not admin.site.has_permission(request)
    staff.is_verified = lambda: True  # type: ignore[attr-defined]
    assert admin.site.has_permission(request)


def test_the_staff_api_refuses_an_unverified_session_and_serves_a_verified_one(
    staff: User, organizer: Organizer
) -> None:
    session = a_session(organizer)
    url = f"/api/v1/checkin/sessions/{session.public_id}/pack"
    unverified = english()
    password_only_login(unverified, staff)
    refused = unverified.get(url)
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "forbidden"
    assert body["details"]["second_factor_required"] is True
    assert "two-factor" in body["message"]
    verified = english()
    verified.force_login(staff)  # the suite's force_login passes the second factor
    assert verified.get(url).status_code == 200


def test_a_superuser_also_needs_the_second_factor(make_user: object) -> None:
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)  # type: ignore[operator]
    client = english()
    password_only_login(client, root)
    assert client.get("/admin/").status_code == 302
    client.force_login(root)
    assert client.get("/admin/").status_code == 200


def test_a_device_of_another_user_does_not_verify_a_session(
    staff: User, make_staff: object, organizer: Organizer
) -> None:
    from django_otp import DEVICE_ID_SESSION_KEY

    other = make_staff(organizer, email="other@example.com")  # type: ignore[operator]
    client: Client = english()
    password_only_login(client, staff)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = confirmed_totp(other).persistent_id
    session.save()
    assert client.get("/admin/").status_code == 302
