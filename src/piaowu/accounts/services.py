"""Writes for accounts: sign-up and organizer memberships."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from piaowu.accounts.models import Membership, Organizer, Role, User
from piaowu.core.errors import DomainError


def user_sign_up(*, email: str, password: str, display_name: str = "") -> User:
    """Create a customer account; `DomainError`: invalid_email, email_taken, weak_password."""
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise DomainError("invalid_email", _("Enter a valid e-mail address.")) from exc
    if User.objects.filter(email=email).exists():
        raise DomainError("email_taken", _("An account with this e-mail already exists."))
    candidate = User(email=email, display_name=display_name.strip())
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise DomainError(
            "weak_password", " ".join(exc.messages), {"reasons": list(exc.messages)}
        ) from exc
    with transaction.atomic():
        return User.objects.create_user(
            email=email, password=password, display_name=display_name.strip()
        )


def membership_grant(*, user: User, organizer: Organizer, role: str) -> Membership:
    """Give `user` `role` at `organizer` (idempotent). Staff-site access follows from it."""
    if role not in Role.values:
        raise DomainError("invalid_role", _("Unknown role."), {"role": role})
    with transaction.atomic():
        membership, _created = Membership.objects.update_or_create(
            user=user, organizer=organizer, role=role, defaults={"is_active": True}
        )
        if not user.is_staff:
            # Django admin needs is_staff; what the user may see there is still scoped by role.
            User.objects.filter(pk=user.pk).update(is_staff=True)
            user.is_staff = True
    return membership


def membership_revoke(*, user: User, organizer: Organizer, role: str) -> None:
    with transaction.atomic():
        Membership.objects.filter(user=user, organizer=organizer, role=role).update(is_active=False)
        if (
            not user.is_superuser
            and not Membership.objects.filter(user=user, is_active=True).exists()
        ):
            User.objects.filter(pk=user.pk).update(is_staff=False)
