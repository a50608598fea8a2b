"""Who is holding: the holder key every hold carries, one rule for the API and the web pages.

`user:<id>` when signed in; otherwise an anonymous key kept in the Django session under
`HOLDER_SESSION_KEY`, made with the browser's first hold. Signing in adopts the anonymous
browser's holds and orders (`orders.services.buyer_adopt`).
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import Any

HOLDER_SESSION_KEY = "piaowu_holder"
#: Orders this browser may open without an account: bought here or looked up by code + phone.
GRANTED_ORDERS_KEY = "piaowu_orders"
MAX_GRANTED_ORDERS = 50


def user_holder_key(user_id: int) -> str:
    return f"user:{user_id}"


def holder_key_for(
    *, user: Any, session: MutableMapping[str, Any] | None, create: bool = False
) -> str:
    """The holder key of a signed-in `user`, else the session's anonymous key ("" when there is
    none yet and not `create`)."""
    if user is not None and getattr(user, "is_authenticated", False):
        return user_holder_key(int(user.pk))
    if session is None:
        return ""
    key = str(session.get(HOLDER_SESSION_KEY, ""))
    if not key and create:
        key = new_anonymous_key()
        session[HOLDER_SESSION_KEY] = key  # marks a Django session modified: it is saved
    return key


def new_anonymous_key() -> str:
    """A fresh anonymous holder key. Callers store it in the Django session only once a hold
    succeeded, so a refused buyer costs no session row."""
    return "anon:" + secrets.token_urlsafe(24)


def anonymous_holder_key(session: MutableMapping[str, Any] | None) -> str:
    """The session's anonymous key, whoever is signed in now ("" if none)."""
    return str(session.get(HOLDER_SESSION_KEY, "")) if session is not None else ""


def granted_order_ids(session: MutableMapping[str, Any] | None) -> list[str]:
    granted = session.get(GRANTED_ORDERS_KEY, []) if session is not None else []
    return [str(public_id) for public_id in granted] if isinstance(granted, list) else []


def grant_order(session: MutableMapping[str, Any], public_id: str) -> None:
    """Let this browser open the order later (also after signing in or out); newest kept."""
    granted = [known for known in granted_order_ids(session) if known != public_id]
    session[GRANTED_ORDERS_KEY] = [*granted, public_id][-MAX_GRANTED_ORDERS:]
