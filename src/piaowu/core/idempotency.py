"""Idempotency keys: a client that retries a request with the same `Idempotency-Key` gets the
first response again instead of doing the work twice.

`idempotent(scope=…, key=…, fingerprint=…, compute=…)`:

* The first request inserts an `IdempotencyKey` row (status null = in progress) *before* it
  computes; the unique constraint on (scope, key) makes the database pick exactly one first
  request even when several arrive at once. It then runs `compute()` and stores the status and
  JSON body. If `compute` raises, the row is deleted so the client may try again.
* A later request with the same key and the same fingerprint gets the stored response;
  `compute` is not run again. If the first one is still running it waits up to
  `PIAOWU_IDEMPOTENCY_WAIT_SECONDS` (default 2) and then gets `idempotency_key_in_progress`
  (HTTP 409 — retry later).
* The same key with a different fingerprint (another request body / path) is a client bug:
  `idempotency_key_reused` (HTTP 422 — the request is well-formed but cannot be processed as
  asked; it is not a conflict a retry could resolve).

* A first request that died without raising (its process was killed) leaves its row in
  progress. After `PIAOWU_IDEMPOTENCY_ABANDON_SECONDS` (default 60, longer than any request may
  run) a retry takes the key over: one conditional delete of the stale row, so exactly one
  retry wins.

`idempotent(…, atomic=True)` instead runs `compute` *inside* the transaction that inserts the
key row and stores the answer: no extra transactions, and a refused or crashed request leaves
no row at all (its transaction rolls back). A concurrent request with the same key waits on the
unique index until the first commits (then gets its answer) or rolls back (then runs itself).
Only for `compute`s that may run inside a caller's transaction (nothing slow or outside the
database, no transaction of their own that must commit on its own).

Stored answers are kept `PIAOWU_IDEMPOTENCY_KEEP_HOURS` (default 24; a client retries within
minutes); `idempotency_keys_purge` (a periodic job) deletes older ones.

The scope keeps clients apart: a user id, `anon:<ip>` or `partner:<id>`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from piaowu.core.errors import DomainError
from piaowu.core.models import IdempotencyKey

DEFAULT_WAIT_SECONDS = 2.0
DEFAULT_ABANDON_SECONDS = 60.0
DEFAULT_KEEP_HOURS = 24.0
POLL_SECONDS = 0.05
MAX_KEY_LENGTH = 255


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """sha256 of method, path and body — what makes two requests "the same"."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _error(code: str, message: str, status: int) -> DomainError:
    error = DomainError(code, message)
    error.status = status
    return error


def _wait_seconds() -> float:
    return float(getattr(settings, "PIAOWU_IDEMPOTENCY_WAIT_SECONDS", DEFAULT_WAIT_SECONDS))


def _reclaim_abandoned(scope: str, key: str) -> bool:
    """Delete the key if its first request has been in progress too long; True if we did."""
    seconds = float(
        getattr(settings, "PIAOWU_IDEMPOTENCY_ABANDON_SECONDS", DEFAULT_ABANDON_SECONDS)
    )
    cutoff = timezone.now() - timedelta(seconds=seconds)
    deleted, _rows = IdempotencyKey.objects.filter(
        scope=scope, key=key, status__isnull=True, created_at__lt=cutoff
    ).delete()
    return deleted > 0


def _stored(scope: str, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
    """The stored response, None while in progress; raises on a fingerprint mismatch."""
    row = IdempotencyKey.objects.filter(scope=scope, key=key).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise _error(
            "idempotency_key_reused",
            _("This idempotency key was already used for a different request."),
            422,
        )
    if row.status is None:
        return None
    return int(row.status), dict(row.body or {})


def idempotent(
    *,
    scope: str,
    key: str,
    fingerprint: str,
    compute: Callable[[], tuple[int, dict[str, Any]]],
    atomic: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Run `compute` once per (scope, key); see the module docstring. Errors:
    `invalid_idempotency_key` (400), `idempotency_key_reused` (422),
    `idempotency_key_in_progress` (409)."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise _error(
            "invalid_idempotency_key",
            _("The idempotency key must be 1–255 printable characters."),
            400,
        )
    if atomic:
        try:
            return _idempotent_atomic(scope, key, fingerprint, compute)
        except _KeyTaken:
            pass  # fall through: the key row exists (committed); read or wait for its answer
    try:
        with transaction.atomic():
            row = IdempotencyKey.objects.create(scope=scope, key=key, fingerprint=fingerprint)
    except IntegrityError:
        deadline = time.monotonic() + _wait_seconds()
        while True:
            found = _stored(scope, key, fingerprint)
            if found is not None:
                return found
            if _reclaim_abandoned(scope, key) or not (
                IdempotencyKey.objects.filter(scope=scope, key=key).exists()
            ):
                # The first request failed (or died) and the key is free: try it ourselves.
                return idempotent(
                    scope=scope, key=key, fingerprint=fingerprint, compute=compute, atomic=atomic
                )
            if time.monotonic() >= deadline:
                raise _error(
                    "idempotency_key_in_progress",
                    _("A request with this idempotency key is still being processed."),
                    409,
                ) from None
            time.sleep(POLL_SECONDS)
    try:
        status, body = compute()
    except BaseException:
        IdempotencyKey.objects.filter(pk=row.pk).delete()
        raise
    IdempotencyKey.objects.filter(pk=row.pk).update(
        status=status, body=body, completed_at=timezone.now()
    )
    return status, body


class _KeyTaken(Exception):
    """The key row already exists (committed by another request)."""


def _idempotent_atomic(
    scope: str, key: str, fingerprint: str, compute: Callable[[], tuple[int, dict[str, Any]]]
) -> tuple[int, dict[str, Any]]:
    """Key row, work and answer in one transaction (see the module docstring)."""
    with transaction.atomic():
        try:
            row = IdempotencyKey.objects.create(scope=scope, key=key, fingerprint=fingerprint)
        except IntegrityError:
            raise _KeyTaken from None  # leaves the (broken) transaction by rolling it back
        status, body = compute()
        IdempotencyKey.objects.filter(pk=row.pk).update(
            status=status, body=body, completed_at=timezone.now()
        )
    return status, body


def idempotency_keys_purge(*, now: datetime | None = None) -> int:
    """Delete stored answers older than the keep period; returns how many went."""
    hours = float(getattr(settings, "PIAOWU_IDEMPOTENCY_KEEP_HOURS", DEFAULT_KEEP_HOURS))
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    deleted, _rows = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
