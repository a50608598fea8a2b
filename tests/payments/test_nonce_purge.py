"""Seen notification nonces are forgotten once their timestamp alone rejects a replay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from piaowu.core.errors import DomainError
from piaowu.payments.models import NotificationNonce
from piaowu.payments.providers.base import (
    NOTIFICATION_MAX_SKEW_SECONDS,
    notification_nonces_purge,
    remember_nonce,
)

pytestmark = pytest.mark.django_db


def test_old_nonces_are_purged_and_recent_ones_still_refuse_replays() -> None:
    now = timezone.now()
    remember_nonce(provider="sandbox", nonce="old", now=now)
    remember_nonce(provider="sandbox", nonce="recent", now=now)
    NotificationNonce.objects.filter(nonce="old").update(
        seen_at=now - timedelta(seconds=2 * NOTIFICATION_MAX_SKEW_SECONDS + 1)
    )
    assert notification_nonces_purge(now=now) == 1
    assert list(NotificationNonce.objects.values_list("nonce", flat=True)) == ["recent"]
    with pytest.raises(DomainError) as caught:
        remember_nonce(provider="sandbox", nonce="recent", now=now)
    assert caught.value.code == "notification_replayed"
