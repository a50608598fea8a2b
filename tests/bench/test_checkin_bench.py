"""Smoke tests of the check-in bench's helpers (bench/checkin_data.py, bench/fuzz_codes): the
data they build is what the services make, the double-admission count sees a real double, and
the fuzzer's oracle passes the real verifier and fails a broken one. No timing here."""

from __future__ import annotations

import datetime as dt
import json
import runpy
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from bench import checkin_data
from piaowu.catalog.models import Session
from piaowu.checkin.models import Device, Gate
from piaowu.checkin.offline import OfflineVerifier
from piaowu.checkin.services import SyncScan, checkin_sync
from piaowu.tickets import codec
from piaowu.tickets.models import Ticket

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fuzz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The fuzzer's functions (an executable script, loaded without running main), writing
    its findings under tmp_path."""
    names = runpy.run_path(str(ROOT / "bench" / "fuzz_codes"), run_name="fuzz_codes")
    monkeypatch.setitem(names["run_mutate"].__globals__, "OUT_DIR", tmp_path)
    return names


def test_order_sizes_add_up_to_the_tickets() -> None:
    for tickets in (1, 7, 40, 41, 1000, 20_000):
        sizes = checkin_data.order_sizes(tickets)
        assert sum(sizes) == tickets
        assert all(1 <= s <= max(checkin_data.ORDER_SIZES) for s in sizes)


@pytest.mark.django_db
def test_prepare_builds_paid_tickets_the_pack_accepts(settings: Any) -> None:
    limit = settings.PIAOWU_MAX_PER_CUSTOMER
    prepared = checkin_data.prepare(tickets=45, gates=3, processes=1, progress=lambda _: None)

    assert len(prepared.qr_texts) == 45 == len(set(prepared.qr_texts))
    assert prepared.orders == 9  # 1 + 2 + … + 9
    assert Gate.objects.filter(venue_id=prepared.venue_pk).count() == 3
    assert Device.objects.filter(venue_id=prepared.venue_pk).count() == 3
    tickets = Ticket.objects.filter(session_id=prepared.session_pk)
    assert tickets.count() == 45
    assert {t.order.state for t in tickets.select_related("order")} == {"paid"}
    # The per-customer limit was raised for the build only.
    assert limit == settings.PIAOWU_MAX_PER_CUSTOMER

    gate = prepared.gates[0]
    client = Client(HTTP_AUTHORIZATION=f"Device {gate.device_token}")
    response = client.get(f"/api/v1/checkin/sessions/{prepared.session_public_id}/pack")
    assert response.status_code == 200
    verifier = OfflineVerifier(response.json())
    now = dt.datetime.now(tz=dt.UTC).timestamp()
    outcomes = [verifier.check(t, gate_id=gate.public_id, now=now)[0] for t in prepared.qr_texts]
    assert set(outcomes) == {"valid"}
    assert verifier.check(prepared.qr_texts[0], gate_id=gate.public_id, now=now)[0] == (
        "already_used"
    )


@pytest.mark.django_db
def test_admission_counts_sees_an_offline_double_admission() -> None:
    prepared = checkin_data.prepare(tickets=3, gates=2, processes=1, progress=lambda _: None)
    session = Session.objects.get(pk=prepared.session_pk)
    one, two = (Gate.objects.get(public_id=g.public_id) for g in prepared.gates)
    devices = list(Device.objects.filter(venue_id=prepared.venue_pk).order_by("id"))
    code = prepared.qr_texts[0]

    client = Client(HTTP_AUTHORIZATION=f"Device {prepared.gates[0].device_token}")
    body = {
        "gate": one.public_id,
        "session": session.public_id,
        "code": code,
        "nonce": uuid.uuid4().hex,
        "direction": "entry",
    }
    answer = client.post("/api/v1/checkin/scans", json.dumps(body), content_type="application/json")
    assert answer.json()["outcome"] == "valid"
    assert checkin_data.admission_counts(prepared.session_pk)["double_admissions"] == 0

    # The second gate's device was offline and let the same ticket in too.
    checkin_sync(
        device=devices[1],
        scans=[
            SyncScan(
                nonce="offline-1",
                gate=two,
                session=session,
                code=code,
                direction="entry",
                scanned_at=dt.datetime.now(tz=dt.UTC),
                device_accepted=True,
            )
        ],
    )
    counts = checkin_data.admission_counts(prepared.session_pk)
    assert counts["conflict_scans"] == 1
    assert counts["double_admissions"] == 1
    assert counts["admissions"] == 1


def test_fuzz_oracle_passes_the_real_verifier(fuzz: dict[str, Any], tmp_path: Path) -> None:
    world = fuzz["synthetic_world"](11)
    stats = tmp_path / "stats.json"
    fuzz["run_mutate"](world, 11, fuzz["Budget"](inputs=3000), stats)

    result = json.loads(stats.read_text())
    assert result["inputs"] == 3000
    assert result["crashes"] == 0
    assert result["violations"] == {}
    assert result["accepted"] > 0  # genuine equivalents (case, padding) do pass
    assert result["outcomes"]["forged"] > 0


def test_fuzz_oracle_catches_a_verifier_that_accepts_altered_codes(
    fuzz: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def careless(self: OfflineVerifier, text: str, **_: Any) -> tuple[str, Any]:
        try:
            return "valid", codec.parse(text).claims
        except codec.CodeError:
            return "unreadable", None

    monkeypatch.setattr(OfflineVerifier, "check", careless)
    world = fuzz["synthetic_world"](12)
    stats = tmp_path / "stats.json"
    fuzz["run_mutate"](world, 12, fuzz["Budget"](inputs=2000), stats)

    result = json.loads(stats.read_text())
    assert result["violations"].get("accepted_altered_code", 0) > 0
    assert "accepted_altered_code" in (tmp_path / "findings.jsonl").read_text()


def test_fuzz_oracle_counts_an_undocumented_exception_as_a_crash(
    fuzz: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(text: str) -> codec.ParsedCode:
        raise IndexError("boom")

    world = fuzz["synthetic_world"](13)
    oracle = fuzz["Oracle"](world, tmp_path / "findings.jsonl", "test")
    monkeypatch.setattr(codec, "parse", broken)
    oracle.run("PW1AAAA", None, "entry")

    assert oracle.crashes == 1
    assert "IndexError" in (tmp_path / "findings.jsonl").read_text()
