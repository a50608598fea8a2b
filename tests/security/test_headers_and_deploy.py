"""Response headers (Content-Security-Policy, cookies) and `manage.py check --deploy`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def csp_of(response: object) -> dict[str, str]:
    header = response["Content-Security-Policy"]  # type: ignore[index]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def test_pages_carry_a_policy_without_inline_scripts_except_by_nonce() -> None:
    response = Client().get("/")
    policy = csp_of(response)
    assert policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    script_src = policy["script-src"]
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    nonce = re.fullmatch(r"'self' 'nonce-([\w-]+)'", script_src)
    assert nonce is not None
    # every inline script of the page carries this response's nonce
    page = response.content.decode()
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
    assert inline and all(f'nonce="{nonce.group(1)}"' in attrs for attrs in inline)


def test_each_response_has_its_own_nonce() -> None:
    first, second = (csp_of(Client().get("/"))["script-src"] for _ in range(2))
    assert first != second


def test_the_api_and_the_admin_login_carry_the_policy_too() -> None:
    assert "Content-Security-Policy" in Client().get("/api/v1/events")
    assert "Content-Security-Policy" in Client().get("/admin/login/")


def test_the_api_docs_load_swagger_from_our_own_static_files() -> None:
    page = Client().get("/api/docs").content.decode()
    assert "cdn.jsdelivr.net" not in page
    assert "/static/ninja/swagger-ui-bundle.js" in page


def test_report_only_mode_sends_the_report_only_header(settings: pytest.FixtureRequest) -> None:
    settings.PIAOWU_CSP_REPORT_ONLY = True  # type: ignore[attr-defined]
    response = Client().get("/")
    assert "Content-Security-Policy" not in response
    assert "'nonce-" in response["Content-Security-Policy-Report-Only"]


def test_extra_image_origins_join_img_src(settings: pytest.FixtureRequest) -> None:
    settings.PIAOWU_CSP_IMG_SRC = ["https://img.example.com"]  # type: ignore[attr-defined]
    assert csp_of(Client().get("/"))["img-src"] == "'self' data: https://img.example.com"


def test_session_and_csrf_cookies_are_http_only_or_same_site() -> None:
    from django.conf import settings

    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.CSRF_COOKIE_SAMESITE == "Lax"


PRODUCTION_ENV = {
    "DEBUG": "0",
    "HTTPS": "1",
    "SECRET_KEY": "p" + "Qx7-vK2_mZ9rT4wY8nB3cL6hJ1fD5sA0gE" * 2,
    "ALLOWED_HOSTS": "tickets.example.com",
}


def _check_deploy(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "HTTPS", "SECRET_KEY"}
    }
    env.update(DJANGO_SETTINGS_MODULE="piaowu.settings", PIAOWU_VAR_DIR=str(tmp_path), **extra)
    return subprocess.run(
        [sys.executable, "-m", "django", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = _check_deploy(tmp_path, PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.slow
def test_check_deploy_flags_a_production_without_https(tmp_path: Path) -> None:
    # the control: the same check does find problems when the secure settings are off
    result = _check_deploy(tmp_path, {**PRODUCTION_ENV, "HTTPS": "0"})
    assert result.returncode != 0
    assert "security.W012" in result.stderr + result.stdout  # SESSION_COOKIE_SECURE


def test_production_cookies_are_secure_and_hsts_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import piaowu.settings as live

    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    production = importlib.reload(live)
    try:
        assert production.SESSION_COOKIE_SECURE and production.CSRF_COOKIE_SECURE
        assert production.SECURE_SSL_REDIRECT
        assert production.SECURE_HSTS_SECONDS >= 31536000
        assert production.SECURE_HSTS_INCLUDE_SUBDOMAINS
    finally:
        monkeypatch.undo()
        importlib.reload(live)
