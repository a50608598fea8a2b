"""A lean HTTP/1.1 keep-alive client for the benchmarks.

The load generator shares the 2-core machine with the server and PostgreSQL, so its own cost
counts against every figure: httpx spent ~2 ms of CPU per request, which alone is a whole core
at 500 requests a second. This client speaks just enough HTTP/1.1 for our own server (one
connection, one request at a time, Content-Length or chunked bodies) on asyncio's streams, at
a few tens of microseconds per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


class HTTPError(Exception):
    """The connection failed or the server broke the protocol."""


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes
    cookies: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class Connection:
    """One keep-alive connection to host:port; reconnects when the server closed it."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        try:
            return await asyncio.wait_for(
                self._request(method, path, json_body, body, headers or {}), self.timeout
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise HTTPError(f"{type(exc).__name__}: {exc}") from exc

    async def _request(
        self,
        method: str,
        path: str,
        json_body: Any,
        body: bytes | None,
        headers: dict[str, str],
    ) -> Response:
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json", **headers}
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (1, 2):
            if self._writer is None:
                await self._connect()
            assert self._reader is not None and self._writer is not None
            self._writer.write(head + (body or b""))
            try:
                return await self._read_response(method)
            except (ConnectionResetError, asyncio.IncompleteReadError):
                # A keep-alive connection the server closed while idle: retry once afresh.
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _read_response(self, method: str) -> Response:
        assert self._reader is not None
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        cookies: dict[str, str] = {}
        while True:
            line = await self._reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookie_name, _, rest = value.partition("=")
                cookies[cookie_name] = rest.split(";", 1)[0]
            headers[name] = value
        if method == "HEAD" or status in (204, 304):
            content = b""
        elif "content-length" in headers:
            content = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            content = await self._read_chunked()
        else:
            content = await self._reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, content, cookies)

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)


class Client:
    """A connection with a cookie jar, like one browser of one buyer (`clear()` between
    buyers). Enough for Django's session and CSRF cookies."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self.connection = Connection(host, port, timeout)
        self.cookies: dict[str, str] = {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        response = await self.connection.request(
            method, path, json_body=json_body, body=body, headers=sent
        )
        for name, value in response.cookies.items():
            if value in ("", '""'):  # Django deletes a cookie by sending it empty
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def clear(self) -> None:
        self.cookies.clear()

    async def close(self) -> None:
        await self.connection.close()
