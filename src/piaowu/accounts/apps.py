from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "piaowu.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from piaowu.accounts import checks  # noqa: F401  (registers the system checks)
        from piaowu.accounts.login_guard import on_user_login_failed

        user_login_failed.connect(on_user_login_failed, dispatch_uid="piaowu.login_failures")
