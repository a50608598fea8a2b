"""The per-worker cap on requests in progress: the rest wait, streams are not counted."""

from __future__ import annotations

import asyncio
from typing import Any

from piaowu.asgi import InflightLimit


class SlowApp:
    """Records how many requests are inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        await asyncio.sleep(0.01)
        self.paths.append(scope["path"])
        self.inside -= 1


async def _serve(app: InflightLimit, paths: list[str]) -> None:
    await asyncio.gather(*(app({"type": "http", "path": path}, None, None) for path in paths))


def test_at_most_limit_requests_are_inside_and_all_are_served() -> None:
    inner = SlowApp()
    asyncio.run(_serve(InflightLimit(inner, 3), [f"/api/v1/x/{i}" for i in range(20)]))
    assert inner.most == 3
    assert len(inner.paths) == 20


def test_live_streams_and_a_zero_limit_are_not_capped() -> None:
    inner = SlowApp()
    asyncio.run(_serve(InflightLimit(inner, 1), [f"/api/v1/sessions/{i}/live" for i in range(5)]))
    assert inner.most == 5
    unlimited = SlowApp()
    asyncio.run(_serve(InflightLimit(unlimited, 0), ["/a", "/b", "/c"]))
    assert unlimited.most == 3
