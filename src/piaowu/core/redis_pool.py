"""One Redis connection pool per process for Django's cache.

Django keeps its cache objects in context-local storage, and a thread-pool server runs every
request in a fresh copy of the context, so each request built a new `RedisCache`, a new
connection pool and a new TCP connection — and redis-py reads its own package metadata from
disk for every new connection. Measured at a hot on-sale: a share of every purchase's CPU went
to `getaddrinfo`, `connect` and `importlib.metadata`. Pools are thread-safe and redis-py
replaces a pool's connections after a fork, so one pool per URL and options is enough.
"""

from __future__ import annotations

import threading
from typing import Any

import redis


class SharedConnectionPool(redis.ConnectionPool):
    """`pool_class` for Django's RedisCache: `from_url` hands out one pool per URL+options."""

    _shared: dict[str, redis.ConnectionPool] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        key = url + repr(sorted(kwargs.items(), key=lambda item: item[0]))
        with cls._shared_lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = redis.ConnectionPool.from_url(url, **kwargs)
        return pool
