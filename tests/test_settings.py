"""Settings come from the environment, with embedded defaults."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection


@pytest.mark.redis
def test_cache_uses_redis_when_redis_url_is_set() -> None:
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    cache.set("piaowu:probe", {"ok": 1}, 30)
    assert cache.get("piaowu:probe") == {"ok": 1}


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_has_the_trigram_search_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'event_search_trgm_idx'")
        row = cursor.fetchone()
    assert row is not None and "gin_trgm_ops" in row[0]


def test_embedded_defaults_are_safe() -> None:
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
    assert settings.USE_TZ and settings.LANGUAGE_CODE == "zh-hans"
    assert {code for code, _ in settings.LANGUAGES} == {"zh-hans", "en"}
