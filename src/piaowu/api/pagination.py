"""Page-number pagination with one envelope: `{"items", "count", "count_exact", "page",
"page_size", "next_page"}`. A page beyond the end is empty (200), not an error."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from django.db.models import Model, QuerySet
from ninja import Field, Schema

from piaowu.catalog.selectors import MAX_PAGE_SIZE

DEFAULT_PAGE_SIZE = 20
COUNT_CAP = 200
ItemT = TypeVar("ItemT")
ModelT = TypeVar("ModelT", bound=Model)


class PageQuery(Schema):
    page: int = Field(1, ge=1, le=100_000, description="1-based page number.")
    page_size: int = Field(
        DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Items per page (at most 100)."
    )


class Page(Schema, Generic[ItemT]):
    items: list[ItemT]
    count: int = Field(description="Matching items, counted up to 200.")
    count_exact: bool = Field(description="False when more than 200 match.")
    page: int
    page_size: int
    next_page: int | None


def paginate(
    queryset: QuerySet[ModelT], page: int, page_size: int, *, count_cap: int = COUNT_CAP
) -> tuple[list[ModelT], int, bool]:
    """The rows of one page, the total count, and whether another page follows.

    The count stops at `count_cap`: counting 100,000 matching events costs more than finding
    the page, and nobody pages that far. Past the cap the envelope says `count_exact: false`.
    One row beyond the page is read to tell whether a next page exists.
    """
    offset = (page - 1) * page_size
    rows = list(queryset[offset : offset + page_size + 1])
    has_next = len(rows) > page_size
    rows = rows[:page_size]
    if rows and not has_next:
        return rows, offset + len(rows), False  # the last page: the count is known
    if page == 1 and not rows:
        return rows, 0, False
    # Ordering and annotations do not change a count; dropping them keeps it cheap.
    count = queryset.order_by().values("pk")[: count_cap + 1].count()
    return rows, count, has_next


def page_body(
    items: list[Any], *, count: int, page: int, page_size: int, has_next: bool
) -> dict[str, Any]:
    return {
        "items": items,
        "count": min(count, COUNT_CAP),
        "count_exact": count <= COUNT_CAP,
        "page": page,
        "page_size": page_size,
        "next_page": page + 1 if has_next else None,
    }
