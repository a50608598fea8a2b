"""The examples in docs/seat-maps.md and docs/batch-import.md work as the docs say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import Category, Event, Session
from piaowu.catalog.services import catalog_batch_import, hall_create, seat_map_import
from tests.factories import make_hall, make_venue

DOCS = Path(__file__).resolve().parents[2] / "docs"


def example(doc: str, language: str, index: int = 0) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", (DOCS / doc).read_text("utf-8"), re.S)
    return str(blocks[index])


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_the_seat_map_examples_import(organizer: Organizer, fmt: str) -> None:
    hall = hall_create(venue=make_venue(organizer), name="小剧场")
    seat_map = seat_map_import(hall=hall, content=example("seat-maps.md", fmt), fmt=fmt)
    assert (seat_map.seat_count, seat_map.name, seat_map.stage_label) == (5, "小剧场 2026", "舞台")
    assert seat_map.seats.filter(pair__isnull=False).count() == 2
    assert seat_map.seats.get(code="B-1-1").is_blocked


def test_the_batch_example_imports(organizer: Organizer) -> None:
    make_hall(make_venue(organizer, name="星光剧院"), name="1号厅")
    Category.objects.create(slug="drama", name="话剧")
    report = catalog_batch_import(
        organizer=organizer, content=example("batch-import.md", "csv").encode(), fmt="csv"
    )
    assert (report.count("events", "created"), report.count("sessions", "created")) == (3, 3)
    assert Event.objects.get(code="gugong").scenic.opening_hours == "8:30-17:00"
    assert Session.objects.get(code="f1").capacity == 200
