"""The `piaowu` command: `demo`, `serve`, and `manage` (Django's management commands).

piaowu demo                  # embedded SQLite under ./var/, demo data, serve on :8000
piaowu serve --workers 4     # whatever DATABASE_URL / REDIS_URL say
piaowu manage migrate        # any Django management command
piaowu worker                # periodic jobs (hold sweep, sandbox notifications) until SIGTERM
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

EXIT_PORT_TAKEN = 2
EXIT_DATABASE_UNREACHABLE = 3


def _fail(message: str, code: int) -> int:
    print(f"piaowu: {message}", file=sys.stderr)
    return code


def port_problem(host: str, port: int) -> str | None:
    """Why we cannot listen on host:port, or None. Checked before any slow work."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (is another server running?). "
                    f"Stop it, or choose another port with --port."
                )
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "piaowu.settings")
    import django

    django.setup()


def database_problem() -> str | None:
    from django.db import connection
    from django.db.utils import OperationalError

    try:
        connection.ensure_connection()
    except OperationalError as exc:
        settings_dict = connection.settings_dict
        where = f"{settings_dict.get('HOST') or 'local'}:{settings_dict.get('PORT') or ''}".rstrip(
            ":"
        )
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"cannot reach the database {settings_dict.get('NAME')} at {where}: {first_line}. "
            "Check DATABASE_URL and that the database server is running."
        )
    return None


def _serve(host: str, port: int, workers: int, log_level: str) -> int:
    import uvicorn

    from piaowu.catalog.search import warm_up

    warm_up()
    uvicorn.run(
        "piaowu.asgi:application",
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        log_level=log_level,
        lifespan="off",
        proxy_headers=True,
    )
    return 0


def command_demo(args: argparse.Namespace) -> int:
    # The demo is always the embedded mode: SQLite under ./var/, no Redis.
    for name in ("DATABASE_URL", "REDIS_URL"):
        if os.environ.pop(name, None):
            print(f"piaowu demo: ignoring {name}; the demo always runs embedded.")
    if not args.no_serve and (problem := port_problem(args.host, args.port)):
        return _fail(problem, EXIT_PORT_TAKEN)
    _setup_django()
    if problem := database_problem():
        return _fail(problem, EXIT_DATABASE_UNREACHABLE)
    from django.core.management import call_command

    from piaowu.cli.demo_data import DEMO_LOGINS, seed_demo

    print("==> migrating the embedded database (var/piaowu.sqlite3)", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    print("==> seeding demo data", flush=True)
    summary = seed_demo(stdout=sys.stdout)
    print(summary)
    url = f"http://{args.host}:{args.port}/"
    print()
    print(f"  Piaowu demo      {url}")
    print(f"  Operator console {url}admin/")
    print(f"  API docs         {url}api/docs")
    print()
    print("  Logins (e-mail / password):")
    for login in DEMO_LOGINS:
        print(f"    {login.email:<28} {login.password:<16} {login.description}")
    print(flush=True)
    if args.no_serve:
        return 0
    _start_embedded_jobs()
    return _serve(args.host, args.port, 1, args.log_level)


def _start_embedded_jobs() -> None:
    """Embedded mode: the periodic jobs run in a daemon thread of the server process."""
    from piaowu.cli.jobs import register_jobs
    from piaowu.core.jobs import JobWorker

    JobWorker(register_jobs()).start()


def command_serve(args: argparse.Namespace) -> int:
    if problem := port_problem(args.host, args.port):
        return _fail(problem, EXIT_PORT_TAKEN)
    _setup_django()
    if problem := database_problem():
        return _fail(problem, EXIT_DATABASE_UNREACHABLE)
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return _fail(
            f"the database has {len(pending)} unapplied migration(s); "
            "run `piaowu manage migrate` first.",
            EXIT_DATABASE_UNREACHABLE,
        )
    print(
        f"==> serving on http://{args.host}:{args.port}/ with {args.workers} worker(s)", flush=True
    )
    return _serve(args.host, args.port, args.workers, args.log_level)


def command_manage(args: argparse.Namespace) -> int:
    _setup_django()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["piaowu manage", *args.rest])
    return 0


def command_worker(args: argparse.Namespace) -> int:
    """Run the periodic jobs in the foreground until SIGTERM / SIGINT (or once with --once)."""
    _setup_django()
    if problem := database_problem():
        return _fail(problem, EXIT_DATABASE_UNREACHABLE)
    from piaowu.cli.jobs import register_jobs
    from piaowu.core.jobs import JobWorker

    jobs = register_jobs()
    if args.once:
        results = jobs.run_due()
        for name, ok in sorted(results.items()):
            print(f"{name}: {'ok' if ok else 'FAILED'}", flush=True)
        return 0 if all(results.values()) else 1
    worker = JobWorker(jobs, tick=args.tick)

    def _stop(signum: int, frame: FrameType | None) -> None:
        print(f"piaowu worker: {signal.Signals(signum).name} received, stopping", flush=True)
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"==> running periodic jobs: {', '.join(j.name for j in jobs.jobs())}", flush=True)
    worker.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piaowu", description="Piaowu ticketing platform")
    commands = parser.add_subparsers(dest="command", required=True)

    def server_options(sub: argparse.ArgumentParser, workers: bool) -> None:
        sub.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        sub.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        sub.add_argument("--log-level", default="info")
        if workers:
            sub.add_argument(
                "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2"))
            )

    demo = commands.add_parser("demo", help="seed and serve the embedded demo")
    server_options(demo, workers=False)
    demo.add_argument("--no-serve", action="store_true", help="migrate and seed, then exit")
    demo.set_defaults(handler=command_demo)

    serve = commands.add_parser("serve", help="serve against DATABASE_URL")
    server_options(serve, workers=True)
    serve.set_defaults(handler=command_serve)

    worker = commands.add_parser("worker", help="run the periodic background jobs")
    worker.add_argument("--once", action="store_true", help="run the due jobs once, then exit")
    worker.add_argument(
        "--tick", type=float, default=1.0, help="seconds between checks for due jobs"
    )
    worker.set_defaults(handler=command_worker)

    manage = commands.add_parser("manage", help="run a Django management command")
    manage.add_argument("rest", nargs=argparse.REMAINDER)
    manage.set_defaults(handler=command_manage)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
