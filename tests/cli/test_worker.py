"""`piaowu worker` as an operator runs it: a real process against a temporary SQLite database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PIAOWU = [sys.executable, "-m", "piaowu.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(PIAOWU_VAR_DIR=str(tmp_path / "var"))
    return env


def _migrate(tmp_path: Path) -> None:
    subprocess.run(
        [*PIAOWU, "manage", "migrate", "--verbosity", "0"],
        env=_env(tmp_path),
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
def test_worker_once_runs_the_due_jobs_and_exits_0(tmp_path: Path) -> None:
    _migrate(tmp_path)
    result = subprocess.run(
        [*PIAOWU, "worker", "--once"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "inventory.holds_sweep: ok" in result.stdout
    assert "payments.sandbox_deliver_due: ok" in result.stdout


@pytest.mark.slow
def test_worker_once_fails_when_a_job_fails(tmp_path: Path) -> None:
    # No migrations: the jobs' tables are missing, so each job raises and is reported.
    result = subprocess.run(
        [*PIAOWU, "worker", "--once"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "payments.sandbox_deliver_due: FAILED" in result.stdout
    assert "periodic job payments.sandbox_deliver_due failed" in result.stderr


@pytest.mark.slow
def test_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    _migrate(tmp_path)
    process = subprocess.Popen(
        [*PIAOWU, "worker", "--tick", "0.1"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "running periodic jobs" in first
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "SIGTERM received, stopping" in out
