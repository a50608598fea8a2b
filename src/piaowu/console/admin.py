"""The operator console's Django admin: registrations for every app.

They live here rather than in `catalog/admin.py` / `accounts/admin.py` because admins are
presentation, and the domain apps never import presentation (import-linter contract).
"""

from piaowu.console import (
    admin_accounts,
    admin_cancellations,
    admin_cases,
    admin_catalog,
    admin_checkin,
    admin_exchanges,
    admin_orders,
    admin_payments,
    admin_refunds,
    admin_tickets,
    admin_transfers,
    admin_waitlist,
)

__all__ = [
    "admin_accounts",
    "admin_cancellations",
    "admin_cases",
    "admin_catalog",
    "admin_checkin",
    "admin_exchanges",
    "admin_orders",
    "admin_payments",
    "admin_refunds",
    "admin_tickets",
    "admin_transfers",
    "admin_waitlist",
]
