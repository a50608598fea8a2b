"""GET /api/v1/sessions/{id}/seats (current seat states) and /sessions/{id}/live (changes as
server-sent events): a client loads the first, then applies the second.

An async view: under ASGI each open stream is a coroutine waiting on a pub/sub subscription,
not a thread. The stream is

    retry: 3000
    event: hello
    data: {"session": "<id>"}

then one event per published message (`event:` is the message's `type`, `data:` the message as
JSON) and a comment line every `HEARTBEAT_SECONDS` so proxies keep the connection open. It
ends when the client goes away, or after `MAX_STREAM_SECONDS` (EventSource reconnects and the
client reloads the snapshot), so no stream pins resources for ever.

Under WSGI (a thread per request) an endless stream would hold a worker thread, so there the
stream says hello and ends at once: the client reconnects every `retry` ms and reloads the
snapshot — live updates degrade to polling instead of exhausting the server.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import Router, Schema

from piaowu.api.errors import ErrorOut
from piaowu.api.v1.sessions import NotReservedSeating
from piaowu.catalog.models import CapacityMode
from piaowu.catalog.selectors import session_get
from piaowu.core import pubsub
from piaowu.inventory.selectors import session_seat_states

router = Router(tags=["sessions"])

HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 600.0
RETRY_MILLISECONDS = 3000
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,40}$")


def sse_event(message: dict[str, Any], event: str = "") -> str:
    """One server-sent event: `event: <type>` (if it is a plain name) and `data: <json>`."""
    event = event or str(message.get("type", ""))
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if _EVENT_NAME.match(event) else ""
    return f"{head}data: {data}\n\n"


def _hello(session_id: str) -> str:
    return f"retry: {RETRY_MILLISECONDS}\n" + sse_event({"session": session_id}, "hello")


async def session_event_stream(
    session_id: str,
    *,
    heartbeat: float = HEARTBEAT_SECONDS,
    max_seconds: float = MAX_STREAM_SECONDS,
) -> AsyncIterator[str]:
    """The SSE text of one client's stream (subscribed before `hello` is sent)."""
    async with pubsub.subscription(pubsub.session_channel(session_id)) as subscription:
        yield _hello(session_id)
        deadline = asyncio.get_running_loop().time() + max_seconds
        # One pending read survives heartbeats, so no message is lost to a timeout.
        pending = asyncio.ensure_future(subscription.get())
        try:
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                done, _ = await asyncio.wait({pending}, timeout=min(heartbeat, left))
                if not done:
                    yield ": heartbeat\n\n"
                    continue
                message = pending.result()
                pending = asyncio.ensure_future(subscription.get())
                yield sse_event(message)
        finally:
            pending.cancel()


class SeatStatesOut(Schema):
    session: str
    states: dict[str, str]


@router.get(
    "/sessions/{session_id}/seats",
    response={200: SeatStatesOut, 404: ErrorOut, 409: ErrorOut},
    summary="Seat states of a reserved-seating session",
    description=(
        "`states` maps the code (`<section>-<row>-<number>`) of every seat that is not "
        "available to `held`, `sold` or `blocked`; a seat not listed is available. Not "
        "cached: load it, then follow `/live`. Errors: `session_not_found`, "
        "`not_reserved_seating` (409)."
    ),
)
def sessions_seats(request: HttpRequest, session_id: str, response: HttpResponse) -> dict[str, Any]:
    session = session_get(session_id)
    if session.capacity_mode != CapacityMode.RESERVED or session.seat_map is None:
        raise NotReservedSeating(session.public_id, session.capacity_mode)
    states = session_seat_states(session)
    response["Cache-Control"] = "no-cache"
    return {
        "session": session.public_id,
        "states": {code: state for code, state in states.items() if state != "available"},
    }


@router.get(
    "/sessions/{session_id}/live",
    response={404: ErrorOut},
    summary="Live seat and quota changes (server-sent events)",
    description=(
        "A `text/event-stream` for `EventSource`: first `event: hello` with "
        '`{"session": id}`, then `event: seats` with `{"type": "seats", "session", '
        '"changes": [[seat code, state], …]}` (state `available`, `held`, `sold` or '
        '`blocked`) and `event: quota` with `{"type": "quota", "session", "tiers": '
        '{tier code: available}, "available": n}`, and a comment every 15 s. Load the '
        "current states first, then apply changes. Errors: `session_not_found`."
    ),
    openapi_extra={
        "responses": {
            "200": {
                "description": "Server-sent events",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
    },
)
async def sessions_live(request: HttpRequest, session_id: str) -> StreamingHttpResponse:
    session = await sync_to_async(session_get)(session_id)
    if not isinstance(request, ASGIRequest):
        return StreamingHttpResponse(
            iter([_hello(session.public_id)]),
            content_type="text/event-stream; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )
    return StreamingHttpResponse(
        session_event_stream(session.public_id),
        content_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
