"""The ASGI application `piaowu serve` runs, with a cap on requests in progress per worker.

Django runs every synchronous view of an ASGI request in a thread of its own, without a bound:
at a hot on-sale a worker ends up with hundreds of threads fighting for the interpreter lock and
for the database pool, every request gets dearer and a pool timeout becomes a 500. Requests over
the cap wait in the event loop instead (cheaply) until one finishes. Streams (the live seat
map, paths ending in `/live`) are long-lived and async, so they are not counted.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "piaowu.settings")

Scope = dict[str, Any]


class InflightLimit:
    """At most `limit` HTTP requests of this process inside `app` at once (0: no limit)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.limit <= 0 or scope.get("type") != "http" or scope["path"].endswith("/live"):
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # made in the server's event loop
            self._slots = asyncio.Semaphore(self.limit)
        async with self._slots:
            await self.app(scope, receive, send)


def inflight_limit() -> int:
    """`PIAOWU_MAX_INFLIGHT`, by default the database pool size (`DB_POOL_MAX`, 20)."""
    return int(os.environ.get("PIAOWU_MAX_INFLIGHT", os.environ.get("DB_POOL_MAX", "20")))


application = InflightLimit(get_asgi_application(), inflight_limit())
