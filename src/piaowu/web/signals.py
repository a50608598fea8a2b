"""Signing in on the web keeps what the browser did before: its holds and orders."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from piaowu.accounts.models import User
from piaowu.inventory.holders import anonymous_holder_key
from piaowu.orders.services import buyer_adopt


def adopt_anonymous_purchases(sender: Any, request: HttpRequest, user: User, **_: Any) -> None:
    holder_key = anonymous_holder_key(getattr(request, "session", None))
    if holder_key:
        buyer_adopt(holder_key=holder_key, customer=user)
