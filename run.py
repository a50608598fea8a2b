#!/usr/bin/env python3
"""The two Quick-start commands, with nothing but python3 (3.11+) assumed.

    python3 run.py demo   # install on first run, seed the demo, serve on 127.0.0.1:8000
    python3 run.py test   # install on first run, run the whole test suite

Anything after the command is passed on (`python3 run.py test -k search`,
`python3 run.py demo --port 8001`). The virtual environment lives in `.venv/`; it is
(re)installed whenever `pyproject.toml` changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".piaowu-installed"


def _wanted_stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_environment() -> None:
    """Create `.venv` and install the project with its dev extras when missing or stale."""
    if sys.version_info < (3, 11):  # noqa: UP036  (run.py runs under any python3)
        sys.exit(f"Piaowu needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if STAMP.exists() and STAMP.read_text() == _wanted_stamp():
        return
    if not PYTHON.exists():
        print("==> creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    print("==> installing Piaowu and its dependencies into .venv (first run only)", flush=True)
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(_wanted_stamp())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "serve", "test", "install", "piaowu"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_environment()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if command == "install":
        return 0
    if command == "test":
        code = subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT, env=env)
        if code == 5:  # pytest: no tests collected — never a pass
            print("run.py: pytest collected no tests; treating that as a failure.")
            return 1
        return code
    if command == "piaowu":
        return subprocess.call([str(BIN / "piaowu"), *rest], cwd=ROOT, env=env)
    return subprocess.call([str(BIN / "piaowu"), command, *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"Installation failed ({exc}). See the pip output above.")
    except KeyboardInterrupt:
        sys.exit(130)
