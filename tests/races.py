"""The one harness for race tests: real threads, each with its own database connection,
released together by a barrier."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

from piaowu.core.errors import DomainError


def race(work: list[Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread, released together; a DomainError becomes its code
    and any other exception its repr (so an assertion shows it)."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work[i]()
        except DomainError as exc:
            results[i] = exc.code
        except Exception as exc:
            results[i] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
