"""Role → permission matrix and the one check every staff view and API uses.

Permissions are verbs on an organizer's data. A role grants a fixed set; superusers (platform
operators) hold every permission at every organizer.
"""

from __future__ import annotations

from enum import StrEnum

from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Membership, Organizer, Role, User
from piaowu.accounts.two_factor import needs_second_factor, session_is_verified
from piaowu.core.errors import PermissionDenied


class Perm(StrEnum):
    CATALOG_VIEW = "catalog.view"
    CATALOG_MANAGE = "catalog.manage"
    ORDERS_VIEW = "orders.view"
    ORDERS_SELL = "orders.sell"
    ORDERS_REFUND = "orders.refund"
    GATE_SCAN = "gate.scan"
    SERVICE_CASES = "service.cases"
    FINANCE_REPORTS = "finance.reports"
    MEMBERS_MANAGE = "members.manage"


ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.SELLER: frozenset(
        {Perm.CATALOG_VIEW, Perm.ORDERS_VIEW, Perm.ORDERS_SELL, Perm.ORDERS_REFUND}
    ),
    Role.CHECKER: frozenset({Perm.CATALOG_VIEW, Perm.GATE_SCAN}),
    Role.SERVICE: frozenset(
        {Perm.CATALOG_VIEW, Perm.ORDERS_VIEW, Perm.ORDERS_REFUND, Perm.SERVICE_CASES}
    ),
    Role.FINANCE: frozenset({Perm.CATALOG_VIEW, Perm.ORDERS_VIEW, Perm.FINANCE_REPORTS}),
}


def _active_memberships(user: User) -> list[Membership]:
    # Cached on the user object for the request: a page asks several times.
    cached: list[Membership] | None = getattr(user, "_piaowu_memberships", None)
    if cached is None:
        cached = list(
            Membership.objects.filter(user=user, is_active=True, organizer__is_active=True)
        )
        user._piaowu_memberships = cached  # type: ignore[attr-defined]
    return cached


def organizer_ids_with(user: User | None, perm: Perm) -> set[int] | None:
    """Organizer ids where `user` holds `perm`; None means every organizer (superuser).

    A request's user whose session has not passed the staff second factor holds nothing
    (`piaowu.accounts.two_factor`): every staff page, admin and API call goes through here.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    if not session_is_verified(user):
        return set()
    if user.is_superuser:
        return None
    return {m.organizer_id for m in _active_memberships(user) if perm in ROLE_PERMISSIONS[m.role]}


def has_perm(user: User | None, organizer: Organizer | int, perm: Perm) -> bool:
    organizer_id = organizer if isinstance(organizer, int) else organizer.pk
    allowed = organizer_ids_with(user, perm)
    return allowed is None or organizer_id in allowed


def require_perm(user: User | None, organizer: Organizer | int, perm: Perm) -> None:
    """Raise `PermissionDenied` unless `user` holds `perm` at `organizer`."""
    if not has_perm(user, organizer, perm):
        if needs_second_factor(user):
            raise PermissionDenied(
                _("Confirm your sign-in with a two-factor code first."),
                {"permission": str(perm), "second_factor_required": True},
            )
        raise PermissionDenied(
            _("You do not have permission to do this for this organizer."),
            {"permission": str(perm)},
        )
