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
