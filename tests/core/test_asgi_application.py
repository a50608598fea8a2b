"""The served application: requests on a bounded thread pool, streams on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from a2wsgi import WSGIMiddleware

from piaowu.asgi import Application


class SlowWSGI:
    """A WSGI app that records how many requests run at once and on which threads."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.paths: list[str] = []
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.threads.add(threading.get_ident())
        time.sleep(0.01)
        with self._lock:
            self.paths.append(environ["PATH_INFO"])
            self.inside -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


class StreamApp:
    """An ASGI app standing in for Django's async handler."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.loop_thread: set[int] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        self.loop_thread.add(threading.get_ident())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: {}\n\n"})


async def _request(app: Application, path: str) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def test_requests_run_on_at_most_the_pool_size_of_threads_and_all_are_answered() -> None:
    slow, streams = SlowWSGI(), StreamApp()
    app = Application(requests=WSGIMiddleware(slow, workers=3), streams=streams)

    async def main() -> list[int]:
        return await asyncio.gather(*(_request(app, f"/api/v1/x/{i}") for i in range(20)))

    statuses = asyncio.run(main())
    assert statuses == [200] * 20
    assert slow.most == 3
    assert len(slow.threads) <= 3
    assert sorted(slow.paths) == sorted(f"/api/v1/x/{i}" for i in range(20))
    assert streams.paths == []


def test_streams_go_to_the_async_handler_on_the_event_loop() -> None:
    slow, streams = SlowWSGI(), StreamApp()
    app = Application(requests=WSGIMiddleware(slow, workers=1), streams=streams)

    async def main() -> list[int]:
        return await asyncio.gather(
            *(_request(app, f"/api/v1/sessions/{i}/live") for i in range(5)),
            _request(app, "/api/v1/sessions/1/seats"),
        )

    statuses = asyncio.run(main())
    assert statuses == [200] * 6
    assert streams.paths == [f"/api/v1/sessions/{i}/live" for i in range(5)]
    assert streams.loop_thread == {threading.get_ident()}
    assert slow.paths == ["/api/v1/sessions/1/seats"]
