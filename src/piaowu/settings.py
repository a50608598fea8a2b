"""Django settings, all from environment variables with safe embedded defaults.

Embedded mode (no `DATABASE_URL`): SQLite under `./var/`, local-memory cache, in-process pub/sub.
Production: `DATABASE_URL=postgres://…`, `REDIS_URL=redis://…`, `DEBUG=0`, `SECRET_KEY=…`.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

PACKAGE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(os.environ.get("PIAOWU_VAR_DIR", Path.cwd() / "var")).resolve()


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _embedded_secret_key() -> str:
    """A per-installation key kept in var/: the demo needs no setup and ships no constant."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or _embedded_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "piaowu.console.apps.ConsoleAdminConfig",  # django.contrib.admin with a 2FA-aware site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "ninja",  # serves the API docs' Swagger UI from our own static files (CSP: no CDN)
    "piaowu.core",
    "piaowu.accounts",
    "piaowu.catalog",
    "piaowu.inventory",
    "piaowu.orders",
    "piaowu.tickets",
    "piaowu.payments",
    "piaowu.checkin",
    "piaowu.aftersales",
    "piaowu.web",
    "piaowu.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "piaowu.core.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "piaowu.web.middleware.StaffSecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "piaowu.urls"
ASGI_APPLICATION = "piaowu.asgi.application"
WSGI_APPLICATION = "piaowu.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Under ASGI each request's sync code may run in a new thread, so Django's per-thread
        # persistent connections are reopened on every request (~20 ms each). psycopg's pool
        # (Django 5.1+) hands connections across threads instead; CONN_MAX_AGE must stay 0.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        # Prepared statements: only where the code asks for them (core/rawsql.py's fixed
        # hot-path statements, planned once per connection). Django disables them altogether by
        # default (prepare_threshold None); a threshold nobody reaches keeps the ORM's queries
        # unprepared (bench/browse: generic plans made listing queries slower).
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 1_000_000_000
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": int(os.environ.get("DB_POOL_MIN", "2")),
            "max_size": int(os.environ.get("DB_POOL_MAX", "20")),
            "timeout": float(os.environ.get("DB_POOL_TIMEOUT", "10")),
        }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "piaowu.sqlite3"),
            "OPTIONS": {
                # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN,
                # so concurrent writers queue on busy_timeout instead of failing mid-transaction.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASE_VENDOR_IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

# --- Cache and Redis ------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "piaowu"),
            "OPTIONS": {"pool_class": "piaowu.core.redis_pool.SharedConnectionPool"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts -------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "web:home"
# Sign-in limits (docs/security.md): axes first, then the per-account cap, then passwords.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "piaowu.accounts.login_guard.FailureCapBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_COOLOFF_TIME = dt.timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", "30")))
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "piaowu.accounts.login_guard.axes_username"
AXES_LOCKOUT_CALLABLE = "piaowu.web.views_security.lockout"
AXES_VERBOSE = False
PIAOWU_LOGIN_FAILURES_PER_ACCOUNT = int(os.environ.get("PIAOWU_LOGIN_FAILURES_PER_ACCOUNT", "100"))
PIAOWU_LOGIN_FAILURE_WINDOW_SECONDS = 3600
# Staff second factor (django-otp): the name authenticator apps show for the account.
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Piaowu")

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (piaowu.core.csp): scripts only from our origin or with the request's
# nonce; extra image origins (a CDN for posters) from PIAOWU_CSP_IMG_SRC.
PIAOWU_CSP_IMG_SRC = env_list("PIAOWU_CSP_IMG_SRC", [])
PIAOWU_CSP_REPORT_ONLY = env_bool("PIAOWU_CSP_REPORT_ONLY", False)
if not DEBUG and env_bool("HTTPS", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- i18n and time --------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
PIAOWU_DEFAULT_CURRENCY = os.environ.get("PIAOWU_DEFAULT_CURRENCY", "CNY")

# --- Selling rules ------------------------------------------------------------------------------
PIAOWU_HOLD_TTL_SECONDS = int(os.environ.get("PIAOWU_HOLD_TTL_SECONDS", "600"))
PIAOWU_PAYMENT_DEADLINE_SECONDS = int(os.environ.get("PIAOWU_PAYMENT_DEADLINE_SECONDS", "900"))
PIAOWU_MAX_PER_CUSTOMER = int(os.environ.get("PIAOWU_MAX_PER_CUSTOMER", "6"))
PIAOWU_INVENTORY_STRANDED_RULE = os.environ.get("PIAOWU_INVENTORY_STRANDED_RULE", "1") != "0"

# --- Admission -------------------------------------------------------------------------------
# Tickets admit from this long before the start until this long after the end.
PIAOWU_DOORS_OPEN_MINUTES = int(os.environ.get("PIAOWU_DOORS_OPEN_MINUTES", "120"))
PIAOWU_ADMIT_AFTER_END_MINUTES = int(os.environ.get("PIAOWU_ADMIT_AFTER_END_MINUTES", "60"))
# Rotating QR codes: one code per step; gates accept this many steps either side (clock drift).
PIAOWU_ROTATING_QR_STEP_SECONDS = 15
PIAOWU_ROTATING_QR_TOLERANCE_STEPS = int(os.environ.get("PIAOWU_ROTATING_QR_TOLERANCE_STEPS", "2"))
# The scanners' lane (api/scan_lane.py): scans per database transaction, and batches of one
# server worker in the database at once.
PIAOWU_SCAN_BATCH_MAX = int(os.environ.get("PIAOWU_SCAN_BATCH_MAX", "64"))
PIAOWU_SCAN_FLUSHERS = int(os.environ.get("PIAOWU_SCAN_FLUSHERS", "1"))

# --- Mail and SMS ---------------------------------------------------------------------------
# Demo: each mail is written as a file under var/mail/ (open it in a mail program; ticket mails
# carry a PDF, too big for a console). Production: EMAIL_HOST (+ EMAIL_PORT, EMAIL_HOST_USER,
# EMAIL_HOST_PASSWORD, EMAIL_USE_TLS) sends it over SMTP.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Piaowu <tickets@piaowu.local>")
# "console" logs the text; real providers are added behind core.sms (see docs/tickets.md).
PIAOWU_SMS_PROVIDER = os.environ.get("PIAOWU_SMS_PROVIDER", "console")

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every start otherwise
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production may run `piaowu manage collectstatic` and set STATIC_MANIFEST=1 for hashed names.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve straight from the app folders, so neither the demo nor the tests need collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"jieba": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Selling hot path (inventory.live, catalog.selectors.session_get_for_sale): per-process catalog
# cache TTL, at most one quota-availability publish per session per interval (the last change
# is always published), and how long a GA tier found sold out is refused without queries.
PIAOWU_HOT_CATALOG_SECONDS = float(os.environ.get("PIAOWU_HOT_CATALOG_SECONDS", "3"))
PIAOWU_AVAILABILITY_PUBLISH_MS = int(os.environ.get("PIAOWU_AVAILABILITY_PUBLISH_MS", "250"))
PIAOWU_SOLD_OUT_MARKER_SECONDS = float(os.environ.get("PIAOWU_SOLD_OUT_MARKER_SECONDS", "2"))
# Django sessions: database rows by default; with Redis, `django.contrib.sessions.backends.cache`
# (or `cached_db`) saves a row per new buyer.
SESSION_ENGINE = os.environ.get("SESSION_ENGINE", "django.contrib.sessions.backends.db")

# After-sales (docs/aftersales.md). Refunds are sent to the provider right after the request
# commits (0: only by the `aftersales.refunds_process_due` job); the waitlist closes this many
# hours before a session starts, and an offer holds seats for this many minutes. Customer-
# service SLA hours are read from the environment by `aftersales.services.cases`
# (`PIAOWU_CASE_*`, docs/configuration.md).
PIAOWU_REFUNDS_PROCESS_INLINE = env_bool("PIAOWU_REFUNDS_PROCESS_INLINE", True)
PIAOWU_WAITLIST_CLOSE_HOURS = int(os.environ.get("PIAOWU_WAITLIST_CLOSE_HOURS", "2"))
PIAOWU_WAITLIST_OFFER_MINUTES = int(os.environ.get("PIAOWU_WAITLIST_OFFER_MINUTES", "15"))
