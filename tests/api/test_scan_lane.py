"""The scanners' lane (api/scan_lane.py) answers exactly as the Ninja endpoint does, batches
what arrives together, and leaves everything else to Django."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from django.test import Client

from piaowu.api.scan_lane import Answer, Batcher, QueuedScan, ScanLane
from piaowu.checkin.models import Admission, Scan
from piaowu.checkin.services import ScanAttempt
from tests.checkin.conftest import (
    Door,
    MakeDoor,
    _fresh_keys,
    clock,
    door,
    ga_session,
    make_door,
    paid_order,
    reserved_session,
)

__all__ = [
    "_fresh_keys",
    "clock",
    "door",
    "ga_session",
    "make_door",
    "paid_order",
    "reserved_session",
]

PATH = "/api/v1/checkin/scans"


class Passed:
    """The app behind the lane: records what the lane let through."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _call(
    lane: ScanLane,
    body: bytes,
    headers: dict[str, str],
    *,
    path: str = PATH,
    method: str = "POST",
    host: str = "testserver",
) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"host", host.encode())]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await lane(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (
        int(start["status"]),
        {k.decode(): v.decode() for k, v in start["headers"]},
        content,
    )


def lane_post(lane: ScanLane, body: Any, headers: dict[str, str], **kw: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return asyncio.run(_call(lane, raw, headers, **kw))


def django_post(body: Any, headers: dict[str, str]) -> tuple[int, bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body)
    response = Client().post(PATH, raw, content_type="application/json", headers=headers)
    return response.status_code, response.content


def scan(door: Door, code: str, nonce: str, **extra: Any) -> dict[str, Any]:
    return {
        "gate": door.gate.public_id,
        "session": door.session.public_id,
        "code": code,
        "nonce": nonce,
        **extra,
    }


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_lane_answers_as_the_endpoint_does(
    transactional_db: None, door: Door, make_door: MakeDoor, language: str
) -> None:
    lane = ScanLane(Passed())
    device = {"Authorization": f"Device {door.token}", "Accept-Language": language}
    qr = door.qr(0)
    status, headers, content = lane_post(lane, scan(door, qr, "first"), device)
    assert status == 200 and json.loads(content)["outcome"] == "valid"
    assert headers["content-language"] == language
    assert headers["x-content-type-options"] == "nosniff"
    # Same questions at both doors (each with its own nonce), the same answers.
    wrong_token = {**device, "Authorization": "Device wrong-token"}
    cases: list[tuple[Any, dict[str, str]]] = [
        (lambda n: scan(door, qr, n), device),  # already used: when and where it got in
        (lambda n: scan(door, "garbage", n), device),
        (lambda n: scan(door, qr, n, gate="no-such-gate"), device),
        (lambda n: scan(door, qr, n, session="no-such-session"), device),
        (lambda n: scan(door, qr, n), wrong_token),
        (lambda n: scan(door, qr, n, direction="sideways"), device),
        (lambda n: {"gate": door.gate.public_id, "nonce": n}, device),  # fields missing
        (lambda n: scan(door, "x" * 20000, n), device),  # code too long
        (lambda n: scan(door, qr, "y" * 65), device),  # nonce too long
        (lambda n: b"{not json", device),
    ]
    for number, (body, headers_) in enumerate(cases):
        lane_status, _h, lane_content = lane_post(lane, body(f"lane-{number}"), headers_)
        django_status, django_content = django_post(body(f"django-{number}"), headers_)
        assert lane_status == django_status, (number, lane_content, django_content)
        assert json.loads(lane_content) == json.loads(django_content), number


def test_other_requests_go_to_django(transactional_db: None, door: Door) -> None:
    passed = Passed()
    lane = ScanLane(passed)
    body = scan(door, door.qr(0), "p-1")
    device = {"Authorization": f"Device {door.token}"}
    assert lane_post(lane, body, {})[0] == 299  # a signed-in checker (cookies, CSRF)
    assert lane_post(lane, body, {"Authorization": "Bearer x"})[0] == 299
    assert lane_post(lane, body, device, path="/api/v1/checkin/sync")[0] == 299
    assert lane_post(lane, body, device, method="PUT")[0] == 299
    assert lane_post(lane, body, device, host="evil.example")[0] == 299  # Django refuses it
    assert len(passed.paths) == 5
    assert Scan.objects.count() == 0


def test_an_oversized_body_is_invalid_input_and_records_nothing(
    transactional_db: None, door: Door
) -> None:
    lane = ScanLane(Passed())
    body = b'{"code": "' + b"x" * 70_000 + b'"}'
    status, _headers, content = lane_post(
        lane, body, {"Authorization": f"Device {door.token}", "Accept-Language": "en"}
    )
    assert status == 400
    assert json.loads(content)["code"] == "invalid_input"
    assert Scan.objects.count() == 0


def test_scans_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    sizes: list[int] = []
    release = threading.Event()

    def run(scans: list[Any]) -> list[Answer]:
        sizes.append(len(scans))
        if len(sizes) == 1:
            release.wait(5)
        return [Answer(200, b"{}", "en") for _ in scans]

    batcher = Batcher(run, batch_max=8, flushers=1)
    scan = QueuedScan(
        ScanAttempt(gate="g", session="s", code="c", nonce="n", device_token="t"), "en"
    )

    async def main() -> list[Answer]:
        first = batcher.submit(scan)
        await asyncio.sleep(0.05)  # the first batch is in the database …
        rest = [batcher.submit(scan) for _ in range(10)]
        release.set()
        return await asyncio.gather(first, *rest)

    answers = asyncio.run(main())
    assert len(answers) == 11
    assert sizes == [1, 8, 2]  # … so the ten waiting go in batches of at most 8


def test_a_failing_batch_fails_each_of_its_scans() -> None:
    def run(scans: list[Any]) -> list[Answer]:
        raise RuntimeError("database down")

    batcher = Batcher(run, flushers=1)
    scan = QueuedScan(
        ScanAttempt(gate="g", session="s", code="c", nonce="n", device_token="t"), "en"
    )

    async def main() -> list[Any]:
        futures = [batcher.submit(scan) for _ in range(3)]
        return await asyncio.gather(*futures, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes] == [RuntimeError] * 3


@pytest.mark.postgres
@pytest.mark.slow
def test_one_ticket_through_two_workers_lanes_at_once_gets_in_once(
    transactional_db: None, door: Door, make_door: MakeDoor
) -> None:
    """Two server workers (two lanes, each its own batch thread and connection), eight gates
    each, all scanning the same ticket at once: exactly one entry is accepted."""
    doors = [door] + [make_door(door.session, tickets=door.tickets) for _ in range(7)]
    lanes = [ScanLane(Passed()), ScanLane(Passed())]
    qr = door.qr(0)

    async def main() -> list[tuple[int, dict[str, str], bytes]]:
        calls = [
            _call(
                lanes[i % 2],
                json.dumps(scan(d, qr, f"race-{i}")).encode(),
                {"Authorization": f"Device {d.token}"},
            )
            for i, d in enumerate(doors * 2)
        ]
        return await asyncio.gather(*calls)

    answers = asyncio.run(main())
    outcomes = sorted(json.loads(content)["outcome"] for _s, _h, content in answers)
    assert outcomes == ["already_used"] * 15 + ["valid"]
    assert Admission.objects.filter(ticket=door.tickets[0]).count() == 1
    assert Scan.objects.filter(outcome="valid").count() == 1
