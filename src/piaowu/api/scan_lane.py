"""The scanners' lane: `POST /api/v1/checkin/scans` from a registered scanner, beside Django.

A venue's gates scan in bursts — 64 gates at doors-open is the design point, 1,000 scans a
second on two cores the target (bench/checkin). Through Django a scan cost ~1 ms of request
handling before any checking (nine middlewares, URL routing, Ninja's operation) and a database
transaction of its own. Here a scan with `Authorization: Device <token>` is parsed with the
endpoint's own schema (`ScanIn`), queued, and checked in batches by the same service
(`checkin.services.checkin_scan_many`): whatever arrives while a batch is in the database goes
in the next one, so an idle gate waits for nobody and a busy venue commits once per batch.
The answer is the endpoint's own (`scan_out`, the API error shape, the language from
Accept-Language, the headers Django's middleware would add).

Everything else — staff scanning from a signed-in browser (cookies, CSRF), other paths, other
methods — goes to Django. The OpenAPI description of the endpoint is Ninja's
(api/v1/checkin.py), and tests/api/test_scan_lane.py asks both doors the same questions.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, connection
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host
from django.utils import translation
from django.utils.translation import gettext as _
from pydantic import ValidationError

from piaowu.api.errors import validation_details
from piaowu.api.v1.checkin import ScanIn, scan_attempt, scan_out
from piaowu.checkin.services import ScanAttempt, ScanResult, checkin_scan_many
from piaowu.core.errors import DomainError

SCAN_PATH = "/api/v1/checkin/scans"
MAX_BODY_BYTES = 64 * 1024  # a scan is a few hundred bytes; `code` is at most 16,384 characters

_NOT_JSON = "Cannot parse request body"

Scope = dict[str, Any]
Message = dict[str, Any]
_HEADERS = [
    (b"content-type", b"application/json; charset=utf-8"),
    (b"vary", b"Accept-Language"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


@dataclass(frozen=True, slots=True)
class QueuedScan:
    """A parsed scan waiting for its batch, with the language to answer in."""

    attempt: ScanAttempt
    language: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes  # JSON
    language: str


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def device_token(scope: Scope) -> str | None:
    """The token of `Authorization: Device <token>` (None: not a scanner's request)."""
    header = _header(scope, b"authorization")
    if header is None:
        return None
    scheme, _sep, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "device" else None


def request_language(scope: Scope) -> str:
    """The language Django's LocaleMiddleware would pick (cookie, then Accept-Language)."""
    cookie = None
    for part in (_header(scope, b"cookie") or "").split(";"):
        name, _sep, value = part.strip().partition("=")
        if name == settings.LANGUAGE_COOKIE_NAME:
            cookie = value
    return _language(_header(scope, b"accept-language"), cookie)


@functools.lru_cache(maxsize=256)
def _language(accept: str | None, cookie: str | None) -> str:
    # A gate sends the same header all day: decide once per distinct pair.
    request = HttpRequest()
    if accept is not None:
        request.META["HTTP_ACCEPT_LANGUAGE"] = accept
    if cookie is not None:
        request.COOKIES[settings.LANGUAGE_COOKIE_NAME] = cookie
    return translation.get_language_from_request(request)


def answer_for(result: ScanResult | DomainError, language: str) -> Answer:
    """The endpoint's answer, rendered in `language` (in the thread that read the tickets, so
    nothing it touches can reach the database from the event loop)."""
    with translation.override(language):
        if isinstance(result, DomainError):
            return Answer(result.status, _encode(result.as_dict()), language)
        return Answer(200, _encode(scan_out(result)), language)


def _encode(body: dict[str, Any]) -> bytes:
    # DjangoJSONEncoder: lazy translations become text in the active language.
    return json.dumps(body, cls=DjangoJSONEncoder, ensure_ascii=False).encode()


def run_batch(scans: list[QueuedScan]) -> list[Answer]:
    """One batch in a worker thread: a database connection from the pool, given back after."""
    close_old_connections()
    try:
        results = checkin_scan_many([scan.attempt for scan in scans])
        return [
            answer_for(result, scan.language) for scan, result in zip(scans, results, strict=True)
        ]
    finally:
        connection.close()


class Batcher:
    """Scans queue here; up to `flushers` batches run at once, each of what was waiting."""

    def __init__(
        self,
        run: Callable[[list[QueuedScan]], list[Answer]],
        *,
        batch_max: int | None = None,
        flushers: int | None = None,
    ) -> None:
        self.run = run
        self.batch_max = max(1, batch_max or settings.PIAOWU_SCAN_BATCH_MAX)
        # One batch at a time by default (measured best on 2 cores: 1,000 against 823 scans a
        # second with two, bench/README.md); more overlap the database waits of several.
        self.flushers = max(1, flushers or settings.PIAOWU_SCAN_FLUSHERS)
        self.waiting: list[tuple[QueuedScan, asyncio.Future[Answer]]] = []
        self.running = 0
        self.executor = ThreadPoolExecutor(self.flushers, thread_name_prefix="scan-batch")

    def submit(self, scan: QueuedScan) -> asyncio.Future[Answer]:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.waiting.append((scan, future))
        self._start()
        return future

    def _start(self) -> None:
        while self.waiting and self.running < self.flushers:
            batch = self.waiting[: self.batch_max]
            del self.waiting[: self.batch_max]
            self.running += 1
            asyncio.get_running_loop().create_task(self._flush(batch))

    async def _flush(self, batch: list[tuple[QueuedScan, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.run, [scan for scan, _future in batch]
            )
        except Exception as exc:  # the database is down …: every scan of the batch gets a 500
            for _scan, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_scan, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
        finally:
            self.running -= 1
            self._start()


class ScanLane:
    """ASGI middleware: scanners' scans to the batcher, every other request to `app`."""

    def __init__(self, app: Any, batcher: Batcher | None = None) -> None:
        self.app = app
        self.batcher = batcher or Batcher(run_batch)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != SCAN_PATH
            or scope["method"] != "POST"
            or device_token(scope) is None
            or not _allowed_host(scope)  # Django answers that one, as for any request
        ):
            await self.app(scope, receive, send)
            return
        language = request_language(scope)
        answer = await self._answer(scope, receive, language)
        body = answer.body
        headers = [
            *_HEADERS,
            (b"content-language", answer.language.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Any, language: str) -> Answer:
        body = await _read_body(receive)
        too_large = {"type": "string_too_long", "ctx": {"max_length": MAX_BODY_BYTES}}
        errors: list[dict[str, Any]] = [{"loc": ("body",), **too_large}]
        if body is not None:
            try:
                payload = ScanIn.model_validate_json(body)
                errors = []
            except ValidationError as exc:
                errors = [dict(error) for error in exc.errors(include_url=False)]
        if any(error["type"] == "json_invalid" for error in errors):
            # What Ninja answers for a body that is not JSON (api/errors.py, on_http_error).
            unparsable = {"code": "http_error", "message": _NOT_JSON, "details": {}}
            return Answer(400, _encode(unparsable), language)
        if errors:
            with translation.override(language):
                invalid = {
                    "code": "invalid_input",
                    "message": _("Some parameters are not valid."),
                    "details": validation_details(errors),
                }
                return Answer(400, _encode(invalid), language)
        attempt = scan_attempt(payload, device_token=device_token(scope))
        return await self.batcher.submit(QueuedScan(attempt, language))


def _allowed_host(scope: Scope) -> bool:
    return _host_allowed(_header(scope, b"host") or "")


@functools.lru_cache(maxsize=64)
def _host_allowed(host: str) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


async def _read_body(receive: Any) -> bytes | None:
    """The request body, or None when it is larger than a scan can be."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
