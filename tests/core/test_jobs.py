"""Periodic jobs: scheduling against a fake clock, isolation of failures, the worker loop."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from piaowu.cli.jobs import register_jobs
from piaowu.core.jobs import JobRegistry, JobWorker

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_new_job_is_due_at_once_then_only_after_its_interval() -> None:
    jobs = JobRegistry()
    calls: list[str] = []
    jobs.register("fast", timedelta(seconds=2), lambda: calls.append("fast"))
    jobs.register("slow", timedelta(seconds=30), lambda: calls.append("slow"))

    assert jobs.run_due(T0) == {"fast": 1, "slow": 1}
    assert jobs.run_due(T0 + timedelta(seconds=1)) == {}
    assert jobs.run_due(T0 + timedelta(seconds=2)) == {"fast": 1}
    assert jobs.run_due(T0 + timedelta(seconds=29)) == {"fast": 1}
    assert jobs.run_due(T0 + timedelta(seconds=30)) == {"slow": 1}
    assert jobs.run_due(T0 + timedelta(seconds=31)) == {"fast": 1}
    assert calls == ["fast", "slow", "fast", "fast", "slow", "fast"]
    assert jobs.last_run("slow") == T0 + timedelta(seconds=30)


def test_a_failing_job_is_logged_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = JobRegistry()
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    jobs.register("broken", timedelta(seconds=5), broken)
    jobs.register("fine", timedelta(seconds=5), lambda: calls.append("fine"))
    with caplog.at_level(logging.ERROR, logger="piaowu.core.jobs"):
        assert jobs.run_due(T0) == {"broken": 0, "fine": 1}
    assert calls == ["fine"]
    assert "periodic job broken failed" in caplog.text
    assert "boom" in caplog.text
    # The failed job waits for its next turn instead of being retried on every tick.
    assert jobs.run_due(T0 + timedelta(seconds=1)) == {}
    assert jobs.run_due(T0 + timedelta(seconds=5)) == {"broken": 0, "fine": 1}


def test_registering_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        JobRegistry().register("never", timedelta(0), lambda: None)


def test_registering_the_same_name_again_replaces_the_job() -> None:
    jobs = JobRegistry()
    calls: list[str] = []
    jobs.register("job", timedelta(seconds=1), lambda: calls.append("old"))
    jobs.register("job", timedelta(seconds=1), lambda: calls.append("new"))
    jobs.run_due(T0)
    assert calls == ["new"]


def test_the_periodic_jobs_are_registered_with_their_intervals() -> None:
    jobs = register_jobs(JobRegistry())
    every = {job.name: job.every for job in jobs.jobs()}
    assert every == {
        "inventory.holds_sweep": timedelta(seconds=30),
        "orders.expire_overdue": timedelta(seconds=15),
        "payments.sandbox_deliver_due": timedelta(seconds=2),
        "payments.reconcile": timedelta(seconds=30),
        "tickets.deliver_due": timedelta(seconds=10),
        "aftersales.refunds_process_due": timedelta(seconds=10),
        "aftersales.notices_send_due": timedelta(seconds=10),
        "aftersales.transfers_expire_overdue": timedelta(minutes=1),
        "aftersales.cancellations_run_due": timedelta(seconds=15),
        "aftersales.exchanges_abandon_unpaid": timedelta(minutes=1),
        "aftersales.waitlist_offer_due": timedelta(seconds=5),
        "aftersales.waitlist_fulfil_due": timedelta(seconds=5),
        "aftersales.waitlist_expire_due": timedelta(minutes=1),
        "housekeeping": timedelta(hours=1),
    }


@pytest.mark.django_db(transaction=True)
def test_the_registered_jobs_run_against_the_database() -> None:
    jobs = register_jobs(JobRegistry())
    assert jobs.run_due() == {
        "inventory.holds_sweep": 1,
        "orders.expire_overdue": 1,
        "payments.sandbox_deliver_due": 1,
        "payments.reconcile": 1,
        "tickets.deliver_due": 1,
        "aftersales.refunds_process_due": 1,
        "aftersales.notices_send_due": 1,
        "aftersales.transfers_expire_overdue": 1,
        "aftersales.cancellations_run_due": 1,
        "aftersales.exchanges_abandon_unpaid": 1,
        "aftersales.waitlist_offer_due": 1,
        "aftersales.waitlist_fulfil_due": 1,
        "aftersales.waitlist_expire_due": 1,
        "housekeeping": 1,
    }


def test_the_worker_thread_runs_due_jobs_until_stopped() -> None:
    jobs = JobRegistry()
    ran = threading.Event()
    jobs.register("signal", timedelta(hours=1), ran.set)
    worker = JobWorker(jobs, tick=0.01)
    thread = worker.start()
    try:
        assert ran.wait(10)
    finally:
        worker.stop(timeout=10)
    assert not thread.is_alive()
    assert thread.daemon
