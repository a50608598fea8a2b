"""Cheap signals around a session's inventory for hot on-sales: rate-limited availability
publishing and a short-lived "sold out" marker. Neither decides a sale — the conditional
statements in `inventory.services` do — they only save work.

**Throttled publishing.** Computing a session's quota availability costs several aggregate
queries; at an on-sale it changed hundreds of times a second. `publish_throttled(key, send)`
runs `send` at most once per `PIAOWU_AVAILABILITY_PUBLISH_MS` (default 250; 0 = every time)
per key: a gate taken with Redis `SET NX PX` when `REDIS_URL` is set (all processes share it),
a per-process timestamp otherwise. A change that finds the gate closed schedules one *trailing*
`send` in this process for when the gate opens (one pending per key and process); if the gate
is taken again by then, it tries again later. A `send` computes the state when it runs, after
it took the gate, so the last change is always published — the live seat map converges.

**Sold-out marker.** When a general-admission tier is found sold out even after reclaiming
expired holds, `sold_out_mark` remembers it for `PIAOWU_SOLD_OUT_MARKER_SECONDS` (default 2)
in the Django cache (Redis in production, per process otherwise); later requests for it are
refused at once. Anything that gives admissions back (release, expiry sweep, reclaim, cancel)
calls `sold_out_clear`. A marker also never outlives the earliest expiry of the holds that
keep the tier sold out (the caller passes it as `until`, compared with `core.clock`): the
instant a hold expires its admissions are sellable again ("time is data"). Without Redis a
release in another process clears only that process's marker; the others' end with the TTL.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from piaowu.core import clock

logger = logging.getLogger(__name__)

DEFAULT_PUBLISH_MS = 250
DEFAULT_SOLD_OUT_SECONDS = 2.0

_lock = threading.Lock()
_last_sent: dict[str, float] = {}
_pending: set[str] = set()
_client: redis.Redis | None = None


def publish_interval() -> float:
    """Seconds between two publishes of one key."""
    return max(
        0.0, float(getattr(settings, "PIAOWU_AVAILABILITY_PUBLISH_MS", DEFAULT_PUBLISH_MS)) / 1000
    )


def _redis() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.REDIS_URL)
        return _client


def _gate_key(key: str) -> str:
    return f"{getattr(settings, 'PUBSUB_PREFIX', 'piaowu')}:publish-gate:{key}"


def _take_gate(key: str, interval: float) -> bool:
    """True if this caller may publish `key` now (and closes the gate for `interval`)."""
    if getattr(settings, "REDIS_URL", ""):
        try:
            return bool(
                _redis().set(_gate_key(key), b"1", nx=True, px=max(1, int(interval * 1000)))
            )
        except redis.RedisError:
            logger.warning("publish gate unavailable; publishing without it", exc_info=True)
            return True
    now = time.monotonic()
    with _lock:
        if now - _last_sent.get(key, float("-inf")) < interval:
            return False
        _last_sent[key] = now
        if len(_last_sent) > 10_000:
            _last_sent.clear()
            _last_sent[key] = now
        return True


def _safe(send: Callable[[], None]) -> None:
    try:
        send()
    except Exception:
        logger.exception("availability publish failed")


def _trailing(key: str, send: Callable[[], None], interval: float) -> None:
    """Runs on a timer thread: publish if the gate is open now, else wait another round."""
    try:
        if _take_gate(key, interval):
            with _lock:
                _pending.discard(key)
            _safe(send)
        else:
            timer = threading.Timer(interval, _trailing, (key, send, interval))
            timer.daemon = True
            timer.start()
            return
    finally:
        connections.close_all()  # this thread's own connections, if `send` opened any


def publish_throttled(key: str, send: Callable[[], None]) -> bool:
    """Run `send` now if the gate of `key` is open, else make sure it runs once the gate opens.
    True if it ran now."""
    interval = publish_interval()
    if interval <= 0 or _take_gate(key, interval):
        _safe(send)
        return True
    with _lock:
        if key in _pending:
            return False  # a trailing publish is already due and will see this change
        _pending.add(key)
    timer = threading.Timer(interval, _trailing, (key, send, interval))
    timer.daemon = True
    timer.start()
    return False


# --- Sold-out marker ----------------------------------------------------------------------------


def _sold_out_seconds() -> float:
    return float(getattr(settings, "PIAOWU_SOLD_OUT_MARKER_SECONDS", DEFAULT_SOLD_OUT_SECONDS))


def _marker_key(session_public_id: str) -> str:
    return f"piaowu:sold-out:{session_public_id}"


def _markers(session_public_id: str) -> dict[str, float]:
    try:
        found = cache.get(_marker_key(session_public_id))
    except Exception:  # a cache outage must not stop sales
        logger.warning("sold-out marker unreadable", exc_info=True)
        return {}
    return dict(found) if isinstance(found, dict) else {}


def sold_out_tiers(session_public_id: str) -> set[str]:
    """Tier codes found sold out in this session whose marker still holds now."""
    if _sold_out_seconds() <= 0:
        return set()
    now = clock.now().timestamp()
    return {tier for tier, until in _markers(session_public_id).items() if until > now}


def sold_out_mark(session_public_id: str, tier_code: str, *, until: datetime | None) -> None:
    """Remember that `tier_code` had nothing left after reclaiming expired holds, until the
    TTL or `until` (the earliest expiry of a hold still counted against it), whichever is
    first."""
    seconds = _sold_out_seconds()
    if seconds <= 0:
        return
    deadline = clock.now().timestamp() + seconds
    if until is not None:
        deadline = min(deadline, until.timestamp())
    try:
        markers = _markers(session_public_id)
        markers[tier_code] = deadline
        cache.set(_marker_key(session_public_id), markers, timeout=max(1, math.ceil(seconds)))
    except Exception:
        logger.warning("sold-out marker not written", exc_info=True)


def sold_out_clear(session_public_id: str) -> None:
    """Admissions came back: let buyers try again at once."""
    try:
        cache.delete(_marker_key(session_public_id))
    except Exception:
        logger.warning("sold-out marker not cleared", exc_info=True)


def reset() -> None:
    """Tests: forget gates and pending publishes of this process."""
    with _lock:
        _last_sent.clear()
        _pending.clear()
