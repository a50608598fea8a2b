"""Periodic background jobs without a task server.

Outer layers register plain functions with `registry.register(name, every, func)`;
`registry.run_due()` runs every job whose interval has passed since its last run, and
`JobWorker` calls it in a loop (foreground for `piaowu worker`, a daemon thread inside
`piaowu demo`).

Jobs must be idempotent and safe to run concurrently with another worker (they use row locks /
`skip_locked`), because last runs are remembered in this process's memory only: two worker
processes each run every job on their own schedule. A job that raises is logged and retried on
its next turn; it never stops the other jobs or the loop.

The core never imports the domain apps that own the jobs: registrations live in
`piaowu.cli.jobs` (presentation may import anything).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from piaowu.core import clock

logger = logging.getLogger(__name__)

#: How often the worker loop wakes up to look for due jobs.
DEFAULT_TICK_SECONDS = 1.0

JobFunc = Callable[[], object]


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    every: timedelta
    func: JobFunc


class JobRegistry:
    """Named periodic jobs and when each last ran (in memory)."""

    def __init__(self) -> None:
        self._jobs: dict[str, PeriodicJob] = {}
        self._last_run: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def register(self, name: str, every: timedelta, func: JobFunc) -> PeriodicJob:
        """Add or replace the job called `name`; `every` must be positive."""
        if every <= timedelta(0):
            raise ValueError(f"job {name!r}: interval must be positive")
        job = PeriodicJob(name=name, every=every, func=func)
        with self._lock:
            self._jobs[name] = job
        return job

    def jobs(self) -> list[PeriodicJob]:
        with self._lock:
            return list(self._jobs.values())

    def last_run(self, name: str) -> datetime | None:
        with self._lock:
            return self._last_run.get(name)

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._last_run.clear()

    def due(self, now: datetime) -> list[PeriodicJob]:
        """Jobs never run yet, or whose last run is at least `every` ago."""
        with self._lock:
            return [
                job
                for job in self._jobs.values()
                if (last := self._last_run.get(job.name)) is None or now - last >= job.every
            ]

    def run_due(self, now: datetime | None = None) -> dict[str, int]:
        """Run each due job once. Returns {job name: 1 if it ran cleanly, 0 if it raised}.

        A job's last run is recorded even when it fails, so a broken job is retried on its
        normal schedule rather than on every tick.
        """
        now = now or clock.now()
        results: dict[str, int] = {}
        for job in self.due(now):
            with self._lock:
                self._last_run[job.name] = now
            try:
                job.func()
            except Exception:
                logger.exception("periodic job %s failed", job.name)
                results[job.name] = 0
            else:
                results[job.name] = 1
        return results


def _close_old_connections() -> None:
    """Long-running loops must not keep a broken or stale database connection."""
    from django.db import close_old_connections

    close_old_connections()


#: The process-wide registry that `JobWorker` runs by default.
registry = JobRegistry()


class JobWorker:
    """Calls `run_due()` every `tick` seconds until `stop()`.

    `run()` blocks (foreground worker); `start()` runs the same loop in a daemon thread.
    """

    def __init__(
        self, jobs: JobRegistry | None = None, *, tick: float = DEFAULT_TICK_SECONDS
    ) -> None:
        self.registry: JobRegistry = jobs if jobs is not None else registry
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        names = ", ".join(job.name for job in self.registry.jobs()) or "none"
        logger.info("job worker started (jobs: %s)", names)
        while not self._stop.is_set():
            try:
                if self.registry.run_due():
                    _close_old_connections()
            except Exception:  # the loop itself must survive anything
                logger.exception("job worker tick failed")
            self._stop.wait(self.tick)
        logger.info("job worker stopped")

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="piaowu-jobs", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
