"""`Idempotency-Key` for every state-changing API call: a client that retries with the same key
gets the first answer again instead of holding, buying or paying twice.

Each mutating endpoint hands its work to `run_idempotent(request, compute)`, where `compute()`
returns `(status, body)` — `body` JSON-ready (strings for times and money), `None` for 204.

* **No header**: `compute` runs, as without this module.
* **With a header**: `piaowu.core.idempotency.idempotent` runs `compute` once per
  (scope, key) and stores the status and body; a retry with the same key and the same request
  (method, path with query string, body — `request_fingerprint`) gets that status and body
  again, 204 included. The same key for another request is 422 `idempotency_key_reused`;
  while the first request is still running, 409 `idempotency_key_in_progress` — except on
  the endpoints that run with `atomic=True` (purchase, hold, checkout), where the key row is
  written in the work's own transaction: there the retry waits on the unique index for the
  first to finish and then gets its answer. An empty or over-long key is 400
  `invalid_idempotency_key`. A refused request (any error) is not remembered: retrying it runs
  it again.

The **scope** keeps clients apart: `user:<id>` when signed in, else `anon:<REMOTE_ADDR>`.
Anonymous buyers are told apart by address rather than by the holder key in their Django
session (`inventory.holders`) because that key is *created* by their first hold: the
retry of a browser whose first answer came back has the cookie, the retry of one whose answer
was lost has none, and both must find the first answer. So the holder key the first request
ended with is stored with its answer, and a replay to an anonymous caller

* with that same holder key (or none stored) gets the answer;
* with another holder key is refused, 422 `idempotency_key_reused` — it is another client
  behind the same address, and must not see this one's hold or order;
* with no holder key (the lost-answer case) gets the answer *and* that holder key in its
  session, so it owns the hold or order it made.

Hence keys must be unguessable (a UUID v4, as `crypto.randomUUID()` makes): for an anonymous
client the key and its address are what a replay requires. A retry from another address is
another client (the work is done again, or refused, e.g. `seat_taken`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Status

from piaowu.core.errors import DomainError
from piaowu.core.idempotency import idempotent, request_fingerprint
from piaowu.inventory.holders import HOLDER_SESSION_KEY, anonymous_holder_key

HEADER = "Idempotency-Key"

Compute = Callable[[], tuple[int, Any]]

#: Error codes every endpoint using `run_idempotent` can answer (for its OpenAPI description).
IDEMPOTENCY_ERRORS: dict[str, str] = {
    "invalid_idempotency_key": "400 — the `Idempotency-Key` is empty or longer than 255 "
    "characters.",
    "idempotency_key_in_progress": "409 — the first request with this key is still running; "
    "retry shortly.",
    "idempotency_key_reused": "422 — this key was used for a different request (method, path "
    "or body).",
}


def idempotency_openapi() -> dict[str, Any]:
    """`openapi_extra` documenting the header (a fresh dict: Ninja merges it in place)."""
    return {
        "parameters": [
            {
                "in": "header",
                "name": HEADER,
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Optional. A retry with the same key and the same request gets "
                "the first answer again; see the API description.",
            }
        ]
    }


def _signed_in_id(request: HttpRequest) -> int | None:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return int(user.pk)
    return None


def _session_holder(request: HttpRequest) -> str:
    return anonymous_holder_key(getattr(request, "session", None))


def idempotency_scope(request: HttpRequest) -> str:
    """Whose keys these are: the signed-in user, else the caller's address."""
    user_id = _signed_in_id(request)
    if user_id is not None:
        return f"user:{user_id}"
    return "anon:" + str(request.META.get("REMOTE_ADDR", ""))


def _response(status: int, body: Any) -> Status | HttpResponse:
    if status == 204:
        return HttpResponse(status=204)
    return Status(status, body)


def _another_client() -> DomainError:
    error = DomainError(
        "idempotency_key_reused",
        _("This idempotency key was already used by another client."),
    )
    error.status = 422
    return error


def run_idempotent(
    request: HttpRequest, compute: Compute, *, atomic: bool = False
) -> Status | HttpResponse:
    """Run `compute` (→ `(status, body)`) at most once per `Idempotency-Key`; see the module
    docstring. Call it after the CSRF check, so a forged request cannot read a stored answer.
    `atomic`: store the key in the same transaction as `compute`'s work (see
    `core.idempotency.idempotent`) — for computes that are one short database transaction."""
    key = request.headers.get(HEADER)
    if key is None:
        return _response(*compute())
    anonymous = _signed_in_id(request) is None

    def recorded() -> tuple[int, dict[str, Any]]:
        status, body = compute()
        record: dict[str, Any] = {"body": body}
        if anonymous:
            record["holder_key"] = _session_holder(request)
        return status, record

    status, record = idempotent(
        scope=idempotency_scope(request),
        key=key,
        fingerprint=request_fingerprint(
            request.method or "", request.get_full_path(), request.body
        ),
        compute=recorded,
        atomic=atomic,
    )
    if anonymous:
        stored_holder = str(record.get("holder_key") or "")
        current_holder = _session_holder(request)
        if stored_holder and current_holder and stored_holder != current_holder:
            raise _another_client()
        if stored_holder and not current_holder:
            request.session[HOLDER_SESSION_KEY] = stored_holder  # the lost first answer's
    return _response(status, record.get("body"))
