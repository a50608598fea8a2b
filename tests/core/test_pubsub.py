"""piaowu.core.pubsub: in-process fan-out (always) and Redis (with REDIS_URL)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from piaowu.core import pubsub

WAIT = 1.0  # seconds a delivered message may take before the test fails


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    pubsub.reset()
    yield
    pubsub.reset()


@pytest.fixture
def in_process(settings: Settings) -> None:
    settings.REDIS_URL = ""


def publish_from_thread(channel: str, message: dict[str, Any]) -> None:
    thread = threading.Thread(target=pubsub.publish, args=(channel, message))
    thread.start()
    thread.join(WAIT)


def test_publish_from_another_thread_reaches_an_asyncio_subscriber(in_process: None) -> None:
    async def scenario() -> dict[str, Any]:
        async with pubsub.subscription("session:A") as sub:
            await asyncio.to_thread(publish_from_thread, "session:A", {"type": "seats", "n": 1})
            return await asyncio.wait_for(sub.get(), WAIT)

    assert asyncio.run(scenario()) == {"type": "seats", "n": 1}


def test_subscribe_iterator_yields_messages_in_order_and_unsubscribes_on_close(
    in_process: None,
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int, int]:
        stream = pubsub.subscribe("session:B")
        first = asyncio.ensure_future(anext(stream))
        while pubsub.local_subscriber_count("session:B") == 0:  # bounded by wait_for below
            await asyncio.sleep(0.01)
        during = pubsub.local_subscriber_count("session:B")
        for n in range(3):
            pubsub.publish("session:B", {"n": n})
        received = [await asyncio.wait_for(first, WAIT)]
        received += [await asyncio.wait_for(anext(stream), WAIT) for _ in range(2)]
        await stream.aclose()  # type: ignore[attr-defined]
        return received, during, pubsub.local_subscriber_count("session:B")

    received, during, after = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert received == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert (during, after) == (1, 0)


def test_subscription_ends_when_its_task_is_cancelled(in_process: None) -> None:
    async def scenario() -> int:
        async def listen() -> None:
            async for _ in pubsub.subscribe("session:C"):
                pass

        task = asyncio.ensure_future(listen())
        while pubsub.local_subscriber_count("session:C") == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pubsub.local_subscriber_count("session:C")

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == 0


def test_every_subscriber_of_a_channel_gets_its_own_copy_and_others_get_nothing(
    in_process: None,
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], bool]:
        async with (
            pubsub.subscription("session:D") as a,
            pubsub.subscription("session:D") as b,
            pubsub.subscription("session:D") as c,
            pubsub.subscription("session:other") as other,
        ):
            publish_from_thread("session:D", {"type": "quota", "available": 7})
            got = [await asyncio.wait_for(s.get(), WAIT) for s in (a, b, c)]
            got[0]["available"] = 0  # a subscriber changing its copy changes no other
            try:
                await asyncio.wait_for(other.get(), 0.05)
                other_got = True
            except TimeoutError:
                other_got = False
            return got, other_got

    got, other_got = asyncio.run(scenario())
    assert got[1:] == [{"type": "quota", "available": 7}] * 2
    assert got[0] == {"type": "quota", "available": 0}
    assert not other_got


def test_subscribers_on_different_event_loops_all_receive(in_process: None) -> None:
    results: list[dict[str, Any]] = []
    ready = threading.Barrier(4)

    def run_loop() -> None:
        async def listen() -> None:
            async with pubsub.subscription("session:E") as sub:
                ready.wait(WAIT)
                results.append(await asyncio.wait_for(sub.get(), WAIT))

        asyncio.run(listen())

    threads = [threading.Thread(target=run_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    ready.wait(WAIT)
    pubsub.publish("session:E", {"n": 1})
    for thread in threads:
        thread.join(2 * WAIT)
    assert results == [{"n": 1}] * 3


def test_a_slow_subscriber_drops_its_oldest_messages(in_process: None) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with pubsub.subscription("session:F") as sub:
            for n in range(pubsub.QUEUE_SIZE + 5):
                pubsub.publish("session:F", {"n": n})
            await asyncio.sleep(0.05)  # let the loop run the deliveries
            return [await asyncio.wait_for(sub.get(), WAIT) for _ in range(2)]

    assert asyncio.run(scenario()) == [{"n": 5}, {"n": 6}]


def test_publishing_without_subscribers_is_a_no_op(in_process: None) -> None:
    pubsub.publish("session:nobody", {"type": "seats", "changes": []})
    assert pubsub.local_subscriber_count("session:nobody") == 0


def test_a_message_that_is_not_json_is_refused(in_process: None) -> None:
    with pytest.raises(TypeError):
        pubsub.publish("session:G", {"when": object()})
    with pytest.raises(TypeError):
        pubsub.publish("session:G", ["not", "a", "dict"])  # type: ignore[arg-type]


def test_a_subscriber_whose_loop_closed_is_forgotten(in_process: None) -> None:
    async def subscribe_and_leave_open() -> None:
        pubsub._local.add("session:H")  # never removed: its loop is about to close

    asyncio.run(subscribe_and_leave_open())
    assert pubsub.local_subscriber_count("session:H") == 1
    pubsub.publish("session:H", {"n": 1})
    assert pubsub.local_subscriber_count("session:H") == 0


def test_session_channel_name() -> None:
    assert pubsub.session_channel("01JD") == "session:01JD"


@pytest.mark.redis
def test_redis_publish_from_a_thread_reaches_a_redis_subscriber() -> None:
    async def scenario() -> dict[str, Any]:
        async with pubsub.subscription("session:R") as sub:
            await asyncio.to_thread(publish_from_thread, "session:R", {"type": "seats", "n": 2})
            return await asyncio.wait_for(sub.get(), WAIT)

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == {"type": "seats", "n": 2}


@pytest.mark.redis
def test_redis_subscribers_only_get_their_channel() -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with (
            pubsub.subscription("session:R1") as one,
            pubsub.subscription("session:R2") as two,
        ):
            pubsub.publish("session:R2", {"to": 2})
            pubsub.publish("session:R1", {"to": 1})
            return await asyncio.wait_for(one.get(), WAIT), await asyncio.wait_for(two.get(), WAIT)

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == ({"to": 1}, {"to": 2})
