"""Hand-written SQL for the few hot paths where building the query costs more than running it.

On the 2-core machine the ORM spends ~1.5 ms of CPU compiling `Model.objects.filter(…).first()`
and ~3 ms with three `select_related` joins, against ~0.1 ms to run the same SQL through a
cursor (bench/README.md, `bench/checkin`). The gate scan runs a handful of fixed statements
thousands of times a second, so it writes them out once. The SQL here must run unchanged on
PostgreSQL and SQLite (both take `%s` placeholders through Django's cursor, and both know
`INSERT … ON CONFLICT … DO NOTHING RETURNING`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeVar

import psycopg
from django.db import connection
from django.db.models import DEFERRED, Model
from django.utils.dateparse import parse_datetime

M = TypeVar("M", bound=Model)


def table(model: type[Model]) -> str:
    """The model's quoted table name, for composing SQL once at import time."""
    return connection.ops.quote_name(model._meta.db_table)


def compose(template: str, **models: type[Model]) -> str:
    """`template` with each `{name}` replaced by that model's quoted table name."""
    return template.format(**{name: table(model) for name, model in models.items()})


def placeholders(count: int) -> str:
    """`%s, %s, …` for an IN list or a VALUES row of `count` values."""
    return ", ".join(["%s"] * count)


def param(value: Any) -> Any:
    """A value as the database driver wants it (SQLite stores datetimes as UTC text)."""
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def to_datetime(value: Any) -> dt.datetime | None:
    """A datetime column as an aware UTC datetime (SQLite returns text)."""
    if value is None or isinstance(value, dt.datetime):
        moment = value
    else:
        moment = parse_datetime(str(value))
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def instance(model: type[M], columns: dict[str, Any]) -> M:
    """A model instance from a row's columns by attname, as if the ORM had loaded it; the
    fields not given are deferred (they load on access)."""
    values = [columns.get(field.attname, DEFERRED) for field in model._meta.concrete_fields]
    return model.from_db("default", list(columns), values)


def _run(sql: str, params: Sequence[Any], fetch: int, prepare: bool) -> Any:
    """Execute; then 0: the row count, 1: the first row, 2: all rows."""
    if connection.vendor == "postgresql":
        # Server-side binding and a prepared statement: PostgreSQL plans these few fixed
        # statements once per connection instead of on every call (Django's own cursors bind
        # on the client, so every query is parsed and planned afresh: 0.8 ms of PostgreSQL CPU
        # for the scan's five-table ticket read). Same connection, same transaction.
        # Django's own errors (IntegrityError …) as its cursors would raise them.
        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, list(params), prepare=prepare)
            return _result(cursor, fetch)
    with connection.cursor() as cursor:
        cursor.execute(sql, [param(value) for value in params])
        return _result(cursor, fetch)


def _result(cursor: Any, fetch: int) -> Any:
    if fetch == 1:
        return cursor.fetchone()
    if fetch == 2:
        return cursor.fetchall()
    return cursor.rowcount


def fetch_one(sql: str, params: Sequence[Any], prepare: bool = True) -> tuple[Any, ...] | None:
    """The first row. `prepare=False` for SQL whose text varies (IN lists of any length)."""
    row = _run(sql, params, fetch=1, prepare=prepare)
    return tuple(row) if row is not None else None


def fetch_all(sql: str, params: Sequence[Any], prepare: bool = True) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in _run(sql, params, fetch=2, prepare=prepare)]


def execute(sql: str, params: Sequence[Any], prepare: bool = True) -> int:
    """Run a write; the number of rows it changed."""
    return int(_run(sql, params, fetch=0, prepare=prepare))
