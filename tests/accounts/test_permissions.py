import pytest

from piaowu.accounts.models import Role, User
from piaowu.accounts.permissions import (
    Perm,
    has_perm,
    organizer_ids_with,
    require_perm,
)
from piaowu.accounts.services import membership_grant, membership_revoke
from piaowu.core.errors import PermissionDenied

pytestmark = pytest.mark.django_db


def test_a_role_grants_its_permissions_only_at_its_own_organizer(
    organizer, other_organizer, make_staff
) -> None:
    seller = make_staff(organizer, Role.SELLER)
    assert has_perm(seller, organizer, Perm.ORDERS_SELL)
    assert not has_perm(seller, organizer, Perm.CATALOG_MANAGE)
    assert not has_perm(seller, other_organizer, Perm.ORDERS_SELL)
    with pytest.raises(PermissionDenied) as caught:
        require_perm(seller, other_organizer, Perm.ORDERS_SELL)
    assert caught.value.status == 403 and caught.value.code == "forbidden"


@pytest.mark.parametrize(
    ("role", "perm", "allowed"),
    [
        (Role.ADMIN, Perm.MEMBERS_MANAGE, True),
        (Role.CHECKER, Perm.GATE_SCAN, True),
        (Role.CHECKER, Perm.ORDERS_VIEW, False),
        (Role.SERVICE, Perm.ORDERS_REFUND, True),
        (Role.FINANCE, Perm.FINANCE_REPORTS, True),
        (Role.FINANCE, Perm.ORDERS_SELL, False),
    ],
)
def test_role_matrix(organizer, make_staff, role, perm, allowed) -> None:
    assert has_perm(make_staff(organizer, role), organizer, perm) is allowed


def test_superuser_holds_every_permission_everywhere(organizer, make_user) -> None:
    root = make_user(is_superuser=True, is_staff=True)
    assert organizer_ids_with(root, Perm.CATALOG_MANAGE) is None
    assert has_perm(root, organizer, Perm.FINANCE_REPORTS)


def test_customers_inactive_users_and_revoked_roles_hold_nothing(organizer, make_user) -> None:
    customer = make_user()
    assert organizer_ids_with(customer, Perm.CATALOG_VIEW) == set()

    staff = make_user()
    membership_grant(user=staff, organizer=organizer, role=Role.ADMIN)
    staff.refresh_from_db()
    assert staff.is_staff and has_perm(staff, organizer, Perm.CATALOG_VIEW)
    membership_revoke(user=staff, organizer=organizer, role=Role.ADMIN)
    staff = User.objects.get(pk=staff.pk)  # as the next request would load it
    assert not staff.is_staff and not has_perm(staff, organizer, Perm.CATALOG_VIEW)

    staff.is_active = False
    assert organizer_ids_with(staff, Perm.CATALOG_VIEW) == set()


def test_granting_an_unknown_role_is_refused(organizer, make_user) -> None:
    from piaowu.core.errors import DomainError

    with pytest.raises(DomainError) as caught:
        membership_grant(user=make_user(), organizer=organizer, role="owner")
    assert caught.value.code == "invalid_role"
