"""Errors are data: a stable code, a message in the user's language, and details."""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise


class DomainError(Exception):
    """A rule of the domain refused the request. `code` is stable and documented in the API."""

    status = 400

    def __init__(
        self, code: str, message: str | Promise, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self.message), "details": self.details}


class NotFound(DomainError):
    status = 404

    def __init__(self, what: str, message: str | Promise, details: dict[str, Any] | None = None):
        super().__init__(f"{what}_not_found", message, details)


class PermissionDenied(DomainError):
    status = 403

    def __init__(self, message: str | Promise, details: dict[str, Any] | None = None) -> None:
        super().__init__("forbidden", message, details)
