"""The `piaowu` command as a user runs it: real processes, real ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PIAOWU = [sys.executable, "-m", "piaowu.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(PIAOWU_VAR_DIR=str(tmp_path / "var"), **extra)
    return env


@pytest.mark.slow
def test_demo_refuses_a_taken_port_before_doing_any_work(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*PIAOWU, "demo", "--port", str(port)],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert not (tmp_path / "var" / "piaowu.sqlite3").exists()


@pytest.mark.slow
def test_serve_reports_an_unreachable_database(tmp_path: Path) -> None:
    dead = f"postgres://piaowu@127.0.0.1:{_free_port()}/nowhere"
    result = subprocess.run(
        [*PIAOWU, "serve", "--port", str(_free_port())],
        env=_env(tmp_path, DATABASE_URL=dead),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "cannot reach the database nowhere" in result.stderr


@pytest.mark.slow
def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [*PIAOWU, "serve", "--port", str(_free_port())],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "unapplied migration" in result.stderr


@pytest.mark.slow
def test_demo_seeds_serves_pages_and_prints_the_logins(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [*PIAOWU, "demo", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    body = response.read().decode()
                    break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.5)
        assert "Piaowu" in body or "票务" in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5) as r:
            assert r.status == 200
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "operator@piaowu.demo" in output
    assert f"http://127.0.0.1:{port}/" in output
