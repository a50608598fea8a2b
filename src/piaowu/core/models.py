from __future__ import annotations

from django.db import models

from piaowu.core.ids import new_ulid


class PublicIdModel(models.Model):
    """Rows that appear in URLs carry an opaque ULID; the integer key stays internal."""

    public_id = models.CharField(max_length=26, unique=True, default=new_ulid, editable=False)

    class Meta:
        abstract = True


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key` and the response it got (see `core.idempotency`).

    `status` is null while the first request with the key is still being computed."""

    scope = models.CharField(max_length=128)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"
