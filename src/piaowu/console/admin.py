"""The operator console's Django admin: registrations for the catalog and accounts.

They live here rather than in `catalog/admin.py` / `accounts/admin.py` because admins are
presentation, and the domain apps never import presentation (import-linter contract).
"""

from piaowu.console import admin_accounts, admin_catalog, admin_orders, admin_payments

__all__ = ["admin_accounts", "admin_catalog", "admin_orders", "admin_payments"]
