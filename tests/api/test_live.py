"""GET /api/v1/sessions/{id}/live: server-sent events of seat and quota changes.

In-process tests drive the async view through Django's AsyncClient (embedded pub/sub). The
end-to-end test runs two real uvicorn processes on Redis and reads both streams with httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient, Client
from pytest_django.fixtures import Settings

from piaowu.accounts.models import Organizer
from piaowu.api.v1.live import session_event_stream, sse_event
from piaowu.catalog.models import Session
from piaowu.core import pubsub
from piaowu.inventory.services import hold_seats
from tests.factories import make_event, make_hall, make_session, make_venue

WAIT = 1.0  # seconds a published message may take to reach a stream before the test fails
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(organizer: Organizer) -> Session:
    venue = make_venue(organizer)
    return make_session(make_event(organizer), venue=venue, hall=make_hall(venue))


@pytest.fixture
def in_process(settings: Settings) -> Iterator[None]:
    settings.REDIS_URL = ""
    pubsub.reset()
    yield
    pubsub.reset()


def live_url(public_id: str) -> str:
    return f"/api/v1/sessions/{public_id}/live"


def test_unknown_session_answers_404_with_the_error_shape(client: Client, db: None) -> None:
    response = client.get(live_url("01JDNOSUCHSESSION0000000000"))
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "session_not_found"
    assert set(body) == {"code", "message", "details"}


def test_stream_says_hello_then_relays_published_messages(
    session: Session, in_process: None
) -> None:
    channel = pubsub.session_channel(session.public_id)

    async def scenario() -> tuple[Any, list[str], int, int]:
        response: Any = await AsyncClient().get(live_url(session.public_id))
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def serve() -> None:  # what Django's ASGI handler does with the response
            async for part in response:
                await received.put(part)

        server = asyncio.ensure_future(serve())
        hello = (await asyncio.wait_for(received.get(), WAIT)).decode()
        subscribed = pubsub.local_subscriber_count(channel)
        message = {"type": "seats", "session": session.public_id, "changes": [["M-1-1", "held"]]}
        pubsub.publish(channel, message)
        pubsub.publish(channel, {"type": "quota", "tiers": {"std": 3}, "available": 3})
        events = [hello] + [
            (await asyncio.wait_for(received.get(), WAIT)).decode() for _ in range(2)
        ]
        server.cancel()  # the client goes away: the server cancels the response task
        with contextlib.suppress(asyncio.CancelledError):
            await server
        return response, events, subscribed, pubsub.local_subscriber_count(channel)

    response, events, subscribed, after = async_to_sync(scenario)()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert events[0] == (
        f'retry: 3000\nevent: hello\ndata: {{"session":"{session.public_id}"}}\n\n'
    )
    assert events[1].startswith("event: seats\ndata: ")
    assert json.loads(events[1].split("data: ", 1)[1])["changes"] == [["M-1-1", "held"]]
    assert events[2] == 'event: quota\ndata: {"type":"quota","tiers":{"std":3},"available":3}\n\n'
    assert (subscribed, after) == (1, 0)


def test_stream_of_another_session_gets_nothing(session: Session, in_process: None) -> None:
    async def scenario() -> bool:
        stream = session_event_stream(session.public_id)
        await asyncio.wait_for(anext(stream), WAIT)  # hello
        pubsub.publish(pubsub.session_channel("01JDOTHERSESSION00000000000"), {"type": "seats"})
        try:
            await asyncio.wait_for(anext(stream), 0.1)
            got = True
        except TimeoutError:
            got = False
        await stream.aclose()  # type: ignore[attr-defined]
        return got

    assert async_to_sync(scenario)() is False


def test_idle_stream_sends_heartbeat_comments_and_loses_no_message(in_process: None) -> None:
    async def scenario() -> list[str]:
        stream = session_event_stream("01JDHEARTBEAT", heartbeat=0.01)
        out = [await asyncio.wait_for(anext(stream), WAIT)]
        out.append(await asyncio.wait_for(anext(stream), WAIT))  # idle: a heartbeat
        pubsub.publish(pubsub.session_channel("01JDHEARTBEAT"), {"type": "seats", "n": 1})
        while not out[-1].startswith("event: seats"):  # heartbeats until the message
            out.append(await asyncio.wait_for(anext(stream), WAIT))
        await stream.aclose()  # type: ignore[attr-defined]
        return out

    out = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert out[1] == ": heartbeat\n\n"
    assert out[-1] == 'event: seats\ndata: {"type":"seats","n":1}\n\n'


def test_a_stream_ends_after_its_maximum_lifetime(in_process: None) -> None:
    async def scenario() -> list[str]:
        stream = session_event_stream("01JDLIFETIME", heartbeat=0.05, max_seconds=0.2)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert chunks[0].startswith("retry: 3000\nevent: hello")
    assert set(chunks[1:]) <= {": heartbeat\n\n"}  # then it ends; EventSource reconnects


def test_under_wsgi_the_stream_says_hello_and_ends(client: Client, session: Session) -> None:
    # A WSGI server has a thread per request: an endless stream would pin one, so the client
    # is told to reconnect (retry) and reload the snapshot instead.
    response = client.get(live_url(session.public_id))
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    assert body == f'retry: 3000\nevent: hello\ndata: {{"session":"{session.public_id}"}}\n\n'


def test_message_without_a_plain_type_is_sent_as_an_unnamed_event() -> None:
    assert sse_event({"n": 1}) == 'data: {"n":1}\n\n'
    assert sse_event({"type": "x\nevent: evil"}).startswith("data: ")
    assert (
        sse_event({"type": "seats", "t": "座"})
        == 'event: seats\ndata: {"type":"seats","t":"座"}\n\n'
    )


def test_seats_lists_only_seats_that_are_not_available(
    client: Client, session: Session, in_process: None
) -> None:
    hold_seats(session=session, seat_codes=["M-1-1", "M-1-2"], holder_key="cart-1")
    response = client.get(f"/api/v1/sessions/{session.public_id}/seats")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-cache"
    assert response.json() == {
        "session": session.public_id,
        "states": {"M-1-1": "held", "M-1-2": "held"},
    }


def test_seats_of_a_general_admission_session_is_409(client: Client, organizer: Organizer) -> None:
    ga = make_session(
        make_event(organizer), venue=make_venue(organizer), capacity_mode="general", capacity=5
    )
    response = client.get(f"/api/v1/sessions/{ga.public_id}/seats")
    assert response.status_code == 409
    assert response.json()["code"] == "not_reserved_seating"


def test_seats_of_an_unknown_session_is_404(client: Client, db: None) -> None:
    response = client.get("/api/v1/sessions/01JDNOSUCHSESSION0000000000/seats")
    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"


def test_a_hold_reaches_an_open_stream_after_commit(
    session: Session,
    in_process: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    out: list[str] = []
    subscribed = threading.Event()

    def client() -> None:  # a stream open on another event loop, as under ASGI
        async def listen() -> None:
            stream = session_event_stream(session.public_id)
            out.append(await asyncio.wait_for(anext(stream), WAIT))  # hello: subscribed
            subscribed.set()
            out.append(await asyncio.wait_for(anext(stream), WAIT))
            await stream.aclose()  # type: ignore[attr-defined]

        asyncio.run(listen())

    thread = threading.Thread(target=client)
    thread.start()
    assert subscribed.wait(WAIT)
    with django_capture_on_commit_callbacks(execute=True):
        hold_seats(session=session, seat_codes=["M-2-3"], holder_key="cart-2")
    thread.join(2 * WAIT)
    assert len(out) == 2
    assert out[1].startswith("event: seats\n")
    assert json.loads(out[1].split("data: ", 1)[1]) == {
        "type": "seats",
        "session": session.public_id,
        "changes": [["M-2-3", "held"]],
    }


# --- End to end: two uvicorn processes on Redis ---------------------------------------------

SETUP_SCRIPT = """
import django, sys
sys.path.insert(0, sys.argv[1])
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from piaowu.catalog.services import organizer_create
from tests.factories import make_event, make_hall, make_session, make_venue
organizer = organizer_create(slug="acme", name="艾克米演艺", name_en="Acme Live")
venue = make_venue(organizer)
session = make_session(make_event(organizer), venue=venue, hall=make_hall(venue))
print(session.public_id)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def live_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """A migrated SQLite file with one session, and two uvicorn processes serving it (started
    once for the module: migrating takes most of the time)."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://…")
    tmp_path = tmp_path_factory.mktemp("live")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        PIAOWU_VAR_DIR=str(tmp_path),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_SETTINGS_MODULE="piaowu.settings",
        DEBUG="0",
    )
    setup = subprocess.run(
        [sys.executable, "-c", SETUP_SCRIPT, str(REPO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    public_id = setup.stdout.strip().splitlines()[-1]
    servers: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    try:
        for _ in range(2):
            port = free_port()
            servers.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "uvicorn", "piaowu.asgi:application"),
                        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            wait_until_up(f"{base}/api/v1/sessions/{public_id}")
        yield public_id, bases
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def wait_until_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server at {url} did not come up in {seconds} s")


async def read_event(lines: AsyncIterator[str]) -> list[str]:
    """The lines of the next event (up to its blank line); comments skipped."""
    event: list[str] = []
    async for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if event:
                return event
            continue
        event.append(line)
    raise AssertionError("stream ended")


def redis_subscribers(channel: str) -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        counts = dict(client.pubsub_numsub(f"piaowu:{channel}"))
        return int(counts.get(f"piaowu:{channel}".encode(), 0))
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.redis
def test_a_publish_reaches_streams_on_two_server_processes(
    live_servers: tuple[str, list[str]],
) -> None:
    public_id, bases = live_servers
    channel = pubsub.session_channel(public_id)
    message = {"type": "seats", "session": public_id, "changes": [["M-1-1", "sold"]]}

    async def scenario() -> tuple[list[list[str]], list[float]]:
        timeout = httpx.Timeout(5.0)
        async with (
            httpx.AsyncClient(timeout=timeout) as http,
            http.stream("GET", f"{bases[0]}{live_url(public_id)}") as one,
            http.stream("GET", f"{bases[1]}{live_url(public_id)}") as two,
        ):
            assert one.headers["content-type"].startswith("text/event-stream")
            streams = [one.aiter_lines(), two.aiter_lines()]
            hellos = [await asyncio.wait_for(read_event(s), 5) for s in streams]
            # when: one publish from this process (a third one)
            sent = time.monotonic()
            pubsub.publish(channel, message)

            async def receive(lines: AsyncIterator[str]) -> tuple[list[str], float]:
                event = await read_event(lines)
                return event, time.monotonic() - sent

            got = await asyncio.wait_for(asyncio.gather(*(receive(s) for s in streams)), WAIT)
        return hellos + [event for event, _ in got], [latency for _, latency in got]

    # given: both streams said hello (each server subscribed in Redis before answering)
    events, latencies = asyncio.run(scenario())
    print(f"delivery latency to two server processes: {[f'{x * 1000:.1f} ms' for x in latencies]}")
    assert events[0] == ["retry: 3000", "event: hello", f'data: {{"session":"{public_id}"}}']
    assert events[1] == events[0]
    for event in events[2:]:
        assert event[0] == "event: seats"
        assert json.loads(event[1].removeprefix("data: ")) == message
    # then: once the clients are gone, both servers drop their Redis subscriptions
    deadline = time.monotonic() + 10
    while redis_subscribers(channel) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_subscribers(channel) == 0


@pytest.mark.slow
@pytest.mark.redis
def test_unknown_session_answers_404_under_uvicorn(live_servers: tuple[str, list[str]]) -> None:
    _, bases = live_servers
    response = httpx.get(f"{bases[0]}{live_url('01JDNOSUCHSESSION0000000000')}", timeout=5)
    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.browser
def test_seat_map_page_recolours_a_seat_when_its_state_changes(
    live_servers: tuple[str, list[str]],
) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser.test_browse import CHROMIUM_ARGS
    from tests.conftest import CHROMIUM

    public_id, bases = live_servers
    channel = pubsub.session_channel(public_id)

    def seats(state: str) -> dict[str, Any]:
        return {"type": "seats", "session": public_id, "changes": [["M-1-1", state]]}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 600, "height": 800})
            page.goto(f"{bases[1]}/sessions/{public_id}/")
            page.wait_for_selector(".seatmap[data-live='open']", timeout=10_000)
            picture = "document.querySelector('canvas.seatmap-canvas').toDataURL()"
            before = page.evaluate(picture)
            # when: the seat is sold (published from this process, served by the other one)
            pubsub.publish(channel, seats("sold"))
            page.wait_for_function(f"b => {picture} !== b", arg=before, timeout=WAIT * 1000)
            sold = page.evaluate(picture)
            # when: it is released again, the map looks as it did
            pubsub.publish(channel, seats("available"))
            page.wait_for_function(f"b => {picture} === b", arg=before, timeout=WAIT * 1000)
            released = page.evaluate(picture)
        finally:
            browser.close()
    assert sold != before
    assert released == before
