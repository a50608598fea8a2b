"""Idempotency keys: replay, misuse and a first use raced by several threads."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from piaowu.core.errors import DomainError
from piaowu.core.idempotency import idempotency_keys_purge, idempotent, request_fingerprint
from piaowu.core.models import IdempotencyKey

FP = request_fingerprint("POST", "/api/v1/orders", b'{"hold": "H1"}')


class Counter:
    def __init__(self, result: tuple[int, dict[str, Any]] = (201, {"order": "A1"})) -> None:
        self.calls = 0
        self.result = result

    def __call__(self) -> tuple[int, dict[str, Any]]:
        self.calls += 1
        return self.result


def test_same_key_and_request_replays_the_stored_response(db: None) -> None:
    compute = Counter()
    first = idempotent(scope="user:1", key="k1", fingerprint=FP, compute=compute)
    second = idempotent(scope="user:1", key="k1", fingerprint=FP, compute=compute)
    assert first == second == (201, {"order": "A1"})
    assert compute.calls == 1
    row = IdempotencyKey.objects.get()
    assert (row.status, row.body, row.fingerprint) == (201, {"order": "A1"}, FP)


def test_keys_are_scoped(db: None) -> None:
    compute = Counter()
    idempotent(scope="user:1", key="k1", fingerprint=FP, compute=compute)
    idempotent(scope="anon:10.0.0.1", key="k1", fingerprint=FP, compute=compute)
    assert compute.calls == 2


def test_same_key_with_another_request_is_refused(db: None) -> None:
    idempotent(scope="user:1", key="k1", fingerprint=FP, compute=Counter())
    other = request_fingerprint("POST", "/api/v1/orders", b'{"hold": "H2"}')
    compute = Counter()
    with pytest.raises(DomainError) as exc:
        idempotent(scope="user:1", key="k1", fingerprint=other, compute=compute)
    assert exc.value.code == "idempotency_key_reused"
    assert exc.value.status == 422
    assert compute.calls == 0


def test_fingerprint_covers_method_path_and_body() -> None:
    variants = {
        request_fingerprint("POST", "/a", b"x"),
        request_fingerprint("PUT", "/a", b"x"),
        request_fingerprint("POST", "/b", b"x"),
        request_fingerprint("POST", "/a", b"y"),
        request_fingerprint("POST", "/ax", b""),
    }
    assert len(variants) == 5
    assert request_fingerprint("post", "/a", b"x") == request_fingerprint("POST", "/a", b"x")


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey"])
def test_bad_keys_are_refused(db: None, key: str) -> None:
    with pytest.raises(DomainError) as exc:
        idempotent(scope="user:1", key=key, fingerprint=FP, compute=Counter())
    assert exc.value.code == "invalid_idempotency_key"


def test_a_failed_first_request_gives_the_key_back(db: None) -> None:
    def boom() -> tuple[int, dict[str, Any]]:
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError):
        idempotent(scope="user:1", key="k1", fingerprint=FP, compute=boom)
    assert not IdempotencyKey.objects.exists()
    compute = Counter()
    assert idempotent(scope="user:1", key="k1", fingerprint=FP, compute=compute)[0] == 201
    assert compute.calls == 1


def test_a_request_still_in_progress_is_reported(db: None, settings: Any) -> None:
    settings.PIAOWU_IDEMPOTENCY_WAIT_SECONDS = 0.1
    IdempotencyKey.objects.create(scope="user:1", key="k1", fingerprint=FP)  # first still running
    compute = Counter()
    with pytest.raises(DomainError) as exc:
        idempotent(scope="user:1", key="k1", fingerprint=FP, compute=compute)
    assert exc.value.code == "idempotency_key_in_progress"
    assert exc.value.status == 409
    assert compute.calls == 0


def test_a_first_request_that_died_is_taken_over_after_the_abandon_time(
    db: None, settings: Any
) -> None:
    settings.PIAOWU_IDEMPOTENCY_WAIT_SECONDS = 0.1
    settings.PIAOWU_IDEMPOTENCY_ABANDON_SECONDS = 60
    row = IdempotencyKey.objects.create(scope="user:1", key="k1", fingerprint=FP)
    # Its process was killed 61 s ago: the row never got a status.
    IdempotencyKey.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    compute = Counter()
    assert idempotent(scope="user:1", key="k1", fingerprint=FP, compute=compute) == (
        201,
        {"order": "A1"},
    )
    assert compute.calls == 1
    assert IdempotencyKey.objects.get(scope="user:1", key="k1").status == 201


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_first_use_computes_once(transactional_db: None, settings: Any) -> None:
    settings.PIAOWU_IDEMPOTENCY_WAIT_SECONDS = 5
    n = 8
    barrier = threading.Barrier(n)
    calls: list[int] = []
    lock = threading.Lock()
    results: list[Any] = [None] * n

    def compute() -> tuple[int, dict[str, Any]]:
        with lock:
            calls.append(1)
        time.sleep(0.2)  # slow enough that the others arrive while it runs
        return 201, {"order": "A1"}

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = idempotent(scope="user:1", key="race", fingerprint=FP, compute=compute)
        except DomainError as exc:
            results[i] = exc.code
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(calls) == 1
    assert results == [(201, {"order": "A1"})] * n
    assert IdempotencyKey.objects.filter(key="race").count() == 1


def test_purge_forgets_answers_older_than_the_keep_period(db: None, settings: Any) -> None:
    settings.PIAOWU_IDEMPOTENCY_KEEP_HOURS = 24
    idempotent(scope="u1", key="old", fingerprint="f", compute=lambda: (201, {"n": 1}))
    idempotent(scope="u1", key="new", fingerprint="f", compute=lambda: (201, {"n": 2}))
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_keys_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    # The forgotten key is free again: the next request with it is computed afresh.
    assert idempotent(scope="u1", key="old", fingerprint="g", compute=lambda: (200, {})) == (
        200,
        {},
    )
