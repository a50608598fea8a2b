"""Publish/subscribe for live updates (seat maps, quotas).

`publish(channel, message)` is synchronous and cheap, so it can run in a service or in
`transaction.on_commit`. `subscribe(channel)` is an async iterator of messages for async views
(server-sent events). Messages are JSON objects; a message that does not serialise to JSON is
refused at `publish`, in both backends.

Two backends, chosen per call from settings:

- **in-process** (embedded mode, no `REDIS_URL`): subscribers of this process only. Each
  subscriber has a bounded asyncio queue on its own event loop; `publish` hands the message to
  that loop with `loop.call_soon_threadsafe`, so it may be called from any thread. A subscriber
  that falls behind loses its *oldest* messages, never blocks the publisher.
- **Redis** (`REDIS_URL` set): Redis PUBLISH/SUBSCRIBE, so every server process sees every
  message. Publishing uses one shared synchronous client; each subscription holds one
  `redis.asyncio` connection.

Channel names: `session_channel(public_id)` → `"session:<public id>"`. Redis channels are
prefixed with `settings.PUBSUB_PREFIX` (default `"piaowu"`), because Redis pub/sub ignores the
database number.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from django.conf import settings

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256  # messages a slow subscriber may lag behind before the oldest are dropped


def session_channel(public_id: str) -> str:
    """The channel that carries a session's seat and quota changes."""
    return f"session:{public_id}"


def _encode(message: dict[str, Any]) -> str:
    if not isinstance(message, dict):
        raise TypeError("a pub/sub message is a dict")
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class Subscription(Protocol):
    async def get(self) -> dict[str, Any]:
        """The next message; waits as long as it takes."""
        ...


# --- In-process backend ---------------------------------------------------------------------


class _Subscriber:
    """A subscriber's queue; `LocalSubscription` registers and removes it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.dropped = 0

    def deliver(self, payload: str) -> None:
        """Runs on the subscriber's loop: enqueue, dropping the oldest message when full."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(payload)

    async def get(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.queue.get())
        return message


class LocalBroker:
    """Thread-safe fan-out to the subscribers of this process."""

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._channels: dict[str, set[_Subscriber]] = {}

    def publish(self, channel: str, payload: str) -> None:
        with self._lock:
            subscribers = list(self._channels.get(channel, ()))
        for subscriber in subscribers:
            try:
                subscriber.loop.call_soon_threadsafe(subscriber.deliver, payload)
            except RuntimeError:  # its loop has closed: it will never read again
                self.remove(channel, subscriber)

    def add(self, channel: str) -> _Subscriber:
        subscriber = _Subscriber(asyncio.get_running_loop(), self.maxsize)
        with self._lock:
            self._channels.setdefault(channel, set()).add(subscriber)
        return subscriber

    def remove(self, channel: str, subscriber: _Subscriber) -> None:
        with self._lock:
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._channels[channel]

    def subscriber_count(self, channel: str) -> int:
        with self._lock:
            return len(self._channels.get(channel, ()))


class LocalSubscription:
    """`async with`: registered with the broker on entry, removed on exit (even if cancelled)."""

    def __init__(self, broker: LocalBroker, channel: str) -> None:
        self.broker = broker
        self.channel = channel
        self.subscriber: _Subscriber | None = None

    async def __aenter__(self) -> _Subscriber:
        self.subscriber = self.broker.add(self.channel)
        return self.subscriber

    async def __aexit__(self, *exc_info: object) -> None:
        if self.subscriber is not None:
            self.broker.remove(self.channel, self.subscriber)
            self.subscriber = None


_local = LocalBroker()


# --- Redis backend --------------------------------------------------------------------------


class _RedisSubscription:
    def __init__(self, pubsub: aioredis.client.PubSub) -> None:
        self.pubsub = pubsub

    async def get(self) -> dict[str, Any]:
        while True:
            raw = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if raw is None or raw.get("type") != "message":
                continue
            try:
                message = json.loads(raw["data"])
            except ValueError:
                logger.warning("pubsub: dropped a message that is not JSON")
                continue
            if isinstance(message, dict):
                return message


_sync_client: redis.Redis | None = None
_sync_client_lock = threading.Lock()


def _redis_channel(channel: str) -> str:
    return f"{getattr(settings, 'PUBSUB_PREFIX', 'piaowu')}:{channel}"


def _redis_publish(channel: str, payload: str) -> None:
    global _sync_client
    with _sync_client_lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(settings.REDIS_URL)
        client = _sync_client
    client.publish(_redis_channel(channel), payload)


class RedisSubscription:
    """`async with`: a SUBSCRIBE confirmed by the server on entry; connection closed on exit."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.client = aioredis.Redis.from_url(settings.REDIS_URL)
        self.pubsub = self.client.pubsub()

    async def __aenter__(self) -> _RedisSubscription:
        try:
            await self.pubsub.subscribe(_redis_channel(self.channel))
            # Wait for the confirmation: from here on no message published is missed.
            while True:
                confirmation = await self.pubsub.get_message(timeout=5.0)
                if confirmation is None:
                    raise TimeoutError("Redis did not confirm the subscription")
                if confirmation["type"] == "subscribe":
                    break
        except BaseException:
            await self.__aexit__()
            raise
        return _RedisSubscription(self.pubsub)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.pubsub.aclose()
        await self.client.aclose()


# --- Public API -----------------------------------------------------------------------------


def publish(channel: str, message: dict[str, Any]) -> None:
    """Send `message` to every current subscriber of `channel` (none: it is dropped).

    Synchronous and safe from any thread and from `transaction.on_commit`. Raises `TypeError`
    if the message is not JSON-serialisable; a Redis outage raises `redis.RedisError`.
    """
    payload = _encode(message)
    if settings.REDIS_URL:
        _redis_publish(channel, payload)
    else:
        _local.publish(channel, payload)


def subscription(channel: str) -> AbstractAsyncContextManager[Subscription]:
    """`async with subscription(channel) as sub:` subscribed for the block; once entered, no
    later message is missed, and `await sub.get()` returns the next one.

    Use this rather than `subscribe` when the subscription must be in place before something
    else happens (answering a client, publishing in a test).
    """
    if settings.REDIS_URL:
        return RedisSubscription(channel)
    return LocalSubscription(_local, channel)


async def subscribe(channel: str) -> AsyncIterator[dict[str, Any]]:
    """Messages published on `channel` from now on, forever; unsubscribes when closed."""
    async with subscription(channel) as sub:
        while True:
            yield await sub.get()


def local_subscriber_count(channel: str) -> int:
    """In-process subscribers of `channel` (for tests and diagnostics)."""
    return _local.subscriber_count(channel)


def reset() -> None:
    """Forget every in-process subscriber and the shared Redis client (tests)."""
    global _local, _sync_client
    _local = LocalBroker()
    with _sync_client_lock:
        if _sync_client is not None:
            _sync_client.close()
        _sync_client = None
