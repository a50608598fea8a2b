"""The REST API: `/api/v1/…`, OpenAPI at `/api/openapi.json`, docs at `/api/docs`."""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI
from ninja.renderers import JSONRenderer

from piaowu.api.errors import ERROR_CODES_DOC, install_error_handlers
from piaowu.api.v1 import cancellations as cancellations_api
from piaowu.api.v1 import cases as cases_api
from piaowu.api.v1 import (
    checkin,
    events,
    holds,
    live,
    orders,
    payments,
    printing,
    sessions,
    tickets,
    venues,
)
from piaowu.api.v1 import exchanges as exchanges_api
from piaowu.api.v1 import refunds as refunds_api
from piaowu.api.v1 import transfers as transfers_api
from piaowu.api.v1 import waitlist as waitlist_api

DESCRIPTION = f"""Piaowu's public API.

Every error answers `{{"code", "message", "details"}}` with a stable `code`:

{ERROR_CODES_DOC}

Lists are paginated with `page` and `page_size` (at most 100) and answer
`{{"items", "count", "page", "page_size", "next_page"}}`; a page past the end is empty.
Texts follow `Accept-Language` (zh-hans or en).
"""


class CompactJSONRenderer(JSONRenderer):
    """UTF-8 as it is (Chinese text takes 3 bytes, not a 6-byte `\\uXXXX`), no spaces."""

    json_dumps_params: Any = {"ensure_ascii": False, "separators": (",", ":")}


api = NinjaAPI(
    title="Piaowu API",
    version="1",
    urls_namespace="api",
    description=DESCRIPTION,
    renderer=CompactJSONRenderer(),
)
install_error_handlers(api)
api.add_router("/v1/", events.router)
api.add_router("/v1/", sessions.router)
api.add_router("/v1/", live.router)
api.add_router("/v1/", venues.router)
api.add_router("/v1/", holds.router)
api.add_router("/v1/", orders.router)
api.add_router("/v1/", payments.router)
api.add_router("/v1/", tickets.router)
api.add_router("/v1/", printing.router)
api.add_router("/v1/", checkin.router)
api.add_router("/v1/", transfers_api.router)
api.add_router("/v1/", waitlist_api.router)
api.add_router("/v1/", cases_api.router)
api.add_router("/v1/", cancellations_api.router)
api.add_router("/v1/", refunds_api.router)
api.add_router("/v1/", exchanges_api.router)
