"""The ASGI application `piaowu serve` runs.

Ordinary requests go to Django's *synchronous* handler on a bounded pool of threads
(a2wsgi); the streams (server-sent events, paths ending in `/live`) go to Django's ASGI
handler, because they must wait on the event loop for hours without holding a thread; and the
gates' scans take their own lane (api/scan_lane.py), checked in batches.

Why not Django's ASGI handler for everything: under it every middleware written for both modes
runs its `process_request`/`process_response` in `sync_to_async`, and a sync view in a thread of
its own per request, so a request hops between the event loop and threads about twenty times.
That cost ~6 ms of CPU per request (7.0 ms against 0.9 ms for the same request through the
synchronous handler; 240 against 820 requests a second for a trivial API error on two workers;
see bench/README.md). The pool also bounds the requests each worker runs at once: the rest
wait in the event loop, cheaply, rather than as hundreds of threads fighting for the
interpreter lock and the database pool.
"""

from __future__ import annotations

import os
from typing import Any, cast

from a2wsgi import WSGIMiddleware
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "piaowu.settings")

Scope = dict[str, Any]


def is_stream(scope: Scope) -> bool:
    """Server-sent event streams: long-lived, async views that need Django's ASGI handler."""
    return scope["type"] == "http" and scope["path"].endswith("/live")


class Application:
    """Streams and lifespan/websocket scopes to `streams`, every other request to `requests`."""

    def __init__(self, requests: Any, streams: Any) -> None:
        self.requests = requests
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not is_stream(scope):
            await self.requests(scope, receive, send)
        else:
            await self.streams(scope, receive, send)


def request_threads() -> int:
    """`PIAOWU_MAX_INFLIGHT` (6). Requests are mostly CPU under one interpreter lock: at a hot
    on-sale (bench/onsale (a), 256 clients) 6 threads a worker sold 65.6 orders/s, 20 threads
    48.3/s with more CPU per request. Never more than the database pool (`DB_POOL_MAX`)."""
    threads = int(os.environ.get("PIAOWU_MAX_INFLIGHT", "6"))
    return max(1, min(threads, int(os.environ.get("DB_POOL_MAX", "20"))))


# Django's WSGI handler returns the response, which iterates as bytes (django-stubs types it as
# the response, not as an iterable).
_django = WSGIMiddleware(cast(Any, get_wsgi_application()), workers=request_threads())

from piaowu.api.scan_lane import ScanLane  # noqa: E402 (needs Django set up)

application = Application(requests=ScanLane(_django), streams=get_asgi_application())
